package main_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"atoll.dev/atoll/examples/dns/internal/difftest"
	"atoll.dev/atoll/internal/testenv"
)

// allowed are the differences from NSD's responses the server may have,
// each with the RFC that allows it: what testdata/DIFFERENCES.md found
// to be free choices of a server, that NSD and the server need not agree
// on. package difftest has more allowances (the other differences
// between NSD and BIND); add one here only if the server makes that
// choice on purpose, and say so in DIFFERENCES.md.
var allowed = []difftest.Allowance{
	difftest.RecordCase,
	difftest.TruncatedContents,
	difftest.ExtendedErrors,
	difftest.Cookies,
	difftest.TCPKeepalive,
}

// TestDifferential serves testdata/zones from NSD and from the server
// (process mode: go build, DNS_ZONES, -addr), sends both the corpus of
// package difftest over UDP, and a part of it over TCP (every query NSD
// truncates over UDP, the EDNS size queries, every tenth other), and
// fails on every difference no allowance covers.
//
// DNSDIFF_RUN=REGEXP sends only the queries whose names match;
// DNSDIFF_SHOW=REGEXP logs both responses to those; DNSDIFF_OUT=FILE
// writes every difference to FILE.
func TestDifferential(t *testing.T) {
	if _, err := os.Stat("main.go"); err != nil {
		t.Skip("examples/dns has no main.go yet: no server to compare with NSD")
	}
	testenv.RequireCommands(t, "nsd")
	zonesDir, err := filepath.Abs("testdata/zones")
	if err != nil {
		t.Fatal(err)
	}
	queries, err := difftest.Corpus(zonesDir)
	if err != nil {
		t.Fatal(err)
	}
	queries = filter(t, queries)
	zones, err := difftest.ZoneFiles(zonesDir)
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	bin := filepath.Join(dir, "dnsd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	logPath := filepath.Join(dir, "dnsd.log")
	if err := difftest.StartProcess(t, []string{bin, "-addr", addr}, []string{"DNS_ZONES=" + zonesDir},
		logPath, addr, zones[0].Origin); err != nil {
		t.Fatal(err)
	}
	waitForLine(t, logPath, "dns: serving")
	nsd := difftest.StartNSD(t, zonesDir)

	udp := difftest.Run(queries, nsd, addr, false, allowed)
	var overTCP []difftest.Query
	for i, r := range udp {
		if r.Want != nil && r.Want.Truncated || r.Query.Kind == "size" || i%10 == 0 {
			overTCP = append(overTCP, r.Query)
		}
	}
	tcp := difftest.Run(overTCP, nsd, addr, true, allowed)

	var rep difftest.Report
	var lines []string
	show, err := regexp.Compile(os.Getenv("DNSDIFF_SHOW"))
	if err != nil {
		t.Fatalf("DNSDIFF_SHOW: %v", err)
	}
	for _, r := range append(udp, tcp...) {
		rep.Add(r)
		transport := "udp"
		if r.TCP {
			transport = "tcp"
		}
		for _, f := range r.Findings {
			line := fmt.Sprintf("[%s %s] %s", r.Query.Name, transport, f.Difference)
			if f.Allowance != nil {
				line += fmt.Sprintf(" (allowed: %s, %s)", f.Allowance.Name, f.Allowance.RFC)
			}
			lines = append(lines, line)
		}
		if os.Getenv("DNSDIFF_SHOW") != "" && show.MatchString(r.Query.Name) {
			t.Logf("%s over %s:\nquery:\n%v\nNSD:\n%v\nserver:\n%v", r.Query.Name, transport, r.Query.Msg, r.Want, r.Got)
		}
	}
	if out := os.Getenv("DNSDIFF_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Error(err)
		}
	}
	t.Logf("%d queries over UDP, %d over TCP; NSD (want) vs the server (got):\n%s", len(udp), len(tcp), &rep)
	if n := rep.Unexplained(); n > 0 {
		t.Errorf("%d responses differ from NSD's in ways no allowance covers (NOT ALLOWED above); fix the server, or add an allowance with the RFC that allows the difference", n)
	}
}

// filter returns the queries whose names match DNSDIFF_RUN, or all.
func filter(t *testing.T, queries []difftest.Query) []difftest.Query {
	pattern := os.Getenv("DNSDIFF_RUN")
	if pattern == "" {
		return queries
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		t.Fatalf("DNSDIFF_RUN: %v", err)
	}
	var out []difftest.Query
	for _, q := range queries {
		if re.MatchString(q.Name) {
			out = append(out, q)
		}
	}
	return out
}

// waitForLine waits up to 10 s for a line with text in the file at path:
// the server's readiness line (after a timestamp, if the server's log
// has them).
func waitForLine(t *testing.T, path, text string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			if strings.Contains(line, text) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Errorf("the server answers, but wrote no line with %q; its output:\n%s", text, b)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
