#!/usr/bin/env bash
# Load-tests examples/www with wrk, the same image as several peers in one
# run, alternating:
#
#   native        a plain process on the host's sockets (the kernel's TCP)
#   native-tap    a plain process running the guest library's TCP/IP stack
#                 (gVisor's netstack) on a tap device (root only)
#   rings-tap     atoll run on that kind of tap: the same stack in a VM,
#                 frames through the shared-memory rings (root only)
#   rings         atoll run on the user backend (-p): the stack in the VM,
#                 frames through the rings to the NAT in the monitor
#   syscalls      the same with rings=off: a frame system call per batch
#
# As root everything runs in a network namespace the script creates (the
# taps live there); otherwise only native, rings and syscalls run, on the
# host's loopback. Prints wrk's requests/s and latency percentiles, and for
# each atoll its VM exits per request and what moved through its rings.
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
ns=""
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[ -n "$ns" ] && ip netns del "$ns" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

go build -o "$tmp/atoll" ./cmd/atoll
"$tmp/atoll" build -o "$tmp/www.img" ./examples/www 2>/dev/null

# nsexec prefixes a command to run it in the namespace; a server started
# with it in the background has the server's own process ID ($!).
nsexec=()
in_ns() { "${nsexec[@]}" "$@"; }
if [ "$(id -u)" = 0 ] && command -v ip >/dev/null; then
	ns=atoll-bench-$$
	ip netns add "$ns"
	nsexec=(ip netns exec "$ns")
	in_ns ip link set lo up
	for i in 0 1; do
		in_ns ip tuntap add "tap$i" mode tap
		in_ns ip addr add "10.9$i.0.1/24" dev "tap$i"
		in_ns ip link set "tap$i" up
	done
fi

peers=(native:127.0.0.1:18081)
"${nsexec[@]}" "$tmp/www.img" -addr 127.0.0.1:18081 2>/dev/null & pids+=($!)
if [ -n "$ns" ]; then
	peers+=(native-tap:10.90.0.2:80 rings-tap:10.91.0.2:80)
	"${nsexec[@]}" env ATOLL_TAP_SERVICE=tap0 ATOLL_NET_SERVICE="10.90.0.2/24 10.90.0.1" "$tmp/www.img" 2>/dev/null & pids+=($!)
	"${nsexec[@]}" "$tmp/atoll" run --stats --net service=tap:tap1,ip=10.91.0.2/24,gw=10.91.0.1 "$tmp/www.img" 2>"$tmp/rings-tap.err" & pids+=($!)
fi
peers+=(rings:127.0.0.1:18082 syscalls:127.0.0.1:18083)
"${nsexec[@]}" "$tmp/atoll" run --stats -p 18082:80 "$tmp/www.img" 2>"$tmp/rings.err" & pids+=($!)
"${nsexec[@]}" "$tmp/atoll" run --stats --net service=user,rings=off -p 18083:80 "$tmp/www.img" 2>"$tmp/syscalls.err" & pids+=($!)

for p in "${peers[@]}"; do
	addr=${p#*:}
	for _ in $(seq 100); do in_ns curl -s -o /dev/null "http://$addr/api/hello" && continue 2; sleep 0.1; done
	echo "server ${p%%:*} on $addr did not come up" >&2; exit 1
done

for round in $(seq "$rounds"); do
	for p in "${peers[@]}"; do
		name=${p%%:*} addr=${p#*:}
		echo "== $name, round $round: wrk -t1 -c$conns -d${secs}s --latency http://$addr/api/hello"
		in_ns wrk -t1 -c"$conns" -d"${secs}s" --latency "http://$addr/api/hello" | tee "$tmp/$name.$round" |
			grep -E "Requests/sec|^ +(50|90|99)%|requests in"
	done
done

# Stop the VMs (SIGTERM: they print --stats), then the rest.
for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
wait 2>/dev/null || true
pids=()
for err in "$tmp"/*.err; do
	name=$(basename "$err" .err)
	total=$(awk '/^exits:/ {print $2}' "$err")
	reqs=0
	for f in "$tmp/$name".[0-9]*; do
		n=$(awk '/requests in/ {print $1}' "$f"); reqs=$((reqs + n))
	done
	echo "== atoll ($name) VM exits: $total for $reqs requests (boot included), $(awk -v e="$total" -v r="$reqs" 'BEGIN {printf "%.3f", e/r}') per request"
	grep -A8 '^exits:' "$err" || cat "$err"
	grep '^ring' "$err" || true
done
