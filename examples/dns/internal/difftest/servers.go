package difftest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"atoll.dev/atoll/internal/testenv"
)

// StartTimeout bounds how long a server started by [StartNSD], [StartBIND]
// or [StartProcess] has to answer its first query.
const StartTimeout = 30 * time.Second

// StartNSD runs Debian's nsd (4.6) in the foreground, serving every zone of
// zonesDir (see [ZoneFiles]) on 127.0.0.1, UDP and TCP, at a free port, and
// returns its address ("127.0.0.1:PORT") once it answers. It stops NSD when
// the test ends. The test is skipped (failed under CI) when nsd is not
// installed.
//
// Everything NSD writes goes to a t.TempDir(): its configuration, pid file,
// zone list, xfrd state and transfer directory. NSD runs as whoever runs the
// test (username "": no privilege drop, no chroot), so the test needs no
// root, and it runs as root unchanged. Rate limiting (on by default: 200
// queries a second from one /24, which the corpus exceeds) is off, the
// remote control is off, and so are the version and identity answers to
// CHAOS queries (an appliance's choice; NSD then refuses them).
func StartNSD(t testing.TB, zonesDir string) (addr string) {
	t.Helper()
	testenv.RequireCommands(t, "nsd")
	zones, err := ZoneFiles(zonesDir)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	return startRetrying(t, "nsd", zones, func(port int) []string {
		conf := filepath.Join(dir, "nsd.conf")
		writeFile(t, conf, nsdConf(dir, port, zones))
		return []string{"nsd", "-d", "-c", conf}
	}, dir)
}

// nsdConf returns NSD's configuration: listening on 127.0.0.1 at port,
// keeping its files in dir, serving zones.
func nsdConf(dir string, port int, zones []ZoneFile) string {
	var b strings.Builder
	fmt.Fprintf(&b, `server:
	ip-address: 127.0.0.1
	port: %d
	do-ip4: yes
	do-ip6: no
	server-count: 1
	username: ""
	chroot: ""
	zonesdir: %[2]q
	database: ""
	zonelistfile: %[3]q
	xfrdfile: %[4]q
	xfrdir: %[2]q
	pidfile: %[5]q
	cookie-secret-file: %[6]q
	verbosity: 1
	hide-version: yes
	hide-identity: yes
	rrl-ratelimit: 0
	rrl-whitelist-ratelimit: 0
remote-control:
	control-enable: no
`, port, dir, filepath.Join(dir, "zone.list"), filepath.Join(dir, "xfrd.state"),
		filepath.Join(dir, "nsd.pid"), filepath.Join(dir, "cookiesecrets.txt"))
	for _, z := range zones {
		fmt.Fprintf(&b, "zone:\n\tname: %q\n\tzonefile: %q\n", z.Origin, z.Path)
	}
	return b.String()
}

// StartBIND runs BIND's named (9.18) in the foreground (-g), serving every
// zone of zonesDir as a primary zone on 127.0.0.1, UDP and TCP, at a free
// port, and returns its address once it answers. It stops named when the
// test ends. The test is skipped (failed under CI) when named is not
// installed.
//
// Its directory, pid file, session key and managed-keys zone are in a
// t.TempDir(); it runs as whoever runs the test. Recursion, validation,
// NOTIFY (which would go to the zones' name servers, off this machine),
// zone transfers and the rndc control channel (port 953, shared by every
// named on the machine) are off; all else is BIND's default.
func StartBIND(t testing.TB, zonesDir string) (addr string) {
	t.Helper()
	testenv.RequireCommands(t, "named")
	zones, err := ZoneFiles(zonesDir)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	return startRetrying(t, "named", zones, func(port int) []string {
		conf := filepath.Join(dir, "named.conf")
		writeFile(t, conf, bindConf(dir, port, zones))
		return []string{"named", "-g", "-n", "1", "-c", conf}
	}, dir)
}

// bindConf returns named's configuration: listening on 127.0.0.1 at port,
// keeping its files in dir, serving zones.
func bindConf(dir string, port int, zones []ZoneFile) string {
	var b strings.Builder
	fmt.Fprintf(&b, `options {
	directory %q;
	pid-file %q;
	session-keyfile %q;
	managed-keys-directory %[1]q;
	listen-on port %[4]d { 127.0.0.1; };
	listen-on-v6 { none; };
	recursion no;
	dnssec-validation no;
	notify no;
	allow-transfer { none; };
};
controls { };
`, dir, filepath.Join(dir, "named.pid"), filepath.Join(dir, "session.key"), port)
	for _, z := range zones {
		fmt.Fprintf(&b, "zone %q {\n\ttype primary;\n\tfile %q;\n};\n", z.Origin, z.Path)
	}
	return b.String()
}

// startRetrying starts the server command(port) returns on a free port and
// waits for it to answer for zones[0]; when the server exits before it
// does (another process may have taken the port's UDP side, which
// testenv.FreePort does not check), it tries again, twice, on other ports.
func startRetrying(t testing.TB, what string, zones []ZoneFile, command func(port int) []string, dir string) string {
	t.Helper()
	var err error
	for try := range 3 {
		port := testenv.FreePort(t)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		logPath := filepath.Join(dir, fmt.Sprintf("%s.%d.log", what, try))
		err = StartProcess(t, command(port), nil, logPath, addr, zones[0].Origin)
		if err == nil {
			return addr
		}
		if !errors.Is(err, errExited) {
			break
		}
	}
	t.Fatalf("starting %s: %v", what, err)
	return ""
}

// errExited is the error of a server that exited before answering.
var errExited = errors.New("exited before answering")

// StartProcess starts argv with the extra environment env, its standard
// output and error going to the file logPath, in a process group of its
// own; waits until it answers an SOA query for zone on addr (UDP, then
// TCP); and stops it at the end of the test: SIGTERM, then after 10 s
// SIGKILL to its process group. It also gets SIGTERM if the test
// binary dies first. On failure it returns the error with the
// log's last lines, the process stopped.
func StartProcess(t testing.TB, argv, env []string, logPath, addr, zone string) error {
	t.Helper()
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// Pdeathsig: a test binary killed before its cleanups run (a
	// closed pipe, a timeout) takes its servers with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stop := func() {
		select {
		case <-done:
			return
		default:
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
	if err := waitReady(addr, zone, done); err != nil {
		stop()
		return fmt.Errorf("%s: %w\n%s", strings.Join(argv, " "), err, tail(logPath))
	}
	t.Cleanup(stop)
	return nil
}

// waitReady waits until addr answers an SOA query for zone over UDP and
// then over TCP, or until the process whose Wait result done carries
// exits, or StartTimeout passes.
func waitReady(addr, zone string, done <-chan error) error {
	deadline := time.Now().Add(StartTimeout)
	q := new(dns.Msg)
	q.SetQuestion(zone, dns.TypeSOA)
	for _, tcp := range []bool{false, true} {
		for {
			select {
			case err := <-done:
				return fmt.Errorf("%w (%v)", errExited, err)
			default:
			}
			r, err := exchange(addr, q, tcp, 200*time.Millisecond)
			if err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0 {
				break
			}
			if err == nil {
				err = fmt.Errorf("%s with %d answers", rcodeString(r.Rcode), len(r.Answer))
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("no answer to %s SOA over %s after %v (last: %v)", zone, transport(tcp), StartTimeout, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// transport returns "tcp" or "udp".
func transport(tcp bool) string {
	if tcp {
		return "tcp"
	}
	return "udp"
}

// tail returns the last 30 lines of the file at path, for error messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

// writeFile writes content to path or fails the test.
func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
