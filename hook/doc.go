// Package hook holds what a broker hands to the stores and gets back: one event type per hook
// point, Message, Rule, Result, the Backend contract, and the Dispatcher that runs the rules of
// every registered backend.
//
// # The broker's side
//
// A broker makes one Dispatcher (its node name and message ID generator are given there
// once), registers its stores with their rules, and calls Dispatch (or the typed methods:
// ClientConnected, SessionSubscribed, MessagePublish, ...) at each hook point, passing a
// context it cancels when it shuts down. Calls for writes return as soon as the stores have
// enqueued; lookups (on session.created / client.connected: subscriptions to restore; on
// session.subscribed: retained and offline messages to deliver) run synchronously under the
// caller's context and DispatcherOptions.LookupTimeout, and return a Result merged across
// rules and backends.
// Published messages without an ID get one from an IDGenerator (unique, time-ordered within a
// node, sortable as strings).
//
// # Rules
//
// A Rule is a point, an optional topic filter, an action (a built-in function named by the
// On* constants, or Redis commands / SQL / CQL statements with ${var} placeholders), a pool
// and options. Rules are written in Go or parsed from EMQX 4.x configuration lines with
// ParseRuleKey and ParseRule; either way Rule.Validate checks them, and every error is a
// *RuleError that names the rule and the field.
//
// # The store's side
//
// The contract is in this package: Backend (Prepare and Close), the optional Activator and
// Flusher, the actions, Result, and the sentinel errors every store wraps (ErrClosed,
// ErrDropped, ErrUnsupported, ErrNotFound, ErrConfig, ErrInvalidEvent, ErrUnknownOption). The
// helpers a store builds on are in package backend: the batching Writer, the shared Options,
// Stats, the capability interfaces (StatsReporter, ClientStateReader, SubscriptionStore,
// Pinger), the EMQX configuration loader and the registry through which a broker opens any
// store from an EMQX pool (backend.Register, backend.Open). Package backend/backendtest is the
// conformance suite; package memstore is an in-memory Backend that passes it.
//
//   - Prepare is called once per rule, when the rule is registered, and must be pure: it
//     checks what the store supports (function, statements compiled with package template,
//     options: r.CheckOptions refuses keys the store does not read) and returns the Action
//     that carries the rule out: a LookupAction for a rule whose function is a lookup
//     (Rule.IsLookup), a WriteAction for every other rule, including all statement rules.
//   - Activate (Activator, optional) is called once per registration after every rule has
//     prepared, with the actions: the place for store state a rule needs (an expiry purge, a
//     TTL index). Registration is all or nothing: a rule that fails to prepare, or an Activate
//     that fails, leaves the store as it was and registers nothing.
//   - WriteAction.Write(ctx, e) is called on the broker's goroutine for every matching event.
//     It enqueues and returns; it waits only for room in a full queue under a blocking
//     overflow policy, and never past ctx (see WriteAction).
//   - LookupAction.Lookup runs the query within ctx and returns a Result: Subscriptions, or
//     Offline messages (delivered with RETAIN 0), or Retained messages (RETAIN 1).
//   - Close drains the store's queue within its context and releases its resources; the
//     Dispatcher's Close calls it for every registered backend.
//
// Errors a store returns from Prepare are reported by Register as one *RuleError naming the
// backend and the rule once; a store returns a *RuleError for the rule's field, or a plain
// error, and does not repeat the rule's name.
//
// Events and their Messages may be kept by a store after Write returns; the broker must not
// modify them afterwards.
package hook
