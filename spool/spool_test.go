package spool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func open(t *testing.T, dir string, o Options) *Spool {
	t.Helper()
	s, err := Open(dir, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func appendN(t *testing.T, s *Spool, recs ...string) []Seq {
	t.Helper()
	var seqs []Seq
	for _, r := range recs {
		seq, err := s.Append(context.Background(), []byte(r))
		if err != nil {
			t.Fatalf("Append(%q): %v", r, err)
		}
		seqs = append(seqs, seq)
	}
	return seqs
}

type rec struct {
	seq Seq
	rec string
}

func replayAll(t *testing.T, s *Spool) []rec {
	t.Helper()
	var got []rec
	if err := s.Replay(func(seq Seq, r []byte) error {
		got = append(got, rec{seq, string(r)})
		return nil
	}); err != nil {
		t.Fatalf("Replay: %v", err)
	}
	return got
}

func records(recs []rec) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.rec)
	}
	return out
}

// crashCopy copies the spool's files as a killed process leaves them (what was written to the
// operating system), without closing the spool: the copy is what a restart would find. A
// segment being sealed in the background may be renamed under it: then it copies again.
func crashCopy(t *testing.T, dir string) string {
	t.Helper()
	for {
		dst := t.TempDir()
		if err := copyFiles(dir, dst); err == nil {
			return dst
		} else if !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
}

func copyFiles(dir, dst string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.Name() == "LOCK" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// segFiles lists the segment files of dir by base. Call it when no segment is being sealed in
// the background (SyncAlways seals inline; Close waits for it).
func segFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var m []string
	for _, e := range ents {
		if _, _, ok := parseSegName(e.Name()); ok {
			m = append(m, filepath.Join(dir, e.Name()))
		}
	}
	return m // ReadDir sorts by name: by base
}

func TestReleasedRecordsAreNotReplayed(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	seqs := appendN(t, s, "a", "b", "c", "d", "e")
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Fatalf("sequence numbers not increasing: %v", seqs)
		}
	}
	s.Release(seqs[3])
	s.Release(seqs[0])
	s.Release(seqs[0]) // twice: nothing
	s.Release(12345)   // unknown: nothing
	if st := s.Stats(); st.Pending != 3 || st.Appends != 5 {
		t.Fatalf("Stats = %+v, want Pending 3, Appends 5", st)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(context.Background(), []byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v, want ErrClosed", err)
	}

	s2 := open(t, dir, Options{})
	want := []rec{{seqs[1], "b"}, {seqs[2], "c"}, {seqs[4], "e"}}
	if got := replayAll(t, s2); !slices.Equal(got, want) {
		t.Fatalf("Replay = %v, want %v", got, want)
	}
	if st := s2.Stats(); st.Pending != 3 {
		t.Fatalf("Pending after reopen = %d, want 3", st.Pending)
	}
	more := appendN(t, s2, "f")
	if more[0] <= seqs[4] {
		t.Fatalf("seq after reopen %d, want > %d", more[0], seqs[4])
	}
	// Replay again: what is still pending from before Open, not "f".
	s2.Release(seqs[2])
	if got := records(replayAll(t, s2)); !slices.Equal(got, []string{"b", "e"}) {
		t.Fatalf("second Replay = %v, want [b e]", got)
	}
}

func TestReplayedRecordsReleasedThenGone(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	appendN(t, s, "a", "b")
	s.Close()
	s2 := open(t, dir, Options{})
	if err := s2.Replay(func(seq Seq, _ []byte) error { s2.Release(seq); return nil }); err != nil {
		t.Fatal(err)
	}
	if st := s2.Stats(); st.Pending != 0 {
		t.Fatalf("Pending = %d, want 0", st.Pending)
	}
	s2.Close()
	s3 := open(t, dir, Options{})
	if got := replayAll(t, s3); len(got) != 0 {
		t.Fatalf("Replay after releasing everything = %v", got)
	}
	if n := len(segFiles(t, dir)); n != 1 {
		t.Fatalf("%d segment files, want only the active one", n)
	}
}

