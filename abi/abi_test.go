package abi

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestDevicesRoundTrip(t *testing.T) {
	ds := []DeviceFD{{KindBlock, "data", 3}, {KindNet, "service", 4}}
	s := FormatDevices(ds)
	if s != "block:data=3 net:service=4" {
		t.Fatalf("FormatDevices = %q", s)
	}
	back, err := ParseDevices(s)
	if err != nil || !reflect.DeepEqual(back, ds) {
		t.Fatalf("ParseDevices = %v, %v", back, err)
	}
	for _, bad := range []string{"block:data", "data=3", "block:data=x", ":x=1", "block:=1", "net:a=-1"} {
		if _, err := ParseDevices(bad); err == nil {
			t.Errorf("ParseDevices(%q) accepted", bad)
		}
	}
}

func TestCompatible(t *testing.T) {
	for v, want := range map[string]bool{"0.1": true, Version: true, "0.99": false, "1.0": false, "": false, "x": false} {
		if got := Compatible(v); got != want {
			t.Errorf("Compatible(%q) = %v, want %v", v, got, want)
		}
	}
}

// TestVersionMatchesDoc ties Version to docs/abi.md: the version it states
// and an entry for it in its list of changes.
func TestVersionMatchesDoc(t *testing.T) {
	doc, err := os.ReadFile("../docs/abi.md")
	if err != nil {
		t.Fatal(err)
	}
	if want := "Version: **" + Version + "**"; !strings.Contains(string(doc), want) {
		t.Errorf("docs/abi.md does not state %q", want)
	}
	changes := string(doc)[strings.Index(string(doc), "## Changes"):]
	if !strings.Contains(changes, "\n- "+Version+" — ") {
		t.Errorf("docs/abi.md's changes have no entry for %s", Version)
	}
}
