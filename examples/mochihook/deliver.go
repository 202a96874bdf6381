package mochihook

import (
	"errors"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/topic"
)

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
//
// since is a message ID made when mochi added the subscription: the stored messages this
// node published with a later ID were routed to it by mochi itself, and are not sent again
// (those of other brokers on the same database were not, and are).
func (h *Hook) subscribed(cl *mqtt.Client, c *conn, sub packets.Subscription, since string, mochiRetained bool) {
	res, err := h.d.SessionSubscribed(h.ctx, &hook.SubscribedEvent{
		ClientID: cl.ID, Username: string(cl.Properties.Username), Topic: sub.Filter, QoS: sub.Qos,
	})
	h.logErr(err, hook.SessionSubscribed, cl)
	if cl.Net.Inline || cl.Closed() || c == nil {
		return // the embedding program's own subscription (Server.Subscribe), or gone: nothing to write to
	}
	if mqtt.IsSharedFilter(sub.Filter) {
		// A group's stored messages are not each member's; mochi sends shared subscriptions
		// no retained messages either (MQTT 5, 4.8.2).
		return
	}
	noRetained := sub.RetainHandling == 2
	// Offline messages go to an established subscription: RETAIN 0 (MQTT-3.3.1-9), whatever
	// the Retain Handling. Retained messages: RETAIN 1, unless Retain Handling 2.
	pg := &page{sub: sub, since: since}
	h.queueStored(cl, c, pg, res.Offline, nil, false, !noRetained)
	pg.more = len(pg.queue) > 0 // a backlog may have more pages
	if !noRetained {
		h.queueStored(cl, c, pg, res.Retained, nil, true, true)
		if mochiRetained {
			for _, rp := range h.server.Topics.Messages(sub.Filter) {
				pg.queue = append(pg.queue, rp.Copy(false))
			}
		}
	}
	if len(pg.queue) > 0 {
		c.addPage(pg)
		h.pump(cl, c)
	}
}

// queueStored appends to pg the packets of the stored messages ms that cl must be sent, but
// not those whose ID is in seen.
func (h *Hook) queueStored(cl *mqtt.Client, c *conn, pg *page, ms []*hook.Message, seen map[string]struct{}, retain, mochiSendsRetained bool) {
	var dup func(*hook.Message) bool
	sub := pg.sub
	for _, m := range ms {
		if sub.NoLocal && m.From == cl.ID || !topic.Match(sub.Filter, m.Topic) {
			continue // the last: a store's mistake must not reach a client that did not ask
		}
		if m.ID != "" {
			if _, ok := seen[m.ID]; ok {
				continue // in the previous page: a store answering without positions, or not sent (ACL)
			}
			if pg.ids == nil {
				pg.ids = make(map[string]struct{})
			}
			pg.ids[m.ID] = struct{}{}
		}
		if dup == nil {
			dup = h.duplicates(cl, c, mochiSendsRetained)
		}
		if dup(m) {
			continue
		}
		if routedLive(m.ID, pg.since) {
			continue // published here after the subscription was made: mochi delivered it
		}
		if h.acl != nil && !h.acl(cl, m.Topic) {
			atomic.AddInt64(&h.denied, 1) // as mochi's publishToClient: not authorized, not sent
			continue
		}
		pk := packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: m.QoS, Retain: retain},
			TopicName:   m.Topic,
			Payload:     m.Payload,
			Origin:      m.From,
			Created:     time.Now().Unix(),
		}
		for _, p := range m.UserProperties {
			pk.Properties.User = append(pk.Properties.User, packets.UserProperty{Key: p.Key, Val: p.Value})
		}
		stamp(&pk, m)
		pg.queue = append(pg.queue, pk)
	}
}

