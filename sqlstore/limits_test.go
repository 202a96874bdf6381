package sqlstore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/hook"
)

// A client ID or topic longer than its column is refused by Write, before the broker
// acknowledges the message, and counted as failed; what fits exactly is stored. (Before,
// Write accepted it and its batch failed later with "value too long".)
func TestTooLongRefusedAtWrite(t *testing.T) {
	for _, d := range []Dialect{Postgres, MySQL} {
		t.Run(d.String(), func(t *testing.T) {
			s := newStore(t, d)
			topicWidth := map[Dialect]int{Postgres: 255, MySQL: 180}[d]
			publish := writer(t, s, hook.OnMessagePublish, hook.MessagePublish)
			connected := writer(t, s, hook.OnClientConnected, hook.ClientConnected)
			ids := hook.NewIDGenerator("test")
			msg := func(topic string) *hook.Message {
				return &hook.Message{ID: ids.Next(), Topic: topic, QoS: 1, Payload: []byte("p"), Timestamp: time.Now()}
			}
			// Characters, not bytes: é is two bytes.
			fits := msg("t/" + strings.Repeat("é", topicWidth-2))
			mustWrite(t, publish, &hook.PublishEvent{Message: fits})
			long := msg("t/" + strings.Repeat("x", topicWidth-1))
			if err := publish.Write(context.Background(), &hook.PublishEvent{Message: long}); !errors.Is(err, ErrValueTooLong) || !errors.Is(err, hook.ErrInvalidEvent) {
				t.Errorf("Write of a %d-character topic: %v, want ErrValueTooLong (and hook.ErrInvalidEvent)", len(long.Topic), err)
			}
			err := connected.Write(context.Background(), &hook.ConnectedEvent{ClientID: strings.Repeat("c", 65)})
			if !errors.Is(err, ErrValueTooLong) {
				t.Errorf("Write of a 65-character client ID: %v, want ErrValueTooLong", err)
			}
			if err := s.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			if st := s.Stats(); st.Matched != 3 || st.Success != 1 || st.Failed != 2 {
				t.Errorf("stats %+v: want 3 matched, the fitting message stored, 2 refused as failed", st)
			}
			got, err := s.Fetch(context.Background(), "c", fits.Topic, hook.OfflineOpts{})
			if err != nil || len(got) != 1 || got[0].ID != fits.ID {
				t.Errorf("fetch of the %d-character topic: %v, %v", topicWidth, got, err)
			}
		})
	}
}

// Big payloads make small batches: the writer's byte budget (Options.BatchBytes) applies to
// the store's writes, not only their count (40 writes of 10 MB once made one batch that
// kept timing out).
func TestBatchesBoundedInBytes(t *testing.T) {
	opts := testOptions
	opts.BatchInterval = time.Hour // the batches are what the Flush below cuts
	opts.BatchBytes = 4 << 20
	s := openStore(t, Config{Dialect: SQLite, DSN: dsnFor(t, SQLite), EnsureSchema: true, Options: opts})
	t.Cleanup(func() { s.Close(context.Background()) })
	publish := writer(t, s, hook.OnMessagePublish, hook.MessagePublish)
	ids := hook.NewIDGenerator("test")
	payload := make([]byte, 1<<20)
	for range 20 {
		mustWrite(t, publish, &hook.PublishEvent{Message: &hook.Message{ID: ids.Next(), Topic: "big", QoS: 1, Payload: payload, Timestamp: time.Now()}})
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Success != 20 {
		t.Fatalf("stats %+v, want 20 stored", st)
	}
	if calls := s.flushCalls.Load(); calls < 5 {
		t.Errorf("20 writes of 1 MiB in %d flushes; want batches of at most 4 MiB (5 flushes or more)", calls)
	}
}
