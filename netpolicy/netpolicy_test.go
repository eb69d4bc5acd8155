package netpolicy

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseForward(t *testing.T) {
	tests := []struct {
		in   string
		want Forward
		// err is a fragment of the error; empty for success.
		err string
	}{
		{in: "8080:80", want: Forward{Proto: "tcp", HostAddr: "127.0.0.1:8080", GuestPort: 80}},
		{in: "8080:80/tcp", want: Forward{Proto: "tcp", HostAddr: "127.0.0.1:8080", GuestPort: 80}},
		{in: "5353:53/udp", want: Forward{Proto: "udp", HostAddr: "127.0.0.1:5353", GuestPort: 53}},
		{in: "0.0.0.0:8080:80", want: Forward{Proto: "tcp", HostAddr: "0.0.0.0:8080", GuestPort: 80}},
		{in: "192.168.1.7:8080:80/udp", want: Forward{Proto: "udp", HostAddr: "192.168.1.7:8080", GuestPort: 80}},
		{in: "[127.0.0.1]:8080:80", want: Forward{Proto: "tcp", HostAddr: "127.0.0.1:8080", GuestPort: 80}},
		{in: "1:1", want: Forward{Proto: "tcp", HostAddr: "127.0.0.1:1", GuestPort: 1}},
		{in: "65535:65535", want: Forward{Proto: "tcp", HostAddr: "127.0.0.1:65535", GuestPort: 65535}},

		// The host side may be IPv6, in brackets or not: the ports are
		// whatever follows the last two colons. The guest is IPv4 only.
		{in: "[::1]:8080:80", want: Forward{Proto: "tcp", HostAddr: "[::1]:8080", GuestPort: 80}},
		{in: "[::]:8080:80/udp", want: Forward{Proto: "udp", HostAddr: "[::]:8080", GuestPort: 80}},
		{in: "::1:8080:80", want: Forward{Proto: "tcp", HostAddr: "[::1]:8080", GuestPort: 80}},
		{in: "[fe80::1%eth0]:8080:80", want: Forward{Proto: "tcp", HostAddr: "[fe80::1%eth0]:8080", GuestPort: 80}},

		// Ports.
		{in: "8080:0", err: `guest port "0"`},
		{in: "0:80", err: `host port "0"`},
		{in: "8080:65536", err: `guest port "65536"`},
		{in: "65536:80", err: `host port "65536"`},
		{in: "127.0.0.1:99999:80", err: `host port "99999"`},
		{in: "8080:-1", err: "guest port"},
		{in: "+8080:80", err: "host port"},
		{in: "8080:http", err: "guest port"},
		{in: "x:80", err: `host port "x"`},
		{in: "8080:", err: `guest port ""`},
		{in: ":80", err: `host port ""`},
		{in: "127.0.0.1::80", err: `host port ""`},

		// Host addresses.
		{in: "localhost:8080:80", err: `host address "localhost"`},
		{in: "256.0.0.1:8080:80", err: `host address "256.0.0.1"`},
		{in: "10.0.0:8080:80", err: "host address"},
		{in: "1.2.3.4:80:80:80", err: `host address "1.2.3.4:80"`},

		// Protocols.
		{in: "8080:80/sctp", err: `protocol "sctp"`},
		{in: "8080:80/UDP", err: `protocol "UDP"`},
		{in: "8080:80/", err: `protocol ""`},
		{in: "8080:80/udp/tcp", err: `guest port "80/udp"`},

		// Garbage.
		{in: "", err: "want [HOSTIP:]HOSTPORT:GUESTPORT[/udp]"},
		{in: "8080", err: "want [HOSTIP:]HOSTPORT:GUESTPORT[/udp]"},
		{in: "8080/udp", err: "want [HOSTIP:]HOSTPORT:GUESTPORT[/udp]"},
		{in: ":", err: "port"},
		{in: " 8080:80", err: "host port"},
		{in: "8080:80 ", err: "guest port"},
		{in: "\x00:\x00", err: "port"},
	}
	for _, tt := range tests {
		got, err := ParseForward(tt.in)
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("ParseForward(%q): %v", tt.in, err)
		case tt.err == "" && got != tt.want:
			t.Errorf("ParseForward(%q) = %+v, want %+v", tt.in, got, tt.want)
		case tt.err != "" && err == nil:
			t.Errorf("ParseForward(%q) = %+v, want an error mentioning %q", tt.in, got, tt.err)
		case tt.err != "" && !strings.Contains(err.Error(), tt.err):
			t.Errorf("ParseForward(%q): %v, want an error mentioning %q", tt.in, err, tt.err)
		case err != nil && !strings.Contains(err.Error(), "-p "+tt.in+":"):
			t.Errorf("ParseForward(%q): %v does not quote the flag", tt.in, err)
		}
	}
}

