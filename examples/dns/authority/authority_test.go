package authority

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

const testZone = `$ORIGIN example.test.
$TTL 3600
@        SOA  ns1 hostmaster 10 7200 3600 1209600 300
         NS   ns1
         NS   ns2.elsewhere.test.
         MX   10 mail
         A    192.0.2.1
ns1      A    192.0.2.53
mail     A    192.0.2.25
         AAAA 2001:db8::25
big      TXT  "0123456789012345678901234567890123456789012345678901234567890123456789"
big      TXT  "1123456789012345678901234567890123456789012345678901234567890123456789"
big      TXT  "2123456789012345678901234567890123456789012345678901234567890123456789"
big      TXT  "3123456789012345678901234567890123456789012345678901234567890123456789"
big      TXT  "4123456789012345678901234567890123456789012345678901234567890123456789"
big      TXT  "5123456789012345678901234567890123456789012345678901234567890123456789"
big      TXT  "6123456789012345678901234567890123456789012345678901234567890123456789"
big      TXT  "7123456789012345678901234567890123456789012345678901234567890123456789"
c1       CNAME c2
c2       CNAME mail
out      CNAME www.elsewhere.test.
loop1    CNAME loop2
loop2    CNAME loop1
*.wild   A    192.0.2.80
*.wild   TXT  "wild"
a.b.ent  A    192.0.2.7
deleg    NS   ns.deleg
deleg    NS   ns.other.test.
ns.deleg A    192.0.2.99
`