// nextPage looks up the next page of pg's subscription, once every message of pg was
// acknowledged: the stores' positions are written first (Flush), so the lookup answers
// after them. It runs on a goroutine of its own.
func (h *Hook) nextPage(cl *mqtt.Client, c *conn, pg *page) {
	if cl.Closed() || h.ctx.Err() != nil {
		return
	}
	if _, ok := cl.State.Subscriptions.Get(pg.sub.Filter); !ok {
		return // unsubscribed meanwhile
	}
	if err := h.d.Flush(h.ctx); err != nil {
		if h.ctx.Err() != nil || errors.Is(err, hook.ErrClosed) {
			return // shutting down
		}
		h.log().Warn("mqttstore: the next page of stored messages is not delivered: positions not written",
			"client", cl.ID, "topic", pg.sub.Filter, "error", err)
		return
	}
	res, err := h.d.SessionSubscribed(h.ctx, &hook.SubscribedEvent{
		ClientID: cl.ID, Username: string(cl.Properties.Username), Topic: pg.sub.Filter, QoS: pg.sub.Qos,
	})
	h.logErr(err, hook.SessionSubscribed, cl)
	next := &page{sub: pg.sub, since: pg.since}
	h.queueStored(cl, c, next, res.Offline, pg.ids, false, pg.sub.RetainHandling != 2)
	if len(next.queue) == 0 {
		return // drained
	}
	next.more = true
	c.addPage(next)
	h.pump(cl, c)
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

// window is how many QoS 1 and 2 deliveries cl may have in flight: its Receive Maximum (MQTT
// 5; mochi caps it at the server's MaximumInflight), else the server's MaximumInflight, and
// at most the deliveries the hook tracks.
func (h *Hook) window(cl *mqtt.Client) int {
	n := int(h.server.Options.Capabilities.MaximumInflight)
	if rm := int(cl.Properties.Props.ReceiveMaximum); rm > 0 {
		n = min(n, rm)
	}
	return min(n, h.maxTracked)
}

// pump sends the queued stored messages of c, in order, as long as the client's window has
// room for them; the acknowledgements that free room call it again (OnQosComplete), so a
// backlog goes out in pages, however large, without overrunning the client.
func (h *Hook) pump(cl *mqtt.Client, c *conn) {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	for {
		pg, pk, ok := c.next(func(pk packets.Packet, sub packets.Subscription) bool {
			return h.qos(pk, sub) == 0 || cl.State.Inflight.Len() < h.window(cl)
		})
		if !ok {
			return
		}
		err := h.send(cl, c, pg, pk)
		if errors.Is(err, packets.ErrPacketTooLarge) {
			// Larger than the client's Maximum Packet Size: it can never be sent to this
			// client, as mochi drops such live messages; the next ones can.
			atomic.AddInt64(&h.tooLarge, 1)
			atomic.AddInt64(&h.server.Info.MessagesDropped, 1)
			c.skip(pk.Connect.ClientIdentifier, h.maxTracked)
			h.log().Debug("mqttstore: stored message larger than the client's maximum packet size skipped",
				"client", cl.ID, "topic", pk.TopicName, "msgid", pk.Connect.ClientIdentifier)
		} else if err != nil {
			h.log().Warn("mqttstore: delivering stored messages stopped", "client", cl.ID, "topic", pg.sub.Filter, "error", err)
			c.dropPages()
			return
		} else if h.qos(pk, pg.sub) == 0 && !pk.FixedHeader.Retain {
			h.sentQoS0(cl, c, pk)
		}
		if c.sent(pg) {
			go h.nextPage(cl, c, pg)
		}
	}
}

// sentQoS0 records the position of a stored message sent at QoS 0: no acknowledgement will
// come, and without it the message would come again with every SUBSCRIBE (a store with
// on_message_store keeps QoS 0 messages). message.acked is dispatched as when a QoS 1 message
// is acknowledged.
func (h *Hook) sentQoS0(cl *mqtt.Client, c *conn, pk packets.Packet) {
	m := stamped(&pk)
	if m == nil {
		return
	}
	c.sentQoS0(m, h.maxTracked)
	err := h.d.MessageAcked(h.ctx, &hook.AckedEvent{ClientID: cl.ID, Username: string(cl.Properties.Username), Message: m})
	h.logErr(err, hook.MessageAcked, cl)
}

// since returns an ID made now (see subscribed).
func (h *Hook) since() string {
	return h.d.IDs().Next()
}

// routedLive reports whether the message with ID id was published on this node (since's) at
// or after since: IDs start with their time (hook.IDTimeLen characters), then the hash of
// their node's name (up to the last 3 characters, random per generator).
func routedLive(id, since string) bool {
	const nodeEnd = hook.IDLen - 3
	if len(id) != hook.IDLen || len(since) != hook.IDLen {
		return false
	}
	return id[hook.IDTimeLen:nodeEnd] == since[hook.IDTimeLen:nodeEnd] && id[:hook.IDTimeLen] >= since[:hook.IDTimeLen]
}

// qos is the QoS pk goes out with under sub.
func (h *Hook) qos(pk packets.Packet, sub packets.Subscription) byte {
	return min(pk.FixedHeader.Qos, sub.Qos, h.server.Options.Capabilities.MaximumQos)
}

// send delivers pk to cl under the subscription of pg, as mochi's publishToClient does: the
// QoS is at most the subscription's and the server's, and a QoS 1 or 2 packet gets a packet
// ID and goes in flight (and is tracked) before it is written.
func (h *Hook) send(cl *mqtt.Client, c *conn, pg *page, pk packets.Packet) error {
	sub := pg.sub
	pk.FixedHeader.Qos = h.qos(pk, sub)
	if sub.Identifier > 0 {
		pk.Properties.SubscriptionIdentifier = []int{sub.Identifier}
	}
	if pk.FixedHeader.Qos > 0 {
		if !c.setInflight(cl, &pk) {
			atomic.AddInt64(&h.server.Info.InflightDropped, 1)
			return packets.ErrQuotaExceeded
		}
		atomic.AddInt64(&h.server.Info.Inflight, 1)
		cl.State.Inflight.DecreaseSendQuota()
		if m := stamped(&pk); m != nil {
			h.track(cl, c, pk.PacketID, m) // what mochi's OnQosPublish would do
		}
		c.inPage(pk.PacketID, pg)
	}
	err := cl.WritePacket(pk)
	if err != nil && pk.FixedHeader.Qos > 0 {
		// Not sent: nothing of it may stay in flight, where it would take room in the
		// client's window for good and be resent with a resumed session.
		if cl.State.Inflight.Delete(pk.PacketID) {
			atomic.AddInt64(&h.server.Info.Inflight, -1)
			cl.State.Inflight.IncreaseSendQuota()
		}
		c.forget(pk.PacketID)
		c.unpage(pk.PacketID)
	}
	return err
}

// setInflight gives pk a packet ID and puts it in cl's in-flight map; false if every packet
// ID is in use.
//
// The IDs are taken from the top of the range down (65535, 65534, ...), where mochi takes
// its own from 1 up, as clients do for theirs: mochi refuses a SUBSCRIBE or UNSUBSCRIBE whose
// packet ID is the ID of one of its deliveries in flight to the client (see the package doc),
// and stored deliveries, sent right after a SUBACK and acknowledged later, would otherwise
// take the very IDs the client's next SUBSCRIBE uses. The ID is chosen and set under the
// client's lock, which mochi's NextPacketID takes too.
func (c *conn) setInflight(cl *mqtt.Client, pk *packets.Packet) bool {
	cl.Lock()
	defer cl.Unlock()
	for range math.MaxUint16 {
		id := c.nextID
		if id == 0 {
			id = math.MaxUint16
		}
		c.nextID = id - 1
		if _, used := cl.State.Inflight.Get(id); !used {
			pk.PacketID = id
			cl.State.Inflight.Set(*pk)
			return true
		}
	}
	return false
}

// page is the stored messages of one lookup for one subscription, being delivered.
type page struct {
	sub     packets.Subscription
	since   string              // see Hook.subscribed
	queue   []packets.Packet    // not sent yet
	unacked int                 // QoS 1 and 2 deliveries sent and not yet completed
	more    bool                // offline messages: the next lookup may return more
	ids     map[string]struct{} // the IDs of the messages queued
}

// conn is the hook's state of one connection.
type conn struct {
	cl      *mqtt.Client
	present bool // mochi resumed the client's session

	mu       sync.Mutex
	inflight map[uint16]*hook.Message // QoS 1 and 2 deliveries awaiting acknowledgement, by packet ID
	ackedTo  map[string]string        // topic -> greatest message ID acknowledged on this connection
	skipped  map[string]struct{}      // IDs of stored messages this client cannot be sent (too large)
	subacks  map[uint16][]granted     // SUBSCRIBE packet ID -> granted filters, until the SUBACK is written
	pages    []*page                  // stored messages being delivered, in order
	pageOf   map[uint16]*page         // packet ID -> the page of a stored delivery in flight

	sendMu sync.Mutex // held by pump: one sender at a time, in order
	nextID uint16     // the packet ID of the next stored delivery, down from 65535 (0: 65535); under sendMu
}

// addPage queues pg's messages after those queued before.
func (c *conn) addPage(pg *page) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pages = append(c.pages, pg)
}

