// Package mochihook connects a mochi-mqtt v2 broker (github.com/mochi-mqtt/server/v2) to the
// stores of mqttstore: Hook is a mochi hook that turns the broker's events into hook events for
// a hook.Dispatcher, applies the subscriptions the stores return when a client connects, and
// delivers the offline and retained messages they return when it subscribes.
//
// How mochi's events map to hook points:
//
//	OnSessionEstablished  client.connected, then session.created (unless mochi resumed the
//	                      client's session); the subscriptions returned are applied in mochi
//	                      (topic index and client state) and then handled as subscriptions
//	                      (Subscribe and Unsubscribe do the same on a store's request)
//	OnDisconnect          client.disconnected (not when a new connection took the session over)
//	OnSubscribed          notes the granted filters; once mochi has written the SUBACK
//	                      (OnPacketSent), session.subscribed, once per granted filter, and
//	                      the messages returned are delivered to that client only
//	OnUnsubscribed        session.unsubscribed, for UNSUBSCRIBE packets (not for mochi dropping
//	                      the subscriptions of an ended clean session)
//	OnPublish             message.publish (the message gets its ID here)
//	OnPacketSent          message.deliver, for every PUBLISH written to a client
//	OnQosPublish          remembers a QoS 1 or 2 delivery (client, packet ID -> message)
//	OnQosComplete         message.acked, when the client completes a QoS 1 or 2 delivery
//	OnQosDropped          forgets a delivery mochi gave up on
//
// Writes are enqueued by the stores, so these hooks return in microseconds, unless a store's
// write queue is full under the blocking overflow policy: then the client's goroutine waits
// for room, until the store's EnqueueTimeout, Stop, or the deadline of Shutdown. Lookups (on
// connect and subscribe) run on the client's own goroutine, bounded by the dispatcher's
// LookupTimeout; other clients are not held up.
//
// # Delivery of stored messages
//
// The messages a SUBSCRIBE's lookups return go out after mochi has written the SUBACK, as
// mochi's own retained messages do, in the order the stores return them, and no faster than
// the client acknowledges them: at most its Receive Maximum (MQTT 5), the server's
// MaximumInflight and Options.MaxTracked QoS 1 and 2 deliveries in flight at a time, mochi's
// own deliveries counted; each acknowledgement lets the next one go. A large backlog is thus
// delivered whole, never dropped for want of room. Once every offline message a lookup
// returned is acknowledged, the hook writes the stores' queues out (Dispatcher.Flush) and
// dispatches session.subscribed again for the same filter, delivering the next page (the
// stores answer after the positions just written; offline_opts max_returned_count is the
// page size), until a lookup returns nothing new. That repeated session.subscribed runs the
// write rules of that point again too; retained messages are sent once, with the first page.
// Stored messages published after mochi added the subscription (by the time part of their
// IDs) are left out of every page: mochi routed them to the subscription itself.
//
// A stored message sent at QoS 0 (a store keeping QoS 0 messages, on_message_store, or a
// QoS 0 subscription) is never acknowledged: its position is recorded when it is written
// (message.acked is dispatched then), or it would come again with every SUBSCRIBE.
//
// # Packet identifiers and a mochi bug
//
// mochi 2.7.9 refuses a SUBSCRIBE (and an UNSUBSCRIBE) whose packet ID equals the ID of one
// of its own deliveries in flight to the client (processSubscribe: "packet identifier in
// use", reason code 0x91, sent even to MQTT 3.1.1 clients, for which it is not a valid SUBACK
// code). Packet IDs are per direction in MQTT (MQTT-2.2.1): a client's SUBSCRIBE ID and the
// server's PUBLISH IDs never conflict, so a correct client is refused at random. Plain mochi
// does it when it resends a resumed session's messages, since both sides count from 1. The
// hook takes the packet IDs of stored deliveries from the top of the range down (65535,
// 65534, ...), so that the deliveries sent right after a SUBACK do not take the IDs of the
// client's next SUBSCRIBEs. mochi's own live deliveries still count from 1 and can still
// collide; and an ID mochi has just chosen (NextPacketID) but not yet put in flight can be
// chosen by the hook too, once mochi's counter has climbed to the IDs the hook is using (tens
// of thousands of deliveries to one client), in a window of nanoseconds.
//
// # Message identity
//
// Stores record acknowledgements by message ID, so a delivered packet must say which message
// it carries. mochi's Packet has no field for broker metadata, so the hook keeps the ID, the
// topic and the publisher's username in the packet's CONNECT fields (Connect.ClientIdentifier,
// Connect.WillTopic, Connect.Username): mochi copies them with every copy of the packet (to
// each subscriber, into its retained index and in-flight resends) and never encodes them in a
// PUBLISH. Messages mochi publishes without OnPublish (wills, $SYS topics) have no ID: they
// are not stored, and their deliveries are not reported.
//
// # Duplicates
//
// A client whose session mochi kept (clean session false, no broker restart) is sent the
// messages queued in that session by mochi itself when it reconnects; when it then subscribes,
// the stores return the same messages. The hook does not deliver a stored message that is in
// flight to the client, that the client acknowledged on this connection (its acknowledgement
// may not be written yet), or that mochi is about to send as the retained message of its
// topic. What remains is MQTT's at-least-once: a QoS 1 message acknowledged on a previous
// connection just before the store was reached can come again.
package mochihook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqttstore/mqttstore/hook"
)

