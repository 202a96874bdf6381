package hook

import (
	"reflect"
	"testing"
)

func TestMergeResults(t *testing.T) {
	m1, m2, m3, m3b := msg("1", "a"), msg("2", "a"), msg("3", "b"), msg("3", "b-again")
	anon1, anon2 := msg("", "x"), msg("", "x")
	r1, r2 := msg("r1", "a"), msg("r2", "b")
	in := []Result{
		{Offline: []*Message{m1, m2}, Subscriptions: []Subscription{{"a/#", 1}, {"b", 0}}},
		{},
		{Offline: []*Message{m2, nil, m3, anon1}, Retained: []*Message{r1, m2, r1}, Subscriptions: []Subscription{{"b", 2}, {"c", 1}}},
		{Offline: []*Message{m3b, m1, anon2}, Retained: []*Message{r2, anon1, nil}, Subscriptions: []Subscription{{"a/#", 0}, {"c", 1}}},
	}
	got := MergeResults(in...)
	want := Result{
		Offline:       []*Message{m1, m2, m3, anon1, anon2},
		Retained:      []*Message{r1, r2, anon1}, // m2 is delivered once, as an offline message
		Subscriptions: []Subscription{{"a/#", 1}, {"b", 2}, {"c", 1}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("MergeResults =\n%+v\nwant\n%+v", got, want)
	}
	for i, m := range got.Offline {
		if m != want.Offline[i] {
			t.Errorf("message %d is %p, want the first occurrence %p", i, m, want.Offline[i])
		}
	}
	// The inputs are unchanged (the merged "b" took QoS 2; the input's stays 0).
	if in[0].Subscriptions[1].QoS != 0 || len(in[2].Offline) != 4 {
		t.Errorf("inputs modified: %+v", in)
	}
	// A single result is de-duplicated too.
	one := MergeResults(Result{Offline: []*Message{m1, m1}, Retained: []*Message{r1, r1}, Subscriptions: []Subscription{{"a", 0}, {"a", 1}}})
	if len(one.Offline) != 1 || len(one.Retained) != 1 || !reflect.DeepEqual(one.Subscriptions, []Subscription{{"a", 1}}) {
		t.Errorf("MergeResults(one) = %+v", one)
	}
	if empty := MergeResults(); !empty.Empty() || empty.Subscriptions != nil {
		t.Errorf("MergeResults() = %+v", empty)
	}
}
