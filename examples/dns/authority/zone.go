// Package authority is an authoritative DNS server's core: zones read
// from RFC 1035 master files, the answers to queries (RFC 1034 4.3.2,
// wildcards as RFC 4592 says, DNSSEC as RFC 4035 and RFC 5155 say),
// zone transfers (AXFR, IXFR), NOTIFY, and dynamic updates (RFC 2136)
// made durable by a journal.
//
// A Zone is immutable once built: a query reads one snapshot without
// locks, and an update builds the next snapshot and swaps it in.
package authority

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"github.com/miekg/dns"
)

// rrset is the records of one type at one name, with the signatures
// that cover them.
type rrset struct {
	rrs  []dns.RR
	sigs []dns.RR // RRSIGs whose type covered is this set's type
}

// node is one owner name's data.
type node struct {
	name  string // canonical (lower-case) owner name
	sets  map[uint16]*rrset
	order []uint16 // the types in the order the zone file gave them
}

func (n *node) get(t uint16) *rrset {
	if n == nil {
		return nil
	}
	return n.sets[t]
}

// Zone is one zone's data, immutable once built.
type Zone struct {
	// Origin is the zone's apex, canonical (lower case, fully qualified).
	Origin string
	soa    *dns.SOA
	nodes  map[string]*node // by canonical owner name
	// exists holds every name in the zone: owners and the empty
	// non-terminals between them and the apex.
	exists map[string]bool
	// nsec lists the owners of NSEC records in canonical order.
	nsec []string
	// nsec3 is the NSEC3 chain, sorted by hashed owner, and nsec3param
	// the parameters the chain was made with (nil for an unsigned or
	// NSEC-signed zone).
	nsec3      []*dns.NSEC3
	nsec3param *dns.NSEC3PARAM
	signed     bool
	count      int // records, signatures included
}

// Serial is the zone's SOA serial.
func (z *Zone) Serial() uint32 { return z.soa.Serial }

// SOA returns a copy of the zone's SOA record.
func (z *Zone) SOA() *dns.SOA { return dns.Copy(z.soa).(*dns.SOA) }

// Signed reports whether the zone carries DNSSEC signatures.
func (z *Zone) Signed() bool { return z.signed }

// Len is the number of records in the zone, signatures included.
func (z *Zone) Len() int { return z.count }

// ZoneError is why a zone file cannot be served: the file, the line
// when the parser knows it, and the record.
type ZoneError struct {
	File string
	Err  error
}

func (e *ZoneError) Error() string { return e.File + ": " + e.Err.Error() }
func (e *ZoneError) Unwrap() error { return e.Err }

// maxZoneFile bounds a master file's size: a zone is held in memory.
const maxZoneFile = 256 << 20

// ReadZone parses the master file at path as zone origin. $INCLUDE is
// refused (a zone file may not name other host files). Syntax errors
// carry the file's line; the zone's rules (one SOA at the apex, names
// inside the zone, CNAME alone at its name) name the record.
func ReadZone(path, origin string) (*Zone, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rrs, err := ParseZone(io.LimitReader(f, maxZoneFile+1), origin, path)
	if err != nil {
		return nil, err
	}
	z, err := NewZone(origin, rrs)
	if err != nil {
		return nil, &ZoneError{File: path, Err: err}
	}
	return z, nil
}

// ParseZone reads a master file's records; file names it in errors.
func ParseZone(r io.Reader, origin, file string) ([]dns.RR, error) {
	zp := dns.NewZoneParser(r, dns.Fqdn(origin), file)
	zp.SetDefaultTTL(3600)
	var rrs []dns.RR
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		if noData(rr) {
			// The parser takes these for RFC 2136's data-less records.
			return nil, &ZoneError{File: file, Err: fmt.Errorf("record without data: %s", rr)}
		}
		rrs = append(rrs, rr)
		if len(rrs) > maxZoneFile/16 {
			return nil, &ZoneError{File: file, Err: errors.New("too many records")}
		}
	}
	if err := zp.Err(); err != nil {
		// The parser's errors read "FILE: dns: what at line: L:C".
		return nil, errors.New(strings.Replace(err.Error(), "dns: ", "", 1))
	}
	return rrs, nil
}

