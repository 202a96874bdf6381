// Package backend holds the helpers every store builds on, on top of the contract in package
// hook (hook.Backend, the actions, the sentinel errors): the options all stores share, the
// asynchronous batching Writer they all use, the capability interfaces, the loader of EMQX 4.x
// backend configuration, and the registry through which a broker opens any store from an EMQX
// pool (Register, Open), as database/sql opens drivers.
//
// A store implements hook.Backend. Its optional capabilities are the interfaces below, found by
// type assertion: StatsReporter, ClientStateReader, SubscriptionStore, Pinger, and hook's
// Activator and Flusher.
package backend

import (
	"context"
	"time"

	"github.com/mqttstore/mqttstore/hook"
)

// Stats is a snapshot of a store's write counters. Counters only grow; Queued and Inflight are
// the current values.
type Stats struct {
	Matched  uint64            // writes handed to the store (rule matched, Enqueue called)
	Success  uint64            // writes stored
	Failed   uint64            // writes that failed for good (after retries, or not retryable)
	Retried  uint64            // retry attempts of batches or single writes
	Dropped  map[string]uint64 // writes not queued, by reason ("queue_full", "closed", ...)
	Queued   int               // writes waiting in the queue now
	Inflight int               // writes being flushed now
}

// StatsReporter is implemented by stores that count their writes.
type StatsReporter interface {
	Stats() Stats
}

// ClientState is what on_client_connected / on_client_disconnected record for a client.
type ClientState struct {
	ClientID  string
	Online    bool
	Node      string
	OnlineAt  time.Time // zero if never seen online
	OfflineAt time.Time // zero if not seen offline since
}

// ClientStateReader is implemented by stores that can tell a client's recorded state.
// It returns an error wrapping hook.ErrNotFound for an unknown client.
type ClientStateReader interface {
	ClientState(ctx context.Context, clientID string) (ClientState, error)
}

// SubscriptionStore is implemented by stores that keep proxy subscriptions (mqtt_sub and its
// equivalents), which on_subscribe_lookup returns when a client connects. It is how a business
// server, or a test, manages them; the writes are synchronous.
type SubscriptionStore interface {
	AddSubscription(ctx context.Context, clientID string, sub hook.Subscription) error
	DeleteSubscription(ctx context.Context, clientID, topic string) error
}

// Pinger is implemented by stores that can check their database is reachable.
type Pinger interface {
	Ping(ctx context.Context) error
}
