#!/usr/bin/env bash
# Soaks the three appliances side by side: examples/www, examples/dns and
# examples/kv, each a unikernel on the user network, loaded in rounds and
# restarted every few rounds, while the host memory and descriptors of
# each atoll process are sampled.
#
# Each round (ROUND seconds) loads all three at once:
#   - www: wrk, 16 keep-alive connections, and a loop of curl requests on
#     new connections (connection churn);
#   - dns: dnsperf at 2,000 queries/s over UDP, 8 clients;
#   - kv:  redis-benchmark SET/GET on 10,000 random keys, 20 clients.
# After each round, one line per appliance: RSS (MiB), descriptors and
# threads of its atoll process, and the round's result (requests/s and
# errors; queries lost; requests/s). Every RESTART rounds each is stopped
# with SIGTERM and started again; kv keeps its data (a sentinel key is
# checked after every restart). At the end, for each appliance and life,
# RSS and descriptors at its first and last round, and the largest.
#
# Usage: bench/soak-appliances.sh [DURATION] [ROUND] [RESTART]
#        (seconds; defaults 3600, 20, 15: an hour, restarts every 5 min)
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-3600} round=${2:-20} restart=${3:-15}
for c in wrk curl dnsperf redis-benchmark redis-cli; do
	command -v $c >/dev/null || { echo "bench/soak-appliances.sh needs $c (apt-get install wrk curl dnsperf redis-tools)" >&2; exit 1; }
done
export PATH=/usr/local/go/bin:$PATH
tmp=$(mktemp -d)
declare -A pid
cleanup() {
	status=$?
	for a in "${!pid[@]}"; do kill -9 "${pid[$a]}" 2>/dev/null || true; done
	if [ $status -ne 0 ]; then
		for a in www dns kv; do [ -f "$tmp/$a.log" ] && { echo "== $a's log:"; tail -20 "$tmp/$a.log"; } >&2; done
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

go build -o "$tmp/atoll" ./cmd/atoll
for a in www dns kv; do
	"$tmp/atoll" build -o "$tmp/$a.img" ./examples/$a >/dev/null 2>&1
done
mkdir -p "$tmp/data"
www=18480 dns=18453 kv=18479
printf 'www.example.org. A\nexample.org. SOA\nexample.org. NS\nnope.example.org. A\nexample.org. MX\n' >"$tmp/queries"

start() {
	local args
	case $1 in
	www) args=(-p $www:80) ;;
	dns) args=(-p $dns:53/udp -p $dns:53) ;;
	kv) args=(-p $kv:6379 --volume data="$tmp/data") ;;
	esac
	"$tmp/atoll" run "${args[@]}" "$tmp/$1.img" >>"$tmp/$1.log" 2>&1 &
	pid[$1]=$!
	for _ in $(seq 300); do
		case $1 in
		www) curl -fs -o /dev/null http://127.0.0.1:$www/ && return ;;
		dns) dig +short +time=1 +tries=1 -p $dns @127.0.0.1 example.org SOA >/dev/null 2>&1 && return ;;
		kv) redis-cli -p $kv PING 2>/dev/null | grep -q PONG && return ;;
		esac
		sleep 0.1
	done
	echo "$1 did not come up:" >&2
	tail -20 "$tmp/$1.log" >&2
	exit 1
}

stop() {
	kill -TERM "${pid[$1]}"
	wait "${pid[$1]}" 2>/dev/null || true
}

sample() { # appliance result
	local p=${pid[$1]}
	local rss fds threads
	rss=$(awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' /proc/$p/status)
	fds=$(ls /proc/$p/fd | wc -l)
	threads=$(awk '/^Threads/ {print $2}' /proc/$p/status)
	printf '%s %6d %-4s life %-3d rss %6s MiB  fds %4d  threads %3d  %s\n' "$(date -u +%T)" "$n" "$1" "$life" "$rss" "$fds" "$threads" "$2" | tee -a "$tmp/samples"
}

echo "== $(date -u '+%F %T') UTC; $duration s in rounds of $round s, restarts every $restart rounds; load: $(cut -d' ' -f1-3 /proc/loadavg)"
for a in www dns kv; do start $a; done
redis-cli -p $kv SET sentinel kept >/dev/null
end=$((SECONDS + duration)) n=0 life=1
while [ $SECONDS -lt $end ]; do
	n=$((n + 1))
	wrk -t 1 -c 16 -d ${round}s http://127.0.0.1:$www/ >"$tmp/wrk.out" 2>&1 &
	w=$!
	dnsperf -s 127.0.0.1 -p $dns -d "$tmp/queries" -l $round -c 8 -Q 2000 >"$tmp/dnsperf.out" 2>&1 &
	d=$!
	t=$((SECONDS + round)) deadline=$(($(date +%s) + round))
	(while [ "$(date +%s)" -lt $deadline ]; do timeout 60 redis-benchmark -p $kv -t set,get -r 10000 -c 20 -n 20000 --csv 2>/dev/null || echo '"ERROR",0'; done) >"$tmp/kv.out" &
	k=$!
	churn=0 churnerr=0
	while [ $SECONDS -lt $t ]; do
		if curl -fs -o /dev/null -H 'Connection: close' http://127.0.0.1:$www/; then churn=$((churn + 1)); else churnerr=$((churnerr + 1)); fi
	done
	wait $w $d $k || true
	sample www "$(awk '/Requests\/sec/ {r=$2} /Non-2xx|Socket errors/ {e=e" "$0} END {printf "%s req/s;%s", r, e == "" ? " no errors" : e}' "$tmp/wrk.out"); churn $churn new connections, $churnerr failed"
	sample dns "$(awk '/Queries sent/ {s=$3} /Queries lost/ {l=$3} /Queries per second/ {q=$4} END {printf "%s q/s, %s of %s lost", q, l, s}' "$tmp/dnsperf.out")"
	sample kv "$(tr -d '"' <"$tmp/kv.out" | awk -F, '$1 == "SET" || $1 == "GET" {s[$1] += $2; c[$1]++} $1 == "ERROR" {e++} END {printf "SET %.0f req/s, GET %.0f req/s, %d runs failed", s["SET"] / c["SET"], s["GET"] / c["GET"], e}')"
	if [ $((n % restart)) -eq 0 ] && [ $SECONDS -lt $end ]; then
		for a in www dns kv; do stop $a; start $a; done
		life=$((life + 1))
		[ "$(redis-cli -p $kv GET sentinel)" = kept ] || { echo "kv lost its sentinel key across a restart" >&2; exit 1; }
	fi
done
for a in www dns kv; do stop $a; done
echo "== $(date -u '+%F %T') UTC: $n rounds, $life lives each; every restart kept kv's data"
# Per appliance and life: RSS and descriptors at the life's first and last
# round, and the largest of the life.
awk '{k = $3 " life " $5; if (!(k in first)) {first[k] = $7 " MiB, " $10 " fds"; order[++n] = k}
	last[k] = $7 " MiB, " $10 " fds"; if ($7 > maxr[k]) maxr[k] = $7; if ($10 > maxf[k]) maxf[k] = $10}
	END {for (i = 1; i <= n; i++) {k = order[i]; printf "%-14s first %-22s last %-22s largest %s MiB, %s fds\n", k, first[k], last[k], maxr[k], maxf[k]}}' "$tmp/samples" | sort -s -k1,1
