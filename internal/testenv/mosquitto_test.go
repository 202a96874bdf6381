package testenv

import (
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

func mqttConnect(t *testing.T, addr string) mqtt.Client {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(Name(t, 23)))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", addr, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// A retained message published at QoS 1 is delivered to a later subscriber.
func TestMosquittoRetainedRoundTrip(t *testing.T) {
	t.Parallel()
	addr := Mosquitto(t)
	topic := Name(t, 40) + "/state"
	pub := mqttConnect(t, addr)
	if tok := pub.Publish(topic, 1, true, "on"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	t.Cleanup(func() { pub.Publish(topic, 1, true, "").WaitTimeout(5 * time.Second) }) // clears it

	got := make(chan mqtt.Message, 1)
	sub := mqttConnect(t, addr)
	tok := sub.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) { got <- m })
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	select {
	case m := <-got:
		if string(m.Payload()) != "on" || !m.Retained() || m.Topic() != topic {
			t.Errorf("got %q on %s (retained %v), want retained \"on\" on %s", m.Payload(), m.Topic(), m.Retained(), topic)
		}
	case <-time.After(5 * time.Second):
		t.Error("no retained message within 5s")
	}
}
