// Command stocknet is an unchanged Go network program — the standard
// library's net and net/http, no Atoll API — for the host backend's tests,
// run natively and under Atoll and compared:
//
//	serve ADDR        net/http on ADDR, printing "listening" once it is
//	get URL           http.Get, printing the status and body
//	selftest          an httptest server and client inside the program;
//	                  prints the server's address
//	udpecho ADDR      echo datagrams on ADDR, upper-cased
//	udpsend ADDR MSG  send MSG to ADDR and print the reply
//	lookup NAME       LookupHost, LookupSRV and LookupTXT of NAME
//	listen ADDR       net.Listen, printing the error if any
//	dial ADDR         net.Dial with a 10 s timeout, printing how it went
//
// Lookups use the system's resolver, unless STOCKNET_RESOLVER names one
// (the native run's stand-in for the resolver Atoll forwards to). It
// blank-imports atoll, as a unikernel on the user backend must, for the
// resolver to reach the network there.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	_ "atoll.dev/atoll"
)

func main() {
	if len(os.Args) < 2 {
		fail(errors.New("usage: stocknet serve|get|selftest|udpecho|udpsend|lookup|listen|dial ARGS"))
	}
	if r := os.Getenv("STOCKNET_RESOLVER"); r != "" {
		net.DefaultResolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, r)
		}}
	}
	arg := func(i int) string {
		if len(os.Args) <= i {
			fail(fmt.Errorf("%s: missing argument", os.Args[1]))
		}
		return os.Args[i]
	}
	switch os.Args[1] {
	case "serve":
		serve(arg(2))
	case "get":
		get(arg(2))
	case "selftest":
		selftest()
	case "udpecho":
		udpecho(arg(2))
	case "udpsend":
		udpsend(arg(2), arg(3))
	case "lookup":
		lookup(arg(2))
	case "listen":
		ln, err := net.Listen("tcp", arg(2))
		if err != nil {
			fmt.Println("listen:", errors.Unwrap(errors.Unwrap(err)))
			return
		}
		fmt.Println("listening")
		ln.Close()
	case "dial":
		start := time.Now()
		c, err := net.DialTimeout("tcp", arg(2), 10*time.Second)
		if err != nil {
			fmt.Printf("dial: %v within a second: %v\n", errors.Unwrap(errors.Unwrap(err)), time.Since(start) < time.Second)
			return
		}
		fmt.Println("connected")
		c.Close()
	default:
		fail(fmt.Errorf("unknown mode %q", os.Args[1]))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "stocknet:", err)
	os.Exit(1)
}

func hello(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "hello from %s %s\n", r.Method, r.URL.Path)
}

func serve(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fail(err)
	}
	fmt.Println("listening")
	fail(http.Serve(ln, http.HandlerFunc(hello)))
}

func get(url string) {
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Get(url)
	if err != nil {
		fail(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		fail(err)
	}
	fmt.Printf("%d %s", resp.StatusCode, body)
}

func selftest() {
	srv := httptest.NewServer(http.HandlerFunc(hello))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/inside")
	if err != nil {
		fail(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Printf("%d %s", resp.StatusCode, body)
	fmt.Fprintln(os.Stderr, "server", srv.Listener.Addr())
	// Keep the server up while the test tries it from outside.
	time.Sleep(time.Duration(envInt("STOCKNET_LINGER_MS")) * time.Millisecond)
}

func envInt(k string) int {
	var n int
	fmt.Sscan(os.Getenv(k), &n)
	return n
}

func udpecho(addr string) {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		fail(err)
	}
	fmt.Println("listening")
	buf := make([]byte, 65536)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			fail(err)
		}
		if string(buf[:n]) == "quit" {
			pc.WriteTo([]byte("bye"), from)
			return
		}
		pc.WriteTo([]byte(strings.ToUpper(string(buf[:n]))), from)
	}
}

func udpsend(addr, msg string) {
	c, err := net.Dial("udp", addr)
	if err != nil {
		fail(err)
	}
	defer c.Close()
	buf := make([]byte, 65536)
	for try := 0; try < 10; try++ {
		c.Write([]byte(msg))
		c.SetReadDeadline(time.Now().Add(time.Second))
		n, err := c.Read(buf)
		if err == nil {
			fmt.Printf("reply %q\n", buf[:n])
			return
		}
	}
	fail(errors.New("no reply"))
}

func lookup(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupHost(ctx, name)
	slices.Sort(addrs)
	fmt.Println("host:", addrs, errText(err))
	_, srvs, err := net.DefaultResolver.LookupSRV(ctx, "http", "tcp", name)
	for _, s := range srvs {
		fmt.Printf("srv: %s:%d %d %d\n", s.Target, s.Port, s.Priority, s.Weight)
	}
	fmt.Println("srv error:", errText(err))
	txts, err := net.DefaultResolver.LookupTXT(ctx, name)
	fmt.Println("txt:", txts, errText(err))
}

func errText(err error) string {
	var dnsErr *net.DNSError
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return "not found"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	}
	return err.Error()
}