func TestCrashKeepsEveryAppend(t *testing.T) {
	for _, c := range writePaths {
		for _, p := range []SyncPolicy{SyncNever, SyncInterval, SyncAlways} {
			t.Run(c.name+"/"+p.String(), func(t *testing.T) {
				testCrashKeepsEveryAppend(t, Options{Sync: p, SegmentBytes: 4096, writeOnly: c.writeOnly})
			})
		}
	}
}

// writePaths are the two ways segments are written (see createSegFile).
var writePaths = []struct {
	name      string
	writeOnly bool
}{{"mapped", false}, {"write", true}}

func testCrashKeepsEveryAppend(t *testing.T, opts Options) {
	p := opts.Sync
	dir := t.TempDir()
	s := open(t, dir, opts)
	const writers, each = 16, 40
	var mu sync.Mutex
	appended := map[Seq]string{}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				r := fmt.Sprintf("w%02d-%03d-%s", w, i, bytes.Repeat([]byte("x"), i))
				seq, err := s.Append(context.Background(), []byte(r))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				appended[seq] = r
				mu.Unlock()
				if i%3 == 0 {
					s.Release(seq)
					mu.Lock()
					delete(appended, seq)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	// No Close: restart from the files as they are.
	s2 := open(t, crashCopy(t, dir), opts)
	got := replayAll(t, s2)
	if len(got) != len(appended) {
		t.Fatalf("replayed %d records, want %d", len(got), len(appended))
	}
	for i, r := range got {
		if appended[r.seq] != r.rec {
			t.Fatalf("replayed %d:%q, appended %q", r.seq, r.rec, appended[r.seq])
		}
		if i > 0 && r.seq <= got[i-1].seq {
			t.Fatalf("replay out of order at %d", i)
		}
	}
	if st := s.Stats(); p == SyncAlways && (st.Syncs == 0 || st.Syncs > st.Appends) {
		t.Fatalf("SyncAlways: %d fsyncs for %d appends", st.Syncs, st.Appends)
	}
}

// TestReleasesSinceCheckpointReplayAgain: a crash loses the releases after the last
// checkpoint, never an unreleased record.
func TestReleasesSinceCheckpointReplayAgain(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{CheckpointInterval: time.Hour})
	seqs := appendN(t, s, "a", "b", "c")
	s.Release(seqs[0])
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	s.Release(seqs[1])
	s2 := open(t, crashCopy(t, dir), Options{})
	if got := records(replayAll(t, s2)); !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("Replay = %v, want [b c]", got)
	}
}

// TestSeqNotReusedAfterLostTail: a power loss took records the checkpoint marks released; the
// next records must not get their sequence numbers (they would be taken as released).
func TestSeqNotReusedAfterLostTail(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	seqs := appendN(t, s, "a", "b", "c")
	s.Release(seqs[1])
	s.Release(seqs[2])
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	cp := crashCopy(t, dir)
	seg := segFiles(t, cp)[0]
	if err := os.Truncate(seg, frameSize(1)); err != nil { // only "a" reached the disk
		t.Fatal(err)
	}
	s2 := open(t, cp, Options{})
	if got := records(replayAll(t, s2)); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("Replay = %v, want [a]", got)
	}
	n := appendN(t, s2, "d")
	if n[0] <= seqs[2] {
		t.Fatalf("new record got seq %d, reusing one up to %d", n[0], seqs[2])
	}
	s2.Close()
	s3 := open(t, cp, Options{})
	if got := records(replayAll(t, s3)); !slices.Equal(got, []string{"a", "d"}) {
		t.Fatalf("Replay = %v, want [a d]", got)
	}
}

