package sqlstore

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/hook"
)

// Messages and the acks of a subscriber interleave in one batch (the writer keeps them in one
// stream): the store writes the messages first and, on MySQL, a client's acks in one
// statement. The positions must be what the acks one by one give: per topic, the greatest
// acknowledged message, whatever order the acks came in.
func TestAcksInterleavedInOneBatch(t *testing.T) {
	for _, d := range dialectsUnderTest {
		t.Run(d.String(), func(t *testing.T) {
			opts := testOptions
			opts.BatchInterval = time.Hour // one batch, written by the Flush below
			s := openStore(t, Config{Dialect: d, DSN: dsnFor(t, d), EnsureSchema: true, Options: opts})
			t.Cleanup(func() { s.Close(context.Background()) })
			publish := writer(t, s, hook.OnMessagePublish, hook.MessagePublish)
			acked := writer(t, s, hook.OnMessageAcked, hook.MessageAcked)
			gen := hook.NewIDGenerator("test")
			msg := func(topic string) *hook.Message {
				m := &hook.Message{ID: gen.Next(), Topic: topic, QoS: 1, Payload: []byte(topic), Timestamp: time.Now()}
				mustWrite(t, publish, &hook.PublishEvent{Message: m})
				return m
			}
			ack := func(client string, m *hook.Message) {
				mustWrite(t, acked, &hook.AckedEvent{ClientID: client, Message: m})
			}
			m1, m2, m3 := msg("a"), msg("a"), msg("b")
			ack("c1", m2)
			m4 := msg("a")
			ack("c1", m4)
			ack("c1", m1) // out of order: a stays at m4
			ack("c1", m3)
			ack("c2", m2)
			m5, m6 := msg("b"), msg("a")
			if err := s.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			if st := s.Stats(); st.Success != 11 || st.Failed != 0 {
				t.Fatalf("stats %+v, want 11 writes", st)
			}
			for _, c := range []struct {
				client, topic string
				want          []*hook.Message
			}{
				{"c1", "a", []*hook.Message{m6}},
				{"c1", "b", []*hook.Message{m5}},
				{"c2", "a", []*hook.Message{m4, m6}},
				{"c2", "b", []*hook.Message{m3, m5}},
			} {
				got, err := s.Fetch(context.Background(), c.client, c.topic, hook.OfflineOpts{})
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(ids(got), ids(c.want)) {
					t.Errorf("%s fetches %v on %s, want %v", c.client, ids(got), c.topic, ids(c.want))
				}
			}
		})
	}
}