// Options configure a Hook. The zero value is ready to use.
//
// The broker's node name and the IDs of published messages come from the dispatcher
// (DispatcherOptions.Node and IDs): one node, one source of order.
type Options struct {
	// Logger receives failed actions and deliveries. Nil means the logger mochi gives its
	// hooks (the server's, with hook=mqttstore).
	Logger *slog.Logger
	// MaxTracked bounds, per connection, the QoS 1 and 2 deliveries awaiting acknowledgement
	// that the hook remembers (to report message.acked) and the topics whose acknowledged
	// position it remembers (to avoid duplicates). Zero means the server's MaximumInflight.
	MaxTracked int
	// ACL says whether cl may read a stored message on topic: the stored messages a lookup
	// returns are checked as mochi checks every live message before delivering it (the
	// OnACLCheck of the server's hooks, write false). Give it the server's auth hooks with
	// CheckACL. Nil means no check: every stored message a subscription matches is delivered.
	ACL func(cl *mqtt.Client, topic string) bool
}

// CheckACL returns the ACL check mochi makes with hooks, for Options.ACL: a client may read
// a topic if one of the hooks that provide OnACLCheck allows it (and not if none does).
func CheckACL(hooks ...mqtt.Hook) func(cl *mqtt.Client, topic string) bool {
	return func(cl *mqtt.Client, topic string) bool {
		for _, h := range hooks {
			if h.Provides(mqtt.OnACLCheck) && h.OnACLCheck(cl, topic, false) {
				return true
			}
		}
		return false
	}
}

// Hook is the mochi hook. Make it with New and add it to the server with AddHook, after any
// hook that may reject publishes in OnPublish (messages are stored in this hook's OnPublish).
//
// Hook is safe for concurrent use, as mochi requires: its state is per connection, each
// connection's behind its own mutex.
type Hook struct {
	mqtt.HookBase
	server     *mqtt.Server
	d          *hook.Dispatcher
	logger     *slog.Logger
	maxTracked int
	acl        func(*mqtt.Client, string) bool

	// ctx is passed to every dispatch: it bounds lookups and waits for room in a full write
	// queue. Stop cancels it, and so does the end of Shutdown's ctx.
	ctx    context.Context
	cancel context.CancelFunc

	conns sync.Map // client ID -> *conn, the client's current connection

	tooLarge int64 // stored messages skipped: larger than the client's Maximum Packet Size
	denied   int64 // stored messages not delivered: the ACL denies the client reading them
}

// Stats are counts of the stored messages the hook did not deliver.
type Stats struct {
	// TooLarge is the stored messages skipped because they were larger than the Maximum
	// Packet Size of the client they were for (MQTT 5). The others were delivered.
	TooLarge int64
	// Denied is the stored messages not delivered because Options.ACL denied the client
	// reading their topic.
	Denied int64
}

