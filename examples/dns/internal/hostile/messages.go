package hostile

import (
	"encoding/binary"
	"fmt"

	"github.com/miekg/dns"
)

// The header's flag bits, and the offsets of its fields.
const (
	headerLen  = 12
	flagQR     = 1 << 15
	flagRD     = 1 << 8
	offQDCOUNT = 4
	offANCOUNT = 6
	offNSCOUNT = 8
	offARCOUNT = 10
)

// header returns a header with a random ID and the given flags and counts.
func (g *Generator) header(flags, qd, an, ns, ar uint16) []byte {
	b := make([]byte, headerLen, 512)
	binary.BigEndian.PutUint16(b[0:], g.id())
	binary.BigEndian.PutUint16(b[2:], flags)
	binary.BigEndian.PutUint16(b[offQDCOUNT:], qd)
	binary.BigEndian.PutUint16(b[offANCOUNT:], an)
	binary.BigEndian.PutUint16(b[offNSCOUNT:], ns)
	binary.BigEndian.PutUint16(b[offARCOUNT:], ar)
	return b
}

func (g *Generator) id() uint16 { return uint16(g.rng.Uint32()) }

func (g *Generator) coin() bool { return g.rng.IntN(2) == 0 }

// between returns a number in [lo, hi].
func (g *Generator) between(lo, hi int) int { return lo + g.rng.IntN(hi-lo+1) }

// bytes returns n random octets.
func (g *Generator) bytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(g.rng.Uint32())
	}
	return b
}

// name returns a name to ask about: the zone, names in it and names that
// are not.
func (g *Generator) name() string {
	switch g.rng.IntN(5) {
	case 0:
		return g.zone
	case 1:
		return fmt.Sprintf("h%03d.%s", g.between(1, 40), g.zone)
	case 2:
		return fmt.Sprintf("nx%d.%s", g.rng.IntN(1000), g.zone)
	case 3:
		return "www." + g.zone
	}
	return fmt.Sprintf("a.b%d.c.%s", g.rng.IntN(100), g.zone)
}

// qtype returns an ordinary query type.
func (g *Generator) qtype() uint16 {
	ts := []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeMX, dns.TypeTXT, dns.TypeNS, dns.TypeSOA, dns.TypeANY}
	return ts[g.rng.IntN(len(ts))]
}

// wireName returns name in wire form, uncompressed.
func wireName(name string) []byte {
	b := make([]byte, 256)
	n, err := dns.PackDomainName(dns.Fqdn(name), b, 0, nil, false)
	if err != nil {
		panic(fmt.Sprintf("hostile: packing %q: %v", name, err))
	}
	return b[:n]
}

// appendQuestion appends a question of wire name qname.
func appendQuestion(b, qname []byte, qtype, qclass uint16) []byte {
	b = append(b, qname...)
	b = binary.BigEndian.AppendUint16(b, qtype)
	return binary.BigEndian.AppendUint16(b, qclass)
}

// appendRR appends a resource record; rdlength is len(rdata) unless
// lying, when it is rdlength.
func appendRR(b, owner []byte, rrtype, class uint16, ttl uint32, rdata []byte, rdlength int) []byte {
	b = append(b, owner...)
	b = binary.BigEndian.AppendUint16(b, rrtype)
	b = binary.BigEndian.AppendUint16(b, class)
	b = binary.BigEndian.AppendUint32(b, ttl)
	if rdlength < 0 {
		rdlength = len(rdata)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(rdlength))
	return append(b, rdata...)
}

// opt is an OPT record's fields.
type opt struct {
	owner    []byte // wire name; the root unless hostile
	udpSize  uint16
	version  uint8
	do       bool
	rdata    []byte // options, possibly broken
	rdlength int    // -1 for len(rdata)
}

// appendOPT appends an OPT record.
func appendOPT(b []byte, o opt) []byte {
	owner := o.owner
	if owner == nil {
		owner = []byte{0}
	}
	ttl := uint32(o.version) << 16
	if o.do {
		ttl |= 1 << 15
	}
	return appendRR(b, owner, dns.TypeOPT, o.udpSize, ttl, o.rdata, o.rdlength)
}

