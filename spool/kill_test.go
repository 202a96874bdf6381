package spool

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"
)

// TestKill9 kills (SIGKILL) a process appending under SyncNever after it reported 2000
// appends as returned, and checks that the restarted spool replays every one of them.
func TestKill9(t *testing.T) {
	if dir := os.Getenv("SPOOL_KILL9_DIR"); dir != "" {
		kill9Child(dir)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9$")
	cmd.Env = append(os.Environ(), "SPOOL_KILL9_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	const reported = 2000
	sc := bufio.NewScanner(out)
	acked := map[Seq]string{}
	for len(acked) < reported && sc.Scan() {
		var seq Seq
		var rec string
		if _, err := fmt.Sscan(sc.Text(), &seq, &rec); err != nil {
			t.Fatalf("child said %q: %v", sc.Text(), err)
		}
		acked[seq] = rec
	}
	cmd.Process.Kill()
	cmd.Wait()
	if len(acked) < reported {
		t.Fatalf("child reported %d appends before it stopped", len(acked))
	}
	s := open(t, dir, Options{})
	got := map[Seq]string{}
	for _, r := range replayAll(t, s) {
		got[r.seq] = r.rec
	}
	for seq, rec := range acked {
		if got[seq] != rec {
			t.Fatalf("record %d (%q) acknowledged before the kill, replayed as %q", seq, rec, got[seq])
		}
	}
	t.Logf("killed after %d acknowledged appends; %d replayed", len(acked), len(got))
}

func kill9Child(dir string) {
	s, err := Open(dir, Options{Sync: SyncNever, SegmentBytes: 16 << 10})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for i := 0; ; i++ {
		rec := "rec-" + strconv.Itoa(i)
		seq, err := s.Append(context.Background(), []byte(rec))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		if i%5 == 0 {
			s.Release(seq)
			continue
		}
		fmt.Println(seq, rec) // unbuffered: a line the parent reads is of a returned Append
	}
}
