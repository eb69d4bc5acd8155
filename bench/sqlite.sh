#!/usr/bin/env bash
# Benchmarks a stock program on pure-Go SQLite (examples/sqlite): N
# inserts, each a transaction of its own, into a database on this
# machine's disk, as a process and as a unikernel (the database on a
# volume), in WAL mode and with a rollback journal, alternating the two
# ways for ROUNDS rounds. Prints inserts/s for each run, and the
# unikernel's VM exits per insert with the calls that made most of them.
#
# Usage: bench/sqlite.sh [N [ROUNDS]]   (default 2000 inserts, 3 rounds)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-2000}
rounds=${2:-3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

export PATH=/usr/local/go/bin:$PATH
go build -o "$tmp/atoll" ./cmd/atoll
(cd examples/sqlite && CGO_ENABLED=0 go build -o "$tmp/sqlite" .)
"$tmp/atoll" build -o "$tmp/sqlite.img" ./examples/sqlite 2>/dev/null
echo "== $(date -u '+%F %T') UTC; load: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores; $n inserts per run"

for journal in WAL DELETE; do
	echo "== journal_mode $journal"
	for r in $(seq "$rounds"); do
		rm -rf "$tmp/p" "$tmp/u" && mkdir "$tmp/p" "$tmp/u"
		DB="$tmp/p/tally.db" JOURNAL=$journal "$tmp/sqlite" add bench "$n" | sed "s/^/process:   /"
		"$tmp/atoll" run --stats --volume "data=$tmp/u" -e JOURNAL=$journal "$tmp/sqlite.img" -- add bench "$n" >"$tmp/out" 2>"$tmp/stats"
		sed "s/^/unikernel: /" "$tmp/out"
		awk -v n="$n" '/^exits:/ {e = $2} /^  [a-z_0-9]+ +[0-9]+$/ && k < 4 {top = top sprintf(" %s %.1f", $1, $2 / n); k++}
			END {printf "           %.1f exits per insert (boot included); per insert:%s\n", e / n, top}' "$tmp/stats"
	done
done
