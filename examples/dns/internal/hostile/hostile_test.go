package hostile

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"

	"github.com/miekg/dns"
)

const zone = "bench.example."

func TestDeterministic(t *testing.T) {
	a, b, c := NewGenerator(7, zone), NewGenerator(7, zone), NewGenerator(8, zone)
	differ := false
	for i := range 2000 {
		pa, pb, pc := a.Next(), b.Next(), c.Next()
		if pa.Kind != pb.Kind || pa.Transport != pb.Transport || !bytes.Equal(pa.Data, pb.Data) {
			t.Fatalf("packet %d: seed 7 gave %s/%s %x, then %s/%s %x", i, pa.Kind, pa.Transport, pa.Data, pb.Kind, pb.Transport, pb.Data)
		}
		if pa.Kind != pc.Kind || !bytes.Equal(pa.Data, pc.Data) {
			differ = true
		}
	}
	if !differ {
		t.Error("seeds 7 and 8 gave the same packets")
	}
}

func TestEveryKindEachRound(t *testing.T) {
	g := NewGenerator(1, zone)
	kinds := Kinds()
	for round := range 20 {
		var got []string
		for range kinds {
			got = append(got, g.Next().Kind)
		}
		slices.Sort(got)
		want := slices.Sorted(slices.Values(kinds))
		if !slices.Equal(got, want) {
			t.Fatalf("round %d: kinds %v, want each of %v once", round, got, want)
		}
	}
}

// byKind returns n packets of kind from g's stream.
func byKind(g *Generator, kind string, n int) []Packet {
	var ps []Packet
	for len(ps) < n {
		if p := g.Next(); p.Kind == kind {
			ps = append(ps, p)
		}
	}
	return ps
}