func newTestServer(t testing.TB, zones ...string) *Server {
	t.Helper()
	s := NewServer(Config{})
	for _, src := range zones {
		rrs, err := ParseZone(strings.NewReader(src), "example.test.", "test.zone")
		if err != nil {
			t.Fatal(err)
		}
		z, err := NewZone("example.test.", rrs)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.AddZone(z, nil); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// section renders a section's records, sorted, TTLs kept.
func section(rrs []dns.RR) string {
	var out []string
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		out = append(out, strings.Join(strings.Fields(rr.String()), " "))
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

func ask(s *Server, name string, qtype uint16, edns bool) *dns.Msg {
	req := new(dns.Msg)
	req.SetQuestion(name, qtype)
	if edns {
		req.SetEdns0(4096, false)
	}
	return s.Handle(req, false, nil)
}

func TestAnswers(t *testing.T) {
	s := newTestServer(t, testZone)
	const apexNS = "example.test. 3600 IN NS ns1.example.test.\nexample.test. 3600 IN NS ns2.elsewhere.test."
	const soa = "example.test. 300 IN SOA ns1.example.test. hostmaster.example.test. 10 7200 3600 1209600 300"
	for _, c := range []struct {
		name          string
		qtype         uint16
		rcode         int
		aa            bool
		answer, auth  string
		extraContains string
	}{
		{"example.test.", dns.TypeA, dns.RcodeSuccess, true, "example.test. 3600 IN A 192.0.2.1", apexNS, "ns1.example.test. 3600 IN A 192.0.2.53"},
		{"Mail.Example.TEST.", dns.TypeA, dns.RcodeSuccess, true, "Mail.Example.TEST. 3600 IN A 192.0.2.25", apexNS, ""},
		{"example.test.", dns.TypeMX, dns.RcodeSuccess, true, "example.test. 3600 IN MX 10 mail.example.test.", apexNS, "mail.example.test. 3600 IN AAAA 2001:db8::25"},
		{"nope.example.test.", dns.TypeA, dns.RcodeNameError, true, "", soa, ""},
		{"mail.example.test.", dns.TypeTXT, dns.RcodeSuccess, true, "", soa, ""},
		{"ent.example.test.", dns.TypeA, dns.RcodeSuccess, true, "", soa, ""},   // empty non-terminal: NODATA
		{"b.ent.example.test.", dns.TypeA, dns.RcodeSuccess, true, "", soa, ""}, // likewise
		{"c1.example.test.", dns.TypeA, dns.RcodeSuccess, true, "c1.example.test. 3600 IN CNAME c2.example.test.\nc2.example.test. 3600 IN CNAME mail.example.test.\nmail.example.test. 3600 IN A 192.0.2.25", apexNS, ""},
		{"c1.example.test.", dns.TypeCNAME, dns.RcodeSuccess, true, "c1.example.test. 3600 IN CNAME c2.example.test.", apexNS, ""},
		{"out.example.test.", dns.TypeA, dns.RcodeSuccess, true, "out.example.test. 3600 IN CNAME www.elsewhere.test.", apexNS, ""},
		{"loop1.example.test.", dns.TypeA, dns.RcodeSuccess, true, "loop1.example.test. 3600 IN CNAME loop2.example.test.\nloop2.example.test. 3600 IN CNAME loop1.example.test.", apexNS, ""},
		{"x.wild.example.test.", dns.TypeA, dns.RcodeSuccess, true, "x.wild.example.test. 3600 IN A 192.0.2.80", apexNS, ""},
		{"y.x.wild.example.test.", dns.TypeTXT, dns.RcodeSuccess, true, "y.x.wild.example.test. 3600 IN TXT \"wild\"", apexNS, ""},
		{"x.wild.example.test.", dns.TypeMX, dns.RcodeSuccess, true, "", soa, ""},
		{"wild.example.test.", dns.TypeA, dns.RcodeSuccess, true, "", soa, ""}, // exists (ENT above the wildcard)
		{"www.deleg.example.test.", dns.TypeA, dns.RcodeSuccess, false, "", "deleg.example.test. 3600 IN NS ns.deleg.example.test.\ndeleg.example.test. 3600 IN NS ns.other.test.", "ns.deleg.example.test. 3600 IN A 192.0.2.99"},
		{"deleg.example.test.", dns.TypeNS, dns.RcodeSuccess, false, "", "deleg.example.test. 3600 IN NS ns.deleg.example.test.\ndeleg.example.test. 3600 IN NS ns.other.test.", "ns.deleg.example.test. 3600 IN A 192.0.2.99"},
		{"deleg.example.test.", dns.TypeDS, dns.RcodeSuccess, true, "", soa, ""}, // the parent answers DS
		{"example.org.", dns.TypeA, dns.RcodeRefused, false, "", "", ""},
		{"example.test.", dns.TypeANY, dns.RcodeSuccess, true, "example.test. 3600 IN SOA ns1.example.test. hostmaster.example.test. 10 7200 3600 1209600 300", "", ""},
	} {
		r := ask(s, c.name, c.qtype, true)
		label := c.name + " " + dns.TypeToString[c.qtype]
		if r.Rcode != c.rcode || r.Authoritative != c.aa {
			t.Errorf("%s: rcode %s aa %v, want %s %v", label, dns.RcodeToString[r.Rcode], r.Authoritative, dns.RcodeToString[c.rcode], c.aa)
		}
		if got := section(r.Answer); got != c.answer {
			t.Errorf("%s: answer\n%s\nwant\n%s", label, got, c.answer)
		}
		if got := section(r.Ns); got != c.auth {
			t.Errorf("%s: authority\n%s\nwant\n%s", label, got, c.auth)
		}
		if c.extraContains != "" && !strings.Contains(section(r.Extra), c.extraContains) {
			t.Errorf("%s: additional\n%s\nlacks %s", label, section(r.Extra), c.extraContains)
		}
		if r.Question[0].Name != c.name {
			t.Errorf("%s: question came back as %s", label, r.Question[0].Name)
		}
	}
}

func TestEDNSAndTruncation(t *testing.T) {
	s := newTestServer(t, testZone)
	// Without EDNS, 512 bytes: the eight TXT records do not fit.
	r := ask(s, "big.example.test.", dns.TypeTXT, false)
	if !r.Truncated || len(r.Answer) != 0 || r.IsEdns0() != nil {
		t.Errorf("512-byte UDP: TC %v, %d answers, OPT %v", r.Truncated, len(r.Answer), r.IsEdns0())
	}
	if b, err := r.Pack(); err != nil || len(b) > 512 {
		t.Errorf("truncated response: %d bytes, %v", len(b), err)
	}
	// With EDNS (4096 asked, 1232 given) they fit.
	r = ask(s, "big.example.test.", dns.TypeTXT, true)
	if r.Truncated || len(r.Answer) != 8 || r.IsEdns0() == nil || r.IsEdns0().UDPSize() != EDNSSize {
		t.Errorf("EDNS: TC %v, %d answers, OPT %v", r.Truncated, len(r.Answer), r.IsEdns0())
	}
	// Over TCP, always.
	req := new(dns.Msg)
	req.SetQuestion("big.example.test.", dns.TypeTXT)
	if r := s.Handle(req, true, nil); r.Truncated || len(r.Answer) != 8 {
		t.Errorf("TCP: TC %v, %d answers", r.Truncated, len(r.Answer))
	}
	// EDNS version 1: BADVERS (RFC 6891 6.1.3), with an OPT to carry it.
	req = new(dns.Msg)
	req.SetQuestion("example.test.", dns.TypeA)
	req.SetEdns0(1232, false)
	req.IsEdns0().SetVersion(1)
	r = s.Handle(req, false, nil)
	b, err := r.Pack()
	if err != nil {
		t.Fatal(err)
	}
	back := new(dns.Msg)
	if err := back.Unpack(b); err != nil || back.Rcode != dns.RcodeBadVers || len(back.Answer) != 0 {
		t.Errorf("EDNS version 1: rcode %s, %v", dns.RcodeToString[back.Rcode], err)
	}
	// Opcodes: STATUS is not implemented; NOTIFY to a primary refused.
	req = new(dns.Msg)
	req.SetQuestion("example.test.", dns.TypeSOA)
	req.Opcode = dns.OpcodeStatus
	if r := s.Handle(req, false, nil); r.Rcode != dns.RcodeNotImplemented {
		t.Errorf("STATUS: %s", dns.RcodeToString[r.Rcode])
	}
	// Meta-types are not data.
	if r := ask(s, "example.test.", dns.TypeMAILB, true); r.Rcode != dns.RcodeFormatError {
		t.Errorf("MAILB: %s", dns.RcodeToString[r.Rcode])
	}
	// Responses are not answered.
	req = new(dns.Msg)
	req.SetQuestion("example.test.", dns.TypeA)
	req.Response = true
	if r := s.Handle(req, false, nil); r != nil {
		t.Errorf("a response was answered: %v", r)
	}
}

func TestZoneErrors(t *testing.T) {
	dir := t.TempDir()
	for src, want := range map[string]string{
		"@ SOA ns h 1 2 3 4 5\n@ NS ns\nx A 999.1.1.1\n": "bad.zone: bad A A: \"999.1.1.1\" at line: 4:13",
		"@ NS ns\n":              "has no SOA record at its apex",
		"@ SOA ns h 1 2 3 4 5\n": "has no NS records at its apex",
		"@ SOA ns h 1 2 3 4 5\n@ NS ns\nx CNAME a\nx A 1.2.3.4\n": "x.example.test. has a CNAME and A records",
		"@ SOA ns h 1 2 3 4 5\n@ NS ns\nother.test. A 1.2.3.4\n":  "record outside zone example.test.",
		"@ SOA ns h 1 2 3 4 5\n@ NS ns\n$INCLUDE /etc/passwd\n":   "$INCLUDE directive not allowed",
		"@ SOA ns h 1 2 3 4 5\n@ SOA ns h 2 2 3 4 5\n@ NS ns\n":   "second SOA record",
	} {
		path := filepath.Join(dir, "bad.zone")
		os.WriteFile(path, []byte("$TTL 60\n"+src), 0o644)
		_, err := ReadZone(path, "example.test.")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("zone %q: got %v, want %q", src, err, want)
		}
		if err != nil && !strings.Contains(err.Error(), path) {
			t.Errorf("zone %q: error %q does not name the file", src, err)
		}
	}
	// LoadDir serves what loads and reports the rest.
	dir = t.TempDir()
	os.WriteFile(filepath.Join(dir, "good.test.zone"), []byte("$TTL 60\n@ SOA ns h 1 2 3 4 5\n@ NS ns\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "broken.test.zone"), []byte("$TTL 60\n@ NS ns\n"), 0o644)
	zones, errs := LoadDir(dir)
	if len(zones) != 1 || zones[0].Origin != "good.test." || len(errs) != 1 {
		t.Errorf("LoadDir: %d zones, errors %v", len(zones), errs)
	}
}

func TestParseKey(t *testing.T) {
	k, err := ParseKey("hmac-sha512:Upd.Key:c2VjcmV0")
	if err != nil || k.Name != "upd.key." || k.Algorithm != dns.HmacSHA512 {
		t.Errorf("%+v %v", k, err)
	}
	if k, err := ParseKey("upd:c2VjcmV0"); err != nil || k.Algorithm != dns.HmacSHA256 {
		t.Errorf("%+v %v", k, err)
	}
	for _, bad := range []string{"x", "md5:k:c2VjcmV0", "k:not base64!", "a:b:c:d", "hmac-sha256::c2VjcmV0"} {
		if _, err := ParseKey(bad); err == nil {
			t.Errorf("ParseKey(%q) accepted", bad)
		}
	}
}
