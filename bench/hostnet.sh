#!/usr/bin/env bash
# Load-tests an unchanged net/http hello server (internal/testguests/
# stocknet) natively and under atoll run on the host backend, and
# examples/www under atoll run on the user backend, in one run. Prints
# wrk's requests/s and latency percentiles for each, and each VM's exits
# per request.
#
# Usage: bench/hostnet.sh [SECONDS] [CONNECTIONS]   (defaults 10, 32)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-32}
command -v wrk >/dev/null || { echo "bench/hostnet.sh needs wrk (apt-get install wrk)" >&2; exit 1; }
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

go build -o "$tmp/atoll" ./cmd/atoll
CGO_ENABLED=0 go build -o "$tmp/stocknet" ./internal/testguests/stocknet
"$tmp/atoll" build -o "$tmp/www.img" ./examples/www 2>/dev/null

wait_up() {
	for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$1$2" && return; sleep 0.1; done
	echo "server on port $1 did not come up" >&2; exit 1
}

"$tmp/stocknet" serve 127.0.0.1:18091 >/dev/null 2>&1 & pids+=($!)
"$tmp/atoll" run --stats -p 18092:80 "$tmp/stocknet" -- serve :80 >/dev/null 2>"$tmp/host.err" & host_pid=$!; pids+=($host_pid)
"$tmp/atoll" run --stats -p 18093:80 "$tmp/www.img" 2>"$tmp/user.err" & user_pid=$!; pids+=($user_pid)
wait_up 18091 /
wait_up 18092 /
wait_up 18093 /api/hello

for target in native:18091:/ host:18092:/ user:18093:/api/hello; do
	IFS=: read -r name port path <<<"$target"
	echo "== $name: wrk -t1 -c$conns -d${secs}s --latency http://127.0.0.1:$port$path"
	wrk -t1 -c"$conns" -d"${secs}s" --latency "http://127.0.0.1:$port$path" | tee "$tmp/$name.wrk" |
		grep -E "Requests/sec|^ +(50|90|99)%|requests in"
done

for vm in host:$host_pid user:$user_pid; do
	name=${vm%%:*} pid=${vm##*:}
	kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
	exits=$(awk '/^exits:/ {print $2}' "$tmp/$name.err")
	reqs=$(awk '/requests in/ {print $1}' "$tmp/$name.wrk")
	echo "== $name VM exits: $exits for $reqs requests (plus boot and the probes), $(awk -v e="$exits" -v r="$reqs" 'BEGIN {printf "%.2f", e/r}') per request"
	grep -A8 '^exits:' "$tmp/$name.err" | tail -n +2
done
