package authority

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// FuzzHandle feeds arbitrary messages to a server with a zone that has
// every kind of answer, over UDP and TCP: it must never panic, and
// whatever it answers must pack, within 512 bytes over UDP without EDNS.
func FuzzHandle(f *testing.F) {
	s := newTestServer(f, testZone)
	s.keys[testKey.Name] = testKey
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"example.test.", dns.TypeA}, {"c1.example.test.", dns.TypeA}, {"x.wild.example.test.", dns.TypeANY},
		{"www.deleg.example.test.", dns.TypeA}, {"big.example.test.", dns.TypeTXT}, {"example.test.", dns.TypeAXFR},
		{"example.test.", dns.TypeIXFR}, {"nope.example.test.", dns.TypeDS},
	} {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		b, _ := m.Pack()
		f.Add(b, false)
		m.SetEdns0(1232, true)
		b, _ = m.Pack()
		f.Add(b, true)
	}
	u := new(dns.Msg)
	u.SetUpdate("example.test.")
	u.Ns = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: "x.example.test.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}}}
	u.SetTsig(testKey.Name, testKey.Algorithm, 300, time.Now().Unix())
	b, _ := u.Pack()
	f.Add(b, true)
	f.Fuzz(func(t *testing.T, b []byte, tcp bool) {
		req := new(dns.Msg)
		if err := req.Unpack(b); err != nil {
			return // the dns.Server answers FORMERR itself, or nothing
		}
		resp := s.Handle(req, tcp, nil)
		if resp == nil {
			return
		}
		out, err := resp.Pack()
		if err != nil {
			t.Fatalf("response does not pack: %v\n%v", err, resp)
		}
		if !tcp && req.IsEdns0() == nil && len(out) > dns.MinMsgSize && req.Question != nil && req.Question[0].Qtype != dns.TypeIXFR {
			t.Fatalf("UDP response of %d bytes to a query without EDNS", len(out))
		}
	})
}

// FuzzZoneFile reads arbitrary master files: never a panic, and a zone
// that loads writes out a master file that loads to the same records.
func FuzzZoneFile(f *testing.F) {
	f.Add(testZone)
	f.Add("$TTL 60\n@ SOA ns h 1 2 3 4 5\n@ NS ns\n* CNAME @\n")
	f.Add("$ORIGIN example.test.\n@ IN SOA ns h ( 1 2\n 3 4 5 )\n@ NS ns\n\\# 3 abc\n")
	f.Fuzz(func(t *testing.T, src string) {
		rrs, err := ParseZone(strings.NewReader(src), "example.test.", "fuzz.zone")
		if err != nil {
			return
		}
		z, err := NewZone("example.test.", rrs)
		if err != nil {
			return
		}
		var b bytes.Buffer
		z.WriteTo(&b)
		rrs2, err := ParseZone(&b, "example.test.", "out.zone")
		if err != nil {
			t.Fatalf("written zone does not parse: %v\n%s", err, b.String())
		}
		z2, err := NewZone("example.test.", rrs2)
		if err != nil || z2.Len() != z.Len() {
			t.Fatalf("written zone: %v, %d records, want %d", err, z2.Len(), z.Len())
		}
		// Every name in it can be asked about.
		for _, rr := range z.Records() {
			m := new(dns.Msg)
			z.Answer(m, rr.Header().Name, dns.TypeANY, true)
			z.Answer(m, "x."+rr.Header().Name, dns.TypeA, true)
		}
	})
}

// FuzzJournal reads arbitrary journals: never a panic, and what is read
// ends at a block boundary.
func FuzzJournal(f *testing.F) {
	d := Delta{
		OldSOA: &dns.SOA{Hdr: dns.RR_Header{Name: "example.test.", Rrtype: dns.TypeSOA, Class: dns.ClassINET}, Ns: "ns.", Mbox: "h.", Serial: 1},
		NewSOA: &dns.SOA{Hdr: dns.RR_Header{Name: "example.test.", Rrtype: dns.TypeSOA, Class: dns.ClassINET}, Ns: "ns.", Mbox: "h.", Serial: 2},
		Add:    []dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: "t.example.test.", Rrtype: dns.TypeTXT, Class: dns.ClassINET}, Txt: []string{"a\nb"}}},
	}
	f.Add(d.encode())
	f.Add(append(d.encode(), d.encode()[:20]...))
	f.Fuzz(func(t *testing.T, b []byte) {
		deltas, good, err := readDeltas(bytes.NewReader(b))
		if err != nil {
			return
		}
		if good > int64(len(b)) || (good > 0 && b[good-1] != '\n') {
			t.Fatalf("good offset %d of %d", good, len(b))
		}
		for _, d := range deltas {
			if d.OldSOA == nil || d.NewSOA == nil {
				t.Fatal("a delta without its SOAs")
			}
		}
	})
}

// FuzzPacket feeds arbitrary datagrams to the UDP path, header parsing,
// TSIG verification and all: never a panic, and an answer only to what
// has a header, never to a response.
func FuzzPacket(f *testing.F) {
	s := newTestServer(f, testZone)
	s.keys[testKey.Name] = testKey
	m := new(dns.Msg)
	m.SetQuestion("x.wild.example.test.", dns.TypeA)
	b, _ := m.Pack()
	f.Add(b)
	m.SetTsig(testKey.Name, testKey.Algorithm, 300, time.Now().Unix())
	b, _, _ = dns.TsigGenerate(m, testKey.Secret, "", false)
	f.Add(b)
	f.Add([]byte{0, 1, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		out := s.packet(b)
		if out == nil {
			return
		}
		if len(b) < 12 || b[2]&0x80 != 0 {
			t.Fatalf("answered %x", b)
		}
		resp := new(dns.Msg)
		if err := resp.Unpack(out); err != nil || !resp.Response || resp.Id != uint16(b[0])<<8|uint16(b[1]) {
			t.Fatalf("answer does not parse or match: %v %v", err, resp)
		}
	})
}
