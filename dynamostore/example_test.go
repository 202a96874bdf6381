package dynamostore_test

import (
	"context"
	"fmt"
	"log"
	"strings"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/dynamostore"
	"github.com/mqttstore/mqttstore/hook"
)

// An EMQX emqx_backend_dynamo.conf gives the region, the pool and the rules; the store's
// Config never prints the secret key.
func Example_config() {
	const conf = `
backend.dynamo.region = us-west-2
backend.dynamo.pool1.server = http://localhost:8000
backend.dynamo.pool1.pool_size = 8
backend.dynamo.pool1.aws_access_key_id = AKIAU5IM2XOC7AQWG7HK
backend.dynamo.pool1.aws_secret_access_key = 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
backend.dynamo.hook.session.subscribed.1 = {"topic": "#", "action": {"function": "on_message_fetch_for_queue"}, "pool": "pool1"}
backend.dynamo.hook.message.acked.1      = {"topic": "#", "action": {"function": "on_message_acked_for_queue"}, "pool": "pool1"}
`
	c, err := backend.LoadConfig(strings.NewReader(conf))
	if err != nil {
		fmt.Println(err)
		return
	}
	dyn := c.Stores["dynamo"]
	pool := dyn.Pools["pool1"]
	cfg := dynamostore.Config{
		Region:          dyn.Settings.String("region", ""),
		Endpoint:        pool.String("server", ""),
		AccessKeyID:     pool.String("aws_access_key_id", ""),
		SecretAccessKey: pool.String("aws_secret_access_key", ""),
	}
	fmt.Println(cfg)
	for _, r := range dyn.Rules {
		fmt.Println(r.Point, r.Action.Function)
	}
	// Output:
	// dynamostore.Config{Region:"us-west-2" Endpoint:"http://localhost:8000" AccessKeyID:"AKIAU5IM2XOC7AQWG7HK" SecretAccessKey:REDACTED TablePrefix:"" EnsureSchema:false}
	// session.subscribed on_message_fetch_for_queue
	// message.acked on_message_acked_for_queue
}

// A broker opens the store, registers the spec's rules and calls the dispatcher at its hook
// points. Two subscribers of one queue compete: a message acked by one is gone for the
// other. (This example needs a DynamoDB endpoint, so it is not run.)
func Example() {
	ctx := context.Background()
	s, err := dynamostore.Open(ctx, dynamostore.Config{
		Region: "us-east-1", Endpoint: "http://127.0.0.1:8000",
		AccessKeyID: "local", SecretAccessKey: "local", // or neither: the SDK's default chain
		EnsureSchema: true,
	})
	if err != nil {
		log.Fatal(err)
	}
	d := hook.NewDispatcher(hook.DispatcherOptions{})
	defer d.Close(ctx)
	fn := func(p hook.Point, filter, function string) hook.Rule {
		return hook.Rule{Name: "dynamo." + function, Point: p, Topic: filter, Action: hook.RuleAction{Function: function}}
	}
	err = d.Register(ctx, "dynamo", s,
		fn(hook.SessionSubscribed, "#", hook.OnMessageFetchForQueue),
		fn(hook.MessagePublish, "#", hook.OnMessagePublish),
		fn(hook.MessageAcked, "#", hook.OnMessageAckedForQueue),
	)
	if err != nil {
		log.Fatal(err)
	}
	m := &hook.Message{Topic: "jobs/print", QoS: 1, Payload: []byte("page 1")}
	d.MessagePublish(ctx, &hook.PublishEvent{Message: m})
	d.Flush(ctx)
	res, _ := d.SessionSubscribed(ctx, &hook.SubscribedEvent{ClientID: "worker-a", Topic: "jobs/#", QoS: 1})
	for _, m := range res.Offline {
		log.Printf("deliver %s to worker-a: %s", m.Topic, m.Payload)
		d.MessageAcked(ctx, &hook.AckedEvent{ClientID: "worker-a", Message: m})
	}
	d.Flush(ctx)
	res, _ = d.SessionSubscribed(ctx, &hook.SubscribedEvent{ClientID: "worker-b", Topic: "jobs/#", QoS: 1})
	log.Printf("worker-b gets %d messages", len(res.Offline)) // 0: worker-a acked it
}