// TestTornTail: the last segment ends in an interrupted write; Open truncates it, keeps every
// complete record before it, and the spool goes on.
func TestTornTail(t *testing.T) {
	recs := []string{"first", "second", "third record", "fourth"}
	full := frameSize(len("first")) + frameSize(len("second")) + frameSize(len("third record")) + frameSize(len("fourth"))
	last := full - frameSize(len("fourth"))
	cases := []struct {
		name   string
		damage func(b []byte) []byte
		keep   int
	}{
		{"truncated mid-record", func(b []byte) []byte { return b[:full-2] }, 3},
		{"truncated mid-header", func(b []byte) []byte { return b[:last+5] }, 3},
		{"partial frame after the last", func(b []byte) []byte { return append(b, 9, 0, 0, 0, 1, 2) }, 4},
		{"length past the end", func(b []byte) []byte { return append(b, 0xff, 0xff, 0, 0, 1, 2, 3, 4, 'x') }, 4},
		{"zero-filled tail", func(b []byte) []byte { return append(b, make([]byte, 300)...) }, 4},
		{"zeroed last record", func(b []byte) []byte { clear(b[last:]); return b }, 3},
		{"last record's bytes not on disk", func(b []byte) []byte { b[full-1] ^= 0x55; return b }, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			s := open(t, dir, Options{})
			appendN(t, s, recs...)
			s.Close()
			seg := segFiles(t, dir)[0]
			b, _ := os.ReadFile(seg)
			if int64(len(b)) != full {
				t.Fatalf("segment is %d bytes, want %d", len(b), full)
			}
			if err := os.WriteFile(seg, c.damage(b), 0o644); err != nil {
				t.Fatal(err)
			}
			s2 := open(t, dir, Options{})
			if got := records(replayAll(t, s2)); !slices.Equal(got, recs[:c.keep]) {
				t.Fatalf("Replay = %q, want %q", got, recs[:c.keep])
			}
			if st := s2.Stats(); st.TornBytes == 0 {
				t.Fatalf("TornBytes = 0 after a torn tail")
			}
			appendN(t, s2, "after")
			s2.Close()
			s3 := open(t, dir, Options{})
			want := append(slices.Clone(recs[:c.keep]), "after")
			if got := records(replayAll(t, s3)); !slices.Equal(got, want) {
				t.Fatalf("Replay after reopen = %q, want %q", got, want)
			}
		})
	}
}

// TestCorruptionIsReported: damage that is not a torn tail fails Open, naming file and offset.
func TestCorruptionIsReported(t *testing.T) {
	t.Run("middle of the last segment", func(t *testing.T) {
		dir := t.TempDir()
		s := open(t, dir, Options{})
		appendN(t, s, "aaaa", "bbbb", "cccc", "dddd")
		s.Close()
		seg := segFiles(t, dir)[0]
		b, _ := os.ReadFile(seg)
		off := 2 * frameSize(4)
		b[off+frameHeader+1] ^= 1 // a bit flip in "cccc"
		os.WriteFile(seg, b, 0o644)
		_, err := Open(dir, Options{})
		var ce *CorruptError
		if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Open = %v, want a *CorruptError", err)
		}
		if ce.Segment != seg || ce.Offset != off {
			t.Fatalf("CorruptError at %s:%d, want %s:%d", ce.Segment, ce.Offset, seg, off)
		}
	})
	t.Run("tail of an older segment", func(t *testing.T) {
		dir := t.TempDir()
		s := open(t, dir, Options{})
		appendN(t, s, "aaaa", "bbbb")
		s.Close()
		s2 := open(t, dir, Options{}) // a new segment: the first is no longer the last
		appendN(t, s2, "cccc")
		s2.Close()
		seg := segFiles(t, dir)[0]
		os.Truncate(seg, frameSize(4)+3)
		_, err := Open(dir, Options{})
		var ce *CorruptError
		if !errors.As(err, &ce) || ce.Segment != seg || ce.Offset != frameSize(4) {
			t.Fatalf("Open = %v, want a *CorruptError at %s:%d", err, seg, frameSize(4))
		}
	})
}

