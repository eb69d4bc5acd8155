// Command bolt is a stock Go program on bbolt (go.etcd.io/bbolt, etcd's
// storage engine), unchanged, that keeps a tally in a database on the
// volume "data":
//
//	bolt add NAME N   adds N keys for NAME, one transaction each, reading
//	                  each back in a transaction of its own
//	bolt count        prints each name's keys and bbolt's consistency check
//
// bbolt reads its pages through a read-only shared mapping of the file and
// writes them with pwrite, so each transaction reads what the one before
// wrote through the mapping; atoll keeps such a mapping current with the
// guest's own writes (docs/abi.md, section 3).
package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"

	bolt "go.etcd.io/bbolt"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bolt:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	path := os.Getenv("DB")
	if path == "" {
		path = "/data/tally.bolt"
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	switch {
	case len(args) == 3 && args[0] == "add":
		n, err := strconv.Atoi(args[2])
		if err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			key := fmt.Appendf(nil, "%s/%06d", args[1], i)
			value := bytes.Repeat([]byte{byte(i)}, 200)
			if err := db.Update(func(tx *bolt.Tx) error {
				b, err := tx.CreateBucketIfNotExists([]byte("tally"))
				if err != nil {
					return err
				}
				return b.Put(key, value)
			}); err != nil {
				return fmt.Errorf("put %s: %w", key, err)
			}
			if err := db.View(func(tx *bolt.Tx) error {
				if got := tx.Bucket([]byte("tally")).Get(key); !bytes.Equal(got, value) {
					return fmt.Errorf("read %s back: %d bytes, not what was put", key, len(got))
				}
				return nil
			}); err != nil {
				return err
			}
		}
		fmt.Printf("added %d for %s\n", n, args[1])
	case len(args) == 1 && args[0] == "count":
		return db.View(func(tx *bolt.Tx) error {
			counts := map[string]int{}
			var names []string
			b := tx.Bucket([]byte("tally"))
			if b != nil {
				b.ForEach(func(k, _ []byte) error {
					name := string(k[:bytes.LastIndexByte(k, '/')])
					if counts[name] == 0 {
						names = append(names, name)
					}
					counts[name]++
					return nil
				})
			}
			for _, name := range names {
				fmt.Printf("%s %d\n", name, counts[name])
			}
			for err := range tx.Check() {
				return fmt.Errorf("check: %w", err)
			}
			fmt.Println("check ok")
			return nil
		})
	default:
		return fmt.Errorf("usage: bolt add NAME N | bolt count")
	}
	return nil
}
