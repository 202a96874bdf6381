package hook

import (
	"bytes"
	"reflect"
	"testing"
	"time"
)

// codecEvents are events of every write point, with the values that are easy to get wrong:
// empty and nil payloads, binary bytes, zero times, user properties with duplicate keys.
func codecEvents() []Event {
	at := time.Unix(1733300000, 123456789)
	m := &Message{ID: "1hrh0ujk8mq7rv7jedroprnj", From: "pub-1", Username: "u", Peerhost: "127.0.0.1:5000", Node: "n1",
		Topic: "a/b/c", QoS: 1, Retain: true, Payload: []byte("\x00\xff{\"t\": 1}"), Timestamp: at,
		UserProperties: []UserProperty{{"k", "v"}, {"k", "v2"}, {"", ""}}}
	empty := &Message{ID: "2", Topic: "t", Payload: []byte{}}
	noPayload := &Message{ID: "3", Topic: "t", QoS: 2}
	return []Event{
		&ConnectedEvent{ClientID: "c", Username: "u", Peerhost: "h", Node: "n", ProtoVer: 5, Keepalive: 65535, CleanStart: true, ConnectedAt: at},
		&ConnectedEvent{ClientID: "c"},
		&DisconnectedEvent{ClientID: "c", Username: "u", Node: "n", Reason: "normal", DisconnectedAt: at},
		&SessionCreatedEvent{ClientID: "c", Username: "u", Node: "n"},
		&SubscribedEvent{ClientID: "c", Username: "u", Topic: "$share/g/a/+", QoS: 2},
		&UnsubscribedEvent{ClientID: "c", Username: "u", Topic: "a/#"},
		&PublishEvent{Message: m},
		&PublishEvent{Message: empty},
		&PublishEvent{Message: noPayload},
		&DeliverEvent{ClientID: "c", Username: "u", Message: m},
		&AckedEvent{ClientID: "c", Username: "u", Message: m},
	}
}

func TestCodecRoundTrip(t *testing.T) {
	for _, e := range codecEvents() {
		b := appendEvent(nil, e)
		got, err := decodeEvent(b)
		if err != nil {
			t.Fatalf("%T: %v", e, err)
		}
		if !reflect.DeepEqual(normalize(got), normalize(e)) {
			t.Errorf("%T round trip:\n got %+v\nwant %+v", e, got, e)
		}
		// Every prefix is refused, never half decoded.
		for n := range len(b) {
			if _, err := decodeEvent(b[:n]); err == nil {
				t.Errorf("%T: the first %d of %d bytes decoded", e, n, len(b))
			}
		}
	}
}

// normalize makes times comparable with DeepEqual: the instant in UTC, no monotonic reading.
func normalize(e Event) Event {
	fix := func(t time.Time) time.Time {
		if t.IsZero() {
			return t
		}
		return t.UTC()
	}
	fixMsg := func(m *Message) *Message {
		c := *m
		c.Timestamp = fix(c.Timestamp)
		return &c
	}
	switch ev := e.(type) {
	case *ConnectedEvent:
		c := *ev
		c.ConnectedAt = fix(c.ConnectedAt)
		return &c
	case *DisconnectedEvent:
		c := *ev
		c.DisconnectedAt = fix(c.DisconnectedAt)
		return &c
	case *PublishEvent:
		return &PublishEvent{Message: fixMsg(ev.Message)}
	case *DeliverEvent:
		c := *ev
		c.Message = fixMsg(c.Message)
		return &c
	case *AckedEvent:
		c := *ev
		c.Message = fixMsg(c.Message)
		return &c
	}
	return e
}

// FuzzDecodeEvent: any bytes decode to an event or an error, never a panic, and what
// decodes encodes back to the same bytes (the encoding is canonical).
func FuzzDecodeEvent(f *testing.F) {
	for _, e := range codecEvents() {
		f.Add(appendEvent(nil, e))
	}
	f.Add([]byte{})
	f.Add([]byte{codecVersion, byte(MessagePublish), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEvent(b)
		if err != nil {
			return
		}
		if again := appendEvent(nil, e); !bytes.Equal(again, b) {
			t.Fatalf("decoded %+v, which encodes to %x, not %x", e, again, b)
		}
	})
}