func TestSegmentsReclaimed(t *testing.T) {
	dir := t.TempDir()
	rec := bytes.Repeat([]byte("r"), 100)
	s := open(t, dir, Options{Sync: SyncAlways, SegmentBytes: 4 * frameSize(100)})
	var seqs []Seq
	for range 12 {
		seqs = append(seqs, appendN(t, s, string(rec))...)
	}
	if st := s.Stats(); st.Segments != 3 || st.Bytes != 12*frameSize(100) {
		t.Fatalf("Stats = %+v, want 3 segments of 4 records", st)
	}
	// Release the middle segment out of order: it goes, the others stay.
	for _, i := range []int{7, 5, 4, 6} {
		s.Release(seqs[i])
	}
	if st := s.Stats(); st.Segments != 2 || st.Bytes != 8*frameSize(100) || st.Pending != 8 {
		t.Fatalf("after releasing a segment: %+v", st)
	}
	if n := len(segFiles(t, dir)); n != 2 {
		t.Fatalf("%d segment files, want 2", n)
	}
	// The active segment stays until the next one starts, even when all released.
	for _, i := range []int{8, 9, 10, 11} {
		s.Release(seqs[i])
	}
	if n := len(segFiles(t, dir)); n != 2 {
		t.Fatalf("%d segment files, want 2", n)
	}
}

func TestFull(t *testing.T) {
	rec := bytes.Repeat([]byte("r"), 100)
	fsz := frameSize(100)
	opts := func(p FullPolicy) Options {
		return Options{MaxBytes: 4 * fsz, SegmentBytes: 2 * fsz, WhenFull: p}
	}
	fill := func(t *testing.T, s *Spool) []Seq {
		var seqs []Seq
		for range 4 {
			seqs = append(seqs, appendN(t, s, string(rec))...)
		}
		return seqs
	}
	t.Run("refuse", func(t *testing.T) {
		s := open(t, t.TempDir(), opts(Refuse))
		seqs := fill(t, s)
		if _, err := s.Append(context.Background(), rec); !errors.Is(err, ErrFull) {
			t.Fatalf("Append to a full spool: %v, want ErrFull", err)
		}
		s.Release(seqs[1]) // frees nothing: its segment still holds seqs[0]
		if _, err := s.Append(context.Background(), rec); !errors.Is(err, ErrFull) {
			t.Fatalf("Append after a partial release: %v, want ErrFull", err)
		}
		s.Release(seqs[0])
		if _, err := s.Append(context.Background(), rec); err != nil {
			t.Fatalf("Append after freeing a segment: %v", err)
		}
	})
	t.Run("block times out", func(t *testing.T) {
		s := open(t, t.TempDir(), opts(Block))
		fill(t, s)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		_, err := s.Append(ctx, rec)
		if !errors.Is(err, ErrFull) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Append = %v, want ErrFull and DeadlineExceeded", err)
		}
		if st := s.Stats(); st.Pending != 4 || st.Bytes != 4*fsz {
			t.Fatalf("a refused append changed the spool: %+v", st)
		}
	})
	t.Run("block until released", func(t *testing.T) {
		s := open(t, t.TempDir(), opts(Block))
		seqs := fill(t, s)
		done := make(chan error)
		go func() {
			_, err := s.Append(context.Background(), rec)
			done <- err
		}()
		s.Release(seqs[2])
		s.Release(seqs[3]) // the active segment: reclaimed by starting a new one
		if err := <-done; err != nil {
			t.Fatalf("blocked Append: %v", err)
		}
	})
	t.Run("close wakes a blocked append", func(t *testing.T) {
		s := open(t, t.TempDir(), opts(Block))
		fill(t, s)
		done := make(chan error)
		go func() {
			_, err := s.Append(context.Background(), rec)
			done <- err
		}()
		s.Close()
		if err := <-done; !errors.Is(err, ErrClosed) {
			t.Fatalf("blocked Append after Close: %v, want ErrClosed", err)
		}
	})
	t.Run("too large", func(t *testing.T) {
		s := open(t, t.TempDir(), opts(Block))
		if _, err := s.Append(context.Background(), make([]byte, 4*fsz)); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("Append of a record larger than MaxBytes: %v, want ErrTooLarge", err)
		}
	})
}

