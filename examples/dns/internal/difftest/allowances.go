package difftest

import (
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// The allowances below are the differences found between NSD and BIND
// serving the test zones (see examples/dns/testdata/DIFFERENCES.md), each
// with the RFC text that allows it. A test comparing the server under
// test with NSD chooses those it accepts; TestNSDvsBIND uses them all.

// RecordCase allows a record whose owner, or a name in its data, is in
// another case than the reference's: outside the question, which must be
// echoed exactly. NSD compresses names against the query's, so its
// records take the query name's case; BIND's keep the zone file's.
var RecordCase = Allowance{
	Name: "record case",
	RFC:  "RFC 4343 §4.1",
	Why:  "case is preserved on output except where name compression points to a name in another case; names compare case-insensitively",
	Allows: func(q, want, got *dns.Msg, d Difference) bool {
		return isRecordSection(d.Section) && d.Field == "case"
	},
}

// TruncatedContents allows any difference in the records of two
// responses that both have TC set: what a truncated response holds is
// not meaningful, the client asks again over TCP. NSD sends an empty
// answer, BIND the records that fit.
var TruncatedContents = Allowance{
	Name: "contents of truncated responses",
	RFC:  "RFC 2181 §9",
	Why:  "a response with TC set is retried over TCP; its records need not be whole or even present",
	Allows: func(q, want, got *dns.Msg, d Difference) bool {
		return want.Truncated && got.Truncated && isRecordSection(d.Section)
	},
}

// TruncationThreshold allows one response truncated (TC set) and the
// other not, and what follows from it in the records: servers differ in
// what they consider required in the response (BIND sets TC when the
// authority NS RRset or DNSSEC records do not fit, NSD only when the
// answer does not, and NSD's answers are smaller: see MinimalResponses).
var TruncationThreshold = Allowance{
	Name: "truncation threshold",
	RFC:  "RFC 2181 §9, RFC 4035 §3.1.1",
	Why:  "TC is set when required data does not fit; which data is required beyond the answer (authority NS, RRSIGs) is the server's choice, and setting TC is always safe",
	Allows: func(q, want, got *dns.Msg, d Difference) bool {
		return want.Truncated != got.Truncated && (d.Section == "header" && d.Field == "TC" || isRecordSection(d.Section))
	},
}

// ANYQueries allows any difference in the records answering a query of
// type ANY: NSD answers with one RRset (RFC 8482), BIND with them all.
var ANYQueries = Allowance{
	Name: "ANY answered with a subset",
	RFC:  "RFC 8482 §4.1",
	Why:  "a server may answer ANY with one RRset, a subset, or all of them",
	Allows: func(q, want, got *dns.Msg, d Difference) bool {
		return qtype(q) == dns.TypeANY && (isRecordSection(d.Section) || d.Section == "header" && d.Field == "TC")
	},
}

// AdditionalData allows records missing from or added to the additional
// section (addresses of name servers, mail exchangers, SRV targets, and
// their RRSIGs), except in a referral, whose in-bailiwick glue is
// required.
var AdditionalData = Allowance{
	Name: "additional section data",
	RFC:  "RFC 1034 §4.3.2 step 6, RFC 2181 §9, RFC 9471",
	Why:  "additional data is what the server finds useful, and is left out without TC when it does not fit; only a referral's glue is required",
	Allows: func(q, want, got *dns.Msg, d Difference) bool {
		return d.Section == "additional" && (d.Field == "missing" || d.Field == "extra") &&
			!isReferral(want) && !isReferral(got)
	},
}

// MinimalResponses allows the zone's NS RRset (and its RRSIG) missing
// from or added to the authority section of an authoritative answer with
// data: NSD adds it to most answers, BIND (minimal-responses
// no-auth-recursive) to most but not ANY's, and a server may leave it out
// altogether.
var MinimalResponses = Allowance{
	Name: "authority NS in answers",
	RFC:  "RFC 1034 §4.3.2 step 3.a",
	Why:  "an authoritative answer needs only its answer section; the apex NS RRset in the authority section is optional",
	Allows: func(q, want, got *dns.Msg, d Difference) bool {
		if d.Section != "authority" || d.Field != "missing" && d.Field != "extra" {
			return false
		}
		if d.Type != "NS" && !(d.Type == "RRSIG" && strings.Contains(d.Want+d.Got, " RRSIG NS ")) {
			return false
		}
		return want.Authoritative && got.Authoritative && want.Rcode == dns.RcodeSuccess &&
			len(want.Answer) > 0 && len(got.Answer) > 0
	},
}

// DNSSECTypesAtCNAME allows any difference in the response to a query
// for RRSIG, NSEC or NSEC3 at a name that owns a CNAME and none of that
// type: NSD follows the CNAME for RRSIG and NSEC, not NSEC3; BIND the
// reverse. RFC 1034 has the CNAME followed for every other type; RFC
// 2181 and RFC 4035 let RRSIG and NSEC live beside a CNAME, so they are
// not "other" types; NSEC3 records are never at an ordinary name.
var DNSSECTypesAtCNAME = Allowance{
	Name: "DNSSEC types at a CNAME",
	RFC:  "RFC 1034 §3.6.2, RFC 2181 §10.1, RFC 4035 §2.5",
	Why:  "whether RRSIG, NSEC and NSEC3 queries follow a CNAME is not settled by the RFCs; resolvers do not send them",
	Allows: func(q, want, got *dns.Msg, d Difference) bool {
		switch qtype(q) {
		case dns.TypeRRSIG, dns.TypeNSEC, dns.TypeNSEC3:
			return hasCNAMEAt(want, qname(q)) != hasCNAMEAt(got, qname(q))
		}
		return false
	},
}

// ParentSideAtCut allows any difference in the response to a query for
// NSEC or RRSIG at a delegation point, where one server answers from the
// parent's records (authoritatively: the NSEC and its RRSIG are the
// parent's) and the other refers to the child.
var ParentSideAtCut = Allowance{
	Name: "NSEC or RRSIG at a delegation",
	RFC:  "RFC 4035 §2.3, RFC 1034 §4.3.2 step 3.b",
	Why:  "the NSEC at a delegation point is the parent's authoritative data (BIND answers it), yet the name is at a zone cut, where RFC 1034 refers (NSD does)",
	Allows: func(q, want, got *dns.Msg, d Difference) bool {
		t := qtype(q)
		return (t == dns.TypeNSEC || t == dns.TypeRRSIG) && isReferral(want) != isReferral(got)
	},
}

// CrossZoneCNAME returns the allowance for a CNAME chain that leaves the
// query's zone for another of origins (the zones both servers serve):
// NSD goes on in the other zone, BIND stops at the CNAME and lets the
// resolver ask again.
func CrossZoneCNAME(origins []string) Allowance {
	return Allowance{
		Name: "CNAME into another zone served",
		RFC:  "RFC 1034 §4.3.2 steps 2 and 3.a, RFC 6604 §2",
		Why:  "after a CNAME the server may restart the lookup in any zone it has, or stop at the zone's edge; the resolver follows the chain either way",
		Allows: func(q, want, got *dns.Msg, d Difference) bool {
			if !isRecordSection(d.Section) && !(d.Section == "header" && (d.Field == "TC" || d.Field == "rcode")) {
				return false
			}
			zone := zoneOf(origins, qname(q))
			for _, m := range []*dns.Msg{want, got} {
				for _, rr := range m.Answer {
					if c, ok := rr.(*dns.CNAME); ok && zoneOf(origins, c.Target) != zone {
						return true
					}
				}
			}
			return false
		},
	}
}

// NegativeSOATTL allows a lower TTL on the SOA record of a negative
// response: BIND sends 0 when the query's type is SOA, so that the SOA is
// not cached from it.
var NegativeSOATTL = Allowance{
	Name: "negative-answer SOA TTL",
	RFC:  "RFC 2308 §3 and §5, RFC 2181 §8",
	Why:  "the SOA's TTL caps how long the negative answer is cached; a lower one only shortens it",
	Allows: func(q, want, got *dns.Msg, d Difference) bool {
		return d.Section == "authority" && d.Field == "ttl" && d.Type == "SOA" && len(got.Answer) == 0 ||
			d.Section == "authority" && d.Field == "ttl" && d.Type == "SOA" && qtype(q) == dns.TypeSOA
	},
}

// ExtendedErrors allows an Extended DNS Error option present in one
// response and not the other, or another code: NSD sends EDE 20 (Not
// Authoritative) with REFUSED for names outside its zones, and EDE 21
// (Not Supported) for classes other than IN; BIND EDE 18 (Prohibited).
var ExtendedErrors = Allowance{
	Name: "extended DNS errors",
	RFC:  "RFC 8914",
	Why:  "EDE options are optional information for the client",
	Allows: func(q, want, got *dns.Msg, d Difference) bool {
		return d.Section == "edns" && d.Field == "option" && d.Type == "EDE"
	},
}

// Cookies allows a COOKIE option in one response and not the other:
// BIND answers DNS cookies, NSD (answer-cookie: no, its default) ignores
// them.
var Cookies = Allowance{
	Name: "DNS cookies",
	RFC:  "RFC 7873 §5.2",
	Why:  "a server that does not implement cookies ignores the option; one that does answers with a server cookie",
	Allows: func(q, want, got *dns.Msg, d Difference) bool {
		return d.Section == "edns" && d.Field == "option" && d.Type == "COOKIE"
	},
}

// TCPKeepalive allows an edns-tcp-keepalive option in one response and
// not the other: BIND answers it over TCP, NSD ignores it.
var TCPKeepalive = Allowance{
	Name: "edns-tcp-keepalive",
	RFC:  "RFC 7828 §3.3.2",
	Why:  "a server may send its idle timeout over TCP; it need not",
	Allows: func(q, want, got *dns.Msg, d Difference) bool {
		return d.Section == "edns" && d.Field == "option" && d.Type == "OPTION11"
	},
}

// CDBit allows the CD bit copied from the query (BIND) or cleared (NSD).
var CDBit = Allowance{
	Name: "CD bit in authoritative responses",
	RFC:  "RFC 4035 §3 and §3.1.6",
	Why:  "§3 says a security-aware server copies CD into the response, §3.1.6 that an authoritative one should clear it",
	Allows: func(q, want, got *dns.Msg, d Difference) bool {
		return d.Section == "header" && d.Field == "CD" && q.CheckingDisabled
	},
}

// OddQueries allows differences in the header, question, EDNS and
// records of the response to a query that is not a plain QUERY for one
// question of class IN with nothing else: another opcode (NOTIFY, UPDATE,
// unassigned ones), an RCODE set (NSD: FORMERR), no question or two, a class other than IN, records
// in the answer, authority or additional section, a meta or transfer
// type (AXFR, IXFR, MAILA, MAILB, OPT, TSIG, TKEY, type 0). The servers
// choose among FORMERR, NOTIMP and REFUSED, and whether the error
// response echoes the question and the OPT record (NSD sends a bare
// header for most; RFC 6891 §7 wants the OPT record back, but the query
// was not processed).
var OddQueries = Allowance{
	Name: "responses to odd queries",
	RFC:  "RFC 1035 §4.1.1, RFC 2136 §3.1.1, RFC 5936 §4.2, RFC 6891 §7, RFC 7873 §5.4, RFC 9619",
	Why:  "the RFCs give several error codes for queries a server does not support, and do not pin which, nor what the error response holds",
	Allows: func(q, want, got *dns.Msg, d Difference) bool {
		return isOddQuery(q)
	},
}

// WildcardOwnerProof allows NSEC3 records (and their RRSIGs) missing from
// or added to the authority section of a no-data response to a query for
// a wildcard's own name ("*.wild.example."): NSD proves it as a wildcard
// no-data response, adding the closest encloser's NSEC3; BIND as a plain
// no-data response, with the NSEC3 that matches the name alone.
var WildcardOwnerProof = Allowance{
	Name: "proof for a wildcard's own name",
	RFC:  "RFC 5155 §7.2.3 and §7.2.5",
	Why:  "a query for the wildcard's name matches it literally; the NSEC3 that matches it proves the no-data, the wildcard proof's extra NSEC3 is redundant",
	Allows: func(q, want, got *dns.Msg, d Difference) bool {
		return strings.HasPrefix(qname(q), "*.") && d.Section == "authority" &&
			(d.Field == "missing" || d.Field == "extra") &&
			(d.Type == "NSEC3" || d.Type == "RRSIG" && strings.Contains(d.Want+d.Got, " RRSIG NSEC3 "))
	},
}

// BADVERSDO allows the DO bit of a BADVERS response copied (BIND) or
// not (NSD).
var BADVERSDO = Allowance{
	Name: "DO bit of BADVERS",
	RFC:  "RFC 3225 §3, RFC 6891 §6.1.3",
	Why:  "DO is copied into responses, but a BADVERS response answers an EDNS version the server does not speak",
	Allows: func(q, want, got *dns.Msg, d Difference) bool {
		return d.Section == "edns" && d.Field == "DO" && want.Rcode == dns.RcodeBadVers
	},
}

// isOddQuery reports whether q is not a plain query: see OddQueries.
func isOddQuery(q *dns.Msg) bool {
	if q.Opcode != dns.OpcodeQuery || q.Rcode != dns.RcodeSuccess || len(q.Question) != 1 || q.Question[0].Qclass != dns.ClassINET ||
		len(q.Answer) > 0 || len(q.Ns) > 0 || len(withoutOPT(q.Extra)) > 0 || len(q.Extra) > 1 {
		return true
	}
	switch q.Question[0].Qtype {
	case 0, dns.TypeOPT, dns.TypeAXFR, dns.TypeIXFR, dns.TypeMAILA, dns.TypeMAILB, dns.TypeTSIG, dns.TypeTKEY:
		return true
	}
	return false
}

// isRecordSection reports whether section is one of records.
func isRecordSection(section string) bool {
	return section == "answer" || section == "authority" || section == "additional"
}

// qtype returns the type of q's first question, or 0.
func qtype(q *dns.Msg) uint16 {
	if len(q.Question) == 0 {
		return 0
	}
	return q.Question[0].Qtype
}

// qname returns the name of q's first question, or "".
func qname(q *dns.Msg) string {
	if len(q.Question) == 0 {
		return ""
	}
	return q.Question[0].Name
}

// hasCNAMEAt reports whether m's answer has a CNAME owned by name.
func hasCNAMEAt(m *dns.Msg, name string) bool {
	return m != nil && slices.ContainsFunc(m.Answer, func(rr dns.RR) bool {
		return rr.Header().Rrtype == dns.TypeCNAME && strings.EqualFold(rr.Header().Name, name)
	})
}

// isReferral reports whether m is a referral: not authoritative, no
// answer, NS records in the authority section.
func isReferral(m *dns.Msg) bool {
	return m != nil && !m.Authoritative && len(m.Answer) == 0 && slices.ContainsFunc(m.Ns, func(rr dns.RR) bool {
		return rr.Header().Rrtype == dns.TypeNS
	})
}

// zoneOf returns the longest of origins that name is in, or "".
func zoneOf(origins []string, name string) string {
	best := ""
	for _, o := range origins {
		if dns.IsSubDomain(o, strings.ToLower(name)) && len(o) > len(best) {
			best = o
		}
	}
	return best
}

// Origins returns the origins of zones.
func Origins(zones []ZoneFile) []string {
	var out []string
	for _, z := range zones {
		out = append(out, z.Origin)
	}
	return out
}
