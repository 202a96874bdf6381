package topic

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
)

func sorted(s []int) []int { slices.Sort(s); return s }

func TestIndexZeroValue(t *testing.T) {
	var x Index[string]
	if got := x.Match("a"); got != nil || x.Len() != 0 || x.Remove("a", "v") {
		t.Fatalf("empty index: Match = %v, Len = %d", got, x.Len())
	}
	x.Add("a/+", "v")
	if got := x.Match("a/b"); !slices.Equal(got, []string{"v"}) {
		t.Errorf("Match = %v", got)
	}
	if y := NewIndex[string](); y.Len() != 0 || y.Match("a") != nil {
		t.Error("NewIndex is not empty")
	}
}

func TestIndexPairs(t *testing.T) {
	var x Index[int]
	x.Add("a/b", 1)
	x.Add("a/b", 1) // already present: no-op
	x.Add("a/+", 1) // same value, second filter
	x.Add("a/#", 2)
	x.Add("#", 3)
	x.Add("+/b", 4)
	if x.Len() != 4+0+1 {
		t.Errorf("Len = %d, want 5", x.Len())
	}
	if got := sorted(x.Match("a/b")); !slices.Equal(got, []int{1, 1, 2, 3, 4}) {
		t.Errorf("Match(a/b) = %v", got)
	}
	if got := sorted(x.Match("a")); !slices.Equal(got, []int{2, 3}) {
		t.Errorf("Match(a) = %v", got)
	}
	if got := x.Match("$a/b"); got != nil {
		t.Errorf("4.7.2-1: Match($a/b) = %v, want nothing", got)
	}
	if !x.Remove("a/b", 1) || x.Remove("a/b", 1) || x.Remove("a/b", 9) || x.Remove("x/y", 1) || x.Remove("a/#", 3) {
		t.Error("Remove reports wrongly whether the pair was present")
	}
	if got := sorted(x.Match("a/b")); !slices.Equal(got, []int{1, 2, 3, 4}) {
		t.Errorf("after Remove, Match(a/b) = %v", got)
	}
	if x.Len() != 4 {
		t.Errorf("Len = %d, want 4", x.Len())
	}
}

// TestIndexRemovePrunes checks that removing every pair leaves an empty trie,
// so that churn does not leak nodes.
func TestIndexRemovePrunes(t *testing.T) {
	var x Index[int]
	var filters []string
	for i := range 2000 {
		filters = append(filters,
			fmt.Sprintf("devices/%d/+/status", i),
			fmt.Sprintf("devices/%d/#", i),
			fmt.Sprintf("devices/%d", i),
			fmt.Sprintf("+/%d/#/x", i%7),
		)
	}
	for i, f := range filters {
		x.Add(f, i)
	}
	if got := sorted(x.Match("devices/12/temp/status")); !slices.Equal(got, []int{4 * 12, 4*12 + 1}) {
		t.Errorf("Match = %v", got)
	}
	for i, f := range filters {
		if !x.Remove(f, i) {
			t.Fatalf("Remove(%q, %d) = false", f, i)
		}
	}
	if tr := x.trie.Load(); tr.root != nil || tr.len != 0 {
		t.Errorf("after removing everything: root %+v, len %d", tr.root, tr.len)
	}
}

func TestIndexMatchAppendDoesNotAllocate(t *testing.T) {
	x := benchIndex(10000)
	dst := make([]int, 0, 16)
	var n int
	allocs := testing.AllocsPerRun(100, func() {
		n = len(x.MatchAppend(dst[:0], typicalTopic))
	})
	if allocs != 0 || n != 3 {
		t.Errorf("MatchAppend: %v allocations, %d results (want 0 and 3)", allocs, n)
	}
}

