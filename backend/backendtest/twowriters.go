package backendtest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/hook"
)

// testTwoWriters is two brokers on one database: two backends on one namespace (the
// harness's New and its Twin) store messages on the same topics, each from its own goroutine
// and with its own node's IDs, while a subscriber on the first loops fetch, ack, flush. A
// store whose order (row id, sequence, msgid) is given before the write commits lets a
// position pass a message that commits later with an older key: the subscriber never gets
// it. At the end, every published message must have been fetched exactly once across the
// rounds and a last fetch: nothing skipped, nothing repeated.
func (s *suite) testTwoWriters(t *testing.T, f family) {
	const writers, bursts, perBurst, maxRounds = 2, 12, 10, 5000
	topics := []string{"tw/a", "tw/b", "tw/c"}
	x := s.openFamily(t, f)
	y := x.sibling(s.h.Twin(t, x.b), "Harness.Twin")
	stores := []hook.WriteAction{x.store, y.writer(hook.MessagePublish, s.storeFunction())}
	backends := []hook.Backend{x.b, y.b}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()

	published := make([][]*hook.Message, writers)
	var wg sync.WaitGroup
	for i := range writers {
		ids := hook.NewIDGenerator(fmt.Sprintf("backendtest-writer%d@192.0.2.%d", i, i+1))
		wg.Go(func() {
			for b := range bursts {
				for k := range perBurst {
					m := newMessage(ids, topics[(b+k+i)%len(topics)], byte(1+k%2), fmt.Sprintf("w%d-%d-%d", i, b, k))
					m.From = fmt.Sprint("writer", i)
					if err := stores[i].Write(ctx, &hook.PublishEvent{Message: m}); err != nil {
						t.Errorf("writer %d: Write: %v", i, err)
						return
					}
					published[i] = append(published[i], m)
				}
				if err := flushBackend(ctx, backends[i]); err != nil {
					t.Errorf("writer %d: %v", i, err)
					return
				}
			}
		})
	}
	writing := make(chan struct{})
	go func() { wg.Wait(); close(writing) }()

	const client = "tw-sub"
	fetched := make(map[string]int)
	fetch := func() ([]*hook.Message, error) {
		if s.h.Features.WildcardFetch {
			return lookupOnce(ctx, x.fetcher, client, "tw/#", false)
		}
		var all []*hook.Message
		for _, tp := range topics {
			got, err := lookupOnce(ctx, x.fetcher, client, tp, false)
			if err != nil {
				return nil, err
			}
			all = append(all, got...)
		}
		return all, nil
	}
	// round fetches what is new for the subscriber and acks it, as a broker delivering
	// offline messages does, then waits for the acks to be written.
	round := func() error {
		got, err := fetch()
		if err != nil {
			return err
		}
		for _, m := range got {
			fetched[m.ID]++
			if err := x.ackW.Write(ctx, &hook.AckedEvent{ClientID: client, Username: "user-" + client, Message: m}); err != nil {
				return fmt.Errorf("Write(ack): %w", err)
			}
		}
		return flushBackend(ctx, x.b)
	}
	var err error
loop:
	for rounds := 0; rounds < maxRounds; rounds++ {
		select {
		case <-writing:
			break loop
		default:
		}
		if err = round(); err != nil {
			err = fmt.Errorf("subscriber round %d: %w", rounds, err)
			cancel() // the writers stop
			break
		}
		time.Sleep(time.Millisecond)
	}
	<-writing
	if err != nil {
		t.Fatal(err)
	}
	if t.Failed() {
		return
	}
	x.flush()
	y.flush()
	if err := round(); err != nil {
		t.Fatalf("subscriber's last fetch: %v", err)
	}

	var missing, repeated []*hook.Message
	all := make(map[string]bool)
	for _, p := range published {
		for _, m := range p {
			all[m.ID] = true
			switch n := fetched[m.ID]; {
			case n == 0:
				missing = append(missing, m)
			case n > 1:
				repeated = append(repeated, m)
			}
		}
	}
	for id := range fetched {
		if !all[id] {
			t.Errorf("the subscriber fetched %s, which neither writer published", id)
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d of %d messages were never fetched by a subscriber fetching and acking while two backends wrote: an ack position passed them before they were visible:\n    %s",
			len(missing), len(all), formatMessages(missing))
	}
	if len(repeated) > 0 {
		t.Errorf("%d messages were fetched again after they were acked:\n    %s", len(repeated), formatMessages(repeated))
	}
}

// flushBackend flushes b (a hook.Flusher) under ctx.
func flushBackend(ctx context.Context, b hook.Backend) error {
	f, ok := b.(hook.Flusher)
	if !ok {
		return fmt.Errorf("the backend (%T) does not implement hook.Flusher", b)
	}
	if err := f.Flush(ctx); err != nil {
		return fmt.Errorf("Flush: %w", err)
	}
	return nil
}
