// Package difftest is the differential-testing harness of examples/dns: it
// serves the same zones from a reference server (Debian's NSD, or BIND for
// comparison) and from the server under test, sends both the same corpus of
// queries, and compares the answers section by section.
//
// It is test support, imported only by tests. The pieces:
//
//   - [ZoneFiles] lists a directory's zones (every NAME.zone file is zone
//     NAME);
//   - [StartNSD] and [StartBIND] run the reference servers on 127.0.0.1 for
//     the length of a test;
//   - [Corpus] builds the queries from the zones' contents;
//   - [Exchange] sends one query and returns the response as it came, even
//     truncated;
//   - [Differences] and [Compare] compare two responses, [Judge] sorts the
//     differences into those an [Allowance] (a documented, RFC-justified
//     difference) covers and the rest;
//   - [Run] does all of it for a corpus and [Report] sums the results up by
//     category.
package difftest

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/miekg/dns"
)

// ZoneFile is one zone of a zones directory: the file NAME.zone holds the
// zone NAME.
type ZoneFile struct {
	// Origin is the zone's name, fully qualified and lower-case
	// ("example.test.").
	Origin string
	// Path is the zone file's absolute path.
	Path string
}

// ZoneFiles returns the zones of dir, one per file NAME.zone, sorted by
// name. It is an error for dir to hold none.
func ZoneFiles(dir string) ([]ZoneFile, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(abs)
	if err != nil {
		return nil, err
	}
	var zones []ZoneFile
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".zone")
		if !ok || e.IsDir() || name == "" {
			continue
		}
		origin := dns.CanonicalName(name)
		if _, ok := dns.IsDomainName(origin); !ok {
			return nil, fmt.Errorf("%s: %q is not a domain name", e.Name(), name)
		}
		zones = append(zones, ZoneFile{Origin: origin, Path: filepath.Join(abs, e.Name())})
	}
	if len(zones) == 0 {
		return nil, fmt.Errorf("%s: no NAME.zone files", dir)
	}
	sort.Slice(zones, func(i, j int) bool { return zones[i].Origin < zones[j].Origin })
	return zones, nil
}
