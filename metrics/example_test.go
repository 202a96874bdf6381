package metrics_test

import (
	"context"
	"fmt"
	"log"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/memstore"
	"github.com/mqttstore/mqttstore/metrics"
)

func Example() {
	d := hook.NewDispatcher(hook.DispatcherOptions{Node: "n1"})
	store, _ := memstore.New(memstore.Config{})
	ctx := context.Background()
	if err := d.Register(ctx, "state", store, hook.Rule{Name: "pub", Point: hook.MessagePublish, Action: hook.RuleAction{Function: hook.OnMessagePublish}}); err != nil {
		log.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewCollector(d, nil)) // serve reg with promhttp.HandlerFor

	d.MessagePublish(ctx, &hook.PublishEvent{Message: &hook.Message{Topic: "t", QoS: 1}})
	d.Flush(ctx)
	families, _ := reg.Gather()
	for _, f := range families {
		if f.GetName() == "mqttstore_writes_stored_total" {
			fmt.Println(f.GetName(), f.GetMetric()[0].GetLabel()[0].GetValue(), f.GetMetric()[0].GetCounter().GetValue())
		}
	}
	// Output: mqttstore_writes_stored_total state 1
}
