// Command framespray sends hostile Ethernet frames out of a host interface,
// for the tests that check a unikernel keeps serving under bad traffic:
// random bytes, truncated and lying IPv4/ARP/TCP headers, runts and
// oversized frames, to a destination MAC and to broadcast.
//
//	framespray IFACE DSTMAC COUNT SEED
package main

import (
	"encoding/binary"
	"fmt"
	"math/rand"
	"net"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: framespray IFACE DSTMAC COUNT SEED")
		os.Exit(2)
	}
	ifi, err := net.InterfaceByName(os.Args[1])
	check(err)
	dst, err := net.ParseMAC(os.Args[2])
	check(err)
	count, _ := strconv.Atoi(os.Args[3])
	seed, _ := strconv.ParseInt(os.Args[4], 10, 64)
	rng := rand.New(rand.NewSource(seed))

	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL)))
	check(err)
	sll := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}
	check(unix.Bind(fd, sll))

	sent := 0
	for i := 0; i < count; i++ {
		f := frame(rng, dst, ifi.HardwareAddr)
		if err := unix.Sendto(fd, f, 0, sll); err == nil {
			sent++
		}
	}
	fmt.Printf("sent %d of %d frames\n", sent, count)
}

// frame makes one hostile frame.
func frame(rng *rand.Rand, dst, src net.HardwareAddr) []byte {
	to := dst
	if rng.Intn(4) == 0 {
		to = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	}
	hdr := append(append([]byte{}, to...), src...)
	types := []uint16{0x0800, 0x0806, 0x86dd, uint16(rng.Intn(65536))}
	hdr = binary.BigEndian.AppendUint16(hdr, types[rng.Intn(len(types))])
	var body []byte
	switch rng.Intn(5) {
	case 0: // runt: a partial header
		return hdr[:rng.Intn(len(hdr))]
	case 1: // random payload of random size, up to oversized
		body = make([]byte, rng.Intn(2000))
		rng.Read(body)
	case 2: // IPv4 header that lies about its lengths
		binary.BigEndian.PutUint16(hdr[12:], 0x0800)
		body = make([]byte, 20+rng.Intn(60))
		rng.Read(body)
		body[0] = 0x40 | byte(rng.Intn(16)) // version 4, any IHL
		binary.BigEndian.PutUint16(body[2:], uint16(rng.Intn(65536)))
		body[9] = []byte{1, 6, 17, byte(rng.Intn(256))}[rng.Intn(4)]
	case 3: // ARP with random fields
		binary.BigEndian.PutUint16(hdr[12:], 0x0806)
		body = make([]byte, rng.Intn(40))
		rng.Read(body)
	case 4: // truncated TCP segment to port 80
		binary.BigEndian.PutUint16(hdr[12:], 0x0800)
		body = make([]byte, 20+rng.Intn(20))
		rng.Read(body)
		body[0], body[9] = 0x45, 6
		binary.BigEndian.PutUint16(body[2:], uint16(len(body)))
		if len(body) >= 24 {
			binary.BigEndian.PutUint16(body[22:], 80)
		}
	}
	return append(hdr, body...)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "framespray:", err)
		os.Exit(1)
	}
}
