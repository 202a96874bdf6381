package sqlstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/hook"
)

// A batch that fails because one of the store's tables is missing costs one failed write per
// write into that table and a retry of the others, not a split down to single writes (about
// two flushes per write) nor an endless retry: the messages are stored, the retained writes
// fail for good, in a handful of flushes.
func TestMissingTableFailsItsWritesOnly(t *testing.T) {
	for _, d := range dialectsUnderTest {
		t.Run(d.String(), func(t *testing.T) {
			s := newStore(t, d)
			if err := s.execDDL(context.Background(), "DROP TABLE mqtt_retain"); err != nil {
				t.Fatal(err)
			}
			publish := writer(t, s, hook.OnMessagePublish, hook.MessagePublish)
			retain := writer(t, s, hook.OnMessageRetain, hook.MessagePublish)
			const n = 300
			ids := hook.NewIDGenerator("test")
			for i := range n {
				m := &hook.Message{ID: ids.Next(), Topic: fmt.Sprint("mt/", i%10), QoS: 1, Retain: true, Payload: []byte("p"), Timestamp: time.Now()}
				mustWrite(t, publish, &hook.PublishEvent{Message: m})
				mustWrite(t, retain, &hook.PublishEvent{Message: m})
			}
			if err := s.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			st := s.Stats()
			if st.Success != n || st.Failed != n {
				t.Errorf("stats %+v: want the %d messages stored and the %d retained writes failed", st, n, n)
			}
			msgs, err := s.Fetch(context.Background(), "c1", "mt/#", hook.OfflineOpts{})
			if err != nil || len(msgs) != n {
				t.Errorf("fetch: %d messages, %v; want %d", len(msgs), err, n)
			}
			// Each batch fails once and is written again once. How many batches the writer
			// forms depends on timing (a shard flushes what it has while the test is still
			// writing: 12 flushes were seen in CI, 4 on a quiet machine), so the bound is
			// loose; a split down to single writes costs about 2 flushes per write (1198).
			if calls := s.flushCalls.Load(); calls > n/5 {
				t.Errorf("%d flushes for %d writes with a missing table; want a few, not a split down to single writes", calls, 2*n)
			}
		})
	}
}
