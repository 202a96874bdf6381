package spool

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestRestartsAgainstAModel appends, releases in random order, checkpoints and crashes (copy
// of the files, no Close) or closes at random, many times over, with small segments, and
// checks each restart against a model: every record appended and not released is replayed,
// and nothing else is, except releases newer than the last checkpoint.
func TestRestartsAgainstAModel(t *testing.T) {
	for _, c := range writePaths {
		for seed := range uint64(4) {
			t.Run(fmt.Sprint(c.name, "/", seed), func(t *testing.T) {
				testRestartsAgainstAModel(t, seed, Options{Sync: SyncAlways, SegmentBytes: 512, MaxBytes: 1 << 20, CheckpointInterval: time.Hour, writeOnly: c.writeOnly})
			})
		}
	}
}

func testRestartsAgainstAModel(t *testing.T, seed uint64, opts Options) {
	rng := rand.New(rand.NewPCG(seed, 14))
	dir := t.TempDir()
	pending := map[Seq]string{}      // appended, not released
	uncheckpointed := map[Seq]bool{} // released since the last checkpoint
	var last Seq
	for round := range 12 {
		s, err := Open(dir, opts)
		if err != nil {
			t.Fatalf("round %d: Open: %v", round, err)
		}
		replayed := map[Seq]string{}
		if err := s.Replay(func(seq Seq, r []byte) error { replayed[seq] = string(r); return nil }); err != nil {
			t.Fatalf("round %d: Replay: %v", round, err)
		}
		for seq, r := range pending {
			if replayed[seq] != r {
				t.Fatalf("round %d: record %d %q not replayed (got %q)", round, seq, r, replayed[seq])
			}
		}
		for seq := range replayed {
			if _, ok := pending[seq]; !ok && !uncheckpointed[seq] {
				t.Fatalf("round %d: record %d replayed, released before the last checkpoint", round, seq)
			}
			pending[seq] = replayed[seq] // released again by the dispatcher later, as a replay
		}
		clear(uncheckpointed)
		for range 20 + rng.IntN(60) {
			switch op := rng.IntN(10); {
			case op < 6:
				r := fmt.Sprintf("r%d-%d", round, rng.IntN(1000))
				seq, err := s.Append(context.Background(), []byte(r))
				if err != nil {
					t.Fatalf("round %d: Append: %v", round, err)
				}
				if seq <= last {
					t.Fatalf("round %d: seq %d after %d", round, seq, last)
				}
				last = seq
				pending[seq] = r
			case op < 9:
				if len(pending) == 0 {
					continue
				}
				keys := slices.Sorted(maps.Keys(pending))
				seq := keys[rng.IntN(len(keys))]
				s.Release(seq)
				delete(pending, seq)
				uncheckpointed[seq] = true
			default:
				if err := s.Checkpoint(); err != nil {
					t.Fatal(err)
				}
				clear(uncheckpointed)
			}
		}
		if rng.IntN(2) == 0 {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			clear(uncheckpointed)
		} else {
			cp := crashCopy(t, dir)
			s.Close()
			dir = cp
		}
		if st := s.Stats(); st.Pending != int64(len(pending)) {
			t.Fatalf("round %d: Stats.Pending = %d, model %d", round, st.Pending, len(pending))
		}
	}
}
