package mochihook

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/topic"
)

// errInflightFull: the client has the server's MaximumInflight deliveries in flight.
var errInflightFull = errors.New("client has the maximum number of messages in flight")

// stamp records m's ID, topic and publisher's username in pk (see the package doc).
func stamp(pk *packets.Packet, m *hook.Message) {
	pk.Connect.ClientIdentifier = m.ID
	pk.Connect.WillTopic = m.Topic
	pk.Connect.Username = []byte(m.Username)
}

// stamped returns the message a PUBLISH packet carries, as delivered (QoS and retain flag of
// the packet), or nil if the packet has no stamp.
func stamped(pk *packets.Packet) *hook.Message {
	if pk.Connect.ClientIdentifier == "" {
		return nil
	}
	m := &hook.Message{
		ID:        pk.Connect.ClientIdentifier,
		From:      pk.Origin,
		Username:  string(pk.Connect.Username),
		Topic:     pk.Connect.WillTopic,
		QoS:       pk.FixedHeader.Qos,
		Retain:    pk.FixedHeader.Retain,
		Payload:   pk.Payload,
		Timestamp: time.Unix(pk.Created, 0),
	}
	if m.Topic == "" {
		m.Topic = pk.TopicName
	}
	return m
}

// subscribed dispatches session.subscribed for sub and delivers to cl the messages the
// lookups return. With mochiRetained it then also sends the retained messages mochi holds for
// the filter, as mochi does itself after a SUBSCRIBE but not for subscriptions the hook
// applies.
func (h *Hook) subscribed(cl *mqtt.Client, c *conn, sub packets.Subscription, mochiRetained bool) {
	res, err := h.d.SessionSubscribed(h.ctx, &hook.SubscribedEvent{
		ClientID: cl.ID, Username: string(cl.Properties.Username), Topic: sub.Filter, QoS: sub.Qos,
	})
	h.logErr(err, hook.SessionSubscribed, cl)
	if cl.Net.Inline || cl.Closed() {
		return // the embedding program's own subscription (Server.Subscribe), or gone: nothing to write to
	}
	if mqtt.IsSharedFilter(sub.Filter) {
		// A group's stored messages are not each member's; mochi sends shared subscriptions
		// no retained messages either (MQTT 5, 4.8.2).
		return
	}
	noRetained := sub.RetainHandling == 2
	var dup func(*hook.Message) bool
	// Offline messages go to an established subscription: RETAIN 0 (MQTT-3.3.1-9), whatever
	// the Retain Handling. Retained messages: RETAIN 1, unless Retain Handling 2.
	offline := len(res.Offline)
	all := res.Offline
	if !noRetained {
		all = append(all[:offline:offline], res.Retained...)
	}
	for i, m := range all {
		if sub.NoLocal && m.From == cl.ID || !topic.Match(sub.Filter, m.Topic) {
			continue // the last: a store's mistake must not reach a client that did not ask
		}
		if dup == nil {
			dup = h.duplicates(cl, c, !noRetained)
		}
		if dup(m) {
			continue
		}
		pk := packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: m.QoS, Retain: i >= offline},
			TopicName:   m.Topic,
			Payload:     m.Payload,
			Origin:      m.From,
			Created:     time.Now().Unix(),
		}
		for _, p := range m.UserProperties {
			pk.Properties.User = append(pk.Properties.User, packets.UserProperty{Key: p.Key, Val: p.Value})
		}
		stamp(&pk, m)
		if err := h.send(cl, c, sub, pk); err != nil {
			h.log().Warn("mqttstore: delivering stored messages stopped", "client", cl.ID, "topic", sub.Filter, "error", err)
			return
		}
	}
	if mochiRetained && !noRetained {
		for _, rp := range h.server.Topics.Messages(sub.Filter) {
			out := rp.Copy(false)
			if err := h.send(cl, c, sub, out); err != nil {
				h.log().Warn("mqttstore: delivering retained messages stopped", "client", cl.ID, "topic", sub.Filter, "error", err)
				return
			}
		}
	}
}

// duplicates returns what tells the stored messages cl must not be sent again: those in flight
// to it (sent and not acknowledged, or queued in its session by mochi), those at or before the
// position acknowledged on this connection for their topic, and, when mochi will send the
// retained messages it holds, those it holds.
func (h *Hook) duplicates(cl *mqtt.Client, c *conn, mochiSendsRetained bool) func(*hook.Message) bool {
	pending := make(map[string]struct{})
	for _, p := range cl.State.Inflight.GetAll(false) {
		if id := p.Connect.ClientIdentifier; id != "" && p.FixedHeader.Type == packets.Publish {
			pending[id] = struct{}{}
		}
	}
	if c != nil {
		c.inflightIDs(pending)
	}
	return func(m *hook.Message) bool {
		if m.ID == "" {
			return false
		}
		if _, ok := pending[m.ID]; ok {
			return true
		}
		if c != nil && c.ackedAtOrAfter(m) {
			return true
		}
		if m.Retain && mochiSendsRetained {
			if rp, ok := h.server.Topics.Retained.Get(m.Topic); ok && rp.Connect.ClientIdentifier == m.ID {
				return true
			}
		}
		return false
	}
}

