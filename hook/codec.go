package hook

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// The binary form of the write events, for the spool (Durability Spool): a version byte, the
// point, then each field in a fixed order, strings and byte slices length-prefixed (uvarint),
// integers as varints, times as a presence byte and Unix nanoseconds. It keeps what the
// stores read: nothing of a time but its instant survives (the location and monotonic
// reading do not).
const codecVersion = 1

// errCodec is what a record that is not an encoded event fails with.
var errCodec = errors.New("hook: not an encoded event")

// appendEvent appends the encoding of e to dst.
func appendEvent(dst []byte, e Event) []byte {
	dst = append(dst, codecVersion, byte(e.Point()))
	w := encoder{dst}
	switch ev := e.(type) {
	case *ConnectedEvent:
		w.str(ev.ClientID, ev.Username, ev.Peerhost, ev.Node)
		w.uint(uint64(ev.ProtoVer), uint64(ev.Keepalive), boolUint(ev.CleanStart))
		w.time(ev.ConnectedAt)
	case *DisconnectedEvent:
		w.str(ev.ClientID, ev.Username, ev.Node, ev.Reason)
		w.time(ev.DisconnectedAt)
	case *SessionCreatedEvent:
		w.str(ev.ClientID, ev.Username, ev.Node)
	case *SubscribedEvent:
		w.str(ev.ClientID, ev.Username, ev.Topic)
		w.uint(uint64(ev.QoS))
	case *UnsubscribedEvent:
		w.str(ev.ClientID, ev.Username, ev.Topic)
	case *PublishEvent:
		w.msg(ev.Message)
	case *DeliverEvent:
		w.str(ev.ClientID, ev.Username)
		w.msg(ev.Message)
	case *AckedEvent:
		w.str(ev.ClientID, ev.Username)
		w.msg(ev.Message)
	}
	return w.b
}

type encoder struct{ b []byte }

func (w *encoder) str(ss ...string) {
	for _, s := range ss {
		w.b = binary.AppendUvarint(w.b, uint64(len(s)))
		w.b = append(w.b, s...)
	}
}

func (w *encoder) uint(ns ...uint64) {
	for _, n := range ns {
		w.b = binary.AppendUvarint(w.b, n)
	}
}

func (w *encoder) time(t time.Time) {
	if t.IsZero() {
		w.b = append(w.b, 0)
		return
	}
	w.b = append(w.b, 1)
	w.b = binary.AppendVarint(w.b, t.UnixNano())
}

func (w *encoder) msg(m *Message) {
	w.str(m.ID, m.From, m.Username, m.Peerhost, m.Node, m.Topic)
	w.uint(uint64(m.QoS), boolUint(m.Retain))
	if m.Payload == nil {
		w.b = append(w.b, 0)
	} else {
		w.b = append(w.b, 1)
		w.str(string(m.Payload))
	}
	w.time(m.Timestamp)
	w.uint(uint64(len(m.UserProperties)))
	for _, p := range m.UserProperties {
		w.str(p.Key, p.Value)
	}
}

func boolUint(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// decodeEvent decodes what appendEvent encoded. Strings and payloads are copies: b may be
// reused.
func decodeEvent(b []byte) (Event, error) {
	if len(b) < 2 || b[0] != codecVersion {
		return nil, fmt.Errorf("%w: no version %d header", errCodec, codecVersion)
	}
	r := decoder{b: b[2:]}
	var e Event
	switch Point(b[1]) {
	case ClientConnected:
		ev := &ConnectedEvent{ClientID: r.str(), Username: r.str(), Peerhost: r.str(), Node: r.str()}
		ev.ProtoVer, ev.Keepalive, ev.CleanStart = byte(r.uint(255)), uint16(r.uint(65535)), r.uint(1) == 1
		ev.ConnectedAt = r.time()
		e = ev
	case ClientDisconnected:
		e = &DisconnectedEvent{ClientID: r.str(), Username: r.str(), Node: r.str(), Reason: r.str(), DisconnectedAt: r.time()}
	case SessionCreated:
		e = &SessionCreatedEvent{ClientID: r.str(), Username: r.str(), Node: r.str()}
	case SessionSubscribed:
		e = &SubscribedEvent{ClientID: r.str(), Username: r.str(), Topic: r.str(), QoS: byte(r.uint(2))}
	case SessionUnsubscribed:
		e = &UnsubscribedEvent{ClientID: r.str(), Username: r.str(), Topic: r.str()}
	case MessagePublish:
		e = &PublishEvent{Message: r.msg()}
	case MessageDeliver:
		e = &DeliverEvent{ClientID: r.str(), Username: r.str(), Message: r.msg()}
	case MessageAcked:
		e = &AckedEvent{ClientID: r.str(), Username: r.str(), Message: r.msg()}
	default:
		return nil, fmt.Errorf("%w: unknown point %d", errCodec, b[1])
	}
	if r.err == nil && len(r.b) > 0 {
		r.err = fmt.Errorf("%d bytes after the event", len(r.b))
	}
	if r.err != nil {
		return nil, fmt.Errorf("%w: %v: %v", errCodec, Point(b[1]), r.err)
	}
	return e, nil
}

// decoder reads fields until the first error, after which it returns zero values.
type decoder struct {
	b       []byte
	err     error
	scratch [binary.MaxVarintLen64]byte
}

func (r *decoder) uint(max uint64) uint64 {
	if r.err != nil {
		return 0
	}
	n, k := binary.Uvarint(r.b)
	switch {
	case k <= 0 || k != len(binary.AppendUvarint(r.scratch[:0], n)): // overlong: not what appendEvent writes
		r.err = errors.New("bad integer")
	case n > max:
		r.err = fmt.Errorf("%d out of range [0, %d]", n, max)
	default:
		r.b = r.b[k:]
		return n
	}
	return 0
}

func (r *decoder) bytes() []byte {
	n := r.uint(uint64(len(r.b)))
	if r.err == nil && n > uint64(len(r.b)) { // the length was read off r.b
		r.err = fmt.Errorf("length %d past the end", n)
	}
	if r.err != nil {
		return nil
	}
	p := make([]byte, n)
	copy(p, r.b)
	r.b = r.b[n:]
	return p
}

func (r *decoder) str() string { return string(r.bytes()) }

func (r *decoder) time() time.Time {
	switch r.uint(1) {
	case 0:
		return time.Time{}
	}
	if r.err != nil {
		return time.Time{}
	}
	n, k := binary.Varint(r.b)
	if k <= 0 || k != len(binary.AppendVarint(r.scratch[:0], n)) {
		r.err = errors.New("bad time")
		return time.Time{}
	}
	r.b = r.b[k:]
	return time.Unix(0, n)
}

func (r *decoder) msg() *Message {
	m := &Message{ID: r.str(), From: r.str(), Username: r.str(), Peerhost: r.str(), Node: r.str(), Topic: r.str()}
	m.QoS, m.Retain = byte(r.uint(2)), r.uint(1) == 1
	if r.uint(1) == 1 {
		m.Payload = r.bytes()
	}
	m.Timestamp = r.time()
	n := r.uint(uint64(len(r.b) / 2)) // each property takes two bytes at least
	for range n {
		if r.err != nil {
			break
		}
		m.UserProperties = append(m.UserProperties, UserProperty{Key: r.str(), Value: r.str()})
	}
	return m
}
