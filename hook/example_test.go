package hook_test

import (
	"context"
	"fmt"
	"log"
	"strings"
	"sync"

	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/topic"
)

// retainStore is a tiny in-memory store that supports two built-in functions:
// on_message_retain (a write) and on_retain_lookup (a lookup).
type retainStore struct {
	mu       sync.Mutex
	retained []*hook.Message // in arrival order, one per topic
}

type writeFunc func(hook.Event) error

func (f writeFunc) Write(_ context.Context, e hook.Event) error { return f(e) }

type lookupFunc func(context.Context, hook.Event) (hook.Result, error)

func (f lookupFunc) Lookup(ctx context.Context, e hook.Event) (hook.Result, error) { return f(ctx, e) }

// Prepare turns each rule into an action once; the actions do no rule interpretation.
func (s *retainStore) Prepare(r *hook.Rule) (hook.Action, error) {
	switch r.Action.Function {
	case hook.OnMessageRetain:
		return writeFunc(s.retain), nil
	case hook.OnRetainLookup:
		return lookupFunc(s.lookup), nil
	}
	return nil, fmt.Errorf("retainStore: unsupported action %+v", r.Action)
}

func (s *retainStore) retain(e hook.Event) error {
	m := e.(*hook.PublishEvent).Message
	if !m.Retain || len(m.Payload) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, old := range s.retained {
		if old.Topic == m.Topic {
			s.retained[i] = m
			return nil
		}
	}
	s.retained = append(s.retained, m)
	fmt.Printf("retained %s = %s\n", m.Topic, m.Payload)
	return nil
}

func (s *retainStore) lookup(ctx context.Context, e hook.Event) (hook.Result, error) {
	filter := e.(*hook.SubscribedEvent).Topic
	s.mu.Lock()
	defer s.mu.Unlock()
	var res hook.Result
	for _, m := range s.retained {
		if topic.Match(filter, m.Topic) {
			res.Retained = append(res.Retained, m)
		}
	}
	return res, nil
}

func (s *retainStore) Close(context.Context) error { return nil }

func Example() {
	// Rules as an EMQX 4.x configuration writes them.
	conf := `
backend.mem.hook.message.publish.1    = {"topic": "sensor/#", "action": {"function": "on_message_retain"}, "pool": "pool1"}
backend.mem.hook.session.subscribed.1 = {"topic": "#", "action": {"function": "on_retain_lookup"}, "pool": "pool1"}`
	var rules []hook.Rule
	for _, line := range strings.Split(strings.TrimSpace(conf), "\n") {
		key, value, _ := strings.Cut(line, "=")
		key = strings.TrimSpace(key)
		_, point, err := hook.ParseRuleKey(key)
		if err != nil {
			log.Fatal(err)
		}
		r, err := hook.ParseRule(key, point, []byte(value))
		if err != nil {
			log.Fatal(err)
		}
		rules = append(rules, r)
	}

	d := hook.NewDispatcher(hook.DispatcherOptions{Node: "node1"})
	if err := d.Register(context.Background(), "mem", new(retainStore), rules...); err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	for _, m := range []*hook.Message{
		{Topic: "sensor/1/temp", Retain: true, Payload: []byte("21.5")},
		{Topic: "sensor/2/temp", Retain: true, Payload: []byte("19.0")},
		{Topic: "sensor/2/temp", Payload: []byte("19.5")},           // not retained
		{Topic: "other/1/temp", Retain: true, Payload: []byte("0")}, // no rule for other/#
	} {
		if err := d.MessagePublish(ctx, &hook.PublishEvent{Message: m}); err != nil {
			log.Fatal(err)
		}
	}

	res, err := d.SessionSubscribed(ctx, &hook.SubscribedEvent{ClientID: "c1", Topic: "sensor/+/temp", QoS: 1})
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range res.Retained {
		fmt.Printf("deliver %s = %s (has an ID: %v)\n", m.Topic, m.Payload, len(m.ID) == hook.IDLen)
	}
	if err := d.Close(ctx); err != nil {
		log.Fatal(err)
	}
	// Output:
	// retained sensor/1/temp = 21.5
	// retained sensor/2/temp = 19.0
	// deliver sensor/1/temp = 21.5 (has an ID: true)
	// deliver sensor/2/temp = 19.0 (has an ID: true)
}

func ExampleIDGenerator() {
	ids := hook.NewIDGenerator("emqx@10.0.0.1")
	a, b := ids.Next(), ids.Next()
	fmt.Println(len(a), a < b)
	// Output: 24 true
}

func ExampleParseRule() {
	r, err := hook.ParseRule("backend.pgsql.hook.session.subscribed.1", hook.SessionSubscribed,
		[]byte(`{"topic": "#", "action": {"function": "on_message_fetch"}, "offline_opts": {"max_returned_count": 500, "time_range": "2h"}, "pool": "pool1"}`))
	fmt.Printf("%v %q %s pool=%s max=%d range=%v lookup=%v\n", r.Point, r.Topic, r.Action.Function, r.Pool,
		r.OfflineOpts.MaxReturnedCount, r.OfflineOpts.TimeRange, r.IsLookup())

	_, err = hook.ParseRule("backend.cassa.hook.session.unsubscribed.1", hook.SessionUnsubscribed,
		[]byte(`{"topic": "#", action": {"cql": ["delete from acked where client_id = ${clientid} and topic = ${topic}"]}, "pool": "pool1"}`))
	fmt.Println(err)
	// Output:
	// session.subscribed "#" on_message_fetch pool=pool1 max=500 range=2h0m0s lookup=true
	// hook: rule "backend.cassa.hook.session.unsubscribed.1": invalid JSON at byte 16, near "opic\": \"#\", action\": {\"cq": invalid character 'a' looking for beginning of object key string
}
