package manifest

import (
	"encoding/json"
	"reflect"
	"testing"

	"atoll.dev/atoll/abi"
)

func TestVolume(t *testing.T) {
	m, err := Parse("m", []byte("unikernel a\nvolume (\n\tdata /var/lib/app\n\tconfig /etc/app ro\n\tzones /zones optional ro\n)\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Device{
		{Name: "data", Kind: abi.KindVolume, Spec: &VolumeSpec{Path: "/var/lib/app"}},
		{Name: "config", Kind: abi.KindVolume, Spec: &VolumeSpec{Path: "/etc/app", ReadOnly: true}},
		{Name: "zones", Kind: abi.KindVolume, Spec: &VolumeSpec{Path: "/zones", ReadOnly: true, Optional: true}},
	}
	if !reflect.DeepEqual(m.Devices, want) {
		t.Fatalf("got %+v", m.Devices)
	}
	b, _ := json.Marshal(m.Devices)
	var back []Device
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, want) {
		t.Fatalf("JSON round trip: %s %v", b, err)
	}
	if d := m.Devices[1].Describe(); d != "/etc/app, read-only" {
		t.Errorf("Describe = %q", d)
	}
	if d := m.Devices[2].Describe(); d != "/zones, read-only, optional" {
		t.Errorf("Describe = %q", d)
	}
	for src, want := range map[string]string{
		"unikernel a\nvolume data\n":                        "m:2: usage: volume NAME DST [ro] [optional]",
		"unikernel a\nvolume data rel/path\n":               `m:2: volume data: path "rel/path" must be an absolute, clean path other than /`,
		"unikernel a\nvolume data /\n":                      `m:2: volume data: path "/" must be an absolute, clean path other than /`,
		"unikernel a\nvolume data /tmp/x\n":                 "m:2: volume data: path /tmp/x is under /tmp, which the monitor serves itself",
		"unikernel a\nvolume data /proc\n":                  "m:2: volume data: path /proc is under /proc, which the monitor serves itself",
		"unikernel a\nvolume data /srv/../etc\n":            `m:2: volume data: path "/srv/../etc" must be an absolute, clean path other than /`,
		"unikernel a\nvolume data /srv rw\n":                `m:2: volume data: "rw": the options are ro and optional`,
		"unikernel a\nvolume data /srv ro ro\n":             "m:2: volume data: ro given twice",
		"unikernel a\nvolume data /srv ro optional extra\n": "m:2: usage: volume NAME DST [ro] [optional]",
	} {
		if _, err := Parse("m", []byte(src)); err == nil || err.Error() != want {
			t.Errorf("Parse(%q):\n got %v\nwant %s", src, err, want)
		}
	}
}
