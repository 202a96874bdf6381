package hook

import "slices"

// Subscription is a subscription the broker should apply to a client (a "proxy subscription"
// restored by on_subscribe_lookup).
type Subscription struct {
	Topic string
	QoS   byte
}

// Result is the answer to a lookup, for the client the event names, in the order the broker
// should apply or deliver it. Offline and retained messages are apart because MQTT delivers
// them differently: a stored (offline) message goes out with RETAIN 0, as any message
// forwarded to an established subscription (MQTT-3.3.1-9), and regardless of the
// subscription's Retain Handling; a retained message goes out with RETAIN 1, and not at all
// under Retain Handling 2 (or 1 for an existing subscription).
type Result struct {
	// Subscriptions to apply (on_subscribe_lookup).
	Subscriptions []Subscription
	// Offline are stored messages to deliver (on_message_fetch and its variants), oldest first.
	Offline []*Message
	// Retained are retained messages whose topic matches the subscription (on_retain_lookup).
	Retained []*Message
}

// Empty reports whether r has nothing to apply or deliver.
func (r Result) Empty() bool {
	return len(r.Subscriptions) == 0 && len(r.Offline) == 0 && len(r.Retained) == 0
}

// MergeResults joins results in order, without duplicates, as the dispatcher does with the
// results of every lookup an event triggers:
//   - Offline and Retained are merged each on its own: messages keep their order; a message
//     whose ID appeared earlier in the same list is dropped (messages with an empty ID cannot
//     be compared and are all kept; nil messages are dropped);
//   - a retained message that is also among the offline messages (a message published with
//     retain and stored) is delivered once, as an offline message, so it is dropped from
//     Retained;
//   - subscriptions keep their order; a later subscription to a topic filter already present
//     is dropped, and the earlier one gets the higher of the two QoS levels, so that the broker
//     never grants less than some store recorded.
//
// The results are not modified; the merged result shares their *Message values.
func MergeResults(results ...Result) Result {
	var out Result
	var seenSub map[string]int // topic -> index in out.Subscriptions
	var offline, retained messageSet
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
		out.Offline = offline.add(out.Offline, r.Offline)
		out.Retained = retained.add(out.Retained, r.Retained)
	}
	if len(offline) > 0 && len(out.Retained) > 0 {
		out.Retained = slices.DeleteFunc(out.Retained, func(m *Message) bool {
			_, dup := offline[m.ID]
			return dup && m.ID != ""
		})
	}
	return out
}

// messageSet is the IDs already in one merged list.
type messageSet map[string]struct{}

// add appends to dst the messages of ms not nil and not already in the set.
func (seen *messageSet) add(dst, ms []*Message) []*Message {
	for _, m := range ms {
		if m == nil {
			continue
		}
		if m.ID != "" {
			if *seen == nil {
				*seen = make(messageSet)
			}
			if _, ok := (*seen)[m.ID]; ok {
				continue
			}
			(*seen)[m.ID] = struct{}{}
		}
		dst = append(dst, m)
	}
	return dst
}
