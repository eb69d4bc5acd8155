// Command www is a small web server unikernel: a static site compiled in
// with embed, and one dynamic endpoint. It listens on the network device
// "service" its manifest declares.
//
//	atoll run -p 8080:80 ./examples/www     # as a VM; curl localhost:8080
//	go run ./examples/www -addr :8080       # the same code as a process
package main

import (
	"embed"
	"encoding/json"
	"flag"
	"io/fs"
	"log"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"atoll.dev/atoll"
)

//go:embed static
var static embed.FS

func main() {
	addr := flag.String("addr", ":80", "address to listen on")
	flag.Parse()
	network, err := atoll.Net("service")
	if err != nil {
		log.Fatal(err)
	}
	ln, err := network.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("www: serving on %s", ln.Addr())
	log.Fatal(http.Serve(ln, handler()))
}

// handler serves the site and /api/hello.
func handler() http.Handler {
	site, err := fs.Sub(static, "static")
	if err != nil {
		panic(err)
	}
	start := time.Now()
	host, _ := os.Hostname() // once: under atoll each call is a VM exit
	var hits atomic.Int64
	mux := http.NewServeMux()
	mux.Handle("/", http.FileServerFS(site))
	mux.HandleFunc("GET /api/hello", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"message":  "hello from " + host,
			"requests": hits.Add(1),
			"uptime":   time.Since(start).Round(time.Millisecond).String(),
		})
	})
	return mux
}
