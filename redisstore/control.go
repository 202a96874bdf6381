package redisstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"sync/atomic"

	"github.com/redis/go-redis/v9"

	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/topic"
)

// ControlType is what a control request asks for.
type ControlType uint8

const (
	Subscribe   ControlType = iota + 1 // "subscribe"
	Unsubscribe                        // "unsubscribe"
)

func (t ControlType) String() string {
	switch t {
	case Subscribe:
		return "subscribe"
	case Unsubscribe:
		return "unsubscribe"
	}
	return "ControlType(" + strconv.Itoa(int(t)) + ")"
}

// Control is a SUB/UNSUB request published on the control channel by a business server:
//
//	PUBLISH mqtt_channel '{"type": "subscribe", "topic": "topic0", "clientid": "test", "qos": 1}'
//	PUBLISH mqtt_channel '{"type": "unsubscribe", "topic": "topic0", "clientid": "test"}'
type Control struct {
	Type     ControlType
	ClientID string
	Topic    string // a topic filter
	QoS      byte   // Subscribe only
}

// ErrControl is wrapped by the errors of ParseControl.
var ErrControl = errors.New("malformed control message")

// ParseControl reads a control request: a JSON object with "type" ("subscribe" or
// "unsubscribe"), "clientid" (not empty), "topic" (a valid topic filter) and, for subscribe,
// "qos": 0, 1 or 2, as a number or a string of one digit (the spec's example sends "0"; an
// absent or null qos means 0). Other members are ignored. The error wraps ErrControl and says
// what is wrong.
func ParseControl(data []byte) (Control, error) {
	var raw struct {
		Type     *string         `json:"type"`
		Topic    *string         `json:"topic"`
		ClientID *string         `json:"clientid"`
		QoS      json.RawMessage `json:"qos"`
	}
	fail := func(format string, args ...any) (Control, error) {
		return Control{}, fmt.Errorf("%w: %s", ErrControl, fmt.Sprintf(format, args...))
	}
	if t := bytes.TrimSpace(data); len(t) == 0 || t[0] != '{' {
		return fail("not a JSON object")
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return fail("%v", err)
	}
	var c Control
	switch {
	case raw.Type == nil:
		return fail(`no "type"`)
	case *raw.Type == "subscribe":
		c.Type = Subscribe
	case *raw.Type == "unsubscribe":
		c.Type = Unsubscribe
	default:
		return fail(`"type" %q is neither "subscribe" nor "unsubscribe"`, *raw.Type)
	}
	if raw.ClientID == nil || *raw.ClientID == "" {
		return fail(`no "clientid"`)
	}
	c.ClientID = *raw.ClientID
	if raw.Topic == nil {
		return fail(`no "topic"`)
	}
	if err := topic.ValidateFilter(*raw.Topic); err != nil {
		return fail(`"topic": %v`, err)
	}
	c.Topic = *raw.Topic
	if c.Type == Subscribe {
		q, err := parseQoS(raw.QoS)
		if err != nil {
			return fail(`"qos": %v`, err)
		}
		c.QoS = q
	}
	return c, nil
}

func parseQoS(raw json.RawMessage) (byte, error) {
	v := string(bytes.TrimSpace(raw))
	if v == "" || v == "null" {
		return 0, nil
	}
	if v[0] == '"' {
		if err := json.Unmarshal(raw, &v); err != nil {
			return 0, err
		}
	}
	switch v {
	case "0", "1", "2":
		return v[0] - '0', nil
	}
	return 0, fmt.Errorf("%s is not 0, 1 or 2", raw)
}

// ControlStats counts the control channel's traffic.
type ControlStats struct {
	Subscribed uint64 // times the listener (re)subscribed to the channel: 1, plus one per reconnection
	Received   uint64 // messages received
	Applied    uint64 // requests recorded in mqtt:sub and accepted by OnControl
	Malformed  uint64 // messages ParseControl refused (logged)
	Failed     uint64 // valid requests whose recording or OnControl failed (logged)
}

// ControlStats returns the control channel's counters (zero without Config.OnControl).
func (s *Store) ControlStats() ControlStats {
	if s.ctl == nil {
		return ControlStats{}
	}
	c := s.ctl
	return ControlStats{
		Subscribed: c.subscribed.Load(), Received: c.received.Load(), Applied: c.applied.Load(),
		Malformed: c.malformed.Load(), Failed: c.failed.Load(),
	}
}

// listener reads the control channel. go-redis's PubSub reconnects and subscribes again by
// itself when the connection breaks (a Redis restart, a failover); requests published while
// it is down are lost, as pub/sub messages are.
type listener struct {
	ps                                               *redis.PubSub
	done                                             chan struct{}
	subscribed, received, applied, malformed, failed atomic.Uint64
}

func (s *Store) listen(channel string, handle func(context.Context, Control) error) *listener {
	l := &listener{ps: s.client.Subscribe(context.Background(), channel), done: make(chan struct{})}
	ch := l.ps.ChannelWithSubscriptions(redis.WithChannelSize(1024))
	go func() {
		defer close(l.done)
		for m := range ch {
			switch m := m.(type) {
			case *redis.Subscription:
				if m.Kind == "subscribe" {
					l.subscribed.Add(1)
				}
			case *redis.Message:
				l.received.Add(1)
				s.control(l, channel, m.Payload, handle)
			}
		}
	}()
	return l
}

// control handles one message of the channel.
func (s *Store) control(l *listener, channel, payload string, handle func(context.Context, Control) error) {
	c, err := ParseControl([]byte(payload))
	if err != nil {
		l.malformed.Add(1)
		s.log.Warn("ignoring a malformed control message", "channel", channel, "message", clipText(payload), "error", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.QueryTimeout)
	defer cancel()
	var recErr error
	if c.Type == Subscribe {
		recErr = s.AddSubscription(ctx, c.ClientID, hook.Subscription{Topic: c.Topic, QoS: c.QoS})
	} else {
		recErr = s.DeleteSubscription(ctx, c.ClientID, c.Topic)
	}
	err = callControl(ctx, handle, c)
	if recErr != nil || err != nil {
		l.failed.Add(1)
		s.log.Error("control request failed", "channel", channel, "type", c.Type, "clientid", c.ClientID, "topic", c.Topic,
			"record_error", recErr, "handler_error", err)
		return
	}
	l.applied.Add(1)
}

// callControl runs the host's handler, turning a panic into an error.
func callControl(ctx context.Context, handle func(context.Context, Control) error, c Control) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("OnControl panicked: %v\n%s", r, debug.Stack())
		}
	}()
	return handle(ctx, c)
}

// close stops the listener; Store.Close calls it once.
func (l *listener) close() {
	l.ps.Close()
	<-l.done
}

func clipText(s string) string {
	if len(s) > 256 {
		return strconv.Quote(s[:256]) + "…"
	}
	return strconv.Quote(s)
}
