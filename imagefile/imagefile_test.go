package imagefile

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"

	"atoll.dev/atoll/manifest"
)

func exe(t *testing.T) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "hello")
	cmd := exec.Command("go", "build", "-o", out, "../internal/testguests/hello")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	x := exe(t)
	m := &manifest.Manifest{Name: "web", Memory: 256 << 20, CPUs: 2, Env: []string{"A=1"},
		Devices: []manifest.Device{{Name: "service", Kind: manifest.Net}, {Name: "data", Kind: manifest.Block, Spec: &manifest.BlockSpec{Size: 1 << 20, SectorSize: 512}}}}
	img, err := Append(x, Embedded{Manifest: m, ABIVersion: "9.9"})
	if err != nil {
		t.Fatal(err)
	}
	gotExe, e, err := Split(img)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotExe, x) || !reflect.DeepEqual(e.Manifest, m) || e.ABIVersion != "9.9" {
		t.Fatalf("round trip changed the image: %+v", e)
	}
	if _, err := Append(img, Embedded{Manifest: m}); err == nil {
		t.Fatal("Append embedded a second manifest")
	}
	// A plain executable has no manifest and is not an error.
	if plain, e, err := Split(x); err != nil || e != nil || len(plain) != len(x) {
		t.Fatalf("plain executable: %v %v", e, err)
	}
	// The image still runs natively.
	p := filepath.Join(t.TempDir(), "img")
	os.WriteFile(p, img, 0o755)
	if out, err := exec.Command(p).Output(); err != nil || string(out) != "hello from atoll\n" {
		t.Fatalf("image as a process: %q, %v", out, err)
	}
}

func TestDamagedImages(t *testing.T) {
	x := exe(t)
	img, err := Append(x, Embedded{Manifest: manifest.Default("web"), ABIVersion: "0.2"})
	if err != nil {
		t.Fatal(err)
	}
	corrupt := append([]byte(nil), img...)
	corrupt[len(x)+3] ^= 0xff // inside the JSON
	badLen := append([]byte(nil), img...)
	badLen[len(img)-12] = 0xff // JSON length
	badFormat := append([]byte(nil), img...)
	badFormat[len(img)-16] = 7
	invalid, _ := Append(x, Embedded{Manifest: &manifest.Manifest{Name: "Bad Name", Memory: 1 << 30, CPUs: 1}})
	for name, data := range map[string][]byte{
		"truncated footer":   img[:len(img)-1],
		"truncated manifest": append(append([]byte(nil), x...), img[len(img)-footerSize:]...),
		"corrupt manifest":   corrupt,
		"bad length":         badLen,
		"bad format":         badFormat,
		"invalid manifest":   invalid,
	} {
		if _, _, err := Split(data); !errors.Is(err, ErrBadImage) {
			t.Errorf("%s: err %v, want ErrBadImage", name, err)
		}
	}
}

// FuzzSplit feeds arbitrary trailers to Split: it must not panic, and what
// it accepts must validate.
func FuzzSplit(f *testing.F) {
	img, _ := Append([]byte("\x7fELF-not-really"), Embedded{Manifest: manifest.Default("web"), ABIVersion: "0.3"})
	f.Add(img)
	f.Add([]byte("ATOLLIMG"))
	f.Fuzz(func(t *testing.T, data []byte) {
		exe, e, err := Split(data)
		if err != nil {
			if !errors.Is(err, ErrBadImage) {
				t.Fatalf("error %v does not wrap ErrBadImage", err)
			}
			return
		}
		if len(exe) > len(data) {
			t.Fatal("executable longer than the file")
		}
		if e != nil && e.Manifest.Validate() != nil {
			t.Fatalf("accepted an invalid manifest: %+v", e.Manifest)
		}
	})
}