// noData reports a record whose data fields are all unset.
func noData(rr dns.RR) bool {
	newRR, ok := dns.TypeToRR[rr.Header().Rrtype]
	if !ok {
		return false
	}
	empty := newRR()
	*empty.Header() = *rr.Header()
	return reflect.DeepEqual(empty, rr)
}

// NewZone builds a zone from its records, checking the rules a zone's
// data must keep.
func NewZone(origin string, rrs []dns.RR) (*Zone, error) {
	origin = dns.CanonicalName(origin)
	z := &Zone{Origin: origin, nodes: map[string]*node{}, exists: map[string]bool{origin: true}}
	for _, rr := range rrs {
		if err := z.add(rr); err != nil {
			return nil, err
		}
	}
	if z.soa == nil {
		return nil, fmt.Errorf("zone %s has no SOA record at its apex", origin)
	}
	if z.nodes[origin].get(dns.TypeNS) == nil {
		return nil, fmt.Errorf("zone %s has no NS records at its apex", origin)
	}
	for name, n := range z.nodes {
		if c := n.get(dns.TypeCNAME); c != nil {
			if len(c.rrs) > 1 {
				return nil, fmt.Errorf("%s has %d CNAME records; a name has at most one", name, len(c.rrs))
			}
			for t := range n.sets {
				if t != dns.TypeCNAME && t != dns.TypeRRSIG && t != dns.TypeNSEC {
					return nil, fmt.Errorf("%s has a CNAME and %s records; a CNAME stands alone (RFC 1034 3.6.2)", name, dns.TypeToString[t])
				}
			}
		}
	}
	z.index()
	return z, nil
}

// add places one record.
func (z *Zone) add(rr dns.RR) error {
	h := rr.Header()
	name := dns.CanonicalName(h.Name)
	if !dns.IsSubDomain(z.Origin, name) {
		return fmt.Errorf("record outside zone %s: %s", z.Origin, rr)
	}
	if h.Class != dns.ClassINET {
		return fmt.Errorf("record of class %s, not IN: %s", dns.ClassToString[h.Class], rr)
	}
	switch rr := rr.(type) {
	case *dns.SOA:
		if name != z.Origin {
			return fmt.Errorf("SOA record below the apex: %s", rr)
		}
		if z.soa != nil {
			return fmt.Errorf("second SOA record: %s", rr)
		}
		z.soa = rr
	case *dns.NSEC3:
		z.nsec3 = append(z.nsec3, rr)
	case *dns.NSEC3PARAM:
		if name == z.Origin {
			z.nsec3param = rr
		}
	case *dns.RRSIG:
		z.signed = true
	}
	n := z.nodes[name]
	if n == nil {
		n = &node{name: name, sets: map[uint16]*rrset{}}
		z.nodes[name] = n
	}
	t := h.Rrtype
	if sig, ok := rr.(*dns.RRSIG); ok {
		t = sig.TypeCovered
	}
	s := n.sets[t]
	if s == nil {
		s = &rrset{}
		n.sets[t] = s
		n.order = append(n.order, t)
	}
	if rr.Header().Rrtype == dns.TypeRRSIG {
		s.sigs = append(s.sigs, rr)
	} else {
		for _, old := range s.rrs {
			if dns.IsDuplicate(old, rr) {
				return nil // RFC 2181 5: a set holds each record once
			}
		}
		if len(s.rrs) > 0 && s.rrs[0].Header().Ttl != h.Ttl {
			// RFC 2181 5.2: one TTL per set; the first wins, as in NSD.
			h.Ttl = s.rrs[0].Header().Ttl
		}
		s.rrs = append(s.rrs, rr)
	}
	z.count++
	return nil
}

