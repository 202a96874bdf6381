package memstore

import (
	"cmp"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
)

// Namespace is the data of one fake database: client states, subscriptions, stored, retained
// and latest messages, ack positions and custom records. Stores opened on the same Namespace
// share it (two brokers on one database), and a Store opened on the Namespace of a closed one
// finds everything the closed one wrote (a restart). A Namespace is safe for concurrent use;
// its methods read a consistent snapshot of what has been applied (see Store.Flush).
type Namespace struct {
	mu  sync.Mutex
	seq uint64 // the last order key given to a stored message

	clients  map[string]backend.ClientState
	subs     map[string]map[string]byte // client -> filter -> qos
	msgs     []*stored                  // stored messages, by order key
	byID     map[string]*stored
	retained map[string]*hook.Message // topic -> message
	acked    map[position]uint64      // order key of the newest message acked (on_message_acked, _for_pubsub)
	latest   map[string]*hook.Message // topic -> newest message (_keep_latest)
	latestAt map[position]string      // msgid of the newest message acked (_keep_latest)
	records  []Record

	// Used by deliberate bugs only.
	batches  uint64                   // batches applied (keys-before-commit)
	topicTTL map[string]time.Duration // topic filter -> expiry (prepare-applies-expiry)
}

// position names a client's ack position on a topic.
type position struct{ client, topic string }

// stored is a message stored by on_message_publish or on_message_store.
type stored struct {
	m *hook.Message
	// key orders the stored messages: it is given when the message is applied (committed),
	// under the Namespace's lock, so a message that becomes visible later always has a
	// greater key, whichever Store wrote it. Ack positions are keys, so a position never
	// passes a message that is not visible yet.
	key     uint64
	expires time.Time // zero: never
}

// Record is what one "RECORD name=${var} ..." custom command stored: the rendered value of
// each placeholder, by the name the command gave it.
type Record map[string]string

// NewNamespace returns an empty Namespace.
func NewNamespace() *Namespace {
	return &Namespace{
		clients:  make(map[string]backend.ClientState),
		subs:     make(map[string]map[string]byte),
		byID:     make(map[string]*stored),
		retained: make(map[string]*hook.Message),
		acked:    make(map[position]uint64),
		latest:   make(map[string]*hook.Message),
		latestAt: make(map[position]string),
		topicTTL: make(map[string]time.Duration),
	}
}

// Messages returns the stored messages (on_message_publish, on_message_store) that have not
// expired nor been removed by on_message_acked_for_queue, oldest first. The messages are the
// ones written: do not modify them.
func (n *Namespace) Messages() []*hook.Message {
	n.mu.Lock()
	defer n.mu.Unlock()
	now := time.Now()
	var out []*hook.Message
	for _, sm := range n.sorted() {
		if !sm.expired(now) {
			out = append(out, sm.m)
		}
	}
	return out
}

// Retained returns the retained messages, by topic.
func (n *Namespace) Retained() []*hook.Message {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := slices.Collect(maps.Values(n.retained))
	slices.SortFunc(out, func(a, b *hook.Message) int { return strings.Compare(a.Topic, b.Topic) })
	return out
}

// Records returns what the custom commands have recorded, in the order they ran. The
// records are copies.
func (n *Namespace) Records() []Record {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]Record, len(n.records))
	for i, r := range n.records {
		out[i] = maps.Clone(r)
	}
	return out
}

// sorted returns the stored messages by order key (they are appended in key order, except
// under the keys-before-commit bug).
func (n *Namespace) sorted() []*stored {
	if slices.IsSortedFunc(n.msgs, byKey) {
		return n.msgs
	}
	return slices.SortedFunc(slices.Values(n.msgs), byKey)
}

func byKey(a, b *stored) int { return cmp.Compare(a.key, b.key) }

func (sm *stored) expired(now time.Time) bool {
	return !sm.expires.IsZero() && !now.Before(sm.expires)
}

// remove deletes the stored message with the given ID, if any.
func (n *Namespace) remove(id string) {
	if _, ok := n.byID[id]; !ok {
		return
	}
	delete(n.byID, id)
	n.msgs = slices.DeleteFunc(n.msgs, func(sm *stored) bool { return sm.m.ID == id })
}
