#!/usr/bin/env bash
# Load-tests authoritative DNS servers with dnsperf, in one run, on the
# same zone, each server on one core (taskset -c 1) and dnsperf on the
# other (taskset -c 0), alternating:
#
#   nsd       NSD as a process (nsd -d, server-count 1)
#   bind      BIND 9 as a process (named -g -n 1)
#   process   examples/dns as a plain process on the host's sockets
#   atoll     examples/dns under atoll run on the user backend (-p
#             PORT:53/udp -p PORT:53 --volume zones=DIR): the guest's own
#             TCP/IP stack, the NAT in the monitor; the whole atoll
#             process, monitor and vCPUs, is pinned to core 1
#   atoll-host  the same with --net service=host: the guest's sockets are
#             the host's, served by the monitor
#
# The last three run only when examples/dns exists. The zone (101 records:
# A, AAAA, MX, TXT) and the query file (130 queries: those names and
# types, names that exist without the type asked, and names that do not
# exist) are generated into a temp dir. Prints, per server and round,
# dnsperf's queries/s (and the slowest second's: a stall shows there),
# the p50 and p99 latency (computed from dnsperf -v,
# which reports every query's latency; a lost query counts as slower than
# any answer), the queries lost, the CPU the server's processes and
# dnsperf used (as a share of one core) and how busy each core was in all:
# a server near 100 % is the limit; dnsperf near 100 % with the server
# below is a client limit; a core much busier than its process is shared
# with other work. Then atoll's VM exits per query (its --stats, read
# after SIGINT; boot's ~40 exits included).
#
# Usage: bench/dns.sh [SECONDS] [CLIENTS] [OUTSTANDING] [ROUNDS]
#        (defaults 10, 8, 100, 2: dnsperf -l 10 -c 8 -T 1 -q 100, two rounds)
#
# With 100 queries outstanding BIND's core is saturated and no query is
# lost; from 200 on, BIND loses some (its socket's receive buffer
# overflows) and each lost query holds its slot for the 1 s timeout. On a
# 2-core machine one dnsperf thread is itself near a full core against
# NSD, so NSD's rate is a lower bound: see the busy columns.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
secs=${1:-10}
clients=${2:-8}
outstanding=${3:-100}
rounds=${4:-2}

missing=()
for c in dnsperf dig nsd named taskset go awk; do
	command -v "$c" >/dev/null || missing+=("$c")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "bench/dns.sh needs: ${missing[*]} (apt-get install dnsperf bind9-dnsutils nsd bind9 util-linux)" >&2
	exit 1
fi
if [ "$(nproc)" -lt 2 ]; then
	echo "bench/dns.sh needs two cores (server on core 1, dnsperf on core 0); nproc says $(nproc)" >&2
	exit 1
fi

