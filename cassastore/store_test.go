package cassastore_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/mqttstore/mqttstore/hook"
)

// batchSizes records the bytes of the values of every batch the driver sends.
type batchSizes struct {
	mu    sync.Mutex
	sizes []int
}

func (o *batchSizes) ObserveBatch(_ context.Context, b gocql.ObservedBatch) {
	n := 0
	for _, vals := range b.Values {
		for _, v := range vals {
			switch v := v.(type) {
			case string:
				n += len(v)
			case []byte:
				n += len(v)
			default:
				n += 8
			}
		}
	}
	o.mu.Lock()
	o.sizes = append(o.sizes, n)
	o.mu.Unlock()
}

// Messages of one topic go as unlogged batches under Cassandra's 5 KiB warning; a message
// bigger than the 50 KiB batch limit goes alone and is stored.
func TestBatchesStayUnderGuardrails(t *testing.T) {
	cfg := testConfig(t)
	obs := &batchSizes{}
	cfg.Cluster = func(cl *gocql.ClusterConfig) { cl.BatchObserver = obs }
	s := open(t, cfg)
	defer s.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pub, err := s.Prepare(&hook.Rule{Name: "pub", Point: hook.MessagePublish, Action: hook.RuleAction{Function: hook.OnMessageStore}})
	if err != nil {
		t.Fatal(err)
	}
	fetch, err := s.Prepare(&hook.Rule{Name: "fetch", Point: hook.SessionSubscribed, Action: hook.RuleAction{Function: hook.OnMessageFetch}})
	if err != nil {
		t.Fatal(err)
	}
	ids := hook.NewIDGenerator("guard")
	var want []string
	for i := range 30 {
		size := 1000
		if i == 15 {
			size = 100 << 10
		}
		m := &hook.Message{ID: ids.Next(), Topic: "big/t", QoS: 1, Payload: []byte(strings.Repeat(fmt.Sprint(i%10), size)), Timestamp: time.Now()}
		want = append(want, m.ID)
		if err := pub.(hook.WriteAction).Write(ctx, &hook.PublishEvent{Message: m}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Failed != 0 || st.Success != 30 {
		t.Errorf("stats: %+v", st)
	}
	res, err := fetch.(hook.LookupAction).Lookup(ctx, &hook.SubscribedEvent{ClientID: "c", Topic: "big/t", QoS: 1})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range res.Offline {
		got = append(got, m.ID)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("fetched %d messages, want the %d stored, in order", len(got), len(want))
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if len(obs.sizes) == 0 {
		t.Error("no batch was sent: the run of one topic's messages was not batched")
	}
	for _, n := range obs.sizes {
		if n > 5<<10 {
			t.Errorf("a batch of %d bytes of values: over the 5 KiB warning", n)
		}
	}
}
