package manifest

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestParseFull(t *testing.T) {
	src := `// The hello-web unikernel.
unikernel hello-web
memory 256M   // plenty
cpus 2
env GREETING=hello
env (
	"MOTD=hello world"
	DEBUG=1
)
net service
block (
	data 64M
	logs 1G 4096
)
files static /srv/www
files (
	./conf/app.conf /etc/app.conf
	"my dir/" "/opt/my app"
	. /src
)
tzdata off
cacerts on
`
	m, err := Parse("atoll.manifest", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := &Manifest{
		Name: "hello-web", Memory: 256 << 20, CPUs: 2,
		Env: []string{"GREETING=hello", "MOTD=hello world", "DEBUG=1"},
		Devices: []Device{
			{Name: "service", Kind: Net},
			{Name: "data", Kind: Block, Spec: &BlockSpec{Size: 64 << 20, SectorSize: 512}},
			{Name: "logs", Kind: Block, Spec: &BlockSpec{Size: 1 << 30, SectorSize: 4096}},
		},
		Files: []FilesEntry{
			{"static", "/srv/www"}, {"conf/app.conf", "/etc/app.conf"}, {"my dir", "/opt/my app"}, {".", "/src"},
		},
		TZData: false, CACerts: true,
	}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("got %+v\nwant %+v", m, want)
	}
}

