package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// workload is one measured scenario against a running broker.
type workload struct {
	name string
	// prefix is the topic prefix of the messages it stores (for the stored count).
	prefix   string
	retained bool
	// run drives the broker at b; it may restart it through restart. It returns what it
	// measured, the CPU of the broker during the measured part included.
	run func(c *config, b *proc, restart func() (*proc, error)) (result, error)
}

// result is one workload's measurement.
type result struct {
	ops      int           // messages published, or deliveries
	elapsed  time.Duration // of the measured part
	lat      []time.Duration
	received int // deliveries counted (unique)
	dups     int
	cpu      float64 // broker CPU seconds during the measured part
	peakMB   float64
	stored   int64 // read back from the database; -1 if the broker stores none
	expected int64
	err      error // the run failed
}

// config is the load to generate.
type config struct {
	messages, publishers, payload int
	retained, subscribers         int
	backlog                       int
	timeout                       time.Duration
}

var workloads = []workload{
	{name: "publish", prefix: "pubsub/w1/", run: publishOnly},
	{name: "subscribe", prefix: "pubsub/w2/", run: publishSubscribe},
	{name: "retained", prefix: "pubsub/w3/", retained: true, run: retainedFanOut},
	{name: "backlog", prefix: "pubsub/w4/", run: backlogDrain},
}

func connect(addr, id string, clean bool, onMsg paho.MessageHandler) (paho.Client, error) {
	o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetCleanSession(clean).
		SetAutoReconnect(false).SetConnectRetry(false).SetKeepAlive(60 * time.Second).
		SetOrderMatters(false).SetWriteTimeout(30 * time.Second).SetMaxResumePubInFlight(0)
	if onMsg != nil {
		o.SetDefaultPublishHandler(onMsg)
	}
	c := paho.NewClient(o)
	t := c.Connect()
	if !t.WaitTimeout(30*time.Second) || t.Error() != nil {
		return nil, fmt.Errorf("connect %s: %v", id, errOr(t.Error(), "timeout"))
	}
	return c, nil
}

func errOr(err error, s string) error {
	if err != nil {
		return err
	}
	return errors.New(s)
}

// publish publishes n QoS 1 messages split across c.publishers clients, each waiting for the
// PUBACK of one message before sending the next, to topics prefix<publisher>/<k%10> (retained:
// prefix<publisher>/<k>), with payloads of c.payload bytes that start with "<publisher>.<k> "
// so that a subscriber can tell every message apart. It returns each PUBACK's latency.
func publish(c *config, addr, idPrefix, prefix string, n int, retain bool) ([]time.Duration, error) {
	pad := strings.Repeat("x", max(c.payload-12, 0))
	lats := make([][]time.Duration, c.publishers)
	errs := make([]error, c.publishers)
	var wg sync.WaitGroup
	for p := range c.publishers {
		count := n / c.publishers
		if p < n%c.publishers {
			count++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := connect(addr, fmt.Sprintf("%s%d", idPrefix, p), true, nil)
			if err != nil {
				errs[p] = err
				return
			}
			defer cl.Disconnect(100)
			l := make([]time.Duration, 0, count)
			for k := range count {
				topic := fmt.Sprintf("%s%d/%d", prefix, p, k%10)
				if retain {
					topic = fmt.Sprintf("%s%d/%d", prefix, p, k)
				}
				start := time.Now()
				t := cl.Publish(topic, 1, retain, fmt.Sprintf("%d.%d %s", p, k, pad))
				if !t.WaitTimeout(c.timeout) || t.Error() != nil {
					errs[p] = fmt.Errorf("publish %s: %v", topic, errOr(t.Error(), "no PUBACK"))
					return
				}
				l = append(l, time.Since(start))
			}
			lats[p] = l
		}()
	}
	wg.Wait()
	return slices.Concat(lats...), errors.Join(errs...)
}

// counter counts deliveries by message (topic and payload are not unique: the message's
// position, topic and payload are), and signals when want distinct ones arrived.
type counter struct {
	mu    sync.Mutex
	seen  map[string]int
	total int // deliveries, duplicates included
	want  int
	done  chan struct{}
	last  time.Time
}

func newCounter(want int) *counter {
	return &counter{seen: map[string]int{}, want: want, done: make(chan struct{})}
}

func (k *counter) handler(key func(m paho.Message) string) paho.MessageHandler {
	return func(_ paho.Client, m paho.Message) {
		k.mu.Lock()
		defer k.mu.Unlock()
		id := key(m)
		k.seen[id]++
		k.total++
		if k.seen[id] == 1 && len(k.seen) == k.want {
			k.last = time.Now()
			close(k.done)
		}
	}
}

func (k *counter) wait(d time.Duration) bool {
	select {
	case <-k.done:
		return true
	case <-time.After(d):
		return false
	}
}

func (k *counter) counts() (unique, dups int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.seen), k.total - len(k.seen)
}

// measure runs f with the broker's CPU counted around it.
func measure(b *proc, r *result, f func() error) error {
	before, err := b.usage()
	if err != nil {
		return err
	}
	start := time.Now()
	ferr := f()
	if r.elapsed == 0 {
		r.elapsed = time.Since(start)
	}
	after, err := b.usage()
	if err != nil {
		return err
	}
	r.cpu, r.peakMB = after.cpu-before.cpu, after.peakMB
	return ferr
}

