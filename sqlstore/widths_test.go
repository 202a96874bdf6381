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
