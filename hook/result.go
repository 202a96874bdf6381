package hook

// Subscription is a subscription the broker should apply to a client (a "proxy subscription"
// restored by on_subscribe_lookup).
type Subscription struct {
	Topic string
	QoS   byte
}

// Result is the answer to a lookup: subscriptions to apply and messages to deliver to the
// client the event names, in the order the broker should apply/deliver them.
type Result struct {
	Subscriptions []Subscription
	Messages      []*Message
}