tmp=$(mktemp -d)
# pid[NAME] is server NAME's process ID, $tmp/NAME.log its output.
declare -A pid
cleanup() {
	for p in "${pid[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "bench/dns.sh $secs $clients $outstanding $rounds: $(date -u), $(uname -r), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"

# The zone, one file per zone as examples/dns reads them (NAME.zone).
zone=bench.example
mkdir -p "$tmp/zones" "$tmp/nsd" "$tmp/bind"
{
	echo "\$ORIGIN $zone."
	echo "\$TTL 3600"
	echo "@ IN SOA ns.$zone. hostmaster.$zone. 2026112901 7200 3600 1209600 3600"
	echo "@ IN NS ns.$zone."
	echo "ns IN A 192.0.2.53"
	for i in $(seq 40); do printf 'h%03d IN A 192.0.2.%d\n' "$i" "$i"; done
	for i in $(seq 24); do printf 'h%03d IN AAAA 2001:db8::%x\n' "$i" "$i"; done
	for i in $(seq 10); do printf 'mx%03d IN MX %d h%03d\n' "$i" $((i * 10)) "$i"; done
	for i in $(seq 24); do printf 't%03d IN TXT "v=bench record %d"\n' "$i" "$i"; done
} >"$tmp/zones/$zone.zone"
{
	for i in $(seq 40); do printf 'h%03d.%s A\n' "$i" "$zone"; done
	for i in $(seq 24); do printf 'h%03d.%s AAAA\n' "$i" "$zone"; done
	for i in $(seq 10); do printf 'mx%03d.%s MX\n' "$i" "$zone"; done
	for i in $(seq 24); do printf 't%03d.%s TXT\n' "$i" "$zone"; done
	for i in $(seq 25 34); do printf 'h%03d.%s AAAA\n' "$i" "$zone"; done # no data
	for i in $(seq 20); do printf 'nx%03d.%s A\n' "$i" "$zone"; done     # no such name
	echo "$zone SOA"
	echo "$zone NS"
} >"$tmp/queries"
echo "zone $zone: $(grep -c ' IN ' "$tmp/zones/$zone.zone") records; $(wc -l <"$tmp/queries") queries in the file"

# NSD rate-limits responses (RRL, 200 a second from one address by
# default): off, or dnsperf measures the limit.
cat >"$tmp/nsd/nsd.conf" <<EOF
server:
	ip-address: 127.0.0.1@15351
	server-count: 1
	username: ""
	chroot: ""
	zonesdir: "$tmp/zones"
	database: ""
	zonelistfile: "$tmp/nsd/zone.list"
	xfrdfile: "$tmp/nsd/xfrd.state"
	xfrdir: "$tmp/nsd"
	pidfile: "$tmp/nsd/nsd.pid"
	logfile: "$tmp/nsd/nsd.log"
	verbosity: 0
	rrl-ratelimit: 0
	rrl-whitelist-ratelimit: 0
remote-control:
	control-enable: no
zone:
	name: $zone
	zonefile: $zone.zone
EOF
cat >"$tmp/bind/named.conf" <<EOF
options {
	directory "$tmp/bind";
	pid-file "$tmp/bind/named.pid";
	session-keyfile "$tmp/bind/session.key";
	managed-keys-directory "$tmp/bind";
	listen-on port 15352 { 127.0.0.1; };
	listen-on-v6 { none; };
	recursion no;
	dnssec-validation no;
	notify no;
};
controls { };
zone "$zone" {
	type primary;
	file "$tmp/zones/$zone.zone";
};
EOF

peers=(nsd:15351 bind:15352)
ours=""
if [ -f examples/dns/main.go ]; then
	ours=yes
	peers+=(process:15353 atoll:15354 atoll-host:15355)
	go build -o "$tmp/dnsd" ./examples/dns
	go build -o "$tmp/atoll" ./cmd/atoll
	"$tmp/atoll" build -o "$tmp/dns.img" ./examples/dns >/dev/null
else
	echo "examples/dns/main.go does not exist (yet): only NSD and BIND run; no process or atoll rows" >&2
fi

# Each server started in the background has its own process ID in $!
# (taskset execs it).
taskset -c 1 nsd -d -c "$tmp/nsd/nsd.conf" 2>"$tmp/nsd.log" & pid[nsd]=$!
taskset -c 1 named -g -n 1 -c "$tmp/bind/named.conf" 2>"$tmp/bind.log" & pid[bind]=$!
if [ -n "$ours" ]; then
	# Each its own copy of the zone: examples/dns keeps a journal beside
	# the zone file of a directory it may write.
	for name in process atoll atoll-host; do cp -r "$tmp/zones" "$tmp/zones-$name"; done
	DNS_ZONES="$tmp/zones-process" taskset -c 1 "$tmp/dnsd" -addr 127.0.0.1:15353 2>"$tmp/process.log" & pid[process]=$!
	taskset -c 1 "$tmp/atoll" run --stats -p 15354:53/udp -p 15354:53 --volume "zones=$tmp/zones-atoll" "$tmp/dns.img" \
		2>"$tmp/atoll.log" & pid[atoll]=$!
	taskset -c 1 "$tmp/atoll" run --stats --net service=host -p 15355:53/udp -p 15355:53 --volume "zones=$tmp/zones-atoll-host" "$tmp/dns.img" \
		2>"$tmp/atoll-host.log" & pid[atoll-host]=$!
fi

# answers says whether the server on port $1 answers over UDP and TCP,
# with the zone's data.
answers() {
	[ "$(dig +short +time=1 +tries=1 @127.0.0.1 -p "$1" "h001.$zone" A 2>/dev/null)" = 192.0.2.1 ] &&
		[ "$(dig +tcp +short +time=1 +tries=1 @127.0.0.1 -p "$1" "t001.$zone" TXT 2>/dev/null)" = '"v=bench record 1"' ]
}

# fail says why server $1 failed, shows its output, and exits.
fail() {
	echo "server $1: $2; its output:" >&2
	cat "$tmp/$1.log" "$tmp/$1"/*.log >&2 2>/dev/null || true
	exit 1
}

for p in "${peers[@]}"; do
	name=${p%%:*} port=${p#*:}
	for i in $(seq 300); do
		answers "$port" && break
		kill -0 "${pid[$name]}" 2>/dev/null || fail "$name" "exited before answering"
		[ "$i" = 300 ] && fail "$name" "no answer on 127.0.0.1:$port within 30 s"
		sleep 0.1
	done
done

# busy prints, for cores 0 and 1, the jiffies busy and in all (/proc/stat).
busy() { awk '/^cpu[01] / {printf "%d %d ", $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8}' /proc/stat; }

# cputicks prints the CPU time, in clock ticks, of process $1 and all its
# descendants (NSD's server is a child), children they reaped included.
cputicks() {
	local p t=0 n
	for p in $(ps -e -o pid=,ppid= | awk -v root="$1" '
		{ parent[$1] = $2 }
		END { for (p in parent) { q = p; while (q != root && q > 1) q = parent[q]; if (q == root) print p } }'); do
		n=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$p/stat" 2>/dev/null) || n=0
		t=$((t + ${n:-0}))
	done
	echo "$t"
}
hz=$(getconf CLK_TCK)

# commas prints the integer part of $1 with thousands separators.
commas() {
	awk -v n="$1" 'BEGIN { s = sprintf("%d", n); o = ""; while (length(s) > 3) { o = "," substr(s, length(s) - 2) o; s = substr(s, 1, length(s) - 3) } print s o }'
}

rows=()
for round in $(seq "$rounds"); do
	for p in "${peers[@]}"; do
		name=${p%%:*} port=${p#*:}
		out=$tmp/$name.$round
		cmd=(dnsperf -s 127.0.0.1 -p "$port" -d "$tmp/queries" -l "$secs" -c "$clients" -T 1 -q "$outstanding" -t 1 -S 1 -v)
		echo "== $name, round $round: taskset -c 0 ${cmd[*]}"
		before=$(busy) ticks=$(cputicks "${pid[$name]}") start=$(date +%s.%N)
		TIMEFORMAT='%U %S'
		{ time taskset -c 0 "${cmd[@]}" >"$out.v" 2>&1 || { echo "dnsperf failed:" >&2; tail "$out.v" >&2; exit 1; }; } 2>"$out.time"
		after=$(busy) ticks=$(($(cputicks "${pid[$name]}") - ticks)) end=$(date +%s.%N)
		kill -0 "${pid[$name]}" 2>/dev/null || fail "$name" "exited during the load"
		if ! answers "$port"; then
			echo "   note: $name did not answer the first check after the load (1 s each, UDP and TCP)" >&2
			answers "$port" || answers "$port" || {
				dig +time=1 +tries=1 @127.0.0.1 -p "$port" "h001.$zone" A >&2 || true
				dig +tcp +time=1 +tries=1 @127.0.0.1 -p "$port" "t001.$zone" TXT >&2 || true
				fail "$name" "no answer after the load, three times"
			}
		fi
		# Keep the summary and the rate of each second (-S 1); reduce the
		# per-query lines to p50 and p99.
		grep -v '^>' "$out.v" >"$out" || true
		persec=$(awk '/^[0-9]+\.[0-9]+: [0-9.]+$/ {printf "%d ", $2}' "$out")
		slowest=$(commas "$(awk '/^[0-9]+\.[0-9]+: [0-9.]+$/ {if (min == "" || $2 < min) min = $2} END {print min + 0}' "$out")")
		read -r p50 p99 < <(awk -v lost="$(awk '/Queries lost:/ {print $3}' "$out")" '
			BEGIN { n = 0; max = 0; lost += 0 }
			/^> / { us = int($NF * 1e6 + 0.5); h[us]++; n++; if (us > max) max = us }
			END {
				total = n + lost
				split("0.50 0.99", qs, " ")
				for (k = 1; k <= 2; k++) {
					rank = int(qs[k] * total + 0.999999)
					if (rank > n) { printf "lost "; continue } # a lost query is the slowest
					c = 0
					for (us = 0; us <= max; us++) { c += h[us]; if (c >= rank) break }
					printf "%.3f ", us / 1000
				}
				print ""
			}' "$out.v")
		rm -f "$out.v"
		read -r b0 t0 b1 t1 < <(echo "$before")
		read -r a0 u0 a1 u1 < <(echo "$after")
		cpu0=$(awk -v b="$((a0 - b0))" -v t="$((u0 - t0))" 'BEGIN {printf "%.0f %%", 100 * b / t}')
		cpu1=$(awk -v b="$((a1 - b1))" -v t="$((u1 - t1))" 'BEGIN {printf "%.0f %%", 100 * b / t}')
		server_cpu=$(awk -v t="$ticks" -v hz="$hz" -v s="$start" -v e="$end" 'BEGIN {printf "%.0f %%", 100 * t / hz / (e - s)}')
		client_cpu=$(awk -v s="$start" -v e="$end" '{printf "%.0f %%", 100 * ($1 + $2) / (e - s)}' "$out.time")
		qps=$(commas "$(awk '/Queries per second:/ {print $4}' "$out")")
		sent=$(awk '/Queries sent:/ {print $3}' "$out")
		lost=$(awk '/Queries lost:/ {print $3}' "$out")
		grep -E "Queries (sent|completed|lost)|Response codes|per second" "$out"
		echo "   each second: $persec"
		# Every server must give the same answers: the same response codes,
		# in the same shares (to half a percent: a run stops part way
		# through the query file).
		codes=$(awk '/Response codes:/ {for (i = 3; i < NF; i += 3) {gsub(/[(%),]/, "", $(i + 2)); printf "%s %s ", $i, $(i + 2)}}' "$out")
		if [ -z "${first_codes:-}" ]; then
			first_codes=$codes first_name=$name
		elif ! awk -v a="$codes" -v b="$first_codes" 'BEGIN {
			n = split(a, x, " "); m = split(b, y, " "); if (n != m) exit 1
			for (i = 1; i < n; i += 2) if (x[i] != y[i] || x[i + 1] - y[i + 1] > 0.5 || y[i + 1] - x[i + 1] > 0.5) exit 1
		}'; then
			echo "   WARNING: response codes differ from $first_name's ($first_codes)" >&2
		fi
		[ "$p50" = lost ] || p50="$p50 ms"
		[ "$p99" = lost ] || p99="$p99 ms"
		echo "   p50 $p50, p99 $p99; server CPU $server_cpu, core 1 busy $cpu1; dnsperf CPU $client_cpu, core 0 busy $cpu0"
		rows+=("| $name | $round | $qps | $slowest | $p50 | $p99 | $(commas "$lost") of $(commas "$sent") | $server_cpu | $cpu1 | $client_cpu | $cpu0 |")
	done
done

exits=()
for name in atoll atoll-host; do
	[ -n "${pid[$name]:-}" ] || continue
	# Stop the VM (SIGINT: it prints --stats) and divide its exits by the
	# queries sent to it.
	kill -INT "${pid[$name]}"
	wait "${pid[$name]}" 2>/dev/null || true
	unset "pid[$name]"
	total=$(awk '/^exits:/ {print $2}' "$tmp/$name.log")
	[ -n "$total" ] || fail "$name" "atoll run printed no exit counts"
	queries=0
	for f in "$tmp/$name".[0-9]*; do
		[ "${f%.time}" = "$f" ] || continue
		n=$(awk '/Queries sent:/ {print $3}' "$f"); queries=$((queries + n))
	done
	exits+=("$name: $(commas "$total") VM exits for $(commas "$queries") queries (boot and the readiness checks included), $(awk -v e="$total" -v q="$queries" 'BEGIN {printf "%.3f", e / q}') per query")
	echo "== ${exits[-1]}"
	grep -A10 '^exits:' "$tmp/$name.log" | tail -n +2
done

echo
echo "dnsperf -l $secs -c $clients -T 1 -q $outstanding -t 1 on core 0; each server on core 1"
echo
echo "| server | round | queries/s | slowest second | p50 | p99 | lost | server CPU | core 1 busy | dnsperf CPU | core 0 busy |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
[ ${#exits[@]} -eq 0 ] || { echo; printf '%s\n' "${exits[@]}"; }