// option returns one EDNS option.
func option(code uint16, data []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, code)
	b = binary.BigEndian.AppendUint16(b, uint16(len(data)))
	return append(b, data...)
}

// okOPT returns an ordinary OPT record's fields.
func (g *Generator) okOPT() opt {
	return opt{udpSize: uint16(g.between(512, 4096)), do: g.coin(), rdlength: -1}
}

// query returns a well-formed query, with an OPT record if edns.
func (g *Generator) query(edns bool) []byte {
	var ar uint16
	if edns {
		ar = 1
	}
	b := g.header(flagRD, 1, 0, 0, ar)
	b = appendQuestion(b, wireName(g.name()), g.qtype(), dns.ClassINET)
	if edns {
		b = appendOPT(b, g.okOPT())
	}
	return b
}

// queryWith returns a well-formed question, then ar additional records
// made by add; the header counts them.
func (g *Generator) queryWith(flags uint16, ar uint16, add func(b []byte) []byte) []byte {
	b := g.header(flags, 1, 0, 0, ar)
	b = appendQuestion(b, wireName(g.name()), g.qtype(), dns.ClassINET)
	return add(b)
}

func (g *Generator) truncatedHeader() []byte {
	return g.query(g.coin())[:g.between(1, headerLen-1)]
}

func (g *Generator) truncatedMessage() []byte {
	b := g.queryWith(flagRD, 2, func(b []byte) []byte {
		b = appendRR(b, wireName(g.name()), dns.TypeA, dns.ClassINET, 60, []byte{192, 0, 2, 1}, -1)
		o := g.okOPT()
		o.rdata = option(dns.EDNS0COOKIE, g.bytes(8))
		return appendOPT(b, o)
	})
	return b[:g.between(headerLen+1, len(b)-1)]
}

// pointer returns a compression pointer to off.
func pointer(off int) []byte { return []byte{0xC0 | byte(off>>8), byte(off)} }

func (g *Generator) pointerSelf() []byte {
	b := g.header(flagRD, 1, 0, 0, 0)
	var name []byte
	if g.coin() {
		name = pointer(headerLen) // the name is itself
	} else {
		// One label, then back to its own start: an endless name.
		name = append([]byte{1, 'a'}, pointer(headerLen)...)
	}
	return appendQuestion(b, name, g.qtype(), dns.ClassINET)
}

func (g *Generator) pointerLoop() []byte {
	// Two questions whose names point at each other.
	b := g.header(flagRD, 2, 0, 0, 0)
	second := headerLen + 2 + 4
	b = appendQuestion(b, pointer(second), g.qtype(), dns.ClassINET)
	return appendQuestion(b, pointer(headerLen), g.qtype(), dns.ClassINET)
}

func (g *Generator) pointerForward() []byte {
	// The question's name points at the additional record's owner, after
	// it; RFC 1035 allows only pointers to a prior occurrence.
	b := g.header(flagRD, 1, 0, 0, 1)
	ownerAt := headerLen + 2 + 4
	b = appendQuestion(b, pointer(ownerAt), g.qtype(), dns.ClassINET)
	return appendRR(b, wireName(g.name()), dns.TypeA, dns.ClassINET, 60, []byte{192, 0, 2, 1}, -1)
}

func (g *Generator) pointerOutOfRange() []byte {
	b := g.header(flagRD, 1, 0, 0, 0)
	var target int
	if g.coin() {
		target = g.between(0, headerLen-1) // into the header
	} else {
		target = g.between(headerLen+20, 0x3FFF) // past the end
	}
	name := append([]byte{3, 'w', 'w', 'w'}, pointer(target)...)
	return appendQuestion(b, name, g.qtype(), dns.ClassINET)
}

