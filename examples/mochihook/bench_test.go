package mochihook

import (
	"context"
	"io"
	"log/slog"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqttstore/mqttstore/hook"
)

type discardWrites struct{}

func (discardWrites) Prepare(r *hook.Rule) (hook.Action, error) {
	return writeFunc(func(hook.Event) error { return nil }), nil
}
func (discardWrites) Close(context.Context) error { return nil }

// benchHook returns a hook on a server that is not serving, its dispatcher holding rules for
// message.publish, message.deliver and message.acked whose writes cost nothing: what is
// measured is the adapter's own work on mochi's packet path (and the dispatch).
func benchHook(b *testing.B) (*Hook, *mqtt.Client) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	d := hook.NewDispatcher(hook.DispatcherOptions{Logger: log})
	err := d.Register(context.Background(), "discard", discardWrites{},
		hook.Rule{Point: hook.MessagePublish, Topic: "#", Action: hook.RuleAction{Function: hook.OnMessagePublish}},
		hook.Rule{Point: hook.MessageDeliver, Topic: "#", Action: hook.RuleAction{SQL: []string{"x"}}},
		hook.Rule{Point: hook.MessageAcked, Topic: "#", Action: hook.RuleAction{Function: hook.OnMessageAcked}})
	if err != nil {
		b.Fatal(err)
	}
	server := mqtt.New(&mqtt.Options{Logger: log})
	h := New(server, d, Options{Logger: log})
	cl := server.NewClient(nil, "t", "c", false)
	cl.Net.Remote = "127.0.0.1:50000"
	h.conns.Store(cl.ID, newConn(cl, false))
	return h, cl
}

// BenchmarkOnPublish is the cost the hook adds to every PUBLISH mochi receives.
func BenchmarkOnPublish(b *testing.B) {
	h, cl := benchHook(b)
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, TopicName: "sensors/1/temp", Payload: []byte("21.5")}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.OnPublish(cl, pk); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDeliverAck is the cost the hook adds to one QoS 1 delivery: in flight, written,
// acknowledged.
func BenchmarkDeliverAck(b *testing.B) {
	h, cl := benchHook(b)
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, TopicName: "sensors/1/temp", Payload: []byte("21.5"), PacketID: 7}
	stamp(&pk, &hook.Message{ID: "1hqs4meqvgorfv7jedrop6mj", Topic: pk.TopicName})
	ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: 7}
	b.ReportAllocs()
	for b.Loop() {
		h.OnQosPublish(cl, pk, 0, 0)
		h.OnPacketSent(cl, pk, nil)
		h.OnQosComplete(cl, ack)
	}
}
