#!/usr/bin/env bash
# boot.sh: measure boot latency of the hello guest, native vs under atoll.
#
# Usage: bench/boot.sh [N]   (N iterations per series, default 25)
#
# Builds atoll and the hello guest into a temp dir, then alternates native
# and atoll runs in one process, timing exec -> first stdout byte and
# exec -> exit. Prints median and p90 (ms) per series, then the VM exit
# breakdown of one `atoll run --stats` boot.
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
}

func once(argv []string) (first, exit time.Duration, err error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = os.Stderr
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

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: timer N ATOLL GUEST")
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
		{name: "atoll", argv: []string{atoll, "run", guest}},
	}
	for i := 0; i < n; i++ {
		for _, s := range all {
			f, e, err := once(s.argv)
			if err != nil {
				fmt.Fprintln(os.Stderr, "timer:", err)
				os.Exit(1)
			}
			s.first = append(s.first, f)
			s.exit = append(s.exit, e)
		}
	}
	fmt.Printf("N=%d runs per series, alternating native/atoll (ms)\n", n)
	fmt.Printf("%-22s %10s %10s\n", "series", "median", "p90")
	for _, s := range all {
		fmt.Printf("%-22s %10.3f %10.3f\n", s.name+" first-output", quantile(s.first, 0.5), quantile(s.first, 0.9))
		fmt.Printf("%-22s %10.3f %10.3f\n", s.name+" exit", quantile(s.exit, 0.5), quantile(s.exit, 0.9))
	}
}
GO
(cd "$TMP/timer" && go build -o "$TMP/timer/timer" .)

"$TMP/timer/timer" "$N" "$TMP/atoll" "$TMP/hello"

echo
echo "exit breakdown: atoll run --stats hello"
"$TMP/atoll" run --stats "$TMP/hello" 2>&1
