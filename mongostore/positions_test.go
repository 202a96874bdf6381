package mongostore

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/hook"
)

// TestManyPositions: acks of many clients on many topics, while they fetch, are written
// (FerretDB stalled on big bulk upserts before acks were folded per position and bulk
// writes cut into commands of maxBulk, and took over 20 s while positions were upserted by
// {clientid, topic}, which FerretDB finds by scanning the collection).
func TestManyPositions(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	pub := prepareWrite(t, s, hook.Rule{Point: hook.MessagePublish, Action: hook.RuleAction{Function: hook.OnMessagePublish}})
	ack := prepareWrite(t, s, hook.Rule{Point: hook.MessageAcked, Action: hook.RuleAction{Function: hook.OnMessageAcked}})
	ids := hook.NewIDGenerator("n")
	var msgs []*hook.Message
	for i := range 50 {
		m := &hook.Message{ID: ids.Next(), Topic: fmt.Sprintf("many/%d", i), QoS: 1, Payload: []byte("x"), Timestamp: time.Now()}
		msgs = append(msgs, m)
	}
	publish(t, pub, msgs...)
	flush(t, s)
	var wg sync.WaitGroup
	for c := range 20 {
		wg.Go(func() {
			client := fmt.Sprint("c", c)
			got, err := s.Fetch(ctx, client, "many/#", hook.OfflineOpts{})
			if err != nil {
				t.Error(err)
				return
			}
			for _, m := range got {
				if err := ack.Write(ctx, &hook.AckedEvent{ClientID: client, Message: m}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	flush(t, s)
	if n, err := s.acked.CountDocuments(ctx, map[string]any{}); err != nil || n != 1000 {
		t.Errorf("%d positions, %v; want 1000", n, err)
	}
	if got, _ := s.Fetch(ctx, "c3", "many/#", hook.OfflineOpts{}); len(got) != 0 {
		t.Errorf("c3 fetches %d messages after acking all", len(got))
	}
}