func (g *Generator) pointerChain() []byte {
	// A first additional record's RDATA holds a chain of pointers, each to
	// the one before and the first to the question's name; the second
	// record's owner points at the chain's end.
	n := g.between(8, 200)
	b := g.header(flagRD, 1, 0, 0, 2)
	b = appendQuestion(b, wireName(g.name()), g.qtype(), dns.ClassINET)
	owner := wireName(g.name())
	rdataAt := len(b) + len(owner) + 10
	chain := make([]byte, 0, 2*n)
	prev := headerLen
	for i := 0; i < n; i++ {
		chain = append(chain, pointer(prev)...)
		prev = rdataAt + 2*i
	}
	b = appendRR(b, owner, 65280, dns.ClassINET, 60, chain, -1)
	return appendRR(b, pointer(prev), dns.TypeA, dns.ClassINET, 60, []byte{192, 0, 2, 2}, -1)
}

func (g *Generator) labelOver63() []byte {
	// Lengths 64-191 have the top bits 01 or 10: the label types RFC 6891
	// retired and never defined.
	b := g.header(flagRD, 1, 0, 0, 0)
	n := g.between(64, 191)
	var name []byte
	if g.coin() {
		name = append(name, wireName(g.name())...)
		name = name[:len(name)-1]
	}
	name = append(name, byte(n))
	name = append(name, g.bytes(g.between(0, n))...)
	name = append(name, 0)
	return appendQuestion(b, name, g.qtype(), dns.ClassINET)
}

// label returns a label of n random letters, its length first.
func (g *Generator) label(n int) []byte {
	b := []byte{byte(n)}
	for range n {
		b = append(b, byte('a'+g.rng.IntN(26)))
	}
	return b
}

// longLabels returns labels of 40 to 63 octets, at least want octets of
// them in wire form and at most want+63, without the root.
func (g *Generator) longLabels(want int) []byte {
	var b []byte
	for len(b) < want {
		b = append(b, g.label(g.between(40, 63))...)
	}
	return b
}

func (g *Generator) nameOver255() []byte {
	b := g.header(flagRD, 1, 0, 0, 0)
	name := append(g.longLabels(256), 0)
	return appendQuestion(b, name, g.qtype(), dns.ClassINET)
}

func (g *Generator) nameOver255Compressed() []byte {
	// The first name is 181 to 244 octets, the second two labels and a
	// pointer to the first: over 255 only once expanded.
	b := g.header(flagRD, 2, 0, 0, 0)
	first := append(g.longLabels(180), 0)
	b = appendQuestion(b, first, g.qtype(), dns.ClassINET)
	second := append(g.label(63), g.label(63)...)
	second = append(second, pointer(headerLen)...)
	return appendQuestion(b, second, g.qtype(), dns.ClassINET)
}

func (g *Generator) qdcountLies() []byte {
	b := g.query(g.coin())
	binary.BigEndian.PutUint16(b[offQDCOUNT:], uint16(g.between(2, 0xFFFF)))
	return b
}

func (g *Generator) rrcountLies() []byte {
	b := g.query(g.coin())
	for _, off := range []int{offANCOUNT, offNSCOUNT, offARCOUNT} {
		if g.coin() {
			binary.BigEndian.PutUint16(b[off:], binary.BigEndian.Uint16(b[off:])+uint16(g.between(1, 0xFFFE)))
		}
	}
	if binary.BigEndian.Uint16(b[offANCOUNT:]) == 0 {
		binary.BigEndian.PutUint16(b[offANCOUNT:], uint16(g.between(1, 0xFFFF)))
	}
	return b
}

func (g *Generator) rdlengthLies() []byte {
	return g.queryWith(flagRD, 1, func(b []byte) []byte {
		return appendRR(b, wireName(g.name()), dns.TypeA, dns.ClassINET, 60, []byte{192, 0, 2, 3}, g.between(5, 0xFFFF))
	})
}

func (g *Generator) qdcountZero() []byte {
	b := g.header(uint16(g.rng.Uint32())&^flagQR, 0, 0, 0, 0)
	if g.coin() {
		b = appendOPT(b, g.okOPT())
		binary.BigEndian.PutUint16(b[offARCOUNT:], 1)
	}
	return b
}

