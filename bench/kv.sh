#!/usr/bin/env bash
# Benchmarks the key-value appliance (examples/kv) against Debian's
# redis-server, in one run: `redis-benchmark -t set,get -P 16 -c 50`
# against redis-server as a process (appendonly yes, the matching
# appendfsync), kv as a process, and the kv unikernel on the host backend
# and on the user backend, in both durability modes (APPENDFSYNC always,
# then everysec). Every server gets one core (taskset -c 0; the unikernel
# has one vCPU) and redis-benchmark the other. Prints requests/s and p99
# per test, and each unikernel's VM exits per request (boot included).
#
# Usage: bench/kv.sh [REQUESTS]   (per test; default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000}
for c in redis-server redis-benchmark redis-cli taskset; do
	command -v $c >/dev/null || { echo "bench/kv.sh needs $c (apt-get install redis-server redis-tools)" >&2; exit 1; }
done
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

export PATH=/usr/local/go/bin:$PATH
go build -o "$tmp/atoll" ./cmd/atoll
(cd examples/kv && CGO_ENABLED=0 go build -o "$tmp/kv" .)
"$tmp/atoll" build -o "$tmp/kv.img" ./examples/kv 2>/dev/null
echo "== $(date -u '+%F %T') UTC; load: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores"
echo "== redis-benchmark -t set,get -P 16 -c 50 -n $n --csv (on core 1; servers on core 0)"

wait_up() {
	for _ in $(seq 300); do redis-cli -p "$1" PING 2>/dev/null | grep -q PONG && return; sleep 0.1; done
	echo "server on port $1 did not come up" >&2; exit 1
}

stop() { kill -9 "$1"; wait "$1" 2>/dev/null || true; }

# bench NAME PORT: runs redis-benchmark and prints one line per test.
bench() {
	# (redis-benchmark spins for ever if its server dies: bound it)
	timeout 1200 taskset -c 1 redis-benchmark -p "$2" -t set,get -P 16 -c 50 -n "$n" --csv 2>/dev/null >"$tmp/$1.csv"
	# "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
	tr -d '"' <"$tmp/$1.csv" | awk -F, -v name="$1" 'NR > 1 {printf "%-28s %-4s %12.0f requests/s   p50 %6.3f ms   p99 %7.3f ms\n", name, $1, $2, $5, $7}'
}

port=18300
for mode in always everysec; do
	echo "== appendfsync $mode"
	port=$((port + 1))
	mkdir -p "$tmp/redis-$mode"
	taskset -c 0 redis-server --port $port --bind 127.0.0.1 --save '' --appendonly yes --appendfsync $mode \
		--dir "$tmp/redis-$mode" --daemonize no >/dev/null 2>&1 & pids+=($!)
	wait_up $port
	bench "redis-server $mode" $port
	stop "${pids[-1]}"

	port=$((port + 1))
	APPENDFSYNC=$mode taskset -c 0 "$tmp/kv" -addr 127.0.0.1:$port -dir "$tmp/kvproc-$mode" >/dev/null 2>&1 & pids+=($!)
	wait_up $port
	bench "kv process $mode" $port
	stop "${pids[-1]}"

	for backend in host user; do
		port=$((port + 1))
		mkdir -p "$tmp/kv-$backend-$mode"
		net=()
		[ $backend = host ] && net=(--net service=host)
		taskset -c 0 "$tmp/atoll" run --stats "${net[@]}" -p $port:6379 --volume "data=$tmp/kv-$backend-$mode" \
			-e APPENDFSYNC=$mode "$tmp/kv.img" >/dev/null 2>"$tmp/$backend-$mode.err" & vm=$!; pids+=($vm)
		wait_up $port
		bench "kv unikernel $backend $mode" $port
		kill -TERM $vm; wait $vm 2>/dev/null || true
		exits=$(awk '/^exits:/ {print $2}' "$tmp/$backend-$mode.err")
		echo "   VM exits: $exits for $((2 * n)) requests (boot included): $(awk -v e="$exits" -v r=$((2 * n)) 'BEGIN {printf "%.3f", e/r}') per request; the most frequent:"
		grep -A6 '^exits:' "$tmp/$backend-$mode.err" | tail -n +2 | sed 's/^/     /'
	done
done