// next takes the next queued packet, if fits says it may go now.
func (c *conn) next(fits func(packets.Packet, packets.Subscription) bool) (*page, packets.Packet, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, pg := range c.pages {
		if len(pg.queue) == 0 {
			continue
		}
		pk := pg.queue[0]
		if !fits(pk, pg.sub) {
			return nil, packets.Packet{}, false
		}
		pg.queue[0] = packets.Packet{}
		pg.queue = pg.queue[1:]
		return pg, pk, true
	}
	return nil, packets.Packet{}, false
}

// inPage records that the delivery with packet ID id belongs to pg.
func (c *conn) inPage(id uint16, pg *page) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pageOf == nil {
		c.pageOf = make(map[uint16]*page)
	}
	c.pageOf[id] = pg
	pg.unacked++
}

// sent notes that a packet of pg was written; done reports that pg is complete (nothing
// left to send or acknowledge) and may have a next page.
func (c *conn) sent(pg *page) (done bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.completeLocked(pg)
}

// completed notes the end of the delivery with packet ID id, acknowledged or dropped; pg is
// its page if that page is now complete and has a next one. A page with a dropped delivery
// has none: the next lookup would return the dropped message again.
func (c *conn) completed(id uint16, acked bool) (pg *page) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pageOf[id]
	if p == nil {
		return nil
	}
	delete(c.pageOf, id)
	p.unacked--
	p.more = p.more && acked
	if c.completeLocked(p) {
		return p
	}
	return nil
}

