package difftest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"atoll.dev/atoll/internal/testenv"
)

// TestZonesLoadInNSD checks every test zone with nsd-checkzone.
func TestZonesLoadInNSD(t *testing.T) {
	testenv.RequireCommands(t, "nsd-checkzone")
	zones, err := ZoneFiles(zonesDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, z := range zones {
		out, err := exec.Command("nsd-checkzone", z.Origin, z.Path).CombinedOutput()
		if err != nil {
			t.Errorf("nsd-checkzone %s: %v\n%s", z.Origin, err, out)
		}
	}
}

// signatureMargin is how long before the signatures of the signed test
// zones expire TestSignedZones starts failing: time to re-sign them.
const signatureMargin = 365 * 24 * time.Hour

// TestSignedZones checks the signed test zones: every RRSIG is valid now
// and for signatureMargin more, made by a DNSKEY of the zone, and
// verifies; every RRset that should be signed is.
func TestSignedZones(t *testing.T) {
	zones, err := ZoneFiles(zonesDir)
	if err != nil {
		t.Fatal(err)
	}
	signed := 0
	for _, z := range zones {
		rrs := readRecords(t, z)
		type key struct {
			name  string
			rtype uint16
		}
		sets := map[key][]dns.RR{}
		var sigs []*dns.RRSIG
		keys := map[uint16]*dns.DNSKEY{}
		cuts := map[string]bool{}
		for _, rr := range rrs {
			h := rr.Header()
			name := strings.ToLower(h.Name)
			switch r := rr.(type) {
			case *dns.RRSIG:
				sigs = append(sigs, r)
				continue
			case *dns.DNSKEY:
				keys[r.KeyTag()] = r
			case *dns.NS:
				if name != z.Origin {
					cuts[name] = true
				}
			}
			sets[key{name, h.Rrtype}] = append(sets[key{name, h.Rrtype}], rr)
		}
		if len(keys) == 0 {
			continue
		}
		signed++
		if len(sigs) == 0 {
			t.Errorf("%s: DNSKEYs but no RRSIG", z.Origin)
		}
		covered := map[key]bool{}
		now := time.Now()
		for _, sig := range sigs {
			k := key{strings.ToLower(sig.Hdr.Name), sig.TypeCovered}
			covered[k] = true
			what := sig.Hdr.Name + " " + dns.Type(sig.TypeCovered).String()
			if !sig.ValidityPeriod(now) || !sig.ValidityPeriod(now.Add(signatureMargin)) {
				t.Errorf("%s: the RRSIG is not valid from now to %v: re-sign the zones (testdata/sign.sh)", what, signatureMargin)
			}
			dnskey := keys[sig.KeyTag]
			if dnskey == nil {
				t.Errorf("%s: no DNSKEY with the RRSIG's tag %d", what, sig.KeyTag)
				continue
			}
			if err := sig.Verify(dnskey, sets[k]); err != nil {
				t.Errorf("%s: %v", what, err)
			}
		}
		for k := range sets {
			below := false
			for cut := range cuts {
				if dns.IsSubDomain(cut, k.name) && (k.name != cut || k.rtype == dns.TypeNS) {
					below = true
				}
			}
			if !below && !covered[k] {
				t.Errorf("%s %s in %s: no RRSIG", k.name, dns.Type(k.rtype), z.Origin)
			}
		}
	}
	if signed < 2 {
		t.Errorf("%d signed zones, want 2 (NSEC and NSEC3)", signed)
	}
}

// readRecords returns the records of zone z, or fails the test.
func readRecords(t *testing.T, z ZoneFile) []dns.RR {
	t.Helper()
	f, err := os.Open(z.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rrs []dns.RR
	zp := dns.NewZoneParser(f, z.Origin, z.Path)
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		rrs = append(rrs, rr)
	}
	if err := zp.Err(); err != nil {
		t.Fatal(err)
	}
	return rrs
}
