package timescale_test

import (
	"context"
	"fmt"

	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/template"
	"github.com/mqttstore/mqttstore/tsdb/timescale"
)

// The spec's sensor_data template: one row per element of data. A message whose payload is
// not JSON is counted as failed without reaching the database, so the example runs anywhere
// (the pool connects lazily).
func Example() {
	templates, err := template.ParseTimescale([]byte(`{"sensor_data": {
		"name": "insert_sensor_data",
		"sql": "insert into sensor_data(time, location, temperature, humidity) values (NOW(), $1, $2, $3)",
		"param_keys": [["$payload", "data", "$0", "location"], ["$payload", "data", "$0", "temperature"], ["$payload", "data", "$0", "humidity"]]}}`))
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	s, err := timescale.Open(ctx, timescale.Config{DSN: "postgres://postgres:password@127.0.0.1:5432/tutorial", Templates: templates})
	if err != nil {
		panic(err)
	}
	action, err := s.Prepare(&hook.Rule{Name: "sensors", Point: hook.MessagePublish, Topic: "sensor_data",
		Action: hook.RuleAction{Function: hook.OnMessagePublish}})
	if err != nil {
		panic(err)
	}
	m := &hook.Message{ID: "1", Topic: "sensor_data", Payload: []byte(`bedroom 21.3`)}
	if err := action.(hook.WriteAction).Write(ctx, &hook.PublishEvent{Message: m}); err != nil {
		panic(err)
	}
	if err := s.Close(ctx); err != nil {
		panic(err)
	}
	fmt.Println("failed:", s.Stats().Failed)
	// Output: failed: 1
}
