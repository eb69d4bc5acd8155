package difftest

import (
	"os"
	"regexp"
	"testing"
)

// TestNSDvsBIND runs the corpus against NSD and BIND and logs how they
// differ, by category: to learn what differs between two good servers
// (see ../../testdata/DIFFERENCES.md). It asserts nothing, and runs only
// with DNSDIFF_BIND=1. DNSDIFF_SHOW=REGEXP logs both responses to the
// queries whose names match.
func TestNSDvsBIND(t *testing.T) {
	if os.Getenv("DNSDIFF_BIND") == "" {
		t.Skip("set DNSDIFF_BIND=1 to compare NSD with BIND")
	}
	qs, err := Corpus(zonesDir)
	if err != nil {
		t.Fatal(err)
	}
	show, err := regexp.Compile(os.Getenv("DNSDIFF_SHOW"))
	if err != nil {
		t.Fatalf("DNSDIFF_SHOW: %v", err)
	}
	zones, err := ZoneFiles(zonesDir)
	if err != nil {
		t.Fatal(err)
	}
	allow := []Allowance{
		OddQueries, RecordCase, TruncatedContents, ANYQueries, DNSSECTypesAtCNAME, ParentSideAtCut,
		CrossZoneCNAME(Origins(zones)), TruncationThreshold, AdditionalData, MinimalResponses,
		NegativeSOATTL, WildcardOwnerProof, ExtendedErrors, Cookies, TCPKeepalive, CDBit, BADVERSDO,
	}
	nsd, bind := StartNSD(t, zonesDir), StartBIND(t, zonesDir)
	for _, tcp := range []bool{false, true} {
		var rep Report
		for _, r := range Run(qs, nsd, bind, tcp, allow) {
			rep.Add(r)
			if os.Getenv("DNSDIFF_SHOW") != "" && show.MatchString(r.Query.Name) {
				t.Logf("%s (tcp %v):\nquery:\n%v\nNSD:\n%v\nBIND:\n%v", r.Query.Name, tcp, r.Query.Msg, r.Want, r.Got)
			}
		}
		t.Logf("NSD (want) vs BIND (got), tcp %v:\n%s", tcp, &rep)
	}
}
