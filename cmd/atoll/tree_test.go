package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"atoll.dev/atoll/internal/testenv"
)

// treeGuest reads what its manifest packs: a config file, a directory it
// walks and serves with http.FileServer, a time zone, and the CA bundle
// it verifies a TLS server's certificate against, over an in-memory pipe.
const treeGuest = `package main

import (
	"crypto/tls"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"time"
)

func main() {
	b, err := os.ReadFile("/etc/app/config.json")
	fmt.Printf("config: %s %v\n", b, err)
	var walked []string
	fs.WalkDir(os.DirFS("/srv/site"), ".", func(p string, d fs.DirEntry, err error) error {
		walked = append(walked, p)
		return err
	})
	fmt.Println("walked:", walked)
	rec := httptest.NewRecorder()
	http.FileServer(http.Dir("/srv/site")).ServeHTTP(rec, httptest.NewRequest("GET", "/css/site.css", nil))
	fmt.Printf("served: %d %q\n", rec.Code, rec.Body.String())
	loc, err := time.LoadLocation("Europe/Paris")
	fmt.Println("zone:", loc, err)
	_, err = os.Create("/etc/app/new")
	fmt.Println("the tree is read-only:", err != nil)

	cert, err := tls.LoadX509KeyPair("/etc/app/leaf.pem", "/etc/app/leaf.key")
	if err != nil {
		fmt.Println("leaf:", err)
		return
	}
	c, s := net.Pipe()
	go tls.Server(s, &tls.Config{Certificates: []tls.Certificate{cert}}).Handshake()
	err = tls.Client(c, &tls.Config{ServerName: "service.test"}).Handshake()
	fmt.Println("TLS verified against the packed roots:", err)
}
`

// TestPackedTree builds an image whose manifest packs files, and boots it:
// the guest reads, walks and serves them, loads a time zone with no
// zoneinfo on its file system, and verifies a certificate against a CA
// bundle packed at the system path.
func TestPackedTree(t *testing.T) {
	testenv.RequireKVM(t)
	dir := t.TempDir()
	p := pkg(t, dir, "treeapp", `unikernel treeapp
files (
	config /etc/app
	site /srv/site
	roots.pem /etc/ssl/certs/ca-certificates.crt
)
`)
	os.WriteFile(filepath.Join(p, "main.go"), []byte(treeGuest), 0o644)
	os.MkdirAll(filepath.Join(p, "site", "css"), 0o755)
	os.MkdirAll(filepath.Join(p, "config"), 0o755)
	os.WriteFile(filepath.Join(p, "config", "config.json"), []byte(`{"mode":"packed"}`), 0o644)
	os.WriteFile(filepath.Join(p, "site", "index.html"), []byte("<h1>hi</h1>"), 0o644)
	os.WriteFile(filepath.Join(p, "site", "css", "site.css"), []byte("h1{color:red}"), 0o644)
	caPEM, leafPEM, keyPEM := testPKI(t)
	os.WriteFile(filepath.Join(p, "roots.pem"), caPEM, 0o644)
	os.WriteFile(filepath.Join(p, "config", "leaf.pem"), leafPEM, 0o644)
	os.WriteFile(filepath.Join(p, "config", "leaf.key"), keyPEM, 0o600)
	img := filepath.Join(dir, "treeapp.img")
	if _, stderr, code := invoke(t, dir, "build", "-o", img, p); code != 0 {
		t.Fatalf("build: %s", stderr)
	}
	stdout, stderr, code := invoke(t, dir, "run", img)
	want := `config: {"mode":"packed"} <nil>
walked: [. css css/site.css index.html]
served: 200 "h1{color:red}"
zone: Europe/Paris <nil>
the tree is read-only: true
TLS verified against the packed roots: <nil>
`
	if code != 0 || stdout != want {
		t.Fatalf("exit %d\nstdout:\n%s\nwant:\n%s\nstderr: %s", code, stdout, want, stderr)
	}
}

// testPKI makes a CA and a leaf certificate for service.test it signs.
func testPKI(t *testing.T) (caPEM, leafPEM, keyPEM []byte) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "atoll test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "service.test"},
		DNSNames: []string{"service.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	caCert, _ := x509.ParseCertificate(caDER)
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(leafKey)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}
