package influx_test

import (
	"context"
	"fmt"
	"time"

	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/template"
	"github.com/mqttstore/mqttstore/tsdb/influx"
)

// Write the spec's example over UDP (fire and forget: the example needs no server).
func Example() {
	templates, err := template.ParseInflux([]byte(`{"sensor/#": {
		"measurement": "$topic",
		"tags": {"host": ["$payload", "data", "$0", "host"], "clientid": "$clientid"},
		"fields": {"temperature": ["$payload", "data", "$0", "temp"]},
		"timestamp": "$timestamp"}}`), template.InfluxOptions{TimeUnit: time.Millisecond})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	s, err := influx.Open(ctx, influx.Config{Server: "127.0.0.1:8089", Precision: time.Millisecond, Templates: templates})
	if err != nil {
		panic(err)
	}
	action, err := s.Prepare(&hook.Rule{Name: "sensors", Point: hook.MessagePublish, Topic: "sensor/#",
		Action: hook.RuleAction{Function: hook.OnMessagePublish}})
	if err != nil {
		panic(err)
	}
	write := action.(hook.WriteAction)
	for _, payload := range []string{
		`{"data": [{"temp": 1, "host": "serverA"}, {"temp": 2, "host": "serverB"}]}`,
		`not json`, // counted as failed, logged with the rule and the reason
	} {
		m := &hook.Message{ID: "1", From: "c1", Topic: "sensor/room1", Payload: []byte(payload), Timestamp: time.Now()}
		if err := write.Write(ctx, &hook.PublishEvent{Message: m}); err != nil {
			panic(err)
		}
	}
	if err := s.Close(ctx); err != nil {
		panic(err)
	}
	st := s.Stats()
	fmt.Println("sent:", st.Success, "failed:", st.Failed)
	// Output: sent: 1 failed: 1
}
