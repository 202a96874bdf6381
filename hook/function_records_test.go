package hook

import "testing"

func TestRecords(t *testing.T) {
	m := func(qos byte, retain bool, payload string) *Message {
		return &Message{QoS: qos, Retain: retain, Payload: []byte(payload)}
	}
	for _, tc := range []struct {
		fn   string
		m    *Message
		want bool
	}{
		{OnMessagePublish, m(0, false, "x"), false},
		{OnMessagePublish, m(1, false, "x"), true},
		{OnMessagePublish, m(2, true, ""), true},
		{OnMessageStore, m(0, false, "x"), true},
		{OnMessageRetain, m(1, true, "x"), true},
		{OnMessageRetain, m(1, true, ""), false},
		{OnMessageRetain, m(1, false, "x"), false},
		{OnRetainDelete, m(0, true, ""), true},
		{OnRetainDelete, m(0, true, "x"), false},
		{OnRetainDelete, m(0, false, ""), false},
		{OnMessageStoreKeepLatest, m(0, false, ""), true},
	} {
		if got := Records(tc.fn, tc.m); got != tc.want {
			t.Errorf("Records(%s, qos %d retain %v payload %q) = %v, want %v", tc.fn, tc.m.QoS, tc.m.Retain, tc.m.Payload, got, tc.want)
		}
	}
}
