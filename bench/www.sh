#!/usr/bin/env bash
# Load-tests examples/www with wrk: the same image run as a plain process
# (host sockets) and under atoll run (user-mode NAT port forward), in one
# run, alternating. Prints wrk's requests/s and latency percentiles, and
# atoll's VM exits with exits per request.
#
# Usage: bench/www.sh [SECONDS] [CONNECTIONS]   (defaults 10, 10)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-10}
command -v wrk >/dev/null || { echo "bench/www.sh needs wrk (apt-get install wrk)" >&2; exit 1; }
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

go build -o "$tmp/atoll" ./cmd/atoll
"$tmp/atoll" build -o "$tmp/www.img" ./examples/www 2>/dev/null

wait_up() {
	for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$1/api/hello" && return; sleep 0.1; done
	echo "server on port $1 did not come up" >&2; exit 1
}

"$tmp/www.img" -addr 127.0.0.1:18081 2>/dev/null & pids+=($!)
"$tmp/atoll" run --stats -p 18082:80 "$tmp/www.img" 2>"$tmp/atoll.err" & atoll_pid=$!; pids+=($atoll_pid)
wait_up 18081
wait_up 18082

for round in 1 2; do
	for target in native:18081 atoll:18082; do
		name=${target%%:*} port=${target##*:}
		echo "== $name, round $round: wrk -t1 -c$conns -d${secs}s --latency http://127.0.0.1:$port/api/hello"
		wrk -t1 -c"$conns" -d"${secs}s" --latency "http://127.0.0.1:$port/api/hello" | tee "$tmp/$name.$round" |
			grep -E "Requests/sec|^ +(50|90|99)%|requests in"
	done
done

kill -TERM "$atoll_pid"; wait "$atoll_pid" 2>/dev/null || true
total=$(awk '/^exits:/ {print $2}' "$tmp/atoll.err")
reqs=0
for f in "$tmp"/atoll.*; do
	n=$(awk '/requests in/ {print $1}' "$f"); reqs=$((reqs + n))
done
echo "== atoll VM exits: $total for $reqs requests (plus boot), $(awk -v e="$total" -v r="$reqs" 'BEGIN {printf "%.1f", e/r}') per request"
grep -A12 '^exits:' "$tmp/atoll.err"
