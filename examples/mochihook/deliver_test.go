package mochihook

import (
	"testing"

	"github.com/mqttstore/mqttstore/hook"
)

func TestRoutedLive(t *testing.T) {
	here, there := hook.NewIDGenerator("node1"), hook.NewIDGenerator("node2")
	before, otherBefore := here.Next(), there.Next()
	since := here.Next()
	after, otherAfter := here.Next(), there.Next()
	restarted := hook.NewIDGenerator("node1").Next() // same node, another process
	for _, tc := range []struct {
		name, id string
		want     bool
	}{
		{"this node, before", before, false},
		{"this node, after", after, true},
		{"this node, another generator, after", restarted, true},
		{"another node, before", otherBefore, false},
		{"another node, after: mochi never saw it", otherAfter, false},
		{"not an ID of ours", "42", false},
	} {
		if got := routedLive(tc.id, since); got != tc.want {
			t.Errorf("%s: routedLive(%q, %q) = %v, want %v", tc.name, tc.id, since, got, tc.want)
		}
	}
}
