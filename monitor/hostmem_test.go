package monitor

import (
	"strings"
	"testing"
)

func TestParseSmapsRollup(t *testing.T) {
	const rollup = `00400000-7ffd5d4a5000 ---p 00000000 00:00 0                              [rollup]
Rss:               33528 kB
Pss:               32328 kB
Pss_Anon:          12252 kB
Private_Dirty:     19836 kB
Anonymous:         12252 kB
AnonHugePages:         0 kB
`
	m, err := parseSmapsRollup(strings.NewReader(rollup))
	if err != nil {
		t.Fatal(err)
	}
	if want := (HostMemory{RSS: 33528 << 10, PSS: 32328 << 10, Anonymous: 12252 << 10}); m != want {
		t.Errorf("parsed %+v, want %+v", m, want)
	}
	for _, bad := range []string{
		"",                       // nothing
		"Rss: 1 kB\nPss: 1 kB\n", // Anonymous missing
		"Rss: x kB\nPss: 1 kB\nAnonymous: 1 kB\n", // not a number
	} {
		if _, err := parseSmapsRollup(strings.NewReader(bad)); err == nil {
			t.Errorf("parsed %q without an error", bad)
		}
	}
}
