// Command fetch GETs the URL given as its argument over the network device
// "service" and prints the status and body: the client half of the
// two-unikernel test.
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"atoll.dev/atoll"
)

func main() {
	network, err := atoll.Net("service")
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	client := &http.Client{
		Timeout:   20 * time.Second,
		Transport: &http.Transport{DialContext: network.DialContext},
	}
	resp, err := client.Get(os.Args[1])
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Printf("%d %s", resp.StatusCode, body)
}
