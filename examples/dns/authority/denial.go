package authority

import (
	"sort"
	"strings"

	"github.com/miekg/dns"
)

// The proofs of denial a signed zone adds to a negative or synthesized
// answer when the query has the DO bit: NSEC records (RFC 4035 3.1.3)
// or NSEC3 records (RFC 5155 7.2), each with its signatures. The zone is
// pre-signed: the records are the signer's, never made here.

// proveNoData proves name exists without the type asked (also a zone
// cut without DS records).
func (q *query) proveNoData(name string) {
	if q.z.nsec3param != nil {
		if q.addNSEC3Match(name) {
			return
		}
		// No NSEC3 at name (an opt-out delegation): the closest
		// provable encloser and the next closer name's cover.
		ce := q.z.closestEncloser(parentOf(name))
		q.addNSEC3Match(ce)
		q.addNSEC3Cover(nextCloser(name, ce))
		return
	}
	q.addNSECFor(name)
}

// proveNXDomain proves name does not exist and that no wildcard at its
// closest encloser ce could have answered.
func (q *query) proveNXDomain(name, ce string) {
	if q.z.nsec3param != nil {
		q.addNSEC3Match(ce)
		q.addNSEC3Cover(nextCloser(name, ce))
		q.addNSEC3Cover("*." + ce)
		return
	}
	q.addNSECFor(name)
	q.addNSECFor("*." + ce)
}

// proveWildcard proves that name, answered from the wildcard at its
// closest encloser ce, does not exist itself.
func (q *query) proveWildcard(name, ce string) {
	if !q.do {
		return
	}
	if q.z.nsec3param != nil {
		q.addNSEC3Cover(nextCloser(name, ce))
		return
	}
	q.addNSECFor(name)
}

// proveWildcardNoData proves name does not exist and the wildcard wild
// that matches it has no data of the type asked.
func (q *query) proveWildcardNoData(name, ce, wild string) {
	if q.z.nsec3param != nil {
		q.addNSEC3Match(ce)
		q.addNSEC3Cover(nextCloser(name, ce))
		q.addNSEC3Match(wild)
		return
	}
	q.addNSECFor(name)
	q.addNSECFor(wild)
}

// addNSECFor adds the NSEC record at name, or the one whose span covers
// name, with its signatures, to the authority section once.
func (q *query) addNSECFor(name string) {
	z := q.z
	if len(z.nsec) == 0 {
		return
	}
	i := sort.Search(len(z.nsec), func(i int) bool { return canonicalLess(name, z.nsec[i]) })
	// z.nsec[i-1] <= name < z.nsec[i]; before the first wraps to the last.
	owner := z.nsec[(i-1+len(z.nsec))%len(z.nsec)]
	q.addAuthoritySet(z.nodes[owner].get(dns.TypeNSEC))
}

// addNSEC3Match adds the NSEC3 record whose hashed owner is name's
// hash; it reports false when there is none.
func (q *query) addNSEC3Match(name string) bool {
	i, match := q.z.nsec3Find(name)
	if !match {
		return false
	}
	q.addNSEC3(q.z.nsec3[i])
	return true
}

// addNSEC3Cover adds the NSEC3 record whose span covers name's hash.
func (q *query) addNSEC3Cover(name string) {
	z := q.z
	if len(z.nsec3) == 0 {
		return
	}
	i, match := z.nsec3Find(name)
	if match {
		// The hash exists: nothing covers it. Add the match, which is
		// what a validator then sees.
		q.addNSEC3(z.nsec3[i])
		return
	}
	q.addNSEC3(z.nsec3[(i-1+len(z.nsec3))%len(z.nsec3)])
}

// nsec3Find returns the index of the first NSEC3 record whose hashed
// owner is not below name's hash, and whether it is name's own.
func (z *Zone) nsec3Find(name string) (int, bool) {
	p := z.nsec3param
	owner := strings.ToLower(dns.HashName(name, p.Hash, p.Iterations, p.Salt)) + "." + z.Origin
	i := sort.Search(len(z.nsec3), func(i int) bool { return strings.ToLower(z.nsec3[i].Hdr.Name) >= owner })
	return i, i < len(z.nsec3) && strings.ToLower(z.nsec3[i].Hdr.Name) == owner
}

// addNSEC3 adds one NSEC3 record and its signatures once.
func (q *query) addNSEC3(rr *dns.NSEC3) {
	q.addAuthoritySet(q.z.nodes[dns.CanonicalName(rr.Hdr.Name)].get(dns.TypeNSEC3))
}

// addAuthoritySet adds s and its signatures to the authority section,
// unless it is there already.
func (q *query) addAuthoritySet(s *rrset) {
	if s == nil || len(s.rrs) == 0 || q.inSection(q.m.Ns, s.rrs[0]) {
		return
	}
	q.m.Ns = append(q.m.Ns, s.rrs...)
	q.m.Ns = append(q.m.Ns, s.sigs...)
}

// parentOf is name without its first label ("." for the root).
func parentOf(name string) string {
	i, end := dns.NextLabel(name, 0)
	if end {
		return "."
	}
	return name[i:]
}
