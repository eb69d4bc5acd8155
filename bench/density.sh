#!/usr/bin/env bash
# How many idle examples/www unikernels one machine holds. Starts N of
# them (atoll run -p 127.0.0.1:PORT:80, each on its own port), checks that
# each answers an HTTP request, then records each atoll process's RSS and
# PSS (/proc/PID/smaps_rollup: the monitor and the guest's touched pages),
# the host's available memory before and after, and extrapolates to the
# whole machine. Stops them all on the way out, whatever happens.
#
# It stops starting unikernels early, and says so, when the host's
# MemAvailable would fall below FLOOR_MIB (default 4608: 4 GiB plus a
# margin) or the free process IDs (kernel.pid_max less the threads
# running; each unikernel is ~12 host threads) below PID_MARGIN (4000), so
# that other work on the machine can still start processes; after
# START_SECONDS (default 900) of starting, as idle unikernels come to fill
# the CPU and starts slow down; or on SIGUSR1 (kill -USR1 PID: measure
# what runs now).
#
# Usage: bench/density.sh [N] [FIRST_PORT]   (defaults 100, 20000)
#   FLOOR_MIB=...  memory to leave available   BATCH=...  started at once (8)
#   ATOLL=...      an atoll binary to measure instead of this tree's
#   MEM=...        atoll run --mem (default: the manifest's, 256M)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100}
port0=${2:-20000}
floor=${FLOOR_MIB:-4608}
pid_margin=${PID_MARGIN:-4000}
start_seconds=${START_SECONDS:-900}
batch=${BATCH:-8}
((port0 + n < 32768)) || { echo "ports $port0..$((port0 + n)) reach the ephemeral range" >&2; exit 2; }
tmp=$(mktemp -d)
pids=()
cleanup() {
	((${#pids[@]})) || { rm -rf "$tmp"; return; }
	echo "== stopping ${#pids[@]} unikernels"
	kill -TERM "${pids[@]}" 2>/dev/null || true
	for _ in $(seq 100); do
		alive=0
		for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
		((alive == 0)) && break
		sleep 0.1
	done
	kill -KILL "${pids[@]}" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -n ${ATOLL:-} ]]; then cp "$ATOLL" "$tmp/atoll"; else go build -o "$tmp/atoll" ./cmd/atoll; fi
"$tmp/atoll" build -o "$tmp/www.img" ./examples/www 2>/dev/null

avail_mib() { awk '/^MemAvailable:/ {print int($2 / 1024)}' /proc/meminfo; }
# Threads on the host: /proc/loadavg's fourth field is running/total.
free_pids() { echo $(($(cat /proc/sys/kernel/pid_max) - $(awk '{split($4, a, "/"); print a[2]}' /proc/loadavg))); }
answers() { curl -s -m 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/api/hello" 2>/dev/null | grep -q 200; }

date -u
sync
grep -E '^(MemAvailable|AnonPages|Shmem|KernelStack|PageTables|SecPageTables|SUnreclaim|VmallocUsed):' /proc/meminfo >"$tmp/meminfo.before"
before=$(avail_mib)
echo "== MemAvailable before: $before MiB; floor $floor MiB; free pids $(free_pids)"
started=0 stopped_early="" asked=""
trap 'asked=1' USR1
SECONDS=0
for ((i = 0; i < n; i += batch)); do
	if [[ -n $asked ]]; then stopped_early="asked to (SIGUSR1)"; break; fi
	if ((SECONDS > start_seconds)); then stopped_early="starting took over $start_seconds s"; break; fi
	if (($(avail_mib) < floor + 256)); then stopped_early="MemAvailable $(avail_mib) MiB near the floor"; break; fi
	if (($(free_pids) < pid_margin)); then stopped_early="only $(free_pids) process IDs left"; break; fi
	ports=()
	for ((j = i; j < i + batch && j < n; j++)); do
		port=$((port0 + j))
		"$tmp/atoll" run ${MEM:+--mem "$MEM"} -p "127.0.0.1:$port:80" "$tmp/www.img" >/dev/null 2>"$tmp/err.$port" &
		pids+=($!)
		ports+=("$port")
	done
	for port in "${ports[@]}"; do
		for _ in $(seq 200); do answers "$port" && break; sleep 0.05; done
	done
	started=$((started + ${#ports[@]}))
	((started % 200 < batch)) && echo "   $started started, MemAvailable $(avail_mib) MiB"
done
[[ -n $stopped_early ]] && echo "== stopped early after $started: $stopped_early"

export -f answers
ok=$(seq "$port0" $((port0 + started - 1)) | xargs -P 8 -I{} bash -c 'answers {} && echo ok' | wc -l)
echo "== $ok of $started answered GET /api/hello"
sleep 5 # let them go idle
# CPU time (utime + stime, in clock ticks) of every unikernel's process.
cpu_ticks() { for p in "${pids[@]}"; do cat "/proc/$p/stat" 2>/dev/null; done | awk '{t += $14 + $15} END {print t + 0}'; }
t0=$(cpu_ticks) s0=$(date +%s.%N)
sleep 10
t1=$(cpu_ticks) s1=$(date +%s.%N)
awk -v t="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" -v s="$(echo "$s1 - $s0" | bc)" -v n="$started" 'BEGIN {
	printf "== idle CPU over %.1f s: %.1f%% of one core for all, %.3f%% each\n", s, 100 * t / hz / s, 100 * t / hz / s / n }'
sync
grep -E '^(MemAvailable|AnonPages|Shmem|KernelStack|PageTables|SecPageTables|SUnreclaim|VmallocUsed):' /proc/meminfo >"$tmp/meminfo.after"
after=$(avail_mib)
# The kernel's memory for the unikernels: what /proc/meminfo's kernel
# kinds grew by (other work on the machine adds noise to it).
kernel_kib=$(join "$tmp/meminfo.before" "$tmp/meminfo.after" |
	awk '$1 ~ /^(KernelStack|PageTables|SecPageTables|SUnreclaim|VmallocUsed):$/ {k += $4 - $2} END {print k + 0}')
for p in "${pids[@]}"; do cat "/proc/$p/smaps_rollup" 2>/dev/null; done |
	awk -v n="$started" -v before="$before" -v after="$after" -v kernel="$kernel_kib" '
	/^Rss:/ {rss += $2} /^Pss:/ {pss += $2} /^Pss_Anon:/ {anon += $2} /^Pss_File:/ {file += $2}
	END {
		printf "== %d unikernels: RSS %.0f MiB, PSS %.0f MiB (anonymous %.0f, file %.0f)\n", n, rss/1024, pss/1024, anon/1024, file/1024
		printf "   per unikernel: RSS %.1f MiB, PSS %.2f MiB (anonymous %.2f, file %.2f)\n", rss/1024/n, pss/1024/n, anon/1024/n, file/1024/n
		each = (pss + kernel) / 1024 / n
		printf "   per unikernel with the kernel'"'"'s memory for it: %.2f MiB (PSS + %.2f MiB kernel)\n", each, kernel/1024/n
		used = before - after
		printf "   host MemAvailable %d -> %d MiB: %.2f MiB per unikernel\n", before, after, used/n
		printf "   a 24 GiB machine, leaving 4 GiB: ~%d at %.2f MiB each (memory alone)\n", 20 * 1024 / each, each
	}'
echo "   host memory by kind, change per unikernel (/proc/meminfo):"
join "$tmp/meminfo.before" "$tmp/meminfo.after" |
	awk -v n="$started" '{printf "     %-15s %8.2f MiB\n", $1, ($4 - $2) / 1024 / n}'
date -u
