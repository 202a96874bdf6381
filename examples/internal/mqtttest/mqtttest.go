// Package mqtttest drives a broker in the examples' tests with a real MQTT client
// (paho.mqtt.golang) that records what it receives, and waits on what it cannot be told.
package mqtttest

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Timeout bounds every wait of the package. It is generous: a subscriber's lookups run in
// mochi's read loop of that client (after the SUBACK), so on a loaded machine with a slow
// store (Cassandra's JVM on 2 cores) the client's next packet can wait seconds; 10 s was
// passed once in a full CI run while another load ran.
const Timeout = 30 * time.Second

// Received is a message as a Client received it.
type Received struct {
	Topic   string
	Payload string
	QoS     byte
	Retain  bool
}

// Client is a paho client that records what it receives. Its methods other than paho's are
// for the test's goroutine.
type Client struct {
	paho.Client
	ID             string
	SessionPresent bool // the CONNACK said the broker had kept the client's session

	settling bool // subscribed to its settle topic
	barriers int
	mu       sync.Mutex
	msgs     []Received
}

// Connect connects a client with ID id to the broker at addr (host:port), without automatic
// reconnection, and disconnects it when the test ends.
func Connect(t testing.TB, addr, id string, clean bool) *Client {
	t.Helper()
	c := &Client{ID: id}
	opts := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetCleanSession(clean).
		SetAutoReconnect(false).SetOrderMatters(true).SetConnectTimeout(5 * time.Second).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.msgs = append(c.msgs, Received{m.Topic(), string(m.Payload()), m.Qos(), m.Retained()})
		})
	c.Client = paho.NewClient(opts)
	tok := c.Connect()
	Wait(t, tok)
	c.SessionPresent = tok.(*paho.ConnectToken).SessionPresent()
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

// Wait waits for tok, failing the test if it times out or fails.
func Wait(t testing.TB, tok paho.Token) {
	t.Helper()
	if !tok.WaitTimeout(Timeout) {
		t.Fatal("MQTT operation timed out")
	}
	if err := tok.Error(); err != nil {
		t.Fatal(err)
	}
}

// MustSubscribe subscribes c to filter, failing the test if the broker refuses.
func (c *Client) MustSubscribe(t testing.TB, filter string, qos byte) {
	t.Helper()
	tok := c.Subscribe(filter, qos, nil)
	Wait(t, tok)
	if granted := tok.(*paho.SubscribeToken).Result()[filter]; granted > 2 {
		t.Fatalf("subscribe %s: refused (%#x)", filter, granted)
	}
}

// MustPublish publishes payload to topic and waits for the broker's acknowledgement, if any.
func (c *Client) MustPublish(t testing.TB, topic string, qos byte, retain bool, payload string) {
	t.Helper()
	Wait(t, c.Publish(topic, qos, retain, payload))
}

// Received returns what c has received so far, in order.
func (c *Client) Received() []Received {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.msgs)
}

// Barrier publishes a QoS 0 message to topic, which c is subscribed to, and returns what c
// received before it, earlier barriers left out: what the broker sent c in answer to the
// packets c sent before (a broker handles a client's packets in order).
func (c *Client) Barrier(t testing.TB, topic string) []Received {
	t.Helper()
	c.barriers++
	payload := fmt.Sprintf("barrier %d", c.barriers)
	c.MustPublish(t, topic, 0, false, payload)
	var got []Received
	Eventually(t, "the barrier on "+topic, func() bool {
		got = c.Received()
		return slices.ContainsFunc(got, func(r Received) bool { return r.Payload == payload })
	})
	got = got[:slices.IndexFunc(got, func(r Received) bool { return r.Payload == payload })]
	return slices.DeleteFunc(got, func(r Received) bool { return strings.HasPrefix(r.Payload, "barrier ") })
}

// Settle returns once the broker has fully handled the messages c published before: MQTT
// acknowledges a publish when it is received, not when it has been passed on (mochi acks
// before it routes), and does not acknowledge QoS 0 at all.
func (c *Client) Settle(t testing.TB) {
	t.Helper()
	topic := "settle/" + c.ID
	if !c.settling {
		c.MustSubscribe(t, topic, 0)
		c.settling = true
	}
	c.Barrier(t, topic)
}

// Eventually waits until cond holds, failing the test after Timeout.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
