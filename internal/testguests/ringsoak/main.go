// Command ringsoak serves HTTP on the network device "service" until a
// client asks for /quit; then it lets the connections settle, prints the
// frames its device moved through the frame rings ("frames in=N out=M"),
// and exits. The soak test compares those counts with the monitor's.
//
// GET /echo?n=N answers N bytes derived from N, so a client can check
// every body.
package main

import (
	"bytes"
	"fmt"
	"log"
	"net/http"
	"os"
	"strconv"
	"time"

	"atoll.dev/atoll"
)

func main() {
	network, err := atoll.Net("service")
	if err != nil {
		log.Fatal(err)
	}
	ln, err := network.Listen("tcp", ":80")
	if err != nil {
		log.Fatal(err)
	}
	quit := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /echo", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.URL.Query().Get("n"))
		if err != nil || n < 0 || n > 1<<20 {
			http.Error(w, "bad n", http.StatusBadRequest)
			return
		}
		w.Write(body(n))
	})
	mux.HandleFunc("GET /quit", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		fmt.Fprintln(w, "bye")
		close(quit)
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	<-quit
	// Let the last responses and their acknowledgements cross, and the
	// closes finish, before counting.
	time.Sleep(500 * time.Millisecond)
	srv.Close()
	time.Sleep(time.Second)
	counter, ok := network.(interface {
		FrameCounts() (in, out uint64, ok bool)
	})
	if !ok {
		log.Fatal("the network has no frame counts")
	}
	in, out, ok := counter.FrameCounts()
	if !ok {
		log.Fatal("the device is not driven through frame rings")
	}
	fmt.Printf("frames in=%d out=%d\n", in, out)
	os.Exit(0)
}

// body is the answer to /echo?n=N: N bytes of one letter.
func body(n int) []byte {
	return bytes.Repeat([]byte{byte('a' + n%26)}, n)
}