// TestMalformed checks that each kind is broken the way it says, with
// miekg/dns's parser as the judge where it is strict enough.
func TestMalformed(t *testing.T) {
	unpack := func(b []byte) (*dns.Msg, error) {
		m := new(dns.Msg)
		return m, m.Unpack(b)
	}
	mustFail := func(t *testing.T, p Packet) {
		if _, err := unpack(p.Data); err == nil {
			t.Errorf("%s: unpacked without an error: %x", p.Kind, p.Data)
		}
	}
	mustUnpack := func(t *testing.T, p Packet) *dns.Msg {
		m, err := unpack(p.Data)
		if err != nil {
			t.Errorf("%s: %v: %x", p.Kind, err, p.Data)
		}
		return m
	}
	checks := map[string]func(t *testing.T, p Packet){
		"truncated-header": func(t *testing.T, p Packet) {
			if len(p.Data) == 0 || len(p.Data) >= headerLen {
				t.Errorf("%d octets", len(p.Data))
			}
			mustFail(t, p)
		},
		"truncated-message": func(t *testing.T, p Packet) {
			if len(p.Data) <= headerLen {
				t.Errorf("%d octets", len(p.Data))
			}
		},
		"pointer-self":    mustFail,
		"pointer-loop":    mustFail,
		"pointer-chain":   func(*testing.T, Packet) {},
		"pointer-forward": func(t *testing.T, p Packet) { checkPointer(t, p, func(to, at int) bool { return to > at }) },
		"pointer-out-of-range": func(t *testing.T, p Packet) {
			checkPointer(t, p, func(to, _ int) bool { return to < headerLen || to >= len(p.Data) })
		},
		"label-over-63":            mustFail,
		"name-over-255":            mustFail,
		"name-over-255-compressed": mustFail,
		"qdcount-lies": func(t *testing.T, p Packet) {
			if binary.BigEndian.Uint16(p.Data[offQDCOUNT:]) < 2 {
				t.Errorf("QDCOUNT %d for one question", binary.BigEndian.Uint16(p.Data[offQDCOUNT:]))
			}
		},
		"rrcount-lies": func(t *testing.T, p Packet) {
			if binary.BigEndian.Uint16(p.Data[offANCOUNT:]) == 0 {
				t.Error("ANCOUNT 0")
			}
		},
		"rdlength-lies": mustFail,
		"qdcount-zero": func(t *testing.T, p Packet) {
			if binary.BigEndian.Uint16(p.Data[offQDCOUNT:]) != 0 || p.Data[2]&0x80 != 0 {
				t.Errorf("header %x", p.Data[:headerLen])
			}
		},
		"qdcount-many": func(t *testing.T, p Packet) {
			if m := mustUnpack(t, p); len(m.Question) < 2 {
				t.Errorf("%d questions", len(m.Question))
			}
		},
		"trailing-garbage": func(*testing.T, Packet) {},
		"qr-set": func(t *testing.T, p Packet) {
			if m := mustUnpack(t, p); !m.Response {
				t.Error("QR clear")
			}
		},
		"odd-opcode": func(t *testing.T, p Packet) {
			if op := p.Data[2] >> 3 & 0xF; op == dns.OpcodeQuery {
				t.Error("opcode QUERY")
			}
		},
		"odd-type-class": func(*testing.T, Packet) {},
		"edns-two-opt": func(t *testing.T, p Packet) {
			if m := mustUnpack(t, p); countOPT(m.Extra) != 2 {
				t.Errorf("%d OPT records", countOPT(m.Extra))
			}
		},
		"edns-opt-not-root": func(t *testing.T, p Packet) {
			if m := mustUnpack(t, p); countOPT(m.Extra) != 1 || m.Extra[0].Header().Name == "." {
				t.Errorf("additional section %v", m.Extra)
			}
		},
		"edns-opt-in-answer": func(t *testing.T, p Packet) {
			if m := mustUnpack(t, p); countOPT(m.Answer) != 1 {
				t.Errorf("answer section %v", m.Answer)
			}
		},
		"edns-option-overrun":   mustFail,
		"edns-option-cut":       func(*testing.T, Packet) {},
		"edns-unknown-option":   func(t *testing.T, p Packet) { mustUnpack(t, p) },
		"edns-bad-known-option": func(*testing.T, Packet) {},
		"edns-version-1": func(t *testing.T, p Packet) {
			if o := mustUnpack(t, p).IsEdns0(); o == nil || o.Version() == 0 {
				t.Errorf("OPT %v", o)
			}
		},
		"garbage": func(*testing.T, Packet) {},
		"oversized-udp": func(t *testing.T, p Packet) {
			if len(p.Data) <= 512 || len(p.Data) > MaxUDP || p.Transport != UDP {
				t.Errorf("%d octets over %s", len(p.Data), p.Transport)
			}
			mustUnpack(t, p)
		},
		"oversized-tcp": func(t *testing.T, p Packet) {
			if len(p.Data) != 0xFFFF || p.Transport != TCP {
				t.Errorf("%d octets over %s", len(p.Data), p.Transport)
			}
			mustUnpack(t, p)
		},
		"udp-empty": func(t *testing.T, p Packet) {
			if len(p.Data) != 0 || p.Transport != UDP {
				t.Errorf("%d octets over %s", len(p.Data), p.Transport)
			}
		},
		"tcp-zero-length": func(t *testing.T, p Packet) {
			if len(p.Data) < 2 || p.Data[0] != 0 || p.Data[1] != 0 {
				t.Errorf("stream %x", p.Data)
			}
		},
		"tcp-length-over": func(t *testing.T, p Packet) {
			if int(binary.BigEndian.Uint16(p.Data)) <= len(p.Data)-2 {
				t.Errorf("prefix %d for %d octets", binary.BigEndian.Uint16(p.Data), len(p.Data)-2)
			}
		},
		"tcp-length-under": func(t *testing.T, p Packet) {
			if n := int(binary.BigEndian.Uint16(p.Data)); n == 0 || n >= len(p.Data)-2 {
				t.Errorf("prefix %d for %d octets", n, len(p.Data)-2)
			}
		},
		"tcp-partial-prefix": func(t *testing.T, p Packet) {
			if len(p.Data) != 1 {
				t.Errorf("stream %x", p.Data)
			}
		},
	}
	g := NewGenerator(42, zone)
	for _, kind := range Kinds() {
		check, ok := checks[kind]
		if !ok {
			t.Errorf("no check for kind %s", kind)
			continue
		}
		t.Run(kind, func(t *testing.T) {
			for _, p := range byKind(g, kind, 50) {
				if p.Transport != TCPStream && p.Transport != TCP && len(p.Data) > MaxUDP {
					t.Errorf("%d octets over UDP", len(p.Data))
				}
				if p.Transport == TCP && len(p.Data) > 0xFFFF {
					t.Errorf("%d octets over TCP", len(p.Data))
				}
				check(t, p)
			}
		})
	}
}

// checkPointer checks that the packet's first question's name has a
// compression pointer for which bad(target, its own offset) holds.
func checkPointer(t *testing.T, p Packet, bad func(to, at int) bool) {
	t.Helper()
	for off := headerLen; off+1 < len(p.Data); {
		c := int(p.Data[off])
		switch {
		case c == 0:
			t.Errorf("%s: the name ends with no pointer: %x", p.Kind, p.Data)
			return
		case c&0xC0 == 0xC0:
			to := (c&0x3F)<<8 | int(p.Data[off+1])
			if !bad(to, off) {
				t.Errorf("%s: pointer at %d to %d: %x", p.Kind, off, to, p.Data)
			}
			return
		default:
			off += 1 + c
		}
	}
	t.Errorf("%s: the name runs off the end: %x", p.Kind, p.Data)
}

func countOPT(rrs []dns.RR) int {
	n := 0
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeOPT {
			n++
		}
	}
	return n
}