func (g *Generator) qdcountMany() []byte {
	n := g.between(2, 40)
	b := g.header(flagRD, uint16(n), 0, 0, 0)
	for range n {
		b = appendQuestion(b, wireName(g.name()), g.qtype(), dns.ClassINET)
	}
	return b
}

func (g *Generator) trailingGarbage() []byte {
	return append(g.query(g.coin()), g.bytes(g.between(1, 200))...)
}

func (g *Generator) qrSet() []byte {
	// A "response" sent to the server: answering it would let two servers
	// bounce messages between them for ever.
	b := g.query(g.coin())
	b[2] |= flagQR >> 8
	return b
}

func (g *Generator) oddOpcode() []byte {
	b := g.query(g.coin())
	op := []byte{1, 2, 3, 4, 5, 6, 7, 15}[g.rng.IntN(8)]
	b[2] = b[2]&^0x78 | op<<3
	if op == dns.OpcodeUpdate {
		// An update's zone section, then prerequisites that are not there.
		binary.BigEndian.PutUint16(b[offANCOUNT:], uint16(g.between(1, 10)))
		b = append(b, g.bytes(g.between(0, 40))...)
	}
	return b
}

func (g *Generator) oddTypeClass() []byte {
	types := []uint16{0, dns.TypeAXFR, dns.TypeIXFR, dns.TypeANY, dns.TypeOPT, dns.TypeTSIG, dns.TypeTKEY, dns.TypeMAILA, 0xFFFF, 65280}
	classes := []uint16{0, dns.ClassINET, dns.ClassCHAOS, dns.ClassNONE, dns.ClassANY, 0xFFFF}
	b := g.header(flagRD, 1, 0, 0, 0)
	name := wireName(g.name())
	if g.rng.IntN(4) == 0 {
		name = wireName("version.bind.")
	}
	return appendQuestion(b, name, types[g.rng.IntN(len(types))], classes[g.rng.IntN(len(classes))])
}

func (g *Generator) ednsTwoOPT() []byte {
	return g.queryWith(flagRD, 2, func(b []byte) []byte {
		return appendOPT(appendOPT(b, g.okOPT()), g.okOPT())
	})
}

func (g *Generator) ednsOPTNotRoot() []byte {
	return g.queryWith(flagRD, 1, func(b []byte) []byte {
		o := g.okOPT()
		o.owner = wireName(g.name())
		return appendOPT(b, o)
	})
}

func (g *Generator) ednsOPTInAnswer() []byte {
	b := g.header(flagRD, 1, 1, 0, 0)
	b = appendQuestion(b, wireName(g.name()), g.qtype(), dns.ClassINET)
	b = appendOPT(b, g.okOPT())
	if g.coin() {
		// And one in the additional section too.
		binary.BigEndian.PutUint16(b[offARCOUNT:], 1)
		b = appendOPT(b, g.okOPT())
	}
	return b
}

func (g *Generator) ednsOptionOverrun() []byte {
	return g.queryWith(flagRD, 1, func(b []byte) []byte {
		o := g.okOPT()
		data := g.bytes(g.between(0, 8))
		o.rdata = option(uint16(g.rng.IntN(20)), data)
		// The option claims more than the record holds.
		binary.BigEndian.PutUint16(o.rdata[2:], uint16(len(data)+g.between(1, 0xFFFF-len(data))))
		if g.coin() {
			// Or the record claims more than the message holds.
			o.rdlength = len(o.rdata) + g.between(1, 100)
		}
		return appendOPT(b, o)
	})
}

func (g *Generator) ednsOptionCut() []byte {
	return g.queryWith(flagRD, 1, func(b []byte) []byte {
		o := g.okOPT()
		if g.coin() {
			o.rdata = option(dns.EDNS0NSID, nil)
		}
		o.rdata = append(o.rdata, g.bytes(g.between(1, 3))...) // part of an option's header
		return appendOPT(b, o)
	})
}

