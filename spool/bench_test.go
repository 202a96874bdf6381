package spool

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

const benchRecord = 256

// BenchmarkAppend appends 256-byte records, each released right after (as the stores would,
// later), so the spool reclaims segments and b.N is not bounded by MaxBytes. "16" runs 16
// appending goroutines. records/fsync shows group commit under SyncAlways.
func BenchmarkAppend(b *testing.B) {
	for _, p := range []SyncPolicy{SyncNever, SyncInterval, SyncAlways} {
		for _, par := range []int{1, 16} {
			b.Run(p.String()+"/"+strconv.Itoa(par), func(b *testing.B) {
				s, err := Open(b.TempDir(), Options{Sync: p})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				rec := make([]byte, benchRecord)
				ctx := context.Background()
				b.ReportAllocs()
				b.SetBytes(benchRecord)
				b.ResetTimer()
				run(b, par, func() {
					seq, err := s.Append(ctx, rec)
					if err != nil {
						b.Error(err)
						return
					}
					s.Release(seq)
				})
				b.StopTimer()
				st := s.Stats()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
				if p == SyncAlways && st.Syncs > 0 {
					b.ReportMetric(float64(st.Appends)/float64(st.Syncs), "records/fsync")
				}
			})
		}
	}
}

// BenchmarkRawFile is the baseline: one os.File Write of 256 bytes per record ("write"), plus
// an f.Sync per record ("write+sync"), concurrent writers serialized by a mutex.
func BenchmarkRawFile(b *testing.B) {
	for _, fsync := range []bool{false, true} {
		name := "write"
		if fsync {
			name = "write+sync"
		}
		for _, par := range []int{1, 16} {
			b.Run(name+"/"+strconv.Itoa(par), func(b *testing.B) {
				f, err := os.Create(filepath.Join(b.TempDir(), "raw"))
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				rec := make([]byte, benchRecord)
				var mu sync.Mutex
				b.ReportAllocs()
				b.SetBytes(benchRecord)
				b.ResetTimer()
				run(b, par, func() {
					mu.Lock()
					defer mu.Unlock()
					if _, err := f.Write(rec); err != nil {
						b.Error(err)
					}
					if fsync {
						if err := f.Sync(); err != nil {
							b.Error(err)
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
			})
		}
	}
}

// run calls op b.N times from par goroutines.
func run(b *testing.B, par int, op func()) {
	if par == 1 {
		for b.Loop() {
			op()
		}
		return
	}
	var n atomic.Int64
	var wg sync.WaitGroup
	for range par {
		wg.Go(func() {
			for n.Add(1) <= int64(b.N) {
				op()
			}
		})
	}
	wg.Wait()
}
