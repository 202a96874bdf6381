package memstore_test

import (
	"context"
	"fmt"
	"log"

	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/memstore"
)

// A broker's glue tested without a database: a memstore.Store registered on a dispatcher
// stores the messages published while a client is away, and hands them over when it
// subscribes again.
func Example() {
	ctx := context.Background()
	store, err := memstore.New(memstore.Config{})
	if err != nil {
		log.Fatal(err)
	}
	d := hook.NewDispatcher(hook.DispatcherOptions{Node: "node1@127.0.0.1"})
	defer d.Close(ctx)
	err = d.Register(ctx, "mem", store,
		hook.Rule{Point: hook.MessagePublish, Topic: "sensors/#", Action: hook.RuleAction{Function: hook.OnMessagePublish}},
		hook.Rule{Point: hook.SessionSubscribed, Topic: "sensors/#", Action: hook.RuleAction{Function: hook.OnMessageFetch}},
		hook.Rule{Point: hook.MessageAcked, Topic: "sensors/#", Action: hook.RuleAction{Function: hook.OnMessageAcked}},
	)
	if err != nil {
		log.Fatal(err)
	}

	publish := func(payloads ...string) {
		for _, p := range payloads {
			m := &hook.Message{From: "sensor-1", Topic: "sensors/kitchen", QoS: 1, Payload: []byte(p)}
			if err := d.MessagePublish(ctx, &hook.PublishEvent{Message: m}); err != nil {
				log.Fatal(err)
			}
		}
		if err := d.Flush(ctx); err != nil { // writes are asynchronous
			log.Fatal(err)
		}
	}
	subscribe := func() []*hook.Message {
		res, err := d.SessionSubscribed(ctx, &hook.SubscribedEvent{ClientID: "dashboard", Topic: "sensors/+", QoS: 1})
		if err != nil {
			log.Fatal(err)
		}
		for _, m := range res.Offline {
			fmt.Printf("  %s %s\n", m.Topic, m.Payload)
		}
		return res.Offline
	}

	publish("21.5", "21.7")
	fmt.Println("first subscribe:")
	for _, m := range subscribe() { // the dashboard acks what it got
		if err := d.MessageAcked(ctx, &hook.AckedEvent{ClientID: "dashboard", Message: m}); err != nil {
			log.Fatal(err)
		}
	}
	publish("21.6")
	fmt.Println("after a reconnect:")
	subscribe()
	st := store.Stats()
	fmt.Printf("writes: %d matched, %d applied\n", st.Matched, st.Success)
	// Output:
	// first subscribe:
	//   sensors/kitchen 21.5
	//   sensors/kitchen 21.7
	// after a reconnect:
	//   sensors/kitchen 21.6
	// writes: 5 matched, 5 applied
}

// A restart: a Store opened on the Namespace of a closed one finds what it wrote.
func ExampleNamespace() {
	ctx := context.Background()
	first, _ := memstore.New(memstore.Config{})
	retain, err := first.Prepare(&hook.Rule{Name: "retain", Point: hook.MessagePublish, Action: hook.RuleAction{Function: hook.OnMessageRetain}})
	if err != nil {
		log.Fatal(err)
	}
	m := &hook.Message{ID: "m1", Topic: "status/door", Retain: true, Payload: []byte("open")}
	if err := retain.(hook.WriteAction).Write(ctx, &hook.PublishEvent{Message: m}); err != nil {
		log.Fatal(err)
	}
	if err := first.Close(ctx); err != nil { // applies what is queued
		log.Fatal(err)
	}

	second, _ := memstore.New(memstore.Config{Namespace: first.Namespace()})
	defer second.Close(ctx)
	for _, m := range second.Namespace().Retained() {
		fmt.Printf("%s = %s\n", m.Topic, m.Payload)
	}
	// Output: status/door = open
}
