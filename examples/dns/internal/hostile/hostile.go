// Package hostile makes malformed DNS messages and sends streams of them
// at a server, to check that it survives them and keeps answering.
//
// A Generator makes the messages deterministically from a seed: headers
// and messages cut short, compression pointers that loop or point ahead
// or out of the message, labels over 63 octets, names over 255, section
// counts larger than the data, messages over 512 octets on UDP and of
// 64 KiB on TCP, broken EDNS (two OPT records, OPT not at the root or
// outside the additional section, option lengths that overrun, unknown
// options, version 1), random bytes, and on TCP zero-length frames and
// length prefixes that lie. Run sends such a stream over UDP and over
// several TCP connections at once, with further connections held open
// on a partial length prefix, and checks that a well-formed query is
// answered correctly before, during and after it.
package hostile

import (
	"math/rand/v2"

	"github.com/miekg/dns"
)

// Transport is how a Packet travels.
type Transport int

const (
	// UDP sends the packet's Data as one datagram.
	UDP Transport = iota
	// TCP sends the packet's Data as one message, preceded by its true
	// two-octet length, on a connection that may carry others.
	TCP
	// TCPStream writes the packet's Data, length prefixes included (they
	// may lie), on a connection of its own, then closes it.
	TCPStream
)

// String names the transport.
func (t Transport) String() string {
	switch t {
	case UDP:
		return "udp"
	case TCP:
		return "tcp"
	case TCPStream:
		return "tcp-stream"
	}
	return "transport?"
}

// Packet is one hostile message and how it is sent.
type Packet struct {
	Kind      string    // what is wrong with it: one of Kinds
	Transport Transport // how it is sent
	Data      []byte    // the message; for TCPStream, the raw stream bytes
}

// MaxUDP is the largest UDP payload over IPv4.
const MaxUDP = 65507

// kind makes one kind of hostile packet.
type kind struct {
	name string
	// transports the kind may be sent over; Next picks one.
	transports []Transport
	make       func(g *Generator) []byte
}

var (
	both    = []Transport{UDP, TCP}
	udpOnly = []Transport{UDP}
	tcpOnly = []Transport{TCP}
	stream  = []Transport{TCPStream}
)

// kinds is every kind of packet, in the order Kinds lists them.
var kinds = []kind{
	{"truncated-header", both, (*Generator).truncatedHeader},
	{"truncated-message", both, (*Generator).truncatedMessage},
	{"pointer-self", both, (*Generator).pointerSelf},
	{"pointer-loop", both, (*Generator).pointerLoop},
	{"pointer-forward", both, (*Generator).pointerForward},
	{"pointer-out-of-range", both, (*Generator).pointerOutOfRange},
	{"pointer-chain", both, (*Generator).pointerChain},
	{"label-over-63", both, (*Generator).labelOver63},
	{"name-over-255", both, (*Generator).nameOver255},
	{"name-over-255-compressed", both, (*Generator).nameOver255Compressed},
	{"qdcount-lies", both, (*Generator).qdcountLies},
	{"rrcount-lies", both, (*Generator).rrcountLies},
	{"rdlength-lies", both, (*Generator).rdlengthLies},
	{"qdcount-zero", both, (*Generator).qdcountZero},
	{"qdcount-many", both, (*Generator).qdcountMany},
	{"trailing-garbage", both, (*Generator).trailingGarbage},
	{"qr-set", both, (*Generator).qrSet},
	{"odd-opcode", both, (*Generator).oddOpcode},
	{"odd-type-class", both, (*Generator).oddTypeClass},
	{"edns-two-opt", both, (*Generator).ednsTwoOPT},
	{"edns-opt-not-root", both, (*Generator).ednsOPTNotRoot},
	{"edns-opt-in-answer", both, (*Generator).ednsOPTInAnswer},
	{"edns-option-overrun", both, (*Generator).ednsOptionOverrun},
	{"edns-option-cut", both, (*Generator).ednsOptionCut},
	{"edns-unknown-option", both, (*Generator).ednsUnknownOption},
	{"edns-bad-known-option", both, (*Generator).ednsBadKnownOption},
	{"edns-version-1", both, (*Generator).ednsVersion1},
	{"garbage", both, (*Generator).garbage},
	{"oversized-udp", udpOnly, (*Generator).oversizedUDP},
	{"oversized-tcp", tcpOnly, (*Generator).oversizedTCP},
	{"udp-empty", udpOnly, func(*Generator) []byte { return []byte{} }},
	{"tcp-zero-length", stream, (*Generator).tcpZeroLength},
	{"tcp-length-over", stream, (*Generator).tcpLengthOver},
	{"tcp-length-under", stream, (*Generator).tcpLengthUnder},
	{"tcp-partial-prefix", stream, (*Generator).tcpPartialPrefix},
}

// Kinds returns the name of every kind of packet a Generator makes.
func Kinds() []string {
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = k.name
	}
	return names
}

// Generator makes hostile packets. The same seed and zone give the same
// packets in the same order.
type Generator struct {
	rng  *rand.Rand
	zone string // a fully qualified name the queries ask under
	n    int    // packets made
	perm []int  // the order of kinds in this round
}

// NewGenerator returns a generator seeded with seed, whose queries ask
// about zone and names under it.
func NewGenerator(seed uint64, zone string) *Generator {
	return &Generator{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), zone: dns.Fqdn(zone)}
}

// Next returns the next packet: every kind in turn, in an order shuffled
// afresh for each round of len(Kinds()) packets.
func (g *Generator) Next() Packet {
	k := kinds[g.order()]
	g.n++
	t := k.transports[g.rng.IntN(len(k.transports))]
	return Packet{Kind: k.name, Transport: t, Data: k.make(g)}
}

// order returns the index in kinds of the packet g.n, from a permutation
// of kinds drawn at the start of each round.
func (g *Generator) order() int {
	i := g.n % len(kinds)
	if i == 0 {
		g.perm = g.rng.Perm(len(kinds))
	}
	return g.perm[i]
}