// index derives the zone's lookup tables from its nodes.
func (z *Zone) index() {
	for name := range z.nodes {
		for n := name; n != z.Origin; {
			z.exists[n] = true
			i, end := dns.NextLabel(n, 0)
			if end {
				break
			}
			n = n[i:]
		}
	}
	z.nsec = z.nsec[:0]
	for name, n := range z.nodes {
		if s := n.get(dns.TypeNSEC); s != nil && len(s.rrs) > 0 {
			z.nsec = append(z.nsec, name)
		}
	}
	sort.Slice(z.nsec, func(i, j int) bool { return canonicalLess(z.nsec[i], z.nsec[j]) })
	sort.Slice(z.nsec3, func(i, j int) bool {
		return strings.ToLower(z.nsec3[i].Hdr.Name) < strings.ToLower(z.nsec3[j].Hdr.Name)
	})
	if z.nsec3param == nil && len(z.nsec3) > 0 {
		n := z.nsec3[0]
		z.nsec3param = &dns.NSEC3PARAM{Hash: n.Hash, Iterations: n.Iterations, SaltLength: n.SaltLength, Salt: n.Salt}
	}
}

// Records returns every record of the zone, SOA first: what AXFR sends
// and what a snapshot file holds.
func (z *Zone) Records() []dns.RR {
	out := make([]dns.RR, 0, z.count)
	out = append(out, z.soa)
	names := make([]string, 0, len(z.nodes))
	for name := range z.nodes {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool { return canonicalLess(names[i], names[j]) })
	for _, name := range names {
		n := z.nodes[name]
		types := make([]int, 0, len(n.sets))
		for t := range n.sets {
			types = append(types, int(t))
		}
		sort.Ints(types)
		for _, t := range types {
			s := n.sets[uint16(t)]
			for _, rr := range s.rrs {
				if rr != dns.RR(z.soa) {
					out = append(out, rr)
				}
			}
			out = append(out, s.sigs...)
		}
	}
	return out
}

// WriteTo writes the zone as a master file.
func (z *Zone) WriteTo(w io.Writer) (int64, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "$ORIGIN %s\n", z.Origin)
	for _, rr := range z.Records() {
		b.WriteString(rr.String())
		b.WriteByte('\n')
	}
	return b.WriteTo(w)
}

// canonicalLess orders names as RFC 4034 6.1 does: by their labels from
// the root down, each compared as lower-case bytes.
func canonicalLess(a, b string) bool {
	la, lb := wireLabels(a), wireLabels(b)
	for i := 1; i <= len(la) && i <= len(lb); i++ {
		if c := bytes.Compare(la[len(la)-i], lb[len(lb)-i]); c != 0 {
			return c < 0
		}
	}
	return len(la) < len(lb)
}

// wireLabels returns a name's labels as lower-case bytes, escapes
// resolved.
func wireLabels(name string) [][]byte {
	buf := make([]byte, 256)
	n, err := dns.PackDomainName(dns.Fqdn(name), buf, 0, nil, false)
	if err != nil {
		return [][]byte{[]byte(strings.ToLower(name))}
	}
	var out [][]byte
	for i := 0; i < n && buf[i] != 0; i += int(buf[i]) + 1 {
		out = append(out, bytes.ToLower(buf[i+1:i+1+int(buf[i])]))
	}
	return out
}

// LoadDir reads every NAME.zone file in dir as zone NAME. A file that
// fails to load is reported and its zone not served; the others are.
func LoadDir(dir string) (zones []*Zone, errs []error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, []error{err}
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".zone") || strings.HasPrefix(name, ".") {
			continue
		}
		origin := strings.TrimSuffix(name, ".zone")
		if _, ok := dns.IsDomainName(origin); !ok || origin == "" {
			errs = append(errs, fmt.Errorf("%s: %q is not a domain name", filepath.Join(dir, name), origin))
			continue
		}
		z, err := ReadZone(filepath.Join(dir, name), origin)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		zones = append(zones, z)
	}
	return zones, errs
}
