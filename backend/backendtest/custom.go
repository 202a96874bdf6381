package backendtest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mqttstore/mqttstore/hook"
)

// The placeholders of ARCHITECTURE.md ("Custom actions"), and those a client.connected
// event has.
var (
	publishVars   = []string{"clientid", "username", "peerhost", "node", "topic", "qos", "msgid", "payload", "ts"}
	connectedVars = []string{"clientid", "username", "peerhost", "node", "ts"}
)

func (s *suite) testCustomActions(t *testing.T) {
	c := s.h.Custom
	if c == nil {
		t.Skip("Harness.Custom is nil: the store has no custom actions")
	}
	open := func(t *testing.T) *env {
		e := s.open(t)
		if c.Setup != nil {
			c.Setup(t, e.b)
		}
		return e
	}
	recorder := func(e *env, p hook.Point, vars []string) hook.WriteAction {
		e.t.Helper()
		return e.prepareWriter(e.rule(p, c.Record(vars)))
	}

	t.Run("PublishPlaceholders", func(t *testing.T) {
		e := open(t)
		rec := recorder(e, hook.MessagePublish, publishVars)
		m1, m2 := e.msg("cu/a", 1, "hello"), e.msg("cu/b/c", 2, `{"temp":21.5}`)
		m2.From, m2.Username, m2.Peerhost, m2.Node = "client-2", "user-2", "2001:db8::2", "emqx@10.0.0.2"
		e.publish(rec, m1, m2)
		e.flush()
		s.checkRecords(e, "msgid", publishVars, publishRecords(m1, m2), nil, 0)
	})
	t.Run("ConnectedPlaceholders", func(t *testing.T) {
		e := open(t)
		rec := recorder(e, hook.ClientConnected, connectedVars)
		events := []*hook.ConnectedEvent{
			{ClientID: "c1", Username: "u1", Peerhost: "192.0.2.1", Node: "emqx@10.0.0.1", ProtoVer: 4, ConnectedAt: time.Now()},
			{ClientID: "c2", Username: "", Peerhost: "192.0.2.2", Node: "emqx@10.0.0.2", ProtoVer: 5, ConnectedAt: time.Now()},
		}
		var want []expectedRecord
		for _, ev := range events {
			e.write(rec, ev)
			want = append(want, expectedRecord{
				Record: Record{"clientid": ev.ClientID, "username": ev.Username, "peerhost": ev.Peerhost, "node": ev.Node},
				ts:     ev.ConnectedAt,
			})
		}
		e.flush()
		s.checkRecords(e, "peerhost", connectedVars, want, nil, 0)
	})
	t.Run("HostileValuesStoredExactlyOrRefused", func(t *testing.T) {
		e := open(t)
		// What the built-in functions stored before must survive the custom statements.
		var canary, canaryRetained *hook.Message
		if s.anyFetch() != "" { // Run made sure there is a storeFunction too
			canary = e.msg("canary/msg", 1, "canary")
			e.publish(e.writer(hook.MessagePublish, s.storeFunction()), canary)
		}
		if s.fns[hook.OnMessageRetain] && s.fns[hook.OnRetainLookup] {
			canaryRetained = e.msg("canary/retained", 1, "canary")
			canaryRetained.Retain = true
			e.publish(e.writer(hook.MessagePublish, hook.OnMessageRetain), canaryRetained)
		}
		e.flush()

		e.allowFailed = true
		failedBefore := e.failedWrites()
		rec := recorder(e, hook.MessagePublish, publishVars)
		values := append([]string{
			"nul\x00byte", "\x00", "bad\xff\xfeutf8\xc3(", "mixed 'quote\x00 and \xff",
		}, specialValues...)
		var msgs []*hook.Message
		refused := make(map[string]bool) // msgid -> Write returned an error
		for i, v := range values {
			tp := "cu/" + v
			if !validTopicName(v) {
				tp = fmt.Sprint("cu/value", i)
			}
			m := e.msg(tp, byte(i%3), v)
			m.From, m.Username, m.Peerhost, m.Node = v, v, v, v
			msgs = append(msgs, m)
			if err := rec.Write(context.Background(), &hook.PublishEvent{Message: m}); err != nil {
				t.Logf("Write refused %q: %v", v, err)
				refused[m.ID] = true
			}
		}
		e.flush()
		s.checkRecords(e, "msgid", publishVars, publishRecords(msgs...), refused, failedBefore)

		if canary != nil {
			checkMessages(t, "fetch of the message stored before the custom statements ran",
				e.fetch(e.looker(hook.SessionSubscribed, s.anyFetch()), "s1", canary.Topic), canary)
		}
		if canaryRetained != nil {
			checkMessageSet(t, "retained lookup of the message retained before the custom statements ran",
				e.retained(e.looker(hook.SessionSubscribed, hook.OnRetainLookup), "s1", canaryRetained.Topic), canaryRetained)
		}
	})
	t.Run("UnknownPlaceholderRefused", func(t *testing.T) {
		e := open(t)
		r := e.rule(hook.MessagePublish, c.Record([]string{"clientid", "no_such_var"}))
		if _, err := e.b.Prepare(r); err == nil {
			t.Errorf("Prepare(%s) accepted the unknown placeholder ${no_such_var}: %+v", r.Name, r.Action)
		} else if !strings.Contains(err.Error(), "no_such_var") {
			t.Errorf("Prepare(%s) error %q does not name the placeholder", r.Name, err)
		} else if p := ruleErrorProblem(r, err); p != "" {
			t.Errorf("Prepare(%s) error %q %s", r.Name, err, p)
		}
	})
}