// unpage forgets that the delivery with packet ID id, not sent after all, is in its page.
func (c *conn) unpage(id uint16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.pageOf[id]; p != nil {
		delete(c.pageOf, id)
		p.unacked--
	}
}

// completeLocked removes pg if it is complete, reporting whether it has a next page.
func (c *conn) completeLocked(pg *page) bool {
	if len(pg.queue) > 0 || pg.unacked > 0 {
		return false
	}
	i := slices.Index(c.pages, pg)
	if i < 0 {
		return false // already complete
	}
	c.pages = slices.Delete(c.pages, i, i+1)
	return pg.more
}

// skip remembers, for at most max messages, that the stored message id cannot be sent to
// this client: a next page must not bring it again.
func (c *conn) skip(id string, max int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if id == "" || len(c.skipped) >= max {
		return
	}
	if c.skipped == nil {
		c.skipped = make(map[string]struct{})
	}
	c.skipped[id] = struct{}{}
}

// dropPages forgets every queued stored message (the connection failed).
func (c *conn) dropPages() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pages = nil
}

// granted is a filter a SUBSCRIBE was granted, and when.
type granted struct {
	sub   packets.Subscription
	since string // see Hook.subscribed
}

// awaitSuback remembers the filters granted by the SUBSCRIBE with packet ID id.
func (c *conn) awaitSuback(id uint16, gs []granted) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.subacks == nil {
		c.subacks = make(map[uint16][]granted)
	}
	c.subacks[id] = append(c.subacks[id], gs...)
}

// subackSent returns and forgets the filters granted by the SUBSCRIBE with packet ID id.
func (c *conn) subackSent(id uint16) []granted {
	c.mu.Lock()
	defer c.mu.Unlock()
	gs := c.subacks[id]
	delete(c.subacks, id)
	return gs
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
	c.advanceLocked(m, max)
	return m
}

// sentQoS0 records the position of m, a stored message sent at QoS 0 (which nothing will
// acknowledge), for at most max topics.
func (c *conn) sentQoS0(m *hook.Message, max int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.advanceLocked(m, max)
}

// advanceLocked moves the acknowledged position of m's topic to m, if m is later.
func (c *conn) advanceLocked(m *hook.Message, max int) {
	if cur, ok := c.ackedTo[m.Topic]; ok {
		if m.ID > cur {
			c.ackedTo[m.Topic] = m.ID
		}
	} else if len(c.ackedTo) < max {
		c.ackedTo[m.Topic] = m.ID
	}
}

func (c *conn) forget(id uint16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.inflight, id)
}

// inflightIDs adds the IDs of the tracked deliveries, and of the skipped messages, to ids.
func (c *conn) inflightIDs(ids map[string]struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.inflight {
		ids[m.ID] = struct{}{}
	}
	for id := range c.skipped {
		ids[id] = struct{}{}
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