// Stats returns the hook's counts since New.
func (h *Hook) Stats() Stats {
	return Stats{TooLarge: atomic.LoadInt64(&h.tooLarge), Denied: atomic.LoadInt64(&h.denied)}
}

// New returns a hook that dispatches server's events to d. The caller keeps d: close it after
// the server (server.Close waits for every client's disconnect to be dispatched).
func New(server *mqtt.Server, d *hook.Dispatcher, opts Options) *Hook {
	h := &Hook{server: server, d: d, logger: opts.Logger, maxTracked: opts.MaxTracked, acl: opts.ACL}
	if h.maxTracked <= 0 {
		h.maxTracked = int(server.Options.Capabilities.MaximumInflight)
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	return h
}

// ID returns "mqttstore".
func (h *Hook) ID() string { return "mqttstore" }

// Provides reports the mochi events the hook handles.
func (h *Hook) Provides(b byte) bool {
	switch b {
	case mqtt.OnSessionEstablished, mqtt.OnDisconnect, mqtt.OnSubscribed, mqtt.OnUnsubscribed,
		mqtt.OnPublish, mqtt.OnPacketSent, mqtt.OnQosPublish, mqtt.OnQosComplete, mqtt.OnQosDropped:
		return true
	}
	return false
}

// SetOpts is called by mochi's AddHook with the server's logger.
func (h *Hook) SetOpts(l *slog.Logger, o *mqtt.HookOptions) {
	h.HookBase.SetOpts(l, o)
	if h.logger == nil {
		h.logger = l
	}
}

// Stop cancels the lookups in progress and any hook call waiting for room in a full write
// queue. mochi calls it at the end of server.Close; it does not close the dispatcher.
func (h *Hook) Stop() error {
	h.cancel()
	return nil
}

// Shutdown stops the broker and then the stores, within ctx: it disconnects every client
// (server.Close, which returns once each client's hook calls have returned), then closes the
// dispatcher (d.Close(ctx)), which writes out what the stores have queued.
//
// ctx's deadline is a hard limit. When ctx is done, the hook calls still waiting for room in a
// full write queue (the database is down or slow and the stores block on overflow) give up,
// their writes counted as dropped, so that server.Close can return; and d.Close gives up too,
// counting what it could not write (its error says how many). Without this, a full queue would
// keep server.Close waiting for client goroutines that only d.Close could free.
func (h *Hook) Shutdown(ctx context.Context) error {
	stop := context.AfterFunc(ctx, h.cancel)
	defer stop()
	h.server.Close()
	return h.d.Close(ctx)
}

func (h *Hook) log() *slog.Logger {
	if h.logger == nil {
		return slog.Default()
	}
	return h.logger
}

// logErr logs the failure of dispatching an event, if any.
func (h *Hook) logErr(err error, p hook.Point, cl *mqtt.Client) {
	if err != nil {
		h.log().Warn("mqttstore: dispatch failed", "point", p, "client", cl.ID, "error", err)
	}
}

// OnSessionEstablished dispatches client.connected and session.created, and applies the
// subscriptions their lookups return.
func (h *Hook) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	c := h.conn(cl)
	username := string(cl.Properties.Username)
	res, err := h.d.ClientConnected(h.ctx, &hook.ConnectedEvent{
		ClientID:    cl.ID,
		Username:    username,
		Peerhost:    peerhost(cl),
		Node:        h.d.Node(),
		ProtoVer:    cl.Properties.ProtocolVersion,
		Keepalive:   cl.State.Keepalive,
		CleanStart:  cl.Properties.Clean,
		ConnectedAt: time.Now(),
	})
	h.logErr(err, hook.ClientConnected, cl)
	if c == nil || !c.present {
		created, err := h.d.SessionCreated(h.ctx, &hook.SessionCreatedEvent{ClientID: cl.ID, Username: username, Node: h.d.Node()})
		h.logErr(err, hook.SessionCreated, cl)
		res = hook.MergeResults(res, created)
	}
	for _, s := range res.Subscriptions {
		if err := h.subscribe(cl, c, s); err != nil {
			h.log().Warn("mqttstore: stored subscription not applied", "client", cl.ID, "topic", s.Topic, "error", err)
		}
	}
}