func TestParseDefaults(t *testing.T) {
	m, err := Parse("f", []byte("unikernel a\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m, Default("a")) || !m.TZData || !m.CACerts {
		t.Fatalf("got %+v, want %+v", m, Default("a"))
	}
}

// TestParseErrors pins every validation message: each names file, line
// and field.
func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{"", "m:1: missing the unikernel directive (e.g. `unikernel hello-web`)"},
		{"memory 64M\n", "m:1: missing the unikernel directive (e.g. `unikernel hello-web`)"},
		{"unikernel Web\n", `m:1: unikernel name "Web" must be 1–63 of [a-z0-9-], starting with a letter`},
		{"unikernel a b\n", "m:1: usage: unikernel NAME"},
		{"unikernel a\nunikernel b\n", "m:2: unikernel given twice (first on line 1)"},
		{"unikernel a\nmemory lots\n", `m:2: memory "lots" must be a size of at least 32M (e.g. 256M, 1G)`},
		{"unikernel a\nmemory 1M\n", `m:2: memory "1M" must be a size of at least 32M (e.g. 256M, 1G)`},
		{"unikernel a\ncpus 0\n", `m:2: cpus "0" must be a number from 1 to 64`},
		{"unikernel a\nenv NOVALUE\n", `m:2: env "NOVALUE" must be KEY=VALUE with KEY of [A-Za-z0-9_], not starting with a digit`},
		{"unikernel a\nenv A=1\nenv A=2\n", "m:3: env A given twice"},
		{"unikernel a\nnet srv_1\n", `m:2: net device name "srv_1" must be 1–63 of [a-z0-9-], starting with a letter`},
		{"unikernel a\nnet " + strings.Repeat("x", 64) + "\n", `m:2: net device name "` + strings.Repeat("x", 64) + `" must be 1–63 of [a-z0-9-], starting with a letter`},
		{"unikernel a\nnet srv\nblock srv 1M\n", `m:3: device name "srv" declared twice`},
		{"unikernel a\nblock data\n", "m:2: usage: block NAME SIZE [SECTOR-SIZE]"},
		{"unikernel a\nblock data 1000\n", `m:2: block data size "1000" must be a size that is a multiple of the sector size 512 (e.g. 64M)`},
		{"unikernel a\nblock data 1M 100\n", `m:2: block data sector size "100" must be 512, 1024, 2048 or 4096`},
		{"unikernel a\nnic eth0\n", `m:2: unknown directive "nic" (want unikernel, memory, cpus, env, files, tzdata, cacerts or a device kind: block, net, volume)`},
		{"unikernel a\nfiles conf\n", "m:2: usage: files SRC DST"},
		{"unikernel a\nfiles conf /etc/app extra\n", "m:2: usage: files SRC DST"},
		{"unikernel a\nfiles /etc/passwd /etc/passwd\n", `m:2: files source "/etc/passwd" must be a path relative to the package directory`},
		{"unikernel a\nfiles \"\" /etc/x\n", `m:2: files source "" must be a path relative to the package directory`},
		{"unikernel a\nfiles ../secrets /etc/x\n", `m:2: files source "../secrets" is outside the package directory`},
		{"unikernel a\nfiles conf/../../x /etc/x\n", `m:2: files source "conf/../../x" is outside the package directory`},
		{"unikernel a\nfiles conf etc/app\n", `m:2: files destination "etc/app" must be an absolute guest path (e.g. /etc/app)`},
		{"unikernel a\nfiles conf /etc/app/\n", `m:2: files destination "/etc/app/" must be a clean path: /etc/app`},
		{"unikernel a\nfiles conf /etc/../app\n", `m:2: files destination "/etc/../app" must be a clean path: /app`},
		{"unikernel a\nfiles conf /\n", `m:2: files destination "/" cannot be the root: give a directory below it (e.g. /srv)`},
		{"unikernel a\nfiles conf /proc/x\n", `m:2: files destination "/proc/x" lies in /proc: the monitor serves /proc itself`},
		{"unikernel a\nfiles conf /dev\n", `m:2: files destination "/dev" lies in /dev: the monitor serves /dev itself`},
		{"unikernel a\nfiles conf /sys/kernel\n", `m:2: files destination "/sys/kernel" lies in /sys: the monitor serves /sys itself`},
		{"unikernel a\nfiles conf /tmp/cache\n", `m:2: files destination "/tmp/cache" lies in /tmp: /tmp is each VM's private writable directory, served by the monitor`},
		{"unikernel a\nfiles conf \"/etc/\\x00\"\n", `m:2: files destination "/etc/\x00" must not contain a NUL byte`},
		{"unikernel a\nfiles conf /" + strings.Repeat("x", 256) + "\n", `m:2: files destination "/` + strings.Repeat("x", 256) + `" has an element longer than 255 bytes`},
		{"unikernel a\nfiles conf " + strings.Repeat("/xx", 1366) + "\n", `m:2: files destination "` + strings.Repeat("/xx", 1366) + `" is longer than 4095 bytes`},
		{"unikernel a\nfiles (\n a /etc/app\n b /etc/app\n)\n", "m:4: files destination /etc/app given twice (first on line 3)"},
		{"unikernel a\ntzdata yes\n", `m:2: tzdata "yes" must be on or off`},
		{"unikernel a\ncacerts\n", "m:2: usage: cacerts on|off"},
		{"unikernel a\ntzdata on\ntzdata off\n", "m:3: tzdata given twice (first on line 2)"},
		{"unikernel a\ncacerts (\n", `m:2: "cacerts" cannot be grouped with ( ... )`},
		{"unikernel a\nmemory (\n", `m:2: "memory" cannot be grouped with ( ... )`},
		{"unikernel a\nnet (\n  srv\n", "m:2: net ( is never closed"},
		{"unikernel a\nenv \"A=1\n", "m:2: unterminated quoted string"},
		{"unikernel a\nfiles (\n0 /\x84\n)", "m:3: \"/\\x84\" is not valid UTF-8"},
		{"unikernel a\nenv \"A=\\xff\"\n", "m:2: \"A=\\xff\" is not valid UTF-8"},
		{strings.Repeat("x", MaxSize+1), "m:1: manifest is 65537 bytes, more than the 65536 allowed"},
	} {
		_, err := Parse("m", []byte(c.src))
		if err == nil || err.Error() != c.want {
			t.Errorf("Parse(%.40q):\n got %v\nwant %s", c.src, err, c.want)
		}
	}
}

