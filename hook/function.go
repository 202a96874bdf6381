package hook

import "slices"

// The built-in function names, the same in every store that supports them (ARCHITECTURE.md).
// A rule's Action.Function is one of these; a store's Prepare says which it supports.
const (
	OnClientConnected    = "on_client_connected"
	OnClientDisconnected = "on_client_disconnected"
	OnSubscribeLookup    = "on_subscribe_lookup"
	// OnSubscriptionLookup is the spelling of on_subscribe_lookup in EMQX's Cassandra config;
	// it means the same.
	OnSubscriptionLookup = "on_subscription_lookup"
	OnMessagePublish     = "on_message_publish"
	OnMessageStore       = "on_message_store"
	OnMessageRetain      = "on_message_retain"
	OnRetainDelete       = "on_retain_delete"
	OnRetainLookup       = "on_retain_lookup"
	OnMessageFetch       = "on_message_fetch"
	OnMessageAcked       = "on_message_acked"
	OnAckedDelete        = "on_acked_delete"

	OnMessageFetchForQueue  = "on_message_fetch_for_queue"
	OnMessageAckedForQueue  = "on_message_acked_for_queue"
	OnMessageFetchForPubsub = "on_message_fetch_for_pubsub"
	OnMessageAckedForPubsub = "on_message_acked_for_pubsub"

	OnMessageStoreKeepLatest    = "on_message_store_keep_latest"
	OnMessageFetchForKeepLatest = "on_message_fetch_for_keep_latest"
	OnMessageAckedForKeepLatest = "on_message_acked_for_keep_latest"
)

// FunctionInfo says where a built-in function may be used and what it does.
type FunctionInfo struct {
	Points []Point // the hook points a rule with this function may name
	Lookup bool    // it answers a lookup (LookupAction) rather than writing (WriteAction)
}

// LookupFunction reports where the built-in function name may be used, and whether it is a
// lookup; ok is false for a name that is not a built-in function.
func LookupFunction(name string) (info FunctionInfo, ok bool) {
	info, ok = functions[name]
	info.Points = slices.Clone(info.Points) // the table stays immutable
	return info, ok
}

// AllowedAt reports whether a rule at point p may use the function.
func (f FunctionInfo) AllowedAt(p Point) bool { return slices.Contains(f.Points, p) }

var functions = map[string]FunctionInfo{
	OnClientConnected:    {Points: []Point{ClientConnected}},
	OnClientDisconnected: {Points: []Point{ClientDisconnected}},
	OnSubscribeLookup:    {Points: []Point{SessionCreated, ClientConnected}, Lookup: true},
	OnSubscriptionLookup: {Points: []Point{SessionCreated, ClientConnected}, Lookup: true},
	OnMessagePublish:     {Points: []Point{MessagePublish}},
	OnMessageStore:       {Points: []Point{MessagePublish}},
	OnMessageRetain:      {Points: []Point{MessagePublish}},
	OnRetainDelete:       {Points: []Point{MessagePublish}},
	OnRetainLookup:       {Points: []Point{SessionSubscribed}, Lookup: true},
	OnMessageFetch:       {Points: []Point{SessionSubscribed}, Lookup: true},
	OnMessageAcked:       {Points: []Point{MessageAcked}},
	OnAckedDelete:        {Points: []Point{SessionUnsubscribed}},

	OnMessageFetchForQueue:  {Points: []Point{SessionSubscribed}, Lookup: true},
	OnMessageAckedForQueue:  {Points: []Point{MessageAcked}},
	OnMessageFetchForPubsub: {Points: []Point{SessionSubscribed}, Lookup: true},
	OnMessageAckedForPubsub: {Points: []Point{MessageAcked}},

	OnMessageStoreKeepLatest:    {Points: []Point{MessagePublish}},
	OnMessageFetchForKeepLatest: {Points: []Point{SessionSubscribed}, Lookup: true},
	OnMessageAckedForKeepLatest: {Points: []Point{MessageAcked}},
}

// Records reports whether the write function fn records the published message m, as
// ARCHITECTURE.md defines the functions: on_message_publish stores QoS 1 and 2 only,
// on_message_retain a retained message with a payload, on_retain_delete deletes on a retained
// message without one; every other function records every message it is given. Each store's
// Write asks this rather than restating the rules.
func Records(fn string, m *Message) bool {
	switch fn {
	case OnMessagePublish:
		return m.QoS > 0
	case OnMessageRetain:
		return m.Retain && len(m.Payload) > 0
	case OnRetainDelete:
		return m.Retain && len(m.Payload) == 0
	}
	return true
}