// ErrNotConnected is returned by Subscribe and Unsubscribe for a client that is not connected.
var ErrNotConnected = fmt.Errorf("mochihook: client not connected: %w", hook.ErrNotFound)

// Subscribe subscribes the connected client clientID to sub, as if it had subscribed itself:
// session.subscribed is dispatched, and the stored messages the lookups return and the
// retained messages mochi holds are delivered to it. It is how a store's requests to
// subscribe a client (the Redis SUB/UNSUB channel) reach the broker. A client that is not
// connected gets an error wrapping ErrNotConnected.
func (h *Hook) Subscribe(clientID string, sub hook.Subscription) error {
	cl, ok := h.server.Clients.Get(clientID)
	if !ok || cl.Closed() {
		return fmt.Errorf("subscribe %q to %q: %w", clientID, sub.Topic, ErrNotConnected)
	}
	return h.subscribe(cl, h.conn(cl), sub)
}

// subscribe applies sub to cl in mochi, as mochi's own storage hooks restore subscriptions
// (Server.loadSubscriptions), and handles it as a new subscription.
func (h *Hook) subscribe(cl *mqtt.Client, c *conn, s hook.Subscription) error {
	if !mqtt.IsValidFilter(s.Topic, false) {
		return fmt.Errorf("subscribe %q to %q: invalid topic filter", cl.ID, s.Topic)
	}
	sub := packets.Subscription{Filter: s.Topic, Qos: min(s.QoS, h.server.Options.Capabilities.MaximumQos)}
	if h.server.Topics.Subscribe(cl.ID, sub) {
		atomic.AddInt64(&h.server.Info.Subscriptions, 1)
	}
	cl.State.Subscriptions.Add(sub.Filter, sub)
	h.subscribed(cl, c, sub, h.since(), true)
	return nil
}

// Unsubscribe unsubscribes the connected client clientID from the topic filter, as if it had
// unsubscribed itself: session.unsubscribed is dispatched. A client that is not connected
// gets an error wrapping ErrNotConnected.
func (h *Hook) Unsubscribe(clientID, filter string) error {
	cl, ok := h.server.Clients.Get(clientID)
	if !ok || cl.Closed() {
		return fmt.Errorf("unsubscribe %q from %q: %w", clientID, filter, ErrNotConnected)
	}
	if h.server.Topics.Unsubscribe(filter, cl.ID) {
		atomic.AddInt64(&h.server.Info.Subscriptions, -1)
	}
	cl.State.Subscriptions.Delete(filter)
	err := h.d.SessionUnsubscribed(h.ctx, &hook.UnsubscribedEvent{ClientID: cl.ID, Username: string(cl.Properties.Username), Topic: filter})
	h.logErr(err, hook.SessionUnsubscribed, cl)
	return nil
}

// OnDisconnect dispatches client.disconnected, unless the connection was taken over by a new
// one of the same client (which is connected), and forgets the connection.
func (h *Hook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	if c := h.conn(cl); c != nil {
		h.conns.CompareAndDelete(cl.ID, c)
	}
	cause := cl.StopCause()
	if errors.Is(cause, packets.ErrSessionTakenOver) {
		return
	}
	err = h.d.ClientDisconnected(h.ctx, &hook.DisconnectedEvent{
		ClientID:       cl.ID,
		Username:       string(cl.Properties.Username),
		Node:           h.d.Node(),
		Reason:         disconnectReason(err, cause),
		DisconnectedAt: time.Now(),
	})
	h.logErr(err, hook.ClientDisconnected, cl)
}

