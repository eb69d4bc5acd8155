package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"time"

	"atoll.dev/atoll/imagefile"
)

// OCI image archives (atoll build --oci): the OCI image layout
// (github.com/opencontainers/image-spec, image-layout.md) in one tar, as
// podman load and ctr image import read it. The image has one layer: the
// unikernel image at /NAME, its entry point, and the files its tree packs,
// at their paths. Labels say it is an Atoll unikernel, for which guest
// ABI; an OCI runtime for it is atoll-oci (docs/kubernetes.md).

// OCI media types.
const (
	mediaIndex    = "application/vnd.oci.image.index.v1+json"
	mediaManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaConfig   = "application/vnd.oci.image.config.v1+json"
	mediaLayer    = "application/vnd.oci.image.layer.v1.tar"
)

// Labels on every image atoll build --oci writes.
const (
	labelUnikernel = "dev.atoll.unikernel" // the manifest's name
	labelABI       = "dev.atoll.abi"       // the guest ABI version
)

type ociDescriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// blob is content and its descriptor.
type blob struct {
	desc ociDescriptor
	data []byte
}

func newBlob(mediaType string, data []byte) blob {
	sum := sha256.Sum256(data)
	return blob{ociDescriptor{MediaType: mediaType, Digest: "sha256:" + hex.EncodeToString(sum[:]), Size: int64(len(data))}, data}
}

// writeOCIArchive writes the OCI image archive for the image file img to
// archive, named ref (such as localhost/www:latest).
func writeOCIArchive(img, archive, ref string) error {
	data, err := os.ReadFile(img)
	if err != nil {
		return err
	}
	_, e, err := imagefile.Split(data)
	if err != nil {
		return err
	}
	if e == nil {
		return fmt.Errorf("%s is no atoll image", img)
	}
	name := e.Manifest.Name
	// Reproducible: every time is the epoch.
	var epoch time.Time
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	dirs := map[string]bool{}
	var addDirs func(p string) error
	addDirs = func(p string) error {
		if p == "." || p == "/" || dirs[p] {
			return nil
		}
		if err := addDirs(path.Dir(p)); err != nil {
			return err
		}
		dirs[p] = true
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: p + "/", Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX})
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o755, Size: int64(len(data)), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
		return err
	}
	if _, err := tw.Write(data); err != nil {
		return err
	}
	if t := e.Tree; t != nil {
		for _, te := range t.Entries {
			p := path.Clean(te.Path)[1:] // relative to the root
			if p == "" || p == name {
				continue
			}
			if err := addDirs(path.Dir(p)); err != nil {
				return err
			}
			if te.IsDir() {
				if err := addDirs(p); err != nil {
					return err
				}
				continue
			}
			b := t.Data(te)
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: int64(te.Mode.Perm()), Size: int64(len(b)), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
				return err
			}
			if _, err := tw.Write(b); err != nil {
				return err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	layerBlob := newBlob(mediaLayer, layer.Bytes())
	labels := map[string]string{labelUnikernel: name, labelABI: e.ABIVersion}
	cfg, _ := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"config": map[string]any{
			"Entrypoint": []string{"/" + name},
			"Labels":     labels,
		},
		"rootfs":  map[string]any{"type": "layers", "diff_ids": []string{layerBlob.desc.Digest}},
		"history": []map[string]string{{"created_by": "atoll build --oci (" + name + ", guest ABI " + e.ABIVersion + ")"}},
	})
	cfgBlob := newBlob(mediaConfig, cfg)
	man, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     mediaManifest,
		"config":        cfgBlob.desc,
		"layers":        []ociDescriptor{layerBlob.desc},
		"annotations":   labels,
	})
	manBlob := newBlob(mediaManifest, man)
	md := manBlob.desc
	md.Annotations = map[string]string{
		"org.opencontainers.image.ref.name": ref,
		"io.containerd.image.name":          ref,
	}
	index, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": mediaIndex, "manifests": []ociDescriptor{md}})

	tmp, err := os.CreateTemp(filepath.Dir(archive), ".atoll-oci-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	aw := tar.NewWriter(tmp)
	put := func(name string, b []byte) error {
		if err := aw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := aw.Write(b)
		return err
	}
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := aw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return err
		}
	}
	if err := put("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	for _, b := range []blob{layerBlob, cfgBlob, manBlob} {
		if err := put("blobs/sha256/"+b.desc.Digest[len("sha256:"):], b.data); err != nil {
			return err
		}
	}
	if err := put("index.json", index); err != nil {
		return err
	}
	if err := aw.Close(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), archive)
}

// ociRef is the reference an archive names its image with by default.
func ociRef(name string) string { return "localhost/" + name + ":latest" }