func TestLargeRecordGetsItsOwnSegment(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{SegmentBytes: 4096})
	big := bytes.Repeat([]byte("B"), 10000)
	appendN(t, s, "small", string(big), "small")
	s.Close()
	s2 := open(t, dir, Options{SegmentBytes: 4096})
	if got := records(replayAll(t, s2)); !slices.Equal(got, []string{"small", string(big), "small"}) {
		t.Fatalf("Replay of %d records, want 3 with the big one in the middle", len(got))
	}
}

func TestOneSpoolPerDirectory(t *testing.T) {
	dir := t.TempDir()
	open(t, dir, Options{})
	if s, err := Open(dir, Options{}); err == nil {
		s.Close()
		t.Fatal("a second Open of the same directory succeeded")
	}
}

func TestReplayStopsAtError(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	appendN(t, s, "a", "b", "c")
	s.Close()
	s2 := open(t, dir, Options{})
	boom := errors.New("boom")
	n := 0
	err := s2.Replay(func(Seq, []byte) error { n++; return boom })
	if !errors.Is(err, boom) || n != 1 {
		t.Fatalf("Replay = %v after %d calls, want boom after 1", err, n)
	}
}

func TestDamagedCheckpointReplaysEverything(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	seqs := appendN(t, s, "a", "b")
	s.Release(seqs[0])
	s.Close()
	ck := filepath.Join(dir, ckptName)
	b, _ := os.ReadFile(ck)
	b[len(b)-1] ^= 1
	os.WriteFile(ck, b, 0o644)
	s2 := open(t, dir, Options{})
	if got := records(replayAll(t, s2)); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("Replay = %v, want [a b]", got)
	}
}

// TestTornTailOfAnUnsealedSegment: a power loss before an older segment was sealed (fsynced
// in the background) leaves its tail torn: Open truncates it and keeps the later segments.
func TestTornTailOfAnUnsealedSegment(t *testing.T) {
	dir := t.TempDir()
	first := appendFrame(appendFrame(nil, []byte("a")), []byte("b"))
	first = append(first, appendFrame(nil, []byte("lost"))[:6]...)
	second := appendFrame(nil, []byte("c"))
	os.WriteFile(filepath.Join(dir, segName(1, false)), first, 0o644)
	os.WriteFile(filepath.Join(dir, segName(4, false)), second, 0o644)
	s := open(t, dir, Options{})
	if got := records(replayAll(t, s)); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("Replay = %q, want [a b c]", got)
	}
	if st := s.Stats(); st.TornBytes != 6 {
		t.Fatalf("TornBytes = %d, want 6", st.TornBytes)
	}
	for _, f := range segFiles(t, dir)[:2] {
		if !strings.HasSuffix(f, sealedExt) {
			t.Fatalf("%s not sealed by Open", f)
		}
	}
}

func TestFinishedSegmentsAreSealed(t *testing.T) {
	for _, p := range []SyncPolicy{SyncNever, SyncAlways} {
		t.Run(p.String(), func(t *testing.T) {
			dir := t.TempDir()
			s := open(t, dir, Options{Sync: p, SegmentBytes: 2 * frameSize(1)})
			appendN(t, s, "a", "b", "c", "d", "e")
			s.Close()
			var got []string
			for _, f := range segFiles(t, dir) {
				got = append(got, filepath.Ext(f))
			}
			if want := []string{sealedExt, sealedExt, openExt}; !slices.Equal(got, want) {
				t.Fatalf("segment files %v, want %v", got, want)
			}
		})
	}
}

