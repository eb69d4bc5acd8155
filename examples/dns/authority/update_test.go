package authority

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

var testKey = Key{Name: "upd.", Algorithm: dns.HmacSHA256, Secret: "c2VjcmV0c2VjcmV0c2VjcmV0"}

// journaled serves testZone from a file in a temporary directory with a
// journal beside it; reopen serves it again from the same files, as a
// restart does.
type journaled struct {
	t    *testing.T
	dir  string
	s    *Server
	j    *Journal
	logs []string
}

func newJournaled(t *testing.T) *journaled {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "example.test.zone"), []byte(testZone), 0o644); err != nil {
		t.Fatal(err)
	}
	h := &journaled{t: t, dir: dir}
	h.reopen()
	return h
}

func (h *journaled) reopen() {
	h.t.Helper()
	if h.j != nil {
		h.j.Close()
	}
	z, err := ReadZone(filepath.Join(h.dir, "example.test.zone"), "example.test.")
	if err != nil {
		h.t.Fatal(err)
	}
	logf := func(f string, a ...any) { h.logs = append(h.logs, f) }
	j, z, err := OpenJournal(filepath.Join(h.dir, "example.test.zone.jnl"), z, logf)
	if err != nil {
		h.t.Fatal(err)
	}
	h.j = j
	h.s = NewServer(Config{Keys: []Key{testKey}, Logf: logf})
	if err := h.s.AddZone(z, j); err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { j.Close() })
}

// update sends an update, signed with the test key unless unsigned, and
// returns the rcode.
func (h *journaled) update(signed bool, prereq, updates []string) int {
	h.t.Helper()
	m := new(dns.Msg)
	m.SetUpdate("example.test.")
	for _, p := range prereq {
		m.Answer = append(m.Answer, parseUpdateRR(h.t, p))
	}
	for _, u := range updates {
		m.Ns = append(m.Ns, parseUpdateRR(h.t, u))
	}
	if signed {
		m.SetTsig(testKey.Name, testKey.Algorithm, 300, time.Now().Unix())
	}
	// Through the wire format, as a request arrives.
	b, err := m.Pack()
	if err != nil {
		h.t.Fatal(err)
	}
	req := new(dns.Msg)
	if err := req.Unpack(b); err != nil {
		h.t.Fatal(err)
	}
	return h.s.Handle(req, true, nil).Rcode
}

// parseUpdateRR reads a record, or NAME 0 CLASS TYPE without data.
func parseUpdateRR(t *testing.T, s string) dns.RR {
	if f := strings.Fields(s); len(f) == 4 && f[1] == "0" {
		return mustEmptyRR(f[0], f[2], f[3])
	}
	return mustRR(t, s)
}

func mustRR(t *testing.T, s string) dns.RR {
	t.Helper()
	rr, err := dns.NewRR(s)
	if err != nil {
		t.Fatal(err)
	}
	return rr
}

// mustEmptyRR makes the data-less records RFC 2136 uses: NAME 0 CLASS TYPE.
func mustEmptyRR(name, class, typ string) dns.RR {
	return &dns.ANY{Hdr: dns.RR_Header{Name: name, Rrtype: dns.StringToType[typ], Class: dns.StringToClass[class]}}
}

func (h *journaled) lookup(name string, qtype uint16) string {
	return section(ask(h.s, name, qtype, false).Answer)
}

