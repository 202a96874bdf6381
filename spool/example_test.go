package spool_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/mqttstore/mqttstore/spool"
)

// A write is appended before it is dispatched and released once stored; after a restart the
// records not released are replayed.
func Example() {
	dir, err := os.MkdirTemp("", "spool-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	opts := spool.Options{Sync: spool.SyncAlways, WhenFull: spool.Refuse}

	s, err := spool.Open(dir, opts)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	a, _ := s.Append(ctx, []byte("message a"))
	s.Append(ctx, []byte("message b")) // its store write never completes
	s.Release(a)                       // a is stored
	s.Close()                          // or a crash

	s, err = spool.Open(dir, opts)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	err = s.Replay(func(seq spool.Seq, rec []byte) error {
		fmt.Printf("replay %d: %s\n", seq, rec)
		s.Release(seq) // dispatched again and stored
		return nil
	})
	fmt.Println("replay error:", err, "pending:", s.Stats().Pending)
	// Output:
	// replay 2: message b
	// replay error: <nil> pending: 0
}
