package topic

import (
	"fmt"
	"testing"
)

const typicalTopic = "devices/1234/sensor/status"

// benchIndex returns an Index of n filters shaped like a device fleet's
// subscriptions and rules, of which three match typicalTopic.
func benchIndex(n int) *Index[int] {
	x := NewIndex[int]()
	x.Add("devices/+/sensor/status", -1)
	x.Add("$SYS/broker/#", -2)
	for i := range n - 2 {
		id := i / 4
		var f string
		switch i % 4 {
		case 0:
			f = fmt.Sprintf("devices/%d/+/status", id)
		case 1:
			f = fmt.Sprintf("devices/%d/#", id)
		case 2:
			f = fmt.Sprintf("devices/%d/sensor/temp", id)
		case 3:
			f = fmt.Sprintf("tenants/%d/devices/%d/+", id%100, id)
		}
		x.Add(f, i)
	}
	return x
}

func BenchmarkMatch(b *testing.B) {
	for _, c := range []struct{ name, filter, topic string }{
		{"exact", typicalTopic, typicalTopic},
		{"plus", "devices/+/sensor/status", typicalTopic},
		{"hash", "devices/1234/#", typicalTopic},
		{"plus4", "+/+/+/+", typicalTopic},
		{"miss_last_level", "devices/1234/sensor/temp", typicalTopic},
		{"miss_first_level", "tenants/1234/sensor/status", typicalTopic},
		{"dollar_rule", "+/broker/clients/connected", "$SYS/broker/clients/connected"},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				Match(c.filter, c.topic)
			}
		})
	}
}

func BenchmarkIndexMatch(b *testing.B) {
	x := benchIndex(100_000)
	b.Run("100k_filters/append", func(b *testing.B) {
		dst := make([]int, 0, 8)
		for b.Loop() {
			dst = x.MatchAppend(dst[:0], typicalTopic)
		}
		if len(dst) != 3 {
			b.Fatalf("%d results, want 3", len(dst))
		}
	})
	b.Run("100k_filters/new_slice", func(b *testing.B) {
		for b.Loop() {
			x.Match(typicalTopic)
		}
	})
	b.Run("100k_filters/no_match", func(b *testing.B) {
		for b.Loop() {
			x.Match("sensors/1234/sensor/status")
		}
	})
	b.Run("100k_filters/parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			dst := make([]int, 0, 8)
			for pb.Next() {
				dst = x.MatchAppend(dst[:0], typicalTopic)
			}
		})
	})
}

// BenchmarkIndexAdd adds a new filter to an Index of 100,000.
func BenchmarkIndexAdd(b *testing.B) {
	x := benchIndex(100_000)
	filters := make([]string, b.N)
	for i := range filters {
		filters[i] = fmt.Sprintf("devices/%d/+/status", 100_000+i)
	}
	b.ResetTimer()
	for i, f := range filters {
		x.Add(f, i)
	}
}

// BenchmarkIndexAddRemove adds and removes a filter in an Index of 100,000.
func BenchmarkIndexAddRemove(b *testing.B) {
	x := benchIndex(100_000)
	for b.Loop() {
		x.Add("devices/1234/+/alarm", 1)
		x.Remove("devices/1234/+/alarm", 1)
	}
}