// disconnectReason names why a connection ended, in EMQX's words where there is one.
func disconnectReason(err, cause error) string {
	if err == nil {
		err = cause
	}
	var ne net.Error
	switch {
	case err == nil, errors.Is(err, packets.CodeDisconnect), errors.Is(err, packets.CodeSuccess):
		return "normal"
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		return "closed"
	case errors.Is(err, packets.ErrKeepAliveTimeout), errors.As(err, &ne) && ne.Timeout():
		return "keepalive_timeout"
	case errors.Is(err, packets.ErrServerShuttingDown):
		return "server_shutdown"
	}
	return err.Error()
}

// OnSubscribed notes the filters the broker granted: once the SUBACK is written,
// session.subscribed is dispatched for each and the messages the lookups return are delivered
// (see OnPacketSent).
func (h *Hook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, reasonCodes []byte) {
	c := h.conn(cl)
	since := h.since() // mochi has added the subscriptions: it routes what is published now
	var gs []granted
	for i, sub := range pk.Filters {
		if i >= len(reasonCodes) || reasonCodes[i] > packets.CodeGrantedQos2.Code {
			continue // refused
		}
		sub.Qos = reasonCodes[i]
		gs = append(gs, granted{sub, since})
	}
	if c == nil || cl.Net.Inline {
		// No connection to deliver to after a SUBACK (the embedding program's own
		// subscription, or a connection already replaced): dispatch now.
		for _, g := range gs {
			h.subscribed(cl, c, g.sub, g.since, false)
		}
		return
	}
	// mochi writes the SUBACK after this hook returns: the lookups and the deliveries wait
	// for it (OnPacketSent), as mochi's own retained messages do.
	c.awaitSuback(pk.PacketID, gs)
}

// OnUnsubscribed dispatches session.unsubscribed for each filter of an UNSUBSCRIBE.
func (h *Hook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	// mochi also calls OnUnsubscribed when it drops the subscriptions of a session that ended
	// or was taken over, with a packet it made, without a packet ID; that is not a client
	// unsubscribing, and must not delete the client's acked positions (on_acked_delete).
	if pk.PacketID == 0 && !cl.Net.Inline {
		return
	}
	username := string(cl.Properties.Username)
	for _, sub := range pk.Filters {
		err := h.d.SessionUnsubscribed(h.ctx, &hook.UnsubscribedEvent{ClientID: cl.ID, Username: username, Topic: sub.Filter})
		h.logErr(err, hook.SessionUnsubscribed, cl)
	}
}

// OnPublish gives the message its ID and dispatches message.publish. mochi calls it after
// its checks (topic, ACL, quota) and before delivering the message; dispatching here, rather
// than in OnPublished, makes the message reach the stores' queues before any delivery or
// acknowledgement of it.
func (h *Hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	m := &hook.Message{
		ID:        h.d.IDs().Next(),
		From:      cl.ID,
		Username:  string(cl.Properties.Username),
		Peerhost:  peerhost(cl),
		Node:      h.d.Node(),
		Topic:     pk.TopicName,
		QoS:       pk.FixedHeader.Qos,
		Retain:    pk.FixedHeader.Retain,
		Payload:   pk.Payload,
		Timestamp: time.Now(),
	}
	if cl.Net.Inline && len(pk.Payload) > 0 {
		// The embedding program's buffer (Server.Publish): stores may keep the payload.
		m.Payload = append([]byte(nil), pk.Payload...)
	}
	for _, p := range pk.Properties.User {
		m.UserProperties = append(m.UserProperties, hook.UserProperty{Key: p.Key, Value: p.Val})
	}
	stamp(&pk, m)
	h.logErr(h.d.MessagePublish(h.ctx, &hook.PublishEvent{Message: m}), hook.MessagePublish, cl)
	return pk, nil
}

// OnQosPublish remembers a QoS 1 or 2 delivery until the client acknowledges it. mochi calls
// it when the packet goes in flight, before it is written (the acknowledgement can be read
// before a hook after the write would run), and again when it resends it.
func (h *Hook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, _ int64, _ int) {
	if pk.FixedHeader.Type != packets.Publish {
		return // the ack of the client's own publish
	}
	if m := stamped(&pk); m != nil {
		h.track(cl, h.conn(cl), pk.PacketID, m)
	}
}

