package difftest

import (
	"fmt"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// Difference is one way a response differs from the reference server's.
type Difference struct {
	// Section is where the difference is: "response" (one server did not
	// answer), "header", "question", "answer", "authority", "additional"
	// (OPT excluded) or "edns".
	Section string
	// Field is what differs: in the header "opcode", "rcode" (extended
	// RCODEs included) or a flag ("QR", "AA", "TC", "RD", "RA", "AD",
	// "CD", "Z"); in the question "count", "name", "case" (the same name
	// in another case), "type", "class"; in a record section "missing"
	// (a record only the reference sent), "extra" (one only the other
	// sent), "ttl", "case" (the same record, its owner or the names in
	// its data in another case); in EDNS "presence", "version", "DO",
	// "flags" (the other flag bits) or "option"; for the response
	// "presence", and in [Run] "error" and "size".
	Field string
	// Type is the type of the record concerned ("A", "RRSIG"), or "".
	Type string
	// Want and Got are the reference's and the other's values, "" where
	// there is none (a missing record has no Got).
	Want, Got string
}

// String returns the difference for a failure message:
// "answer missing www.example.test. 3600 IN A 192.0.2.80",
// "header AA: want 1, got 0".
func (d Difference) String() string {
	switch d.Field {
	case "missing":
		return d.Section + " missing " + d.Want
	case "extra":
		return d.Section + " extra " + d.Got
	}
	what := d.Section + " " + d.Field
	if d.Type != "" {
		what += " " + d.Type
	}
	return fmt.Sprintf("%s: want %s, got %s", what, d.Want, d.Got)
}

// Category returns the difference without its values, to group
// differences of one kind: "additional missing AAAA", "header AA".
func (d Difference) Category() string {
	c := d.Section + " " + d.Field
	if d.Type != "" {
		c += " " + d.Type
	}
	if d.Section == "header" && d.Field == "rcode" || d.Section == "edns" && d.Field == "presence" ||
		d.Section == "response" && d.Field == "presence" {
		c += " " + d.Want + "→" + d.Got
	}
	return c
}

// Compare returns the differences between want, the reference server's
// response, and got, the other's, as [Difference.String] puts them; none
// if they are equivalent. See [Differences].
func Compare(want, got *dns.Msg) []string {
	var s []string
	for _, d := range Differences(want, got) {
		s = append(s, d.String())
	}
	return s
}

// Differences compares want, the reference server's response, with got,
// the other's, section by section; nil stands for no response. Compared:
//   - the header: opcode, RCODE (with the extended bits EDNS adds), the
//     flags QR, AA, TC, RD, RA, AD, CD and Z; not the ID, which [Exchange]
//     has checked against the query's;
//   - the question, exactly: the name's case too (a response echoes the
//     query's name as sent, RFC 1035 §7.3 and draft-vixie-dnsext-dns0x20);
//   - answer, authority and additional as multisets of records, whatever
//     their order (RFC 2181 §5: an RRset's order is not significant, nor
//     is that of the RRsets in a section): a record is identified by
//     [RRKey], names compared case-insensitively (RFC 4343); for each
//     record in both the TTL and the case of its names are compared;
//   - EDNS: present or not, its version, the DO flag, the other flag bits
//     and the options, by code and value; not the UDP payload size,
//     which is each server's configuration (NSD says 1232, BIND 1232 or
//     4096 depending on version, RFC 6891 §6.2.5).
func Differences(want, got *dns.Msg) []Difference {
	switch {
	case want == nil && got == nil:
		return nil
	case want == nil:
		return []Difference{{Section: "response", Field: "presence", Want: "none", Got: "a response"}}
	case got == nil:
		return []Difference{{Section: "response", Field: "presence", Want: "a response", Got: "none"}}
	}
	var ds []Difference
	add := func(section, field, w, g string) {
		if w != g {
			ds = append(ds, Difference{Section: section, Field: field, Want: w, Got: g})
		}
	}
	add("header", "opcode", opcodeString(want.Opcode), opcodeString(got.Opcode))
	add("header", "rcode", rcodeString(want.Rcode), rcodeString(got.Rcode))
	for _, f := range flagNames {
		add("header", f, bit(flag(&want.MsgHdr, f)), bit(flag(&got.MsgHdr, f)))
	}

	add("question", "count", fmt.Sprint(len(want.Question)), fmt.Sprint(len(got.Question)))
	for i := range min(len(want.Question), len(got.Question)) {
		w, g := want.Question[i], got.Question[i]
		if strings.EqualFold(w.Name, g.Name) {
			add("question", "case", w.Name, g.Name)
		} else {
			add("question", "name", w.Name, g.Name)
		}
		add("question", "type", dns.Type(w.Qtype).String(), dns.Type(g.Qtype).String())
		add("question", "class", dns.Class(w.Qclass).String(), dns.Class(g.Qclass).String())
	}

	ds = append(ds, compareRRs("answer", want.Answer, got.Answer)...)
	ds = append(ds, compareRRs("authority", want.Ns, got.Ns)...)
	ds = append(ds, compareRRs("additional", withoutOPT(want.Extra), withoutOPT(got.Extra))...)

	wo, gotOPT := want.IsEdns0(), got.IsEdns0()
	switch {
	case wo == nil && gotOPT == nil:
	case wo == nil:
		add("edns", "presence", "none", "OPT")
	case gotOPT == nil:
		add("edns", "presence", "OPT", "none")
	default:
		add("edns", "version", fmt.Sprint(wo.Version()), fmt.Sprint(gotOPT.Version()))
		add("edns", "DO", bit(wo.Do()), bit(gotOPT.Do()))
		add("edns", "flags", fmt.Sprintf("%#04x", wo.Z()), fmt.Sprintf("%#04x", gotOPT.Z()))
		wopts, gopts := optionStrings(wo), optionStrings(gotOPT)
		for _, o := range wopts {
			if !slices.Contains(gopts, o) {
				ds = append(ds, Difference{Section: "edns", Field: "option", Type: optionCode(o), Want: o, Got: "none"})
			}
		}
		for _, o := range gopts {
			if !slices.Contains(wopts, o) {
				ds = append(ds, Difference{Section: "edns", Field: "option", Type: optionCode(o), Want: "none", Got: o})
			}
		}
	}
	return ds
}

// flagNames are the header flags [Differences] compares.
var flagNames = []string{"QR", "AA", "TC", "RD", "RA", "AD", "CD", "Z"}

// flag returns the header flag named name.
func flag(h *dns.MsgHdr, name string) bool {
	switch name {
	case "QR":
		return h.Response
	case "AA":
		return h.Authoritative
	case "TC":
		return h.Truncated
	case "RD":
		return h.RecursionDesired
	case "RA":
		return h.RecursionAvailable
	case "AD":
		return h.AuthenticatedData
	case "CD":
		return h.CheckingDisabled
	case "Z":
		return h.Zero
	}
	panic("difftest: no flag " + name)
}

// bit returns "1" for true, "0" for false.
func bit(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// rcodeString returns the RCODE's name, or its number if it has none.
// 16 is BADVERS in a message's header and OPT (RFC 6891 §9), BADSIG only
// in a TSIG record's error field.
func rcodeString(rc int) string {
	if rc == dns.RcodeBadVers {
		return "BADVERS"
	}
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return fmt.Sprintf("RCODE%d", rc)
}

// opcodeString returns the opcode's name, or its number if it has none.
func opcodeString(op int) string {
	if s, ok := dns.OpcodeToString[op]; ok {
		return s
	}
	return fmt.Sprintf("OPCODE%d", op)
}

// withoutOPT returns rrs without the OPT pseudo-record.
func withoutOPT(rrs []dns.RR) []dns.RR {
	var out []dns.RR
	for _, rr := range rrs {
		if rr.Header().Rrtype != dns.TypeOPT {
			out = append(out, rr)
		}
	}
	return out
}

// optionStrings returns the EDNS options of opt as "CODE:VALUE" strings.
func optionStrings(opt *dns.OPT) []string {
	var s []string
	for _, o := range opt.Option {
		s = append(s, fmt.Sprintf("%d:%s", o.Option(), o.String()))
	}
	return s
}

// optionCode returns the name of the option an optionStrings string is.
func optionCode(o string) string {
	code, _, _ := strings.Cut(o, ":")
	switch code {
	case "3":
		return "NSID"
	case "8":
		return "ECS"
	case "10":
		return "COOKIE"
	case "12":
		return "PADDING"
	case "15":
		return "EDE"
	}
	return "OPTION" + code
}

// RRKey returns what identifies rr when sections are compared as sets:
// its owner name, class, type and data as text, without the TTL, with the
// owner and the domain names in the data of the common types (those RFC
// 4034 §6.2 lists, SVCB and HTTPS) in lower case. Names compare
// case-insensitively (RFC 4343); the case of other data, a TXT record's
// for one, matters.
func RRKey(rr dns.RR) string {
	return strings.ToLower(rr.Header().Name) + " " + rdataText(lowerNames(rr))
}

// rdataText returns rr's class, type and data as text, without the owner
// and TTL.
func rdataText(rr dns.RR) string {
	h := rr.Header()
	data := strings.TrimPrefix(rr.String(), h.String())
	return dns.Class(h.Class).String() + " " + dns.Type(h.Rrtype).String() + " " + data
}

// lowerNames returns rr, or a copy of it with the domain names in its data
// in lower case.
func lowerNames(rr dns.RR) dns.RR {
	lower := strings.ToLower
	switch r := dns.Copy(rr).(type) {
	case *dns.NS:
		r.Ns = lower(r.Ns)
		return r
	case *dns.CNAME:
		r.Target = lower(r.Target)
		return r
	case *dns.DNAME:
		r.Target = lower(r.Target)
		return r
	case *dns.PTR:
		r.Ptr = lower(r.Ptr)
		return r
	case *dns.MX:
		r.Mx = lower(r.Mx)
		return r
	case *dns.SOA:
		r.Ns, r.Mbox = lower(r.Ns), lower(r.Mbox)
		return r
	case *dns.SRV:
		r.Target = lower(r.Target)
		return r
	case *dns.NAPTR:
		r.Replacement = lower(r.Replacement)
		return r
	case *dns.KX:
		r.Exchanger = lower(r.Exchanger)
		return r
	case *dns.AFSDB:
		r.Hostname = lower(r.Hostname)
		return r
	case *dns.RT:
		r.Host = lower(r.Host)
		return r
	case *dns.MINFO:
		r.Rmail, r.Email = lower(r.Rmail), lower(r.Email)
		return r
	case *dns.RP:
		r.Mbox, r.Txt = lower(r.Mbox), lower(r.Txt)
		return r
	case *dns.RRSIG:
		r.SignerName = lower(r.SignerName)
		return r
	case *dns.NSEC:
		r.NextDomain = lower(r.NextDomain)
		return r
	case *dns.SVCB:
		r.Target = lower(r.Target)
		return r
	case *dns.HTTPS:
		r.Target = lower(r.Target)
		return r
	}
	return rr
}

// rrText returns rr as a one-line zone-file record.
func rrText(rr dns.RR) string {
	return strings.Join(strings.Fields(rr.String()), " ")
}

// compareRRs compares the records of one section, want's and got's, as
// multisets: see [Differences].
func compareRRs(section string, want, got []dns.RR) []Difference {
	wantBy, gotBy := map[string][]dns.RR{}, map[string][]dns.RR{}
	var keys []string
	for _, rr := range want {
		k := RRKey(rr)
		if wantBy[k] == nil {
			keys = append(keys, k)
		}
		wantBy[k] = append(wantBy[k], rr)
	}
	for _, rr := range got {
		k := RRKey(rr)
		if wantBy[k] == nil && gotBy[k] == nil {
			keys = append(keys, k)
		}
		gotBy[k] = append(gotBy[k], rr)
	}
	slices.Sort(keys)
	var ds []Difference
	for _, k := range keys {
		w, g := wantBy[k], gotBy[k]
		for i := range min(len(w), len(g)) {
			wh, gh := w[i].Header(), g[i].Header()
			typ := dns.Type(wh.Rrtype).String()
			if wh.Ttl != gh.Ttl {
				ds = append(ds, Difference{Section: section, Field: "ttl", Type: typ,
					Want: fmt.Sprintf("%d (%s)", wh.Ttl, rrText(w[i])), Got: fmt.Sprint(gh.Ttl)})
			}
			if wh.Name != gh.Name || rdataText(w[i]) != rdataText(g[i]) {
				ds = append(ds, Difference{Section: section, Field: "case", Type: typ,
					Want: wh.Name + " " + rdataText(w[i]), Got: gh.Name + " " + rdataText(g[i])})
			}
		}
		for _, rr := range w[min(len(w), len(g)):] {
			ds = append(ds, Difference{Section: section, Field: "missing", Type: dns.Type(rr.Header().Rrtype).String(), Want: rrText(rr)})
		}
		for _, rr := range g[min(len(w), len(g)):] {
			ds = append(ds, Difference{Section: section, Field: "extra", Type: dns.Type(rr.Header().Rrtype).String(), Got: rrText(rr)})
		}
	}
	return ds
}

// Allowance is a known difference between the reference server's
// responses and another's that the RFCs allow: documented, with the RFC
// that allows it, and recognized by a predicate.
type Allowance struct {
	// Name is a short name for the difference, for reports.
	Name string
	// RFC names the text that allows it: "RFC 2181 §9".
	RFC string
	// Why says why the RFC allows it, in a sentence.
	Why string
	// Allows reports whether the allowance covers d, a difference
	// between want (the reference's response) and got (the other's) to
	// the query q.
	Allows func(q, want, got *dns.Msg, d Difference) bool
}

// Finding is a difference, judged: allowed or not.
type Finding struct {
	Difference
	// Allowance is the first allowance that covers the difference, or
	// nil if none does: a bug to fix, or an allowance to document.
	Allowance *Allowance
}

// Judge compares want and got, the responses to q, with [Differences]
// and returns each difference with the first of allowances that covers
// it, if any.
func Judge(q, want, got *dns.Msg, allowances []Allowance) []Finding {
	var fs []Finding
	for _, d := range Differences(want, got) {
		fs = append(fs, judge(q, want, got, d, allowances))
	}
	return fs
}
