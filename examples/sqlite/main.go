// Command sqlite is a stock Go program on SQLite (modernc.org/sqlite, pure
// Go, unchanged) that keeps a tally in a database on the volume "data":
//
//	sqlite add NAME N   adds N rows for NAME, one transaction each
//	sqlite count        prints each name's rows and SQLite's integrity check
//
// The database is in WAL mode unless JOURNAL names another journal mode
// (DELETE: a rollback journal). Several copies — unikernels sharing the
// volume, and the same file run as a process on the host — may add at
// once: SQLite serializes them with fcntl record locks, which atoll serves
// with the host's, and in WAL mode shares the log's index through a file
// they all map shared and writable, which atoll maps from the host's file.
package main

import (
	"database/sql"
	"fmt"
	"os"
	"strconv"
	"time"

	_ "modernc.org/sqlite"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "sqlite:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	path := os.Getenv("DB")
	if path == "" {
		path = "/data/tally.db"
	}
	journal := os.Getenv("JOURNAL")
	if journal == "" {
		journal = "WAL"
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(20000)&_pragma=journal_mode("+journal+")")
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE IF NOT EXISTS tally(id INTEGER PRIMARY KEY, name TEXT NOT NULL)"); err != nil {
		return fmt.Errorf("create: %w", err)
	}
	switch {
	case len(args) == 3 && args[0] == "add":
		n, err := strconv.Atoi(args[2])
		if err != nil {
			return err
		}
		start := time.Now()
		for i := 0; i < n; i++ {
			if _, err := db.Exec("INSERT INTO tally(name) VALUES (?)", args[1]); err != nil {
				return fmt.Errorf("insert %d: %w", i, err)
			}
		}
		d := time.Since(start)
		fmt.Printf("added %d for %s in %.3fs: %.0f inserts/s\n", n, args[1], d.Seconds(), float64(n)/d.Seconds())
	case len(args) == 1 && args[0] == "count":
		rows, err := db.Query("SELECT name, count(*) FROM tally GROUP BY name ORDER BY name")
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var name string
			var n int
			if err := rows.Scan(&name, &n); err != nil {
				return err
			}
			fmt.Printf("%s %d\n", name, n)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		var check string
		if err := db.QueryRow("PRAGMA integrity_check").Scan(&check); err != nil {
			return err
		}
		fmt.Println("integrity", check)
	default:
		return fmt.Errorf("usage: sqlite add NAME N | sqlite count")
	}
	return nil
}