func (g *Generator) ednsUnknownOption() []byte {
	return g.queryWith(flagRD, 1, func(b []byte) []byte {
		o := g.okOPT()
		for range g.between(1, 5) {
			code := uint16(g.between(20, 65000))
			if g.coin() {
				code = uint16(g.between(dns.EDNS0LOCALSTART, dns.EDNS0LOCALEND))
			}
			o.rdata = append(o.rdata, option(code, g.bytes(g.between(0, 64)))...)
		}
		return appendOPT(b, o)
	})
}

func (g *Generator) ednsBadKnownOption() []byte {
	return g.queryWith(flagRD, 1, func(b []byte) []byte {
		o := g.okOPT()
		switch g.rng.IntN(5) {
		case 0: // a cookie of a length RFC 7873 does not allow
			n := []int{0, 1, 7, 9, 15, 41, 200}[g.rng.IntN(7)]
			o.rdata = option(dns.EDNS0COOKIE, g.bytes(n))
		case 1: // client subnet: an unknown family, or a prefix longer than the address
			data := binary.BigEndian.AppendUint16(nil, uint16(g.between(0, 5)))
			data = append(data, byte(g.between(25, 255)), byte(g.between(0, 255)))
			o.rdata = option(dns.EDNS0SUBNET, append(data, g.bytes(g.between(0, 20))...))
		case 2: // keepalive with an odd length
			o.rdata = option(dns.EDNS0TCPKEEPALIVE, g.bytes([]int{1, 3, 5}[g.rng.IntN(3)]))
		case 3: // padding that is not zeros, and an extended error in a query
			o.rdata = append(option(dns.EDNS0PADDING, g.bytes(g.between(1, 64))),
				option(dns.EDNS0EDE, g.bytes(g.between(0, 5)))...)
		default: // the same option many times
			for range g.between(2, 50) {
				o.rdata = append(o.rdata, option(dns.EDNS0NSID, nil)...)
			}
		}
		return appendOPT(b, o)
	})
}

func (g *Generator) ednsVersion1() []byte {
	return g.queryWith(flagRD, 1, func(b []byte) []byte {
		o := g.okOPT()
		o.version = uint8(g.between(1, 255))
		return appendOPT(b, o)
	})
}

func (g *Generator) garbage() []byte { return g.bytes(g.between(1, 1500)) }

// padded returns a query of size octets, its OPT record padded.
func (g *Generator) padded(size int) []byte {
	return g.queryWith(flagRD, 1, func(b []byte) []byte {
		o := g.okOPT()
		pad := size - len(b) - 11 - 4
		o.rdata = option(dns.EDNS0PADDING, make([]byte, pad))
		return appendOPT(b, o)
	})
}

func (g *Generator) oversizedUDP() []byte {
	if g.rng.IntN(8) == 0 {
		return g.padded(g.between(MaxUDP-1000, MaxUDP))
	}
	return g.padded(g.between(513, 4600))
}

func (g *Generator) oversizedTCP() []byte { return g.padded(0xFFFF) }

// framed returns msg with its two-octet length before it.
func framed(msg []byte) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(msg))), msg...)
}

func (g *Generator) tcpZeroLength() []byte {
	b := make([]byte, 2*g.between(1, 4))
	if g.coin() {
		// Then a good query: a server may answer it or drop the connection.
		b = append(b, framed(g.query(g.coin()))...)
	}
	return b
}

func (g *Generator) tcpLengthOver() []byte {
	q := g.query(g.coin())
	b := binary.BigEndian.AppendUint16(nil, uint16(g.between(len(q)+1, 0xFFFF)))
	return append(b, q...)
}

func (g *Generator) tcpLengthUnder() []byte {
	// The rest of the message is read as the next length and message.
	q := g.query(g.coin())
	b := binary.BigEndian.AppendUint16(nil, uint16(g.between(1, len(q)-1)))
	return append(b, q...)
}

func (g *Generator) tcpPartialPrefix() []byte { return g.bytes(1) }
