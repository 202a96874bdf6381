package backendtest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/mqttstore/mqttstore/hook"
)

// testSink checks a write-only sink (Features.Sink) through what Harness.ReadBack reads back:
// every message stored once, exactly as written, whatever its QoS, under concurrency and
// across Close.
func (s *suite) testSink(t *testing.T) {
	if !s.h.Features.Sink {
		t.Skip("Features.Sink is false: the store is not a write-only sink")
	}
	open := func(t *testing.T) (*env, hook.WriteAction) {
		e := s.open(t)
		return e, e.writer(hook.MessagePublish, hook.OnMessagePublish)
	}
	readBack := func(e *env) []*hook.Message {
		e.t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		got, err := s.h.ReadBack(ctx, e.b)
		if err != nil {
			e.t.Fatalf("Harness.ReadBack: %v", err)
		}
		for i, m := range got {
			if m == nil {
				e.t.Fatalf("Harness.ReadBack returned a nil message at index %d", i)
			}
		}
		return got
	}

	t.Run("EveryQoSStored", func(t *testing.T) {
		e, pub := open(t)
		q0, q1, q2 := e.msg("sink/qos", 0, "q0"), e.msg("sink/qos", 1, "q1"), e.msg("sink/qos", 2, "q2")
		r0 := e.msg("sink/retained", 0, "r0")
		r0.Retain = true
		e.publish(pub, q0, q1, q2, r0)
		e.flush()
		checkMessageSet(t, "read back after publishing QoS 0, 1, 2 and a retained QoS 0 message", readBack(e), q0, q1, q2, r0)
	})
	t.Run("SpecialValuesStoredVerbatim", func(t *testing.T) {
		e, pub := open(t)
		var all []*hook.Message
		for i, v := range specialValues {
			tp := "sink/" + v
			if !validTopicName(v) {
				tp = fmt.Sprint("sink/control", i)
			}
			m := e.msg(tp, byte(i%3), v)
			m.From, m.Username = v, v
			all = append(all, m)
		}
		e.publish(pub, all...)
		e.flush()
		checkMessageSet(t, "read back", readBack(e), all...)
	})
	t.Run("BinaryPayload", func(t *testing.T) {
		e, pub := open(t)
		e.allowFailed = !s.h.Features.BinaryPayload
		failedBefore := e.failedWrites()
		var all []*hook.Message
		for i, p := range binaryPayloads() {
			m := e.msg(fmt.Sprint("sink/bin/", i), byte(i%3), "")
			m.Payload = p
			all = append(all, m)
		}
		refused := e.publishOrRefuse(pub, all...)
		e.flush()
		e.checkBinaryPayloads("read back", readBack(e), false, refused, failedBefore, all...)
	})
	t.Run("ManyConcurrent", func(t *testing.T) {
		const publishers, perPublisher = 4, 250
		e, pub := open(t)
		published := make([][]*hook.Message, publishers)
		var wg sync.WaitGroup
		for i := range publishers {
			wg.Go(func() {
				for k := range perPublisher {
					m := e.msg(fmt.Sprintf("sink/many/%d", k%5), byte(k%3), fmt.Sprintf(`{"p":%d,"k":%d}`, i, k))
					m.From = fmt.Sprint("pub", i)
					if err := pub.Write(context.Background(), &hook.PublishEvent{Message: m}); err != nil {
						t.Errorf("publisher %d: Write: %v", i, err)
						return
					}
					published[i] = append(published[i], m)
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		e.flush()
		var all []*hook.Message
		for _, p := range published {
			all = append(all, p...)
		}
		checkMessageSet(t, fmt.Sprintf("read back after %d publishers wrote %d messages each", publishers, perPublisher), readBack(e), all...)
	})
	t.Run("CloseDrains", func(t *testing.T) {
		if s.h.Reopen == nil {
			t.Skip("Harness.Reopen is nil: the suite cannot reopen the store's namespace")
		}
		e, pub := open(t)
		var all []*hook.Message
		for i := range 200 {
			all = append(all, e.msg("sink/drain", byte(i%3), fmt.Sprintf("m%03d", i)))
		}
		e.publish(pub, all[:100]...)
		e.flush()
		e.publish(pub, all[100:]...) // queued at Close
		e.close()
		if err := pub.Write(context.Background(), &hook.PublishEvent{Message: e.msg("sink/late", 1, "late")}); err == nil {
			t.Error("Write after Close returned nil; want an error wrapping hook.ErrClosed or hook.ErrDropped")
		} else if !errors.Is(err, hook.ErrClosed) && !errors.Is(err, hook.ErrDropped) {
			t.Errorf("Write after Close: %v; want an error wrapping hook.ErrClosed or hook.ErrDropped", err)
		}
		y := e.sibling(s.h.Reopen(t, e.b), "Harness.Reopen")
		got := readBack(y)
		for _, m := range got {
			if strings.HasPrefix(m.Topic, "sink/late") {
				t.Errorf("the message written after Close was stored: %s", formatMessages([]*hook.Message{m}))
			}
		}
		checkMessageSet(t, "read back after Close and Reopen", got, all...)
	})
}