func TestUpdate(t *testing.T) {
	h := newJournaled(t)
	serial := h.s.Zone("example.test.").Serial()
	if rc := h.update(false, nil, []string{"new.example.test. 300 IN A 192.0.2.9"}); rc != dns.RcodeRefused {
		t.Errorf("unsigned update: %s", dns.RcodeToString[rc])
	}
	if rc := h.update(true, nil, []string{"new.example.test. 300 IN A 192.0.2.9", "new.example.test. 300 IN TXT \"Case Kept\""}); rc != dns.RcodeSuccess {
		t.Fatalf("update: %s", dns.RcodeToString[rc])
	}
	if got := h.lookup("new.example.test.", dns.TypeA); got != "new.example.test. 300 IN A 192.0.2.9" {
		t.Errorf("after the update: %q", got)
	}
	if got := h.s.Zone("example.test.").Serial(); got != serial+1 {
		t.Errorf("serial %d, want %d", got, serial+1)
	}
	// Prerequisites (RFC 2136 3.2).
	for _, c := range []struct {
		prereq []string
		rcode  int
	}{
		{[]string{"new.example.test. 0 ANY ANY"}, dns.RcodeSuccess},
		{[]string{"absent.example.test. 0 ANY ANY"}, dns.RcodeNameError},
		{[]string{"new.example.test. 0 NONE ANY"}, dns.RcodeYXDomain},
		{[]string{"new.example.test. 0 ANY MX"}, dns.RcodeNXRrset},
		{[]string{"new.example.test. 0 NONE A"}, dns.RcodeYXRrset},
		{[]string{"new.example.test. 0 IN A 192.0.2.9"}, dns.RcodeSuccess},
		{[]string{"new.example.test. 0 IN A 192.0.2.10"}, dns.RcodeNXRrset},
		{[]string{"other.test. 0 ANY ANY"}, dns.RcodeNotZone},
	} {
		if rc := h.update(true, c.prereq, []string{"pre.example.test. 60 IN A 192.0.2.1"}); rc != c.rcode {
			t.Errorf("prerequisite %v: %s, want %s", c.prereq, dns.RcodeToString[rc], dns.RcodeToString[c.rcode])
		}
	}
	// A CNAME cannot join other data, and the last apex NS stays.
	h.update(true, nil, []string{"new.example.test. 60 IN CNAME mail.example.test."})
	if got := h.lookup("new.example.test.", dns.TypeCNAME); got != "" {
		t.Errorf("a CNAME joined other data: %q", got)
	}
	h.update(true, nil, []string{"example.test. 0 ANY NS"})
	if got := h.lookup("example.test.", dns.TypeNS); !strings.Contains(got, "ns1.example.test.") {
		t.Errorf("apex NS deleted: %q", got)
	}
	// Deletions: one record, then a name.
	if rc := h.update(true, nil, []string{"new.example.test. 0 NONE A 192.0.2.9"}); rc != dns.RcodeSuccess {
		t.Fatal(dns.RcodeToString[rc])
	}
	h.update(true, nil, []string{"mail.example.test. 0 ANY ANY"})
	want := map[string]string{
		"new.example.test. TXT":  "new.example.test. 300 IN TXT \"Case Kept\"",
		"new.example.test. A":    "",
		"mail.example.test. A":   "",
		"pre.example.test. A":    "pre.example.test. 60 IN A 192.0.2.1",
		"example.test. A":        "example.test. 3600 IN A 192.0.2.1",
		"c2.example.test. CNAME": "c2.example.test. 3600 IN CNAME mail.example.test.",
	}
	check := func(when string) {
		t.Helper()
		for q, w := range want {
			name, typ, _ := strings.Cut(q, " ")
			if got := h.lookup(name, dns.StringToType[typ]); got != w {
				t.Errorf("%s: %s: %q, want %q", when, q, got, w)
			}
		}
	}
	check("after the updates")
	final := h.s.Zone("example.test.").Serial()
	// A restart replays the journal onto the zone file.
	h.reopen()
	check("after a restart")
	if got := h.s.Zone("example.test.").Serial(); got != final {
		t.Errorf("serial after restart %d, want %d", got, final)
	}
	// IXFR from the first serial: the journal's deltas, in order.
	req := new(dns.Msg)
	req.SetIxfr("example.test.", serial, "ns1.example.test.", "hostmaster.example.test.")
	req.SetTsig(testKey.Name, testKey.Algorithm, 300, time.Now().Unix())
	r := h.s.Handle(req, true, nil)
	soas := 0
	for _, rr := range r.Answer {
		if rr.Header().Rrtype == dns.TypeSOA {
			soas++
		}
	}
	if n := h.j.Len(); soas != 2*n+2 {
		t.Errorf("IXFR: %d SOA records for %d deltas", soas, n)
	}
	// AXFR without the key is refused.
	req = new(dns.Msg)
	req.SetAxfr("example.test.")
	if r := h.s.Handle(req, true, nil); r.Rcode != dns.RcodeRefused {
		t.Errorf("unsigned AXFR: %s", dns.RcodeToString[r.Rcode])
	}
}

