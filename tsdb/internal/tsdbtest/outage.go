// Package tsdbtest is what the tests of the time-series sinks share: an outage of the
// service behind a testenv.Proxy under a steady publish.
package tsdbtest

import (
	"context"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/internal/testenv"
)

// Sink is the store under test.
type Sink interface {
	hook.Flusher
	backend.StatsReporter
}

// Outage is how many messages are published, at a steady pace, before, during and after
// the service is down for Down.
type Outage struct {
	Before, During, After int
	Down                  time.Duration
}

// Issue is the issue's outage: the endpoint down for 30 s under a steady publish of 50
// messages a second.
var Issue = Outage{Before: 100, During: 1500, After: 100, Down: 30 * time.Second}

// Total is the number of messages Run publishes.
func (o Outage) Total() int { return o.Before + o.During + o.After }

// Run publishes o.Total() messages through w, msg(i) being the i-th, at the pace of
// o.During over o.Down. Before the outage, it flushes s and then makes p reset every
// connection: the server is down, and no request is in flight when it goes (a request the
// server stored and whose answer was cut would be sent again: stored twice by a database
// that keeps duplicates, failed by a sink that never runs a write twice; each sink's doc
// says which). It publishes o.During messages while down, checks that the sink saw the
// outage (Stats.Retried), sets p back to Pass, publishes the rest and flushes. Every message
// must be stored: Stats.Success is the total, Failed and Dropped are 0. It returns the
// Stats; the caller reads the messages back from the database and checks each is there once.
func (o Outage) Run(t *testing.T, p *testenv.Proxy, s Sink, w hook.WriteAction, msg func(i int) *hook.Message) backend.Stats {
	t.Helper()
	pace := o.Down / time.Duration(max(o.During, 1))
	i := 0
	publish := func(n int) {
		t.Helper()
		next := time.Now()
		for range n {
			if err := w.Write(context.Background(), &hook.PublishEvent{Message: msg(i)}); err != nil {
				t.Fatalf("message %d: Write: %v", i, err)
			}
			i++
			next = next.Add(pace)
			time.Sleep(time.Until(next))
		}
	}
	flush := func() {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.Flush(ctx); err != nil {
			t.Fatalf("Flush: %v (%+v)", err, s.Stats())
		}
	}
	publish(o.Before)
	flush()
	p.Set(testenv.Reset)
	start := time.Now()
	publish(o.During)
	down := time.Since(start)
	retried := s.Stats().Retried
	p.Set(testenv.Pass)
	publish(o.After)
	flush()
	st := s.Stats()
	t.Logf("down %v: %d messages published (%d while down), Stats: success %d, failed %d, retried %d (%d while down), dropped %v",
		down.Round(100*time.Millisecond), i, o.During, st.Success, st.Failed, st.Retried, retried, st.Dropped)
	if retried == 0 {
		t.Errorf("no write was retried while the server was down: the test did not test an outage")
	}
	var dropped uint64
	for _, n := range st.Dropped {
		dropped += n
	}
	if st.Success != uint64(i) || st.Failed != 0 || dropped != 0 {
		t.Errorf("Stats %+v: want %d stored, none failed or dropped", st, i)
	}
	return st
}