// TestKids exercises the hash trie below the Index with chosen hashes, to
// reach the deep branches and the full-collision lists that real hashes of a
// few thousand keys do not.
func TestKids(t *testing.T) {
	hashes := []uint64{
		0, 1 << 63, // differ only in the last bit: branches down to shift 60
		1<<64 - 1, 1<<64 - 1, 1<<64 - 1, // full collisions
		31, 31 | 1<<5, 0x1F << 50,
		42,
	}
	keys := make([]string, len(hashes))
	nodes := make([]*node[int], len(hashes))
	hashOf := map[string]uint64{}
	for i, h := range hashes {
		keys[i] = fmt.Sprint("key", i)
		nodes[i] = &node[int]{exact: []int{i}}
		hashOf[keys[i]] = h
	}
	hash := func(s string) uint64 { return hashOf[s] }
	var k *kids[int]
	check := func(present func(int) bool) {
		t.Helper()
		for i, h := range hashes {
			got := k.get(keys[i], h)
			if want := present(i); want && got != nodes[i] || !want && got != nil {
				t.Errorf("get(%s) = %v, present %v", keys[i], got, want)
			}
		}
		if k.get("other", hashes[2]) != nil || k.get("other", 7) != nil {
			t.Error("get of an absent key found something")
		}
	}
	for _, order := range [][]int{{0, 1, 2, 3, 4, 5, 6, 7, 8}, {8, 4, 3, 2, 7, 6, 5, 1, 0}, {2, 0, 5, 3, 1, 8, 6, 4, 7}} {
		k = nil
		for _, i := range order {
			k = k.with(keys[i], nodes[i], hash, 0)
		}
		check(func(int) bool { return true })
		// Replace the node of a key in a collision list and of a leaf.
		for _, i := range []int{3, 8} {
			old, oldNode := k, nodes[i]
			nodes[i] = &node[int]{exact: []int{100 + i}}
			k = k.with(keys[i], nodes[i], hash, 0)
			if old.get(keys[i], hashes[i]) != oldNode {
				t.Error("with modified the old version")
			}
		}
		check(func(int) bool { return true })
		// Remove one by one, checking the rest and that old versions are untouched.
		gone := map[int]bool{}
		for _, i := range order {
			old := k
			k = k.without(keys[i], hashes[i], 0)
			if old.get(keys[i], hashes[i]) != nodes[i] {
				t.Fatal("without modified the old version")
			}
			gone[i] = true
			check(func(j int) bool { return !gone[j] })
		}
		if k != nil {
			t.Errorf("order %v: not empty after removing everything: %+v", order, k)
		}
	}
}

// TestIndexConcurrent runs writers and readers at once (meant for -race).
// Readers check what every version of the index must answer: the permanent
// pairs always match, and nothing that cannot match ever does.
func TestIndexConcurrent(t *testing.T) {
	var x Index[int]
	x.Add("#", -1)
	x.Add("dev/+/status", -2)
	var stop atomic.Bool
	var writers, readers sync.WaitGroup
	for w := range 2 {
		writers.Go(func() {
			for i := 0; !stop.Load(); i++ {
				f := fmt.Sprintf("dev/%d/%s", i%50, []string{"status", "+", "#"}[(i+w)%3])
				x.Add(f, i%50)
				if i%3 != w {
					x.Remove(f, i%50)
				}
			}
		})
	}
	for r := range 4 {
		readers.Go(func() {
			var dst []int
			for i := range 20000 {
				id := (i + r) % 60
				dst = x.MatchAppend(dst[:0], fmt.Sprintf("dev/%d/status", id))
				if !slices.Contains(dst, -1) || !slices.Contains(dst, -2) {
					t.Errorf("permanent pairs missing: %v", dst)
					return
				}
				for _, v := range dst {
					if v >= 0 && v != id {
						t.Errorf("dev/%d/status matched value %d", id, v)
						return
					}
				}
				if x.Len() < 2 {
					t.Errorf("Len = %d", x.Len())
					return
				}
			}
		})
	}
	readers.Wait()
	stop.Store(true)
	writers.Wait()
}
