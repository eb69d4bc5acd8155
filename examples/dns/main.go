// Command dns is an authoritative DNS server unikernel: it serves every
// NAME.zone master file in its zone directory as zone NAME, over UDP and
// TCP, with EDNS0, wildcards, delegations, pre-signed DNSSEC, zone
// transfers to TSIG key holders, NOTIFY, and dynamic updates kept in a
// journal next to each zone file.
//
//	atoll run -p 5353:53/udp -p 5353:53 --volume zones=DIR ./examples/dns
//	go run ./examples/dns -addr 127.0.0.1:5353 -zones DIR      # as a process
//
// Configuration, from the environment (the manifest's env, or -e):
//
//	DNS_ZONES   the zone directory (default /zones, the volume, when it
//	            is attached; else /etc/dns/zones, packed in the image)
//	DNS_KEYS    TSIG keys, [ALGORITHM:]NAME:SECRET as nsupdate -y takes
//	            them, separated by spaces: holders may transfer and update
//	DNS_NOTIFY  secondaries to NOTIFY of new serials, HOST:PORT, spaces
package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/miekg/dns"

	"atoll.dev/atoll"
	"atoll.dev/atoll/examples/dns/authority"
)

// Where zones come from when DNS_ZONES and -zones are not given.
const (
	volumeZones = "/zones"
	packedZones = "/etc/dns/zones"
)

func main() {
	addr := flag.String("addr", ":53", "address to serve on, UDP and TCP")
	zonesFlag := flag.String("zones", "", "the zone directory (default: $DNS_ZONES, else "+volumeZones+" when it exists, else "+packedZones+")")
	flag.Parse()
	log.SetFlags(0)
	if err := run(*addr, *zonesFlag); err != nil {
		log.Fatalf("dns: %v", err)
	}
}

func run(addr, zonesDir string) error {
	cfg, err := config()
	if err != nil {
		return err
	}
	network, err := atoll.Net("service")
	if err != nil {
		return err
	}
	cfg.Dial = network.DialContext
	dir := zoneDir(zonesDir)
	srv := authority.NewServer(cfg)
	n, err := loadZones(srv, dir)
	if err != nil {
		return err
	}
	pc, err := network.ListenPacket("udp", addr)
	if err != nil {
		return err
	}
	ln, err := network.Listen("tcp", addr)
	if err != nil {
		return err
	}
	errc := make(chan error, 2)
	accept := dns.MsgAcceptFunc(authority.AcceptMsg)
	secrets := srv.TsigSecret()
	go func() {
		if needsPktinfo(pc) {
			errc <- (&dns.Server{PacketConn: pc, Handler: srv, TsigSecret: secrets, MsgAcceptFunc: accept}).ActivateAndServe()
			return
		}
		errc <- srv.ServeUDP(pc)
	}()
	go func() {
		errc <- (&dns.Server{Listener: ln, Handler: srv, TsigSecret: secrets, MsgAcceptFunc: accept}).ActivateAndServe()
	}()
	log.Printf("dns: serving %d zone(s) from %s on %s (udp, tcp)", n, dir, pc.LocalAddr())
	for _, o := range srv.Origins() {
		srv.Notify(o)
	}
	return <-errc
}

// config reads the environment's keys and secondaries.
func config() (authority.Config, error) {
	cfg := authority.Config{Logf: log.Printf}
	for _, s := range strings.Fields(os.Getenv("DNS_KEYS")) {
		k, err := authority.ParseKey(s)
		if err != nil {
			return cfg, fmt.Errorf("DNS_KEYS: %w", err)
		}
		cfg.Keys = append(cfg.Keys, k)
	}
	for _, a := range strings.Fields(os.Getenv("DNS_NOTIFY")) {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return cfg, fmt.Errorf("DNS_NOTIFY: %q: want HOST:PORT", a)
		}
		cfg.Notify = append(cfg.Notify, a)
	}
	return cfg, nil
}

// zoneDir picks the zone directory.
func zoneDir(flagDir string) string {
	switch {
	case flagDir != "":
		return flagDir
	case os.Getenv("DNS_ZONES") != "":
		return os.Getenv("DNS_ZONES")
	}
	if st, err := os.Stat(volumeZones); err == nil && st.IsDir() {
		return volumeZones
	}
	return packedZones
}

// loadZones serves every zone in dir that loads, each with a journal
// beside its file when the directory is writable. A zone that fails to
// load is reported and not served; it is an error only if none loads.
func loadZones(srv *authority.Server, dir string) (int, error) {
	zones, errs := authority.LoadDir(dir)
	for _, err := range errs {
		log.Printf("dns: not serving: %v", err)
	}
	n := 0
	for _, z := range zones {
		file := filepath.Join(dir, strings.TrimSuffix(z.Origin, ".")+".zone")
		j, z2, err := authority.OpenJournal(file+".jnl", z, log.Printf)
		switch {
		case errors.Is(err, syscall.EROFS) || errors.Is(err, fs.ErrPermission):
			log.Printf("dns: %s: serial %d, %d records; read-only, so no updates", z.Origin, z.Serial(), z.Len())
			j, z2 = nil, z
		case err != nil:
			log.Printf("dns: not serving %s: %v", z.Origin, err)
			continue
		default:
			log.Printf("dns: %s: serial %d, %d records, %d update(s) from the journal", z.Origin, z2.Serial(), z2.Len(), j.Len())
		}
		if err := srv.AddZone(z2, j); err != nil {
			return n, err
		}
		n++
	}
	if n == 0 {
		return 0, fmt.Errorf("no zone to serve in %s", dir)
	}
	return n, nil
}

// needsPktinfo reports a host UDP socket bound to a wildcard address
// that can report each datagram's destination (IP_PKTINFO): a process on
// a host with several addresses, which must answer from the address
// asked. The dns package's server does that, a datagram at a time;
// everything else (a specific address, a unikernel's own stack, atoll's
// host backend, where the monitor owns the addresses) is served in
// batches by authority.ServeUDP.
func needsPktinfo(pc net.PacketConn) bool {
	u, ok := pc.(*net.UDPConn)
	if !ok {
		return false
	}
	if a, ok := u.LocalAddr().(*net.UDPAddr); !ok || !a.IP.IsUnspecified() {
		return false
	}
	rc, err := u.SyscallConn()
	if err != nil {
		return false
	}
	var serr error
	rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_PKTINFO, 1)
	})
	return serr == nil
}