// send delivers pk to cl under subscription sub, as mochi's publishToClient does: the QoS is
// at most the subscription's and the server's, and a QoS 1 or 2 packet gets a packet ID and
// goes in flight (and is tracked) before it is written.
//
// mochi does not expose the client's send quota (an MQTT 5 client's Receive Maximum), so the
// stored messages of one subscription are all written at once; offline_opts
// max_returned_count keeps their number below it.
func (h *Hook) send(cl *mqtt.Client, c *conn, sub packets.Subscription, pk packets.Packet) error {
	caps := h.server.Options.Capabilities
	pk.FixedHeader.Qos = min(pk.FixedHeader.Qos, sub.Qos, caps.MaximumQos)
	if sub.Identifier > 0 {
		pk.Properties.SubscriptionIdentifier = []int{sub.Identifier}
	}
	if pk.FixedHeader.Qos > 0 {
		if cl.State.Inflight.Len() >= int(caps.MaximumInflight) {
			atomic.AddInt64(&h.server.Info.InflightDropped, 1)
			return errInflightFull
		}
		id, err := cl.NextPacketID()
		if err != nil {
			atomic.AddInt64(&h.server.Info.InflightDropped, 1)
			return err
		}
		pk.PacketID = uint16(id)
		if cl.State.Inflight.Set(pk) {
			atomic.AddInt64(&h.server.Info.Inflight, 1)
			cl.State.Inflight.DecreaseSendQuota()
		}
		if m := stamped(&pk); m != nil {
			h.track(cl, c, pk.PacketID, m) // what mochi's OnQosPublish would do
		}
	}
	return cl.WritePacket(pk)
}

// conn is the hook's state of one connection.
type conn struct {
	cl      *mqtt.Client
	present bool // mochi resumed the client's session

	mu       sync.Mutex
	inflight map[uint16]*hook.Message          // QoS 1 and 2 deliveries awaiting acknowledgement, by packet ID
	ackedTo  map[string]string                 // topic -> greatest message ID acknowledged on this connection
	subacks  map[uint16][]packets.Subscription // SUBSCRIBE packet ID -> granted filters, until the SUBACK is written
}

// awaitSuback remembers the filters granted by the SUBSCRIBE with packet ID id.
func (c *conn) awaitSuback(id uint16, granted []packets.Subscription) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.subacks == nil {
		c.subacks = make(map[uint16][]packets.Subscription)
	}
	c.subacks[id] = append(c.subacks[id], granted...)
}

// subackSent returns and forgets the filters granted by the SUBSCRIBE with packet ID id.
func (c *conn) subackSent(id uint16) []packets.Subscription {
	c.mu.Lock()
	defer c.mu.Unlock()
	granted := c.subacks[id]
	delete(c.subacks, id)
	return granted
}

func newConn(cl *mqtt.Client, present bool) *conn {
	return &conn{cl: cl, present: present, inflight: make(map[uint16]*hook.Message), ackedTo: make(map[string]string)}
}

// track remembers m as delivered under packet ID id; false if max deliveries are tracked.
func (c *conn) track(id uint16, m *hook.Message, max int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.inflight[id]; !ok && len(c.inflight) >= max {
		return false
	}
	c.inflight[id] = m
	return true
}

// acked forgets and returns the message delivered under packet ID id (nil if none), and
// records its position, for at most max topics.
func (c *conn) acked(id uint16, max int) *hook.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.inflight[id]
	if m == nil {
		return nil
	}
	delete(c.inflight, id)
	if cur, ok := c.ackedTo[m.Topic]; ok {
		if m.ID > cur {
			c.ackedTo[m.Topic] = m.ID
		}
	} else if len(c.ackedTo) < max {
		c.ackedTo[m.Topic] = m.ID
	}
	return m
}

func (c *conn) forget(id uint16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.inflight, id)
}

// inflightIDs adds the IDs of the tracked deliveries to ids.
func (c *conn) inflightIDs(ids map[string]struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.inflight {
		ids[m.ID] = struct{}{}
	}
}

// ackedAtOrAfter reports whether the client acknowledged, on this connection, m or a later
// message of m's topic.
func (c *conn) ackedAtOrAfter(m *hook.Message) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	cur, ok := c.ackedTo[m.Topic]
	return ok && m.ID <= cur
}

// tracked returns the number of deliveries awaiting acknowledgement (for tests).
func (c *conn) tracked() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.inflight)
}