func TestScan(t *testing.T) {
	s := open(t, t.TempDir(), Options{Sync: SyncNever, SegmentBytes: 3 * frameSize(1)})
	seqs := appendN(t, s, "a", "b", "c", "d", "e", "f", "g")
	s.Release(seqs[1])
	s.Release(seqs[3])
	scan := func(after Seq) []string {
		var got []string
		if err := s.Scan(after, func(_ Seq, r []byte) error { got = append(got, string(r)); return nil }); err != nil {
			t.Fatalf("Scan(%d): %v", after, err)
		}
		return got
	}
	if got := scan(0); !slices.Equal(got, []string{"a", "c", "e", "f", "g"}) {
		t.Fatalf("Scan(0) = %q", got)
	}
	if got := scan(seqs[4]); !slices.Equal(got, []string{"f", "g"}) {
		t.Fatalf("Scan(after e) = %q", got)
	}

	// While others append and release: everything appended before Scan is there, in order.
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			seq, err := s.Append(context.Background(), []byte("x"))
			if err != nil {
				t.Error(err)
				return
			}
			if i%2 == 0 {
				s.Release(seq)
			}
		}
	})
	for range 20 {
		var got []Seq
		if err := s.Scan(0, func(seq Seq, _ []byte) error { got = append(got, seq); return nil }); err != nil {
			t.Fatal(err)
		}
		if len(got) < 5 || !slices.Equal(got[:5], []Seq{seqs[0], seqs[2], seqs[4], seqs[5], seqs[6]}) || !slices.IsSorted(got) {
			t.Fatalf("Scan during appends = %v", got)
		}
	}
	close(done)
	wg.Wait()
}

// TestWriteFailureIsSticky: after a failed write the tail of the log is unknown, so every
// later Append fails; a reopened spool has every record appended before the failure.
func TestWriteFailureIsSticky(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, s, "a", "b")
	s.wmu.Lock()
	s.f.Close() // the next write fails, as on EIO
	s.wmu.Unlock()
	for range 2 {
		if _, err := s.Append(context.Background(), []byte("c")); err == nil {
			t.Fatal("Append after a write failure succeeded")
		}
	}
	if err := s.Close(); err == nil {
		t.Fatal("Close after a write failure reported nothing")
	}
	s2 := open(t, dir, Options{})
	if got := records(replayAll(t, s2)); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("Replay = %q, want [a b]", got)
	}
}

// TestMappedSegment: on Linux the active segment is reserved in full and memory-mapped
// (Append costs a copy), and a segment is trimmed to its records when it is sealed; a record
// larger than the segment goes past the mapping of its own and is kept all the same.
func TestMappedSegment(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("segments are memory-mapped on Linux only")
	}
	dir := t.TempDir()
	s := open(t, dir, Options{SegmentBytes: 64 << 10})
	appendN(t, s, "a", "b")
	seg := segFiles(t, dir)[0]
	if st, err := os.Stat(seg); err != nil || st.Size() != 64<<10 {
		t.Fatalf("active segment: %v, %v; want 64 KiB reserved", st, err)
	}
	big := strings.Repeat("x", 100<<10)
	appendN(t, s, big, "c")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var want int64
	for _, r := range []string{"a", "b"} {
		want += frameSize(len(r))
	}
	if st, err := os.Stat(segFiles(t, dir)[0]); err != nil || st.Size() != want {
		t.Fatalf("first segment after Close: %v, %v; want %d bytes", st, err, want)
	}
	s2 := open(t, dir, Options{SegmentBytes: 64 << 10})
	if got := records(replayAll(t, s2)); !slices.Equal(got, []string{"a", "b", big, "c"}) {
		t.Fatalf("Replay = %d records, want 4", len(got))
	}
}
