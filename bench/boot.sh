#!/usr/bin/env bash
# boot.sh: measure boot latency of the hello guest, native vs under atoll.
#
# Usage: bench/boot.sh [N]   (N iterations per series, default 25)
#        BASELINE=/path/to/atoll bench/boot.sh [N]
#
# With BASELINE, a third series boots hello under that atoll binary (an
# older build, say), alternating with the others in the same run.
#
# Builds atoll and the hello guest into a temp dir, then alternates native
# and atoll runs in one process, timing exec -> first stdout byte and
# exec -> exit. Prints median and p90 (ms) per series; then, from the
# timeline each `atoll run --stats` reports, the median of where an atoll
# boot's time goes and of its VM exits; then the exit breakdown of one
# more boot.
set -euo pipefail

N="${1:-25}"
cd "$(dirname "$0")/.."

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

export PATH="/usr/local/go/bin:$PATH"

echo "building atoll and hello guest into $TMP" >&2
go build -o "$TMP/atoll" ./cmd/atoll
CGO_ENABLED=0 go build -o "$TMP/hello" ./internal/testguests/hello

mkdir -p "$TMP/timer"
printf 'module timer\n\ngo 1.26\n' > "$TMP/timer/go.mod"
cat > "$TMP/timer/main.go" <<'GO'
// Command timer alternates runs of several commands and reports, for each,
// the wall time from exec to first stdout byte and from exec to exit.
package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"
)

type series struct {
	name        string
	argv        []string
	first, exit []time.Duration
	stats       []string // stderr of each run, for atoll's --stats
}

func once(argv []string, stderr io.Writer) (first, exit time.Duration, err error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, 0, err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	var b [1]byte
	n, rerr := out.Read(b[:])
	first = time.Since(start)
	if n == 0 {
		return 0, 0, fmt.Errorf("%s: no output: %v", argv[0], rerr)
	}
	io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		return 0, 0, fmt.Errorf("%s: %v", strings.Join(argv, " "), err)
	}
	exit = time.Since(start)
	return first, exit, nil
}

func quantile(ds []time.Duration, q float64) float64 {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	// nearest-rank for p90; median averages the middle pair when even.
	if q == 0.5 {
		m := len(s) / 2
		if len(s)%2 == 1 {
			return ms(s[m])
		}
		return (ms(s[m-1]) + ms(s[m])) / 2
	}
	i := int(q*float64(len(s))+0.999999) - 1
	if i < 0 {
		i = 0
	}
	return ms(s[i])
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// field returns the number after key in an atoll --stats report.
func field(report, key string) float64 {
	i := strings.Index(report, key)
	if i < 0 {
		return 0
	}
	f := strings.Fields(report[i+len(key):])
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// breakdown prints the median of each stage of an atoll boot, from the
// runs' timelines (ms from monitor.Run) and the timer's own exec times.
func breakdown(s *series) {
	stages := []string{"exec to atoll's start", "atoll's start to monitor.Run", "monitor.Run to VM made",
		"VM made to guest's first instruction", "guest's first instruction to first output",
		"first output to exit", "exit to VM released", "VM released to process gone", "VM exits"}
	vals := make([][]float64, len(stages))
	for i, r := range s.stats {
		toRun := field(r, "atoll start to monitor.Run:")
		vm, guest := field(r, " vm "), field(r, " guest ")
		out, exit, closed := field(r, " first-output "), field(r, " exit "), field(r, " closed ")
		execToStart := ms(s.first[i]) - toRun - out
		for j, v := range []float64{execToStart, toRun, vm, guest - vm, out - guest, exit - out, closed - exit,
			ms(s.exit[i]) - execToStart - toRun - closed, field(r, "exits:")} {
			vals[j] = append(vals[j], v)
		}
	}
	fmt.Printf("\natoll boot breakdown, median of %d runs (ms; exec times are the timer's, the rest atoll --stats's):\n", len(s.stats))
	for j, name := range stages {
		fmt.Printf("  %-44s %8.3f\n", name, median(vals[j]))
	}
}

func main() {
	if len(os.Args) != 4 && len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: timer N ATOLL GUEST [BASELINE-ATOLL]")
		os.Exit(2)
	}
	n, err := strconv.Atoi(os.Args[1])
	if err != nil || n < 1 {
		fmt.Fprintln(os.Stderr, "timer: bad N")
		os.Exit(2)
	}
	atoll, guest := os.Args[2], os.Args[3]
	all := []*series{
		{name: "native", argv: []string{guest}},
		{name: "atoll", argv: []string{atoll, "run", "--stats", guest}},
	}
	if len(os.Args) == 5 {
		all = append(all, &series{name: "baseline", argv: []string{os.Args[4], "run", "--stats", guest}})
	}
	for i := 0; i < n; i++ {
		for _, s := range all {
			var stderr bytes.Buffer
			f, e, err := once(s.argv, &stderr)
			if err != nil {
				fmt.Fprintf(os.Stderr, "timer: %v\n%s", err, stderr.Bytes())
				os.Exit(1)
			}
			s.first = append(s.first, f)
			s.exit = append(s.exit, e)
			s.stats = append(s.stats, stderr.String())
		}
	}
	fmt.Printf("N=%d runs per series, alternating native/atoll (ms)\n", n)
	fmt.Printf("%-22s %10s %10s\n", "series", "median", "p90")
	for _, s := range all {
		fmt.Printf("%-22s %10.3f %10.3f\n", s.name+" first-output", quantile(s.first, 0.5), quantile(s.first, 0.9))
		fmt.Printf("%-22s %10.3f %10.3f\n", s.name+" exit", quantile(s.exit, 0.5), quantile(s.exit, 0.9))
	}
	breakdown(all[1])
}
GO
(cd "$TMP/timer" && go build -o "$TMP/timer/timer" .)

"$TMP/timer/timer" "$N" "$TMP/atoll" "$TMP/hello" ${BASELINE:+"$BASELINE"}

echo
echo "exit breakdown: atoll run --stats hello"
"$TMP/atoll" run --stats "$TMP/hello" 2>&1
