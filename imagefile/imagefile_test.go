package imagefile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io/fs"
	"os"
	"os/exec"
	"path"
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
	tree := &Tree{Entries: []TreeEntry{{Path: "/etc", Mode: fs.ModeDir | 0o755}, {Path: "/etc/a", Mode: 0o644, Size: 3}}, offs: []int64{0, 0}, data: []byte("abc")}
	withTree, err := Append([]byte("\x7fELF-not-really"), Embedded{Manifest: manifest.Default("web"), ABIVersion: "0.4", Tree: tree})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(withTree)
	f.Fuzz(func(t *testing.T, data []byte) {
		checkSplit(t, data)
		// Again with the checksums made right, so mutations reach the
		// manifest and every field of the index.
		checkSplit(t, fixChecksums(data))
	})
}

// fixChecksums returns data with the JSON's and the index's CRC-32s
// recomputed, where the footer locates them.
func fixChecksums(data []byte) []byte {
	if !hasFooter(data) {
		return data
	}
	data = bytes.Clone(data)
	le := binary.LittleEndian
	f := data[len(data)-footerSize:]
	n := uint64(le.Uint32(f[12:]))
	if n > uint64(len(data)-footerSize) {
		return data
	}
	jsStart := uint64(len(data)) - footerSize - n
	le.PutUint32(f[16:], crc32.ChecksumIEEE(data[jsStart:len(data)-footerSize]))
	if ilen := uint64(le.Uint32(f[20:])); ilen >= headerSize && ilen <= jsStart {
		idx := data[jsStart-ilen : jsStart]
		le.PutUint32(idx[8:], crc32.ChecksumIEEE(idx[12:]))
	}
	return data
}

func checkSplit(t *testing.T, data []byte) {
	t.Helper()
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
	if e == nil || e.Tree == nil {
		return
	}
	// An accepted tree is sorted, complete and within the file, every
	// file's contents page-aligned behind the executable.
	dirs := map[string]bool{"/": true}
	for i, te := range e.Tree.Entries {
		if i > 0 && te.Path <= e.Tree.Entries[i-1].Path || !dirs[path.Dir(te.Path)] || manifest.CheckGuestPath(te.Path) != nil {
			t.Fatalf("accepted entry %q", te.Path)
		}
		dirs[te.Path] = te.Mode.IsDir()
		d := e.Tree.Data(te)
		if int64(len(d)) != te.Size && !te.Mode.IsDir() {
			t.Fatalf("%s: %d bytes of data, size %d", te.Path, len(d), te.Size)
		}
		if off := e.Tree.offs[i]; len(d) > 0 && (off%PageSize != 0 || off < int64(len(exe)) || off+te.Size > int64(len(data))) {
			t.Fatalf("%s: contents at %d", te.Path, off)
		}
	}
}
