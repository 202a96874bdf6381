package hook

import (
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// decodeIDTime returns the time part of an ID.
func decodeIDTime(t *testing.T, id string) uint64 {
	t.Helper()
	var v uint64
	for _, c := range []byte(id[:IDTimeLen]) {
		d := strings.IndexByte(idDigits, c)
		if d < 0 {
			t.Fatalf("ID %q: %q is not a base32hex digit", id, c)
		}
		v = v<<5 | uint64(d)
	}
	return v
}

// fakeClock returns the given times in turn, then the last one forever.
func fakeClock(times ...int64) func() int64 {
	var mu sync.Mutex
	return func() int64 {
		mu.Lock()
		defer mu.Unlock()
		t := times[0]
		if len(times) > 1 {
			times = times[1:]
		}
		return t
	}
}

func TestIDFormat(t *testing.T) {
	g := NewIDGenerator("emqx@10.0.0.1")
	g.now = fakeClock(1_700_000_000_123_456_789)
	id := g.Next()
	if len(id) != IDLen || IDLen != 24 {
		t.Fatalf("ID %q has length %d, want IDLen = 24", id, len(id))
	}
	if strings.Trim(id, idDigits) != "" {
		t.Fatalf("ID %q holds characters outside %q", id, idDigits)
	}
	if got := decodeIDTime(t, id); got != 1_700_000_000_123_456_789 {
		t.Errorf("time part of %q = %d", id, got)
	}
	node := func(id string) string { return id[IDTimeLen : IDTimeLen+idNodeLen] }
	same := NewIDGenerator("emqx@10.0.0.1").Next()
	other := NewIDGenerator("emqx@10.0.0.2").Next()
	if node(same) != node(id) || node(other) == node(id) {
		t.Errorf("node parts: %q and %q for the same name, %q for another", node(id), node(same), node(other))
	}
}

func TestIDClockStepsBack(t *testing.T) {
	g := NewIDGenerator("n")
	g.now = fakeClock(1000, 2000, 1500, 1500, 1999, 2003, -5, 5000)
	wantTimes := []uint64{1000, 2000, 2001, 2002, 2003, 2004, 2005, 5000}
	var ids []string
	for i, want := range wantTimes {
		id := g.Next()
		if got := decodeIDTime(t, id); got != want {
			t.Errorf("ID %d: time part %d, want %d", i, got, want)
		}
		if i > 0 && id <= ids[i-1] {
			t.Errorf("ID %d %q is not greater than the previous %q", i, id, ids[i-1])
		}
		ids = append(ids, id)
	}
}

// The string order of IDs is the numeric order of their times, across every digit boundary.
func TestIDStringOrderIsTimeOrder(t *testing.T) {
	enc := func(v uint64) string {
		var b [IDTimeLen]byte
		encodeBase32(b[:], v)
		return string(b[:])
	}
	values := []uint64{0, 1, 31, 32, 1023, 1024, 1<<60 - 1, 1 << 60, 1<<63 - 1, 1 << 63, 1<<64 - 1}
	for range 10000 {
		values = append(values, rand.Uint64()>>rand.IntN(64))
	}
	slices.Sort(values)
	for i := 1; i < len(values); i++ {
		a, b := enc(values[i-1]), enc(values[i])
		if (values[i-1] < values[i]) != (a < b) {
			t.Fatalf("%d < %d but %q >= %q", values[i-1], values[i], a, b)
		}
	}
}

// Many goroutines: every ID unique, each goroutine's IDs increasing. Run with -race.
func TestIDConcurrent(t *testing.T) {
	g := NewIDGenerator("n")
	const workers, each = 8, 20000
	ids := make([][]string, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range each {
				ids[w] = append(ids[w], g.Next())
			}
		})
	}
	wg.Wait()
	seen := make(map[string]bool, workers*each)
	for _, list := range ids {
		for i, id := range list {
			if seen[id] {
				t.Fatalf("duplicate ID %q", id)
			}
			seen[id] = true
			if i > 0 && id <= list[i-1] {
				t.Fatalf("ID %q after %q in one goroutine", id, list[i-1])
			}
		}
	}
}

// With a stuck clock, a million IDs are still unique and increasing.
func TestIDStuckClock(t *testing.T) {
	g := NewIDGenerator("n")
	g.now = fakeClock(42)
	prev := g.Next()
	for range 1_000_000 {
		id := g.Next()
		if id <= prev {
			t.Fatalf("ID %q after %q", id, prev)
		}
		prev = id
	}
}

func BenchmarkIDGeneratorNext(b *testing.B) {
	g := NewIDGenerator("emqx@127.0.0.1")
	b.ReportAllocs()
	for b.Loop() {
		_ = g.Next()
	}
}

func BenchmarkIDGeneratorNextParallel(b *testing.B) {
	g := NewIDGenerator("emqx@127.0.0.1")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = g.Next()
		}
	})
}

func TestIDTimePrefix(t *testing.T) {
	g := NewIDGenerator("n")
	g.now = fakeClock(1_700_000_000_123_456_789)
	id := g.Next()
	if p := IDTimePrefix(time.Unix(0, 1_700_000_000_123_456_789)); p != id[:IDTimeLen] {
		t.Errorf("IDTimePrefix of the ID's time = %q, want %q", p, id[:IDTimeLen])
	}
	if p := IDTimePrefix(time.Unix(0, 1_700_000_000_123_456_788)); p >= id {
		t.Errorf("IDTimePrefix a nanosecond earlier = %q, not below %q", p, id)
	}
	if p := IDTimePrefix(time.Unix(-5, 0)); p != strings.Repeat("0", IDTimeLen) {
		t.Errorf("IDTimePrefix before the epoch = %q, want zeros", p)
	}
	if !IsGeneratedID(id) {
		t.Errorf("IsGeneratedID(%q) = false", id)
	}
	for _, bad := range []string{"", id[1:], id + "0", strings.ToUpper(id), id[:IDLen-1] + "w", id[:IDLen-1] + "-"} {
		if IsGeneratedID(bad) {
			t.Errorf("IsGeneratedID(%q) = true", bad)
		}
	}
}
