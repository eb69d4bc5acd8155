#!/usr/bin/env bash
# Load-tests examples/www with wrk: the same image run as a plain process
# (host sockets), under atoll run with its frame rings (the default), and
# under atoll run with rings=off (a frame system call per batch), all on the
# user-mode NAT's port forward, in one run, alternating. Prints wrk's
# requests/s and latency percentiles, and for each atoll its VM exits per
# request and what moved through the rings.
#
# Usage: bench/www.sh [SECONDS] [CONNECTIONS] [ROUNDS]   (defaults 10, 32, 2)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-32}
rounds=${3:-2}
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
"$tmp/atoll" run --stats -p 18082:80 "$tmp/www.img" 2>"$tmp/rings.err" & rings_pid=$!; pids+=($rings_pid)
"$tmp/atoll" run --stats --net service=user,rings=off -p 18083:80 "$tmp/www.img" 2>"$tmp/syscalls.err" & sys_pid=$!; pids+=($sys_pid)
wait_up 18081
wait_up 18082
wait_up 18083

for round in $(seq "$rounds"); do
	for target in native:18081 rings:18082 syscalls:18083; do
		name=${target%%:*} port=${target##*:}
		echo "== $name, round $round: wrk -t1 -c$conns -d${secs}s --latency http://127.0.0.1:$port/api/hello"
		wrk -t1 -c"$conns" -d"${secs}s" --latency "http://127.0.0.1:$port/api/hello" | tee "$tmp/$name.$round" |
			grep -E "Requests/sec|^ +(50|90|99)%|requests in"
	done
done

kill -TERM "$rings_pid" "$sys_pid"; wait "$rings_pid" "$sys_pid" 2>/dev/null || true
for name in rings syscalls; do
	total=$(awk '/^exits:/ {print $2}' "$tmp/$name.err")
	reqs=0
	for f in "$tmp/$name".[0-9]*; do
		n=$(awk '/requests in/ {print $1}' "$f"); reqs=$((reqs + n))
	done
	echo "== atoll ($name) VM exits: $total for $reqs requests (boot included), $(awk -v e="$total" -v r="$reqs" 'BEGIN {printf "%.3f", e/r}') per request"
	grep -A8 '^exits:' "$tmp/$name.err"
	grep '^ring' "$tmp/$name.err" || true
done
