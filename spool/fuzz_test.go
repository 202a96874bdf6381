package spool

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// refParse is an independent reading of the frame format: the complete, intact frames at the
// start of b, and where they end.
func refParse(b []byte) (recs []string, end int64) {
	tab := crc32.MakeTable(crc32.Castagnoli)
	for len(b) >= 8 {
		n := binary.LittleEndian.Uint32(b)
		if uint64(n) > uint64(len(b)-8) {
			break
		}
		if crc32.Update(crc32.Checksum(b[:4], tab), tab, b[8:8+n]) != binary.LittleEndian.Uint32(b[4:]) {
			break
		}
		recs = append(recs, string(b[8:8+n]))
		b = b[8+n:]
		end += 8 + int64(n)
	}
	return recs, end
}

// FuzzOpenSegment writes the frames of head's comma-separated records followed by arbitrary
// bytes as the only segment file, open or sealed. Open must not panic; it either keeps exactly
// the complete records before the damage (every record of head at least) or reports a
// *CorruptError at the end of them (always, for damage in a sealed segment); and the spool must
// then work.
func FuzzOpenSegment(f *testing.F) {
	frame := func(r string) []byte { return appendFrame(nil, []byte(r)) }
	f.Add([]byte("a,b,c"), []byte(nil), false)
	f.Add([]byte("a,b"), frame("torn")[:7], false)
	f.Add([]byte("a,b"), frame("torn")[:10], true)
	f.Add([]byte("x"), make([]byte, 100), false)
	f.Add([]byte(""), []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}, false)
	f.Add([]byte("hello,world"), append([]byte("garbage!"), frame("after")...), false)
	f.Add([]byte("one"), append(frame("two"), 1, 2, 3), true)
	bad := frame("flipped")
	bad[9] ^= 1
	f.Add([]byte("ok"), append(bad, frame("next")...), false)
	f.Add([]byte(nil), []byte("\x00\x00\x00\x00\xc7\x4b\x67\x48"), true)
	f.Fuzz(func(t *testing.T, head, tail []byte, sealed bool) {
		var file []byte
		var wrote []string
		if len(head) > 0 {
			for _, r := range bytes.Split(head, []byte(",")) {
				file = appendFrame(file, r)
				wrote = append(wrote, string(r))
			}
		}
		file = append(file, tail...)
		want, end := refParse(file)
		if len(want) < len(wrote) || !slices.Equal(want[:len(wrote)], wrote) {
			t.Fatalf("reference parser lost records: %q of %q", want, wrote)
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, segName(1, sealed)), file, 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := Open(dir, Options{Sync: SyncNever})
		if err != nil {
			var ce *CorruptError
			if !errors.As(err, &ce) || ce.Offset != end {
				t.Fatalf("Open = %v, want a *CorruptError at offset %d", err, end)
			}
			return
		}
		if sealed && end != int64(len(file)) {
			t.Fatalf("Open of a sealed segment damaged at %d of %d succeeded", end, len(file))
		}
		got := records(replayAll(t, s))
		if !slices.Equal(got, want) {
			t.Fatalf("Replay = %q, want %q", got, want)
		}
		if st := s.Stats(); st.TornBytes != int64(len(file))-end {
			t.Fatalf("TornBytes = %d, want %d", st.TornBytes, int64(len(file))-end)
		}
		if _, err := s.Append(context.Background(), []byte("new")); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s2, err := Open(dir, Options{Sync: SyncNever})
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		defer s2.Close()
		if got := records(replayAll(t, s2)); !slices.Equal(got, append(want, "new")) {
			t.Fatalf("Replay after reopen = %q, want %q", got, append(want, "new"))
		}
	})
}
