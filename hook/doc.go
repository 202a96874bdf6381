// Package hook holds what a broker hands to the stores and gets back: one event type per hook
// point, Message, Rule, Result, the Backend contract, and the Dispatcher that runs the rules of
// every registered backend.
//
// # The broker's side
//
// A broker makes one Dispatcher, registers its stores with their rules, and calls Dispatch (or
// the typed methods: ClientConnected, SessionSubscribed, MessagePublish, ...) at each hook
// point. Calls for writes return as soon as the stores have enqueued; lookups (on
// session.created / client.connected: subscriptions to restore; on session.subscribed:
// retained and offline messages to deliver) run synchronously under the caller's context and
// DispatcherOptions.LookupTimeout, and return a Result merged across rules and backends.
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
// A store implements Backend: Prepare and Close.
//
//   - Prepare is called once per rule, when the rule is registered. It checks what the store
//     supports (function, statements compiled with package template, options) and returns the
//     Action that carries the rule out: a LookupAction for a rule whose function is a lookup
//     (Rule.IsLookup), a WriteAction for every other rule, including all statement rules.
//     The dispatcher rejects the registration when the kind is wrong.
//   - WriteAction.Write is called on the broker's goroutine for every matching event. It must
//     not wait on I/O: it enqueues (package backend has the batching writer) and returns.
//   - LookupAction.Lookup runs the query within ctx and returns the Result.
//   - Close drains the store's queue within its context and releases its resources; the
//     Dispatcher's Close calls it for every registered backend.
//
// Optional capabilities are separate interfaces found by type assertion, as database/sql finds
// its drivers' optional interfaces: Flusher here (used by Dispatcher.Flush), and the statistics
// and health interfaces of package backend. The contract never grows a method a store must add.
//
// Events and their Messages may be kept by a store after Write returns; the broker must not
// modify them afterwards.
package hook