// publishOnly (W1): QoS 1 publishers, no subscriber.
func publishOnly(c *config, b *proc, _ func() (*proc, error)) (result, error) {
	r := result{ops: c.messages, expected: int64(c.messages)}
	err := measure(b, &r, func() (err error) {
		r.lat, err = publish(c, b.addr, "w1-", "pubsub/w1/", c.messages, false)
		return err
	})
	return r, err
}

// publishSubscribe (W2): W1 with one QoS 1 subscriber on the whole tree, acking each
// delivery; the time runs until it has every message.
func publishSubscribe(c *config, b *proc, _ func() (*proc, error)) (result, error) {
	r := result{ops: c.messages, expected: int64(c.messages)}
	k := newCounter(c.messages)
	sub, err := connect(b.addr, "w2-sub", true, k.handler(bySeq))
	if err != nil {
		return r, err
	}
	defer sub.Disconnect(100)
	if t := sub.Subscribe("pubsub/w2/#", 1, nil); !t.WaitTimeout(30*time.Second) || t.Error() != nil {
		return r, fmt.Errorf("subscribe: %v", errOr(t.Error(), "timeout"))
	}
	start := time.Now()
	err = measure(b, &r, func() error {
		var perr error
		r.lat, perr = publish(c, b.addr, "w2-", "pubsub/w2/", c.messages, false)
		if perr != nil {
			return perr
		}
		if !k.wait(c.timeout) {
			u, _ := k.counts()
			return fmt.Errorf("subscriber got %d of %d messages", u, c.messages)
		}
		r.elapsed = k.last.Sub(start)
		return nil
	})
	r.received, r.dups = k.counts()
	return r, err
}

// bySeq tells deliveries apart by the "<publisher>.<k>" their payload starts with.
func bySeq(m paho.Message) string { return seqOf(m.Payload()) }

// seqOf is the "<publisher>.<k>" a publish payload starts with.
func seqOf(p []byte) string {
	if i := strings.IndexByte(string(p), ' '); i > 0 {
		return string(p[:i])
	}
	return string(p)
}

// retainedFanOut (W3): c.retained retained messages on distinct topics, then c.subscribers
// clients subscribe to the whole tree at once; the time runs from the subscriptions until
// every subscriber has every retained message.
func retainedFanOut(c *config, b *proc, _ func() (*proc, error)) (result, error) {
	r := result{ops: c.retained * c.subscribers, expected: int64(c.retained)}
	if _, err := publish(c, b.addr, "w3-", "pubsub/w3/", c.retained, true); err != nil {
		return r, err
	}
	subs := make([]*counter, c.subscribers)
	clients := make([]paho.Client, c.subscribers)
	for i := range subs {
		subs[i] = newCounter(c.retained)
		cl, err := connect(b.addr, fmt.Sprintf("w3-sub%d", i), true, subs[i].handler(func(m paho.Message) string { return m.Topic() }))
		if err != nil {
			return r, err
		}
		defer cl.Disconnect(100)
		clients[i] = cl
	}
	err := measure(b, &r, func() error {
		var wg sync.WaitGroup
		for _, cl := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cl.Subscribe("pubsub/w3/#", 1, nil).WaitTimeout(c.timeout)
			}()
		}
		wg.Wait()
		deadline := time.Now().Add(c.timeout)
		for i, k := range subs {
			if !k.wait(time.Until(deadline)) {
				u, _ := k.counts()
				return fmt.Errorf("subscriber %d got %d of %d retained messages", i, u, c.retained)
			}
		}
		return nil
	})
	for _, k := range subs {
		u, d := k.counts()
		r.received += u
		r.dups += d
	}
	return r, err
}

// backlogDrain (W4): a client with a persistent session subscribes and goes away;
// c.backlog messages are published for it; the broker restarts (so only what it persisted
// can be delivered); the client comes back, subscribes again and the time runs until it has
// every message.
func backlogDrain(c *config, b *proc, restart func() (*proc, error)) (result, error) {
	r := result{ops: c.backlog, expected: int64(c.backlog)}
	k := newCounter(c.backlog)
	handler := k.handler(bySeq)
	cl, err := connect(b.addr, "w4-drain", false, handler)
	if err != nil {
		return r, err
	}
	if t := cl.Subscribe("pubsub/w4/#", 1, nil); !t.WaitTimeout(30*time.Second) || t.Error() != nil {
		return r, fmt.Errorf("subscribe: %v", errOr(t.Error(), "timeout"))
	}
	cl.Disconnect(100)
	if _, err := publish(c, b.addr, "w4-", "pubsub/w4/", c.backlog, false); err != nil {
		return r, err
	}
	b, err = restart()
	if err != nil {
		return r, err
	}
	start := time.Now()
	err = measure(b, &r, func() error {
		cl, err := connect(b.addr, "w4-drain", false, handler)
		if err != nil {
			return err
		}
		defer cl.Disconnect(100)
		cl.Subscribe("pubsub/w4/#", 1, nil).WaitTimeout(30 * time.Second)
		if !k.wait(c.timeout) {
			u, _ := k.counts()
			return fmt.Errorf("got %d of %d backlog messages", u, c.backlog)
		}
		r.elapsed = k.last.Sub(start)
		return nil
	})
	r.received, r.dups = k.counts()
	return r, err
}