// anyFetch returns a fetch function the store lists, or "".
func (s *suite) anyFetch() string {
	for _, fn := range []string{hook.OnMessageFetch, hook.OnMessageFetchForPubsub, hook.OnMessageFetchForQueue} {
		if s.fns[fn] {
			return fn
		}
	}
	return ""
}

// expectedRecord is what a custom action should store for one event; ts, when set, is the
// time ${ts} stands for.
type expectedRecord struct {
	Record
	ts time.Time
}

func publishRecords(msgs ...*hook.Message) []expectedRecord {
	var out []expectedRecord
	for _, m := range msgs {
		out = append(out, expectedRecord{
			Record: Record{
				"clientid": m.From, "username": m.Username, "peerhost": m.Peerhost, "node": m.Node, "topic": m.Topic,
				"qos": strconv.Itoa(int(m.QoS)), "msgid": m.ID, "payload": string(m.Payload),
			},
			ts: m.Timestamp,
		})
	}
	return out
}

// checkRecords compares what the custom action stored with want, matching records by the
// value of key. An expected record may be missing only if its write was refused: Write
// returned an error (refused[key]), or the value is one a database may refuse (NUL, invalid
// UTF-8) and the store counted the failure in Stats.Failed (above failedBefore).
func (s *suite) checkRecords(e *env, key string, vars []string, want []expectedRecord, refused map[string]bool, failedBefore uint64) {
	t := e.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	got, err := s.h.Custom.Read(ctx, e.b)
	if err != nil {
		t.Fatalf("Harness.Custom.Read: %v", err)
	}
	byKey := make(map[string]Record)
	for _, r := range got {
		if _, dup := byKey[r[key]]; dup {
			t.Errorf("two records with %s %q: the event was recorded twice", key, r[key])
		}
		byKey[r[key]] = r
	}
	var mayMiss int
	for _, w := range want {
		k := w.Record[key]
		g, ok := byKey[k]
		if !ok {
			switch {
			case refused[k]:
			case needsBinarySafety(w.Record):
				mayMiss++
			default:
				t.Errorf("no record for the event with %s %q, though its values are valid UTF-8 without NUL: %s", key, k, formatRecord(w.Record))
			}
			continue
		}
		delete(byKey, k)
		for _, v := range vars {
			if v == "ts" {
				if g[v] != tsText(w.ts) {
					t.Errorf("record %s %q: ts = %q, want %q (%v in Unix milliseconds)", key, k, g[v], tsText(w.ts), w.ts)
				}
			} else if g[v] != w.Record[v] {
				t.Errorf("record %s %q: %s = %q, want %q (byte for byte)", key, k, v, g[v], w.Record[v])
			}
		}
	}
	for k, r := range byKey {
		t.Errorf("unexpected record with %s %q: %s", key, k, formatRecord(r))
	}
	if mayMiss > 0 {
		if failed := e.failedWrites() - failedBefore; failed < uint64(mayMiss) {
			t.Errorf("%d events holding NUL or invalid UTF-8 were neither recorded nor refused: Write returned nil and Stats.Failed grew by %d (a store that refuses a value must count it, or return it from Write)", mayMiss, failed)
		}
	}
}

func needsBinarySafety(r Record) bool {
	for _, v := range r {
		if strings.IndexByte(v, 0) >= 0 || !utf8.ValidString(v) {
			return true
		}
	}
	return false
}

func formatRecord(r Record) string {
	var parts []string
	for _, v := range publishVars {
		if val, ok := r[v]; ok {
			parts = append(parts, fmt.Sprintf("%s=%q", v, val))
		}
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// validTopicName reports whether "cu/"+v is a topic name a broker would accept.
func validTopicName(v string) bool {
	return utf8.ValidString(v) && !strings.ContainsAny(v, "\x00+#") &&
		!strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 })
}

// tsText is how ${ts} renders t: integer milliseconds since the Unix epoch (package template).
func tsText(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }
