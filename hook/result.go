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

// MergeResults joins results in order, without duplicates, as the dispatcher does with the
// results of every lookup an event triggers:
//   - messages keep their order; a message whose ID appeared earlier is dropped (messages
//     with an empty ID cannot be compared and are all kept; nil messages are dropped);
//   - subscriptions keep their order; a later subscription to a topic filter already present
//     is dropped, and the earlier one gets the higher of the two QoS levels, so that the broker
//     never grants less than some store recorded.
//
// The results are not modified; the merged result shares their *Message values.
func MergeResults(results ...Result) Result {
	var out Result
	var seenMsg map[string]struct{}
	var seenSub map[string]int // topic -> index in out.Subscriptions
	for _, r := range results {
		for _, s := range r.Subscriptions {
			if seenSub == nil {
				seenSub = make(map[string]int)
			}
			if i, ok := seenSub[s.Topic]; ok {
				out.Subscriptions[i].QoS = max(out.Subscriptions[i].QoS, s.QoS)
				continue
			}
			seenSub[s.Topic] = len(out.Subscriptions)
			out.Subscriptions = append(out.Subscriptions, s)
		}
		for _, m := range r.Messages {
			if m == nil {
				continue
			}
			if m.ID != "" {
				if seenMsg == nil {
					seenMsg = make(map[string]struct{})
				}
				if _, ok := seenMsg[m.ID]; ok {
					continue
				}
				seenMsg[m.ID] = struct{}{}
			}
			out.Messages = append(out.Messages, m)
		}
	}
	return out
}
