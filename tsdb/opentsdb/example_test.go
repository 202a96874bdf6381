package opentsdb_test

import (
	"context"
	"fmt"
	"time"

	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/template"
	"github.com/mqttstore/mqttstore/tsdb/opentsdb"
)

// A message the template does not apply to is counted, never put; the example needs no server.
func Example() {
	templates, err := template.ParseOpenTSDB([]byte(`{"sensor/#": {
		"measurement": "temperature",
		"tags": {"host": ["$payload", "data", "$0", "host"], "clientid": "$clientid"},
		"value": ["$payload", "data", "$0", "temp"],
		"timestamp": "$timestamp"}}`), template.OpenTSDBOptions{})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	s, err := opentsdb.Open(ctx, opentsdb.Config{Server: "127.0.0.1:4242", Details: true, Templates: templates})
	if err != nil {
		panic(err)
	}
	action, err := s.Prepare(&hook.Rule{Name: "sensors", Point: hook.MessagePublish, Topic: "sensor/#",
		Action: hook.RuleAction{Function: hook.OnMessagePublish}})
	if err != nil {
		panic(err)
	}
	m := &hook.Message{ID: "1", From: "c1", Topic: "sensor/room1", Payload: []byte(`{"data": [{"temp": "warm"}]}`), Timestamp: time.Now()}
	if err := action.(hook.WriteAction).Write(ctx, &hook.PublishEvent{Message: m}); err != nil {
		panic(err)
	}
	if err := s.Close(ctx); err != nil {
		panic(err)
	}
	fmt.Println("failed:", s.Stats().Failed)
	// Output: failed: 1
}