func TestParseOutbound(t *testing.T) {
	tests := []struct {
		in     string
		want   Outbound
		wantOK bool
	}{
		{"all", OutboundAll, true},
		{"noloopback", OutboundNoLoopback, true},
		{"none", OutboundNone, true},
		{"", 0, false},
		{"ALL", 0, false},
		{"None", 0, false},
		{"no-loopback", 0, false},
		{" all", 0, false},
		{"all ", 0, false},
		{"all,none", 0, false},
		{"0", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseOutbound(tt.in)
		if !tt.wantOK {
			if err == nil {
				t.Errorf("ParseOutbound(%q) = %v, want an error", tt.in, got)
			} else if !strings.Contains(err.Error(), "want all, noloopback or none") {
				t.Errorf("ParseOutbound(%q): %v does not list the policies", tt.in, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseOutbound(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestTarget(t *testing.T) {
	ap := netip.MustParseAddrPort
	for _, tt := range []struct {
		o      Outbound
		dst    string
		want   string
		wantOK bool
	}{
		{OutboundAll, "10.0.2.2:8080", "127.0.0.1:8080", true},
		{OutboundAll, "[::ffff:10.0.2.2]:8080", "127.0.0.1:8080", true},
		{OutboundAll, "192.0.2.7:443", "192.0.2.7:443", true},
		{OutboundAll, "[2001:db8::1]:443", "[2001:db8::1]:443", true},
		{OutboundNoLoopback, "10.0.2.2:8080", "", false},
		{OutboundNoLoopback, "127.0.0.1:8080", "", false},
		{OutboundNoLoopback, "192.0.2.7:443", "192.0.2.7:443", true},
		{OutboundNone, "192.0.2.7:443", "", false},
		{OutboundAll, "10.0.2.3:53", "127.0.0.53:53", true},
		{OutboundNoLoopback, "10.0.2.3:53", "127.0.0.53:53", true},
		{OutboundNone, "10.0.2.3:53", "", false},
		{OutboundAll, "10.0.2.3:80", "", false},
	} {
		got, ok := tt.o.Target(ap(tt.dst), Gateway, ap("127.0.0.53:53"))
		if ok != tt.wantOK || (ok && got != ap(tt.want)) {
			t.Errorf("%v.Target(%s) = %v, %v; want %s, %v", tt.o, tt.dst, got, ok, tt.want, tt.wantOK)
		}
	}
	if _, ok := OutboundAll.Target(ap("10.0.2.3:53"), Gateway, netip.AddrPort{}); ok {
		t.Error("the resolver's address led somewhere with no resolver")
	}
}

func TestUpstream(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.53":     "192.0.2.53:53",
		"127.0.0.1:5353": "127.0.0.1:5353",
		"[::1]:5353":     "[::1]:5353",
		"::1":            "[::1]:53",
		"[2001:db8::53]": "[2001:db8::53]:53",
	} {
		if got, err := Upstream(in); err != nil || got.String() != want {
			t.Errorf("Upstream(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"dns.example", "1.2.3.4:x", "1.2.3.4:70000"} {
		if got, err := Upstream(in); err == nil {
			t.Errorf("Upstream(%q) = %v, want an error", in, got)
		}
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "resolv.conf")
	os.WriteFile(conf, []byte("# comment\nsearch example.com\nnameserver fe80::1%eth0\nnameserver 127.0.0.53\nnameserver 192.0.2.1\n"), 0o644)
	if got, err := hostResolver(conf); err != nil || got.String() != "127.0.0.53:53" {
		t.Errorf("hostResolver = %v, %v", got, err)
	}
	os.WriteFile(conf, []byte("search example.com\n"), 0o644)
	if _, err := hostResolver(conf); err == nil || !strings.Contains(err.Error(), "--dns") {
		t.Errorf("no nameserver: %v", err)
	}
	if _, err := hostResolver(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing resolv.conf gave no error")
	}
}
