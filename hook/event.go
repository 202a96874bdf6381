package hook

import "time"

// Point is a hook point: the moment in a broker's life at which it calls the dispatcher.
type Point uint8

// The hook points, named as in EMQX ("client.connected", ...).
const (
	ClientConnected Point = iota + 1
	ClientDisconnected
	SessionCreated
	SessionSubscribed
	SessionUnsubscribed
	MessagePublish
	MessageDeliver
	MessageAcked
)

// Message is an MQTT application message as the stores see it.
//
// Ownership: once a Message is handed to the dispatcher, stores may keep it (and its Payload)
// after the call returns, in their asynchronous write queues; the caller must not modify it.
type Message struct {
	// ID is unique and ordered by time within a node (see IDGenerator); stores compare ack
	// positions with it, so it must be set before dispatch (the dispatcher sets it when empty).
	ID        string
	From      string // client ID of the publisher
	Username  string
	Peerhost  string
	Node      string // node that received the message
	Topic     string
	QoS       byte
	Retain    bool
	Payload   []byte
	Timestamp time.Time // when the broker received it
	// UserProperties are the MQTT 5 user properties, in the order the publisher sent them,
	// duplicates kept (a key may appear more than once, MQTT-3.3.2-18).
	UserProperties []UserProperty
}

// Size is about how many bytes m holds: its strings, payload and user properties. Stores
// give it to their writer as a write's size (backend.WriterConfig.Size), which bounds their
// batches and queue in bytes.
func (m *Message) Size() int {
	n := len(m.ID) + len(m.From) + len(m.Username) + len(m.Peerhost) + len(m.Node) + len(m.Topic) + len(m.Payload)
	for _, p := range m.UserProperties {
		n += len(p.Key) + len(p.Value)
	}
	return n
}

// UserProperty is one MQTT 5 user property.
type UserProperty struct {
	Key, Value string
}

// Event is one of the *...Event types below, handed to Dispatcher.Dispatch.
type Event interface {
	// Point is the hook point the event belongs to.
	Point() Point
	// ruleTopic is the event's topic as given: the message topic, or the filter of a
	// (un)subscription, shared prefix included (Dispatch matches rules against the real
	// filter); "" for client and session events. Being unexported, it keeps Event to the
	// types of this package.
	ruleTopic() string
}

// ConnectedEvent is client.connected.
type ConnectedEvent struct {
	ClientID    string
	Username    string
	Peerhost    string
	Node        string
	ProtoVer    byte // 3, 4 or 5
	Keepalive   uint16
	CleanStart  bool
	ConnectedAt time.Time
}

// DisconnectedEvent is client.disconnected.
type DisconnectedEvent struct {
	ClientID       string
	Username       string
	Node           string
	Reason         string
	DisconnectedAt time.Time
}

// SessionCreatedEvent is session.created.
type SessionCreatedEvent struct {
	ClientID string
	Username string
	Node     string
}

// SubscribedEvent is session.subscribed; Topic is the subscription's topic filter.
type SubscribedEvent struct {
	ClientID string
	Username string
	Topic    string
	QoS      byte
}

// UnsubscribedEvent is session.unsubscribed; Topic is the topic filter removed.
type UnsubscribedEvent struct {
	ClientID string
	Username string
	Topic    string
}

// PublishEvent is message.publish.
type PublishEvent struct {
	Message *Message
}

// DeliverEvent is message.deliver: Message is being delivered to ClientID.
type DeliverEvent struct {
	ClientID string
	Username string
	Message  *Message
}

// AckedEvent is message.acked: ClientID acknowledged Message.
type AckedEvent struct {
	ClientID string
	Username string
	Message  *Message
}

func (*ConnectedEvent) Point() Point      { return ClientConnected }
func (*DisconnectedEvent) Point() Point   { return ClientDisconnected }
func (*SessionCreatedEvent) Point() Point { return SessionCreated }
func (*SubscribedEvent) Point() Point     { return SessionSubscribed }
func (*UnsubscribedEvent) Point() Point   { return SessionUnsubscribed }
func (*PublishEvent) Point() Point        { return MessagePublish }
func (*DeliverEvent) Point() Point        { return MessageDeliver }
func (*AckedEvent) Point() Point          { return MessageAcked }

func (*ConnectedEvent) ruleTopic() string      { return "" }
func (*DisconnectedEvent) ruleTopic() string   { return "" }
func (*SessionCreatedEvent) ruleTopic() string { return "" }
func (e *SubscribedEvent) ruleTopic() string   { return e.Topic }
func (e *UnsubscribedEvent) ruleTopic() string { return e.Topic }
func (e *PublishEvent) ruleTopic() string      { return e.Message.Topic }
func (e *DeliverEvent) ruleTopic() string      { return e.Message.Topic }
func (e *AckedEvent) ruleTopic() string        { return e.Message.Topic }