func (h *Hook) track(cl *mqtt.Client, c *conn, id uint16, m *hook.Message) {
	if c != nil && !c.track(id, m, h.maxTracked) {
		h.log().Warn("mqttstore: too many unacknowledged deliveries to track; this one's acknowledgement will not be recorded",
			"client", cl.ID, "max", h.maxTracked, "msgid", m.ID)
	}
}

// OnPacketSent dispatches message.deliver for a PUBLISH written to the client. A CONNACK
// starts the connection's state. A SUBACK is followed by the lookups of the filters it granted
// and the delivery of the stored messages they return: a client must read the SUBACK first
// (a client that closes with an unread SUBACK in its buffer resets the connection, and its
// last acknowledgements are lost), and the lookups must not hold the SUBACK back.
func (h *Hook) OnPacketSent(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	switch pk.FixedHeader.Type {
	case packets.Publish:
		if m := stamped(&pk); m != nil {
			err := h.d.MessageDeliver(h.ctx, &hook.DeliverEvent{ClientID: cl.ID, Username: string(cl.Properties.Username), Message: m})
			h.logErr(err, hook.MessageDeliver, cl)
		}
	case packets.Suback:
		if c := h.conn(cl); c != nil {
			for _, g := range c.subackSent(pk.PacketID) {
				h.subscribed(cl, c, g.sub, g.since, false) // mochi sends the retained messages it holds itself
			}
		}
	case packets.Connack:
		if pk.ReasonCode == packets.CodeSuccess.Code {
			h.conns.Store(cl.ID, newConn(cl, pk.SessionPresent))
		}
	}
}

// OnQosComplete dispatches message.acked when the client completes a delivery: its PUBACK
// (QoS 1) or PUBCOMP (QoS 2).
func (h *Hook) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	// mochi also calls OnQosComplete for the acks it sends for the client's own publishes;
	// it builds those (buildAck sets Created), while the client's are read off the wire.
	if pk.Created != 0 || pk.FixedHeader.Type != packets.Puback && pk.FixedHeader.Type != packets.Pubcomp {
		return
	}
	c := h.conn(cl)
	if c == nil {
		return
	}
	if m := c.acked(pk.PacketID, h.maxTracked); m != nil {
		err := h.d.MessageAcked(h.ctx, &hook.AckedEvent{ClientID: cl.ID, Username: string(cl.Properties.Username), Message: m})
		h.logErr(err, hook.MessageAcked, cl)
	}
	h.freed(cl, c, pk.PacketID, true)
}

// freed goes on with the stored deliveries once the delivery with packet ID id completed
// (acked) or was dropped: the client's window has room again, and the page of id may be
// complete.
func (h *Hook) freed(cl *mqtt.Client, c *conn, id uint16, acked bool) {
	if pg := c.completed(id, acked); pg != nil {
		go h.nextPage(cl, c, pg)
	}
	h.pump(cl, c)
}

// OnQosDropped forgets a delivery mochi gave up on (expired, refused by the client, or
// cleared with its session).
func (h *Hook) OnQosDropped(cl *mqtt.Client, pk packets.Packet) {
	if pk.FixedHeader.Type == packets.Pubrel && pk.Created == 0 {
		return // the client's PUBREL of its own QoS 2 publish: its packet ID is not one of ours
	}
	if c := h.conn(cl); c != nil {
		c.forget(pk.PacketID)
		h.freed(cl, c, pk.PacketID, false)
	}
}

// conn returns the state of cl's connection, nil if it has none (not connected, or replaced).
func (h *Hook) conn(cl *mqtt.Client) *conn {
	v, ok := h.conns.Load(cl.ID)
	if !ok {
		return nil
	}
	c := v.(*conn)
	if c.cl != cl {
		return nil
	}
	return c
}

// peerhost returns the client's IP address (without the port).
func peerhost(cl *mqtt.Client) string {
	host, _, err := net.SplitHostPort(cl.Net.Remote)
	if err != nil {
		return cl.Net.Remote
	}
	return host
}
