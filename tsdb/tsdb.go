package tsdb

import (
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/template"
)

// Functions are the built-in functions every sink supports: on_message_publish only.
var Functions = []string{hook.OnMessagePublish}

// CheckRule checks that r is a rule a sink carries out: on_message_publish at
// message.publish, with none of the options given in known refused. The error is a
// *hook.RuleError wrapping hook.ErrUnsupported or hook.ErrUnknownOption.
func CheckRule(r *hook.Rule, known ...string) error {
	a := r.Action
	switch {
	case len(a.SQL) > 0 || len(a.CQL) > 0 || len(a.Commands) > 0:
		return &hook.RuleError{Rule: r.Name, Field: "action", Err: fmt.Errorf("%w: a time-series sink runs no statements; its templates come from its template file", hook.ErrUnsupported)}
	case a.Function != hook.OnMessagePublish:
		return &hook.RuleError{Rule: r.Name, Field: "action.function", Err: fmt.Errorf("%w: function %q (a time-series sink supports %s only)", hook.ErrUnsupported, a.Function, hook.OnMessagePublish)}
	case r.Point != hook.MessagePublish:
		return &hook.RuleError{Rule: r.Name, Field: "action.function", Err: fmt.Errorf("%w: %s at %s (only at %s)", hook.ErrUnsupported, a.Function, r.Point, hook.MessagePublish)}
	case r.ExpiredTime > 0:
		return &hook.RuleError{Rule: r.Name, Field: "expired_time", Err: fmt.Errorf("%w: a time-series sink keeps what its database's retention keeps", hook.ErrUnsupported)}
	}
	return r.CheckOptions(known...)
}

// PublishedMessage returns the message of a message.publish event, or an error wrapping
// hook.ErrInvalidEvent.
func PublishedMessage(e hook.Event) (*hook.Message, error) {
	pe, ok := e.(*hook.PublishEvent)
	if !ok || pe == nil || pe.Message == nil {
		return nil, fmt.Errorf("%w: %T, want a *hook.PublishEvent with a Message", hook.ErrInvalidEvent, e)
	}
	return pe.Message, nil
}

// Values returns what the payload templates render for m.
func Values(m *hook.Message) template.Values {
	return template.Values{
		ClientID: m.From,
		Username: m.Username,
		Peerhost: m.Peerhost,
		Node:     m.Node,
		Topic:    m.Topic,
		MsgID:    m.ID,
		QoS:      m.QoS,
		Payload:  m.Payload,
		TS:       m.Timestamp,
	}
}

// LoadTemplates returns the templates of a pool: the file its "template" setting names
// (path, set), else the file at def if it exists (where EMQX keeps it), else example, the
// spec's example file embedded in the store (what EMQX ships as *_example.tmpl), so that a
// broker started with the store's default configuration runs. logf, when not nil, is told
// which was used.
func LoadTemplates[T any](path string, set bool, def string, example []byte, parse func([]byte) (*template.Set[T], error), logf func(msg string, args ...any)) (*template.Set[T], error) {
	if !set {
		if _, err := os.Stat(def); err != nil {
			if logf != nil {
				logf("no template file: using the spec's example templates", "file", def)
			}
			s, err := parse(example)
			if err != nil {
				return nil, fmt.Errorf("%w: example templates: %w", hook.ErrConfig, err)
			}
			return s, nil
		}
		path = def
	}
	return ReadFile(path, parse)
}

// ReadFile reads a template file for a parse function of package template, naming the file
// in errors.
func ReadFile[T any](path string, parse func([]byte) (*template.Set[T], error)) (*template.Set[T], error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: template file: %w", hook.ErrConfig, err)
	}
	s, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("%w: template file %s: %w", hook.ErrConfig, path, err)
	}
	return s, nil
}

// RateLog logs an event at most once a second, with how many happened since the last line:
// what a sink counts outside its writer's own logging (points a database dropped from a batch
// it otherwise stored). The zero value is ready; it is safe for concurrent use.
type RateLog struct {
	mu      sync.Mutex
	last    time.Time
	pending uint64
	msg     string // of the last event held back
	args    []any
}

// Add counts n events; when a second has passed since the last line, it logs msg with the
// count since then, the args of this event, at warning level.
func (r *RateLog) Add(log *slog.Logger, n uint64, msg string, args ...any) {
	r.mu.Lock()
	r.pending += n
	now := time.Now()
	if now.Sub(r.last) < time.Second {
		r.msg, r.args = msg, args
		r.mu.Unlock()
		return
	}
	count := r.pending
	r.pending, r.last, r.args = 0, now, nil
	r.mu.Unlock()
	log.Warn(msg, append([]any{"count", count}, args...)...)
}

// Flush logs the events held back since the last line, if any (call it on Close).
func (r *RateLog) Flush(log *slog.Logger) {
	r.mu.Lock()
	count, msg, args := r.pending, r.msg, r.args
	r.pending, r.args = 0, nil
	r.mu.Unlock()
	if count > 0 {
		log.Warn(msg, append([]any{"count", count}, args...)...)
	}
}
