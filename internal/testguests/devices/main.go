// Command devices lists its devices, writes a sector to the block device
// "data", syncs it and reads it back.
package main

import (
	"bytes"
	"fmt"
	"os"

	"atoll.dev/atoll"
)

func main() {
	devs, err := atoll.Devices()
	if err != nil {
		fmt.Println("devices:", err)
		os.Exit(1)
	}
	for _, d := range devs {
		fmt.Printf("device %s %s\n", d.Kind, d.Name)
	}
	f, err := atoll.OpenBlock("data")
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	sector := make([]byte, 512)
	copy(sector, "written by the unikernel")
	if _, err := f.WriteAt(sector, 1024); err != nil {
		fmt.Println("write:", err)
		os.Exit(1)
	}
	if err := f.Sync(); err != nil {
		fmt.Println("sync:", err)
		os.Exit(1)
	}
	back := make([]byte, 512)
	if _, err := f.ReadAt(back, 1024); err != nil || !bytes.Equal(back, sector) {
		fmt.Println("read back:", err)
		os.Exit(1)
	}
	_, err = f.WriteAt(sector[:100], 0)
	fmt.Println("unaligned write refused:", err != nil)
	_, err = f.ReadAt(back, 1<<30)
	fmt.Println("read past the end refused:", err != nil)
	fmt.Println("block ok")
}