// TestJournalTorn cuts the journal's last delta short, as a crash while
// it was written would (never acknowledged), and garbles a complete one.
func TestJournalTorn(t *testing.T) {
	h := newJournaled(t)
	h.update(true, nil, []string{"one.example.test. 60 IN A 192.0.2.1"})
	h.update(true, nil, []string{"two.example.test. 60 IN A 192.0.2.2"})
	path := filepath.Join(h.dir, "example.test.zone.jnl")
	b, _ := os.ReadFile(path)
	second := strings.LastIndex(string(b), "$delta")
	for cut := second + 1; cut < len(b); cut += 7 {
		os.WriteFile(path, b[:cut], 0o644)
		h.reopen()
		if got := h.lookup("one.example.test.", dns.TypeA); got == "" {
			t.Fatalf("cut at %d: the first update was lost", cut)
		}
		if got := h.lookup("two.example.test.", dns.TypeA); got != "" {
			t.Fatalf("cut at %d: half an update applied: %q", cut, got)
		}
		if st, _ := os.Stat(path); st.Size() != int64(second) {
			t.Fatalf("cut at %d: journal not truncated to %d: %d", cut, second, st.Size())
		}
	}
	// The same update again, after the torn one, applies cleanly.
	if rc := h.update(true, nil, []string{"two.example.test. 60 IN A 192.0.2.2"}); rc != dns.RcodeSuccess {
		t.Fatal(dns.RcodeToString[rc])
	}
	h.reopen()
	if got := h.lookup("two.example.test.", dns.TypeA); got == "" {
		t.Error("the update after the torn one was lost")
	}
	// A delta that fails its checksum with more after it is corruption,
	// not a torn write: refused loudly, nothing dropped.
	b, _ = os.ReadFile(path)
	os.WriteFile(path, []byte(strings.Replace(string(b), "IN\tA\t192.0.2.1", "IN\tA\t192.0.2.300", 1)), 0o644)
	z, _ := ReadZone(filepath.Join(h.dir, "example.test.zone"), "example.test.")
	if _, _, err := OpenJournal(path, z, t.Logf); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("garbled journal: %v", err)
	}
}

// TestJournalStale: a zone file edited (serial moved on) since the
// journal was written makes the journal stale: kept aside, not applied.
func TestJournalStale(t *testing.T) {
	h := newJournaled(t)
	h.update(true, nil, []string{"one.example.test. 60 IN A 192.0.2.1"})
	zf := filepath.Join(h.dir, "example.test.zone")
	src, _ := os.ReadFile(zf)
	os.WriteFile(zf, []byte(strings.Replace(string(src), "hostmaster 10 ", "hostmaster 20 ", 1)), 0o644)
	h.reopen()
	if got := h.lookup("one.example.test.", dns.TypeA); got != "" {
		t.Errorf("stale journal applied: %q", got)
	}
	if _, err := os.Stat(filepath.Join(h.dir, "example.test.zone.jnl.stale-20")); err != nil {
		t.Errorf("stale journal not kept: %v", err)
	}
}

// TestJournalWriteFails: an update whose journal write fails (a full
// disk, say) is answered SERVFAIL and changes nothing.
func TestJournalWriteFails(t *testing.T) {
	h := newJournaled(t)
	h.update(true, nil, []string{"one.example.test. 60 IN A 192.0.2.1"})
	path := filepath.Join(h.dir, "example.test.zone.jnl")
	ro, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	h.j.f.Close()
	h.j.f = ro // writes fail as they would on a full disk
	before := h.s.Zone("example.test.").Serial()
	if rc := h.update(true, nil, []string{"two.example.test. 60 IN A 192.0.2.2"}); rc != dns.RcodeServerFailure {
		t.Errorf("failed journal write: %s", dns.RcodeToString[rc])
	}
	if got := h.lookup("two.example.test.", dns.TypeA); got != "" || h.s.Zone("example.test.").Serial() != before {
		t.Errorf("an update that was not journaled is served: %q", got)
	}
	h.reopen()
	if got := h.lookup("one.example.test.", dns.TypeA); got == "" {
		t.Error("the journaled update was lost")
	}
}

// TestUpdateReadOnlyAndSigned: a zone without a journal, or signed
// offline, refuses updates.
func TestUpdateReadOnly(t *testing.T) {
	s := newTestServer(t, testZone)
	s.keys[testKey.Name] = testKey
	m := new(dns.Msg)
	m.SetUpdate("example.test.")
	m.Ns = []dns.RR{mustRR(t, "x.example.test. 60 IN A 192.0.2.1")}
	m.SetTsig(testKey.Name, testKey.Algorithm, 300, time.Now().Unix())
	if r := s.Handle(m, true, nil); r.Rcode != dns.RcodeRefused {
		t.Errorf("update without a journal: %s", dns.RcodeToString[r.Rcode])
	}
	m.Question[0].Name = "example.org."
	if r := s.Handle(m, true, nil); r.Rcode != dns.RcodeNotAuth {
		t.Errorf("update of a zone not served: %s", dns.RcodeToString[r.Rcode])
	}
}
