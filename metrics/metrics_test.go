package metrics_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/memstore"
	"github.com/mqttstore/mqttstore/metrics"
	"github.com/mqttstore/mqttstore/spool"
)

// The collector reports each store's counters under its registered name, and the spool's
// records, as a scrape sees them.
func TestCollector(t *testing.T) {
	ctx := context.Background()
	sp, err := spool.Open(t.TempDir(), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	d := hook.NewDispatcher(hook.DispatcherOptions{Node: "n", Durability: hook.Spool, Spool: sp})
	defer d.Close(ctx)
	store, err := memstore.New(memstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Register(ctx, "mem", store, hook.Rule{Name: "pub", Point: hook.MessagePublish, Action: hook.RuleAction{Function: hook.OnMessagePublish}}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := d.MessagePublish(ctx, &hook.PublishEvent{Message: &hook.Message{Topic: "t", QoS: 1, Payload: []byte("p"), Timestamp: time.Now()}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); sp.Stats().Pending != 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewCollector(d, sp))
	want := `
# HELP mqttstore_spool_pending_records Spooled events not yet stored.
# TYPE mqttstore_spool_pending_records gauge
mqttstore_spool_pending_records 0
# HELP mqttstore_writes_failed_total Writes that failed for good, or were refused.
# TYPE mqttstore_writes_failed_total counter
mqttstore_writes_failed_total{store="mem"} 0
# HELP mqttstore_writes_matched_total Writes handed to the store.
# TYPE mqttstore_writes_matched_total counter
mqttstore_writes_matched_total{store="mem"} 3
# HELP mqttstore_writes_queued Writes waiting in the queue.
# TYPE mqttstore_writes_queued gauge
mqttstore_writes_queued{store="mem"} 0
# HELP mqttstore_writes_stored_total Writes stored.
# TYPE mqttstore_writes_stored_total counter
mqttstore_writes_stored_total{store="mem"} 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "mqttstore_writes_matched_total", "mqttstore_writes_stored_total",
		"mqttstore_writes_failed_total", "mqttstore_writes_queued", "mqttstore_spool_pending_records"); err != nil {
		t.Error(err)
	}
	problems, err := testutil.CollectAndLint(metrics.NewCollector(d, sp))
	if err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}
