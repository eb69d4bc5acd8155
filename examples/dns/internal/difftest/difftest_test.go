package difftest

import (
	"bytes"
	"net"
	"testing"

	"github.com/miekg/dns"
)

// zonesDir is the test zones of examples/dns.
const zonesDir = "../../testdata/zones"

func TestCorpus(t *testing.T) {
	qs, err := Corpus(zonesDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) < 500 {
		t.Errorf("%d queries, want at least 500", len(qs))
	}
	again, err := Corpus(zonesDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != len(qs) {
		t.Fatalf("second corpus: %d queries, first %d", len(again), len(qs))
	}
	names := map[string]bool{}
	kinds := map[string]int{}
	for i, q := range qs {
		if names[q.Name] {
			t.Errorf("two queries named %q", q.Name)
		}
		names[q.Name] = true
		kinds[q.Kind]++
		a, err := q.Msg.Pack()
		if err != nil {
			t.Errorf("%s: %v", q.Name, err)
			continue
		}
		b, _ := again[i].Msg.Pack()
		if again[i].Name != q.Name || !bytes.Equal(a, b) {
			t.Errorf("query %d: %q, then %q: the corpus is not deterministic", i, q.Name, again[i].Name)
		}
	}
	for _, k := range []string{"types", "nonexistent", "outside", "case", "size", "malformed"} {
		if kinds[k] == 0 {
			t.Errorf("no queries of kind %q", k)
		}
	}
	t.Logf("%d queries: %v", len(qs), kinds)
}

// msg returns a response to a query for www.example.test. A, with answer
// records rrs (zone-file text).
func msg(t *testing.T, rrs ...string) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion("www.example.test.", dns.TypeA)
	m.Response, m.Authoritative = true, true
	for _, s := range rrs {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatal(err)
		}
		m.Answer = append(m.Answer, rr)
	}
	return m
}

func TestDifferences(t *testing.T) {
	a := msg(t, "www.example.test. 3600 IN A 192.0.2.80", "www.example.test. 3600 IN A 192.0.2.81")
	if d := Compare(a, a.Copy()); d != nil {
		t.Errorf("a response and its copy differ: %q", d)
	}
	// Order does not matter, nor does the owner's case for matching.
	b := msg(t, "WWW.example.test. 3600 IN A 192.0.2.81", "www.example.test. 3600 IN A 192.0.2.80")
	want := []string{"answer case A: want www.example.test. IN A 192.0.2.81, got WWW.example.test. IN A 192.0.2.81"}
	if d := Compare(a, b); !equal(d, want) {
		t.Errorf("reordered, one owner in upper case: %q, want %q", d, want)
	}
	c := msg(t, "www.example.test. 300 IN A 192.0.2.80", "www.example.test. 3600 IN A 192.0.2.82")
	c.Authoritative = false
	c.Rcode = dns.RcodeServerFailure
	c.Question[0].Name = "WWW.example.test."
	c.SetEdns0(1232, true)
	want = []string{
		"header rcode: want NOERROR, got SERVFAIL",
		"header AA: want 1, got 0",
		"question case: want www.example.test., got WWW.example.test.",
		"answer ttl A: want 3600 (www.example.test. 3600 IN A 192.0.2.80), got 300",
		"answer missing www.example.test. 3600 IN A 192.0.2.81",
		"answer extra www.example.test. 3600 IN A 192.0.2.82",
		"edns presence: want none, got OPT",
	}
	if d := Compare(a, c); !equal(d, want) {
		t.Errorf("differences:\n%q\nwant\n%q", d, want)
	}
	if d := Compare(nil, nil); d != nil {
		t.Errorf("no response from either: %q", d)
	}
	want = []string{"response presence: want a response, got none"}
	if d := Compare(a, nil); !equal(d, want) {
		t.Errorf("no response: %q, want %q", d, want)
	}

	// EDNS: the payload size is not compared, the version, DO and
	// options are; an extended RCODE is an RCODE.
	e, f := a.Copy(), a.Copy()
	e.SetEdns0(1232, false)
	f.SetEdns0(4096, true)
	f.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"}}
	f.Rcode = dns.RcodeBadVers
	want = []string{
		"header rcode: want NOERROR, got BADVERS",
		"edns DO: want 0, got 1",
		"edns option COOKIE: want none, got 10:0102030405060708",
	}
	if d := Compare(e, f); !equal(d, want) {
		t.Errorf("EDNS differences:\n%q\nwant\n%q", d, want)
	}
}

func TestJudge(t *testing.T) {
	a := msg(t, "www.example.test. 3600 IN A 192.0.2.80")
	b := msg(t, "www.example.test. 300 IN A 192.0.2.80", "www.example.test. 3600 IN A 192.0.2.81")
	allow := []Allowance{{
		Name: "TTLs", RFC: "RFC 0 §0", Why: "a test",
		Allows: func(q, want, got *dns.Msg, d Difference) bool { return d.Field == "ttl" },
	}}
	fs := Judge(a, a, b, allow)
	if len(fs) != 2 || fs[0].Field != "ttl" || fs[0].Allowance != &allow[0] || fs[1].Field != "extra" || fs[1].Allowance != nil {
		t.Errorf("findings %+v", fs)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestNSDItself runs the corpus against two NSDs serving the test zones:
// no differences, or the harness (or NSD) is not deterministic.
func TestNSDItself(t *testing.T) {
	qs, err := Corpus(zonesDir)
	if err != nil {
		t.Fatal(err)
	}
	a, b := StartNSD(t, zonesDir), StartNSD(t, zonesDir)
	for _, tcp := range []bool{false, true} {
		var rep Report
		for _, r := range Run(qs, a, b, tcp, nil) {
			rep.Add(r)
		}
		if rep.Unexplained() != 0 {
			t.Errorf("tcp %v: NSD differs from itself:\n%s", tcp, &rep)
		}
	}
}

// TestRunOversize runs a query against a server that ignores the UDP
// size limit: Run reports the other server's oversized response, and the
// response is seen whole.
func TestRunOversize(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		for i := range 60 {
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
				A:   net.IPv4(192, 0, 2, byte(i)),
			})
		}
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })

	q := new(dns.Msg)
	q.SetQuestion("many.example.test.", dns.TypeA)
	addr := pc.LocalAddr().String()
	rs := Run([]Query{{Name: "many", Msg: q}}, addr, addr, false, nil)
	if len(rs[0].Got.Answer) != 60 {
		t.Errorf("%d answers, want 60", len(rs[0].Got.Answer))
	}
	if len(rs[0].Findings) != 1 || rs[0].Findings[0].Section != "response" || rs[0].Findings[0].Field != "size" {
		t.Errorf("findings %v, want one: response size", rs[0].Findings)
	}
}