func TestSizes(t *testing.T) {
	for _, c := range []struct {
		in  string
		out uint64
	}{{"512M", 512 << 20}, {"2G", 2 << 30}, {"64k", 64 << 10}, {"256MiB", 256 << 20}, {"4096", 4096}} {
		n, err := ParseSize(c.in)
		if err != nil || n != c.out {
			t.Errorf("ParseSize(%q) = %d, %v", c.in, n, err)
		}
		if back, _ := ParseSize(FormatSize(n)); back != n {
			t.Errorf("FormatSize(%d) = %q does not read back", n, FormatSize(n))
		}
	}
	for _, bad := range []string{"", "0", "-1M", "1T", "M", "99999999999G"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("unikernel a\nmemory 256M\ncpus 2\nenv A=1\nnet n\nblock b 1M 4096\n"))
	f.Add([]byte("unikernel a\nnet (\n x\n y\n)\n"))
	f.Add([]byte("unikernel \"a\" // c\n"))
	f.Add([]byte("unikernel a\nfiles (\n conf /etc/app\n . /srv\n)\ntzdata off\ncacerts on\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse("fuzz", data)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		if !ValidName(m.Name) || m.Memory < MinMemory || m.CPUs < 1 || m.CPUs > MaxCPUs {
			t.Fatalf("accepted invalid manifest %+v", m)
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("accepted a manifest Validate refuses: %v", err)
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var back Manifest
		if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(&back, m) {
			t.Fatalf("JSON round trip: %v\n%s\n%+v", err, b, back)
		}
	})
}

// TestJSON pins how images store devices: each kind's parameters beside
// name and kind, as ABI 0.3 images have them, so older images still load.
func TestJSON(t *testing.T) {
	m, err := Parse("m", []byte("unikernel a\nnet srv\nblock data 1M 4096\n"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(m.Devices)
	if err != nil {
		t.Fatal(err)
	}
	const want = `[{"name":"srv","kind":"net"},{"name":"data","kind":"block","size":1048576,"sector_size":4096}]`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	var back []Device
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, m.Devices) {
		t.Fatalf("round trip: %v %+v", err, back)
	}
	for _, bad := range []string{`[{"name":"x","kind":"nic"}]`, `[{"name":"x","kind":"block","size":"big"}]`} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("decoded %s", bad)
		}
	}
	bad := &Manifest{Name: "a", Memory: DefaultMemory, CPUs: 1, Devices: []Device{{Name: "d", Kind: Block, Spec: &BlockSpec{Size: 1000, SectorSize: 512}}}}
	if err := bad.Validate(); err == nil {
		t.Error("Validate accepted a block size that is not a whole number of sectors")
	}
	bad.Devices[0] = Device{Name: "d", Kind: Block}
	if err := bad.Validate(); err == nil {
		t.Error("Validate accepted a block device without geometry")
	}
	bad.Devices[0] = Device{Name: "d", Kind: Block, Spec: (*BlockSpec)(nil)}
	if err := bad.Validate(); err == nil {
		t.Error("Validate accepted a nil geometry")
	}
	// A hostile image's names reach messages quoted, never raw.
	err = json.Unmarshal([]byte(`[{"name":"a\u001b[31mred","kind":"nope"}]`), &back)
	if err == nil || strings.ContainsRune(err.Error(), 0x1b) {
		t.Errorf("error carries a raw escape: %q", err)
	}
}

// TestFilesJSON pins how images store files entries and the switches, and
// that Validate refuses what the parser would.
func TestFilesJSON(t *testing.T) {
	m, err := Parse("m", []byte("unikernel a\nfiles conf /etc/app\ncacerts off\n"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"name":"a","memory":536870912,"cpus":1,"files":[{"src":"conf","dst":"/etc/app"}],"tzdata":true,"cacerts":false}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	// An image from before the switches records neither.
	var old Manifest
	if err := json.Unmarshal([]byte(`{"name":"a","memory":536870912,"cpus":1}`), &old); err != nil || old.TZData || old.CACerts || old.Validate() != nil {
		t.Fatalf("old manifest: %+v %v", old, err)
	}
	for _, files := range [][]FilesEntry{
		{{"/abs", "/x"}},
		{{"../up", "/x"}},
		{{"a/./b", "/x"}},
		{{"a", "x"}},
		{{"a", "/"}},
		{{"a", "/tmp"}},
		{{"a", "/x/../y"}},
		{{"a", "/x"}, {"b", "/x"}},
	} {
		bad := *Default("a")
		bad.Files = files
		if err := bad.Validate(); err == nil {
			t.Errorf("Validate accepted files %q", files)
		}
	}
}
