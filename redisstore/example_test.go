package redisstore_test

import (
	"context"
	"fmt"
	"log"
	"strings"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/redisstore"
)

// A business server asks the broker to subscribe a client by publishing on the control
// channel; the store parses each message with ParseControl. The spec's example sends the QoS
// as a string.
func ExampleParseControl() {
	for _, msg := range []string{
		`{"type": "subscribe", "topic": "topic0", "clientid": "test", "qos": "0"}`,
		`{"type": "unsubscribe", "topic": "test_topic0", "clientid": "test"}`,
		`{"type": "subscribe", "topic": "a/#/b", "clientid": "test", "qos": 1}`,
	} {
		c, err := redisstore.ParseControl([]byte(msg))
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println(c.Type, c.ClientID, c.Topic, c.QoS)
	}
	// Output:
	// subscribe test topic0 0
	// unsubscribe test test_topic0 0
	// malformed control message: "topic": topic: invalid topic filter "a/#/b": misplaced wildcard: '#' must be the last level at byte 2 (level 1)
}

// An EMQX emqx_backend_redis.conf gives the pool settings and the rules.
func ExampleConfigFromPool() {
	const conf = `
backend.redis.pool1.type = cluster
backend.redis.pool1.server = 127.0.0.1:7000, 127.0.0.1:7001, 127.0.0.1:7002
backend.redis.pool1.pool_size = 8
backend.redis.pool1.channel = mqtt_channel
backend.redis.hook.message.publish.1 = {"topic": "#", "action": {"function": "on_message_publish"}, "expired_time" : 3600, "pool": "pool1"}
`
	c, err := backend.LoadConfig(strings.NewReader(conf))
	if err != nil {
		fmt.Println(err)
		return
	}
	redis := c.Stores["redis"]
	cfg, err := redisstore.ConfigFromPool(redis.Pools["pool1"])
	fmt.Println(cfg.Mode, cfg.Addrs, cfg.Options.PoolSize, cfg.Channel, err)
	for _, r := range redis.Rules {
		fmt.Println(r.Name, r.Action.Function, r.ExpiredTime)
	}
	// Output:
	// cluster [127.0.0.1:7000 127.0.0.1:7001 127.0.0.1:7002] 8 mqtt_channel <nil>
	// backend.redis.hook.message.publish.1 on_message_publish 1h0m0s
}

// A broker opens the store, registers the spec's rules with its dispatcher and calls the
// dispatcher at its hook points. OnControl subscribes clients on the business server's
// request. (This example needs a Redis server, so it is not run.)
func Example() {
	ctx := context.Background()
	s, err := redisstore.Open(ctx, redisstore.Config{
		Addrs: []string{"127.0.0.1:6379"},
		OnControl: func(ctx context.Context, c redisstore.Control) error {
			log.Printf("%s %s to %s (QoS %d)", c.Type, c.ClientID, c.Topic, c.QoS)
			return nil // a broker subscribes or unsubscribes the client here
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	d := hook.NewDispatcher(hook.DispatcherOptions{})
	defer d.Close(ctx)
	fn := func(p hook.Point, filter, function string) hook.Rule {
		return hook.Rule{Name: "redis." + function, Point: p, Topic: filter, Action: hook.RuleAction{Function: function}}
	}
	err = d.Register(context.Background(), "redis", s,
		fn(hook.ClientConnected, "", hook.OnClientConnected),
		fn(hook.SessionCreated, "", hook.OnSubscribeLookup),
		fn(hook.SessionSubscribed, "queue/#", hook.OnMessageFetchForQueue),
		fn(hook.SessionSubscribed, "#", hook.OnRetainLookup),
		fn(hook.MessagePublish, "#", hook.OnMessagePublish),
		fn(hook.MessagePublish, "#", hook.OnMessageRetain),
		fn(hook.MessagePublish, "#", hook.OnRetainDelete),
		fn(hook.MessageAcked, "queue/#", hook.OnMessageAckedForQueue),
	)
	if err != nil {
		log.Fatal(err)
	}
	res, err := d.SessionSubscribed(ctx, &hook.SubscribedEvent{ClientID: "c1", Topic: "queue/#", QoS: 1})
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range res.Offline {
		log.Printf("deliver %s to c1: %s", m.Topic, m.Payload)
	}
}
