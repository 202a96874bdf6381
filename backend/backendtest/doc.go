// Package backendtest is the conformance suite every store runs against its real database.
// Run drives a store through the path the dispatcher uses (Prepare, Activate, then the
// prepared WriteAction or LookupAction), flushes its asynchronous writes, and checks the
// behaviour of every built-in function it lists (ARCHITECTURE.md, "Built-in functions"), of
// its custom actions, and of writing under concurrency, across Close, across a restart and
// from two brokers at once. Package memstore is the reference it is written against.
//
// # What a store implements
//
// A store is a hook.Backend (Prepare, Close), and for the suite also a hook.Flusher: the suite
// flushes before every read. Prepare must be pure, must refuse what the store does not
// support with an error wrapping hook.ErrUnsupported (a function it does not list, statements
// of another kind), must refuse any key of Rule.Options it does not read with an error
// wrapping hook.ErrUnknownOption naming the key (Rule.CheckOptions), and returns a
// *hook.RuleError for the rule or a plain error without the rule's name (the dispatcher adds
// it). A store that needs state for its rules (an expiry purge, a TTL index) implements
// hook.Activator; the suite, like hook.Dispatcher.Register, activates each rule it prepares,
// as a registration of its own. Optional interfaces the suite uses when present, and
// requires where a listed function is read through them:
//
//	backend.StatsReporter     after every flush, Failed and Dropped must be zero (the suite's
//	                          writes are valid), except where a subtest feeds values a store
//	                          may refuse: then a refusal not returned by Write must be counted
//	                          in Failed
//	backend.ClientStateReader required by on_client_connected / on_client_disconnected
//	backend.SubscriptionStore required by on_subscribe_lookup (on_subscription_lookup)
//
// Write(ctx, e) enqueues; after Close it fails with an error wrapping hook.ErrClosed or
// hook.ErrDropped. Messages get their IDs from a hook.IDGenerator, so within one writer
// "newer" is ID order, and "oldest first" means in ID order across the topics a fetch covers
// (with two writers, only "each exactly once" is checked). An ack position never moves back.
//
// # The harness
//
// A store's test supplies a Harness:
//
//	New       a backend on a fresh, isolated namespace (required)
//	Reopen    a backend on the namespace of a closed one: CloseDrains, Restart, Sink/CloseDrains
//	Twin      a second backend on an open one's namespace (two brokers, one database): TwoWriters
//	ReadBack  what a write-only sink stored (with Features.Sink, and only then)
//	Custom    how to build the store's own statements with ${var} placeholders and read back
//	          what they stored (CustomActions); nil: custom actions must be refused
//	Features  what the store supports
//
// and Features declares, with positive flags, what the store supports. What it does not
// declare is checked to be refused cleanly, never skipped silently:
//
//	Functions         the built-in functions it implements; the others must be refused
//	ExpiredTime       expired_time makes stored messages disappear
//	MaxReturnedCount  offline_opts.max_returned_count caps a fetch
//	TimeRange         offline_opts.time_range bounds a fetch by age (Timestamp or the ID's time)
//	BinaryPayload     payloads are kept byte for byte; without it, a payload with NUL or invalid
//	                  UTF-8 must be refused (Write error or Stats.Failed), never altered
//	WildcardFetch     fetches take '+' and '#'; without it they must fail with
//	                  hook.ErrUnsupported, and the suite fetches topic by topic
//	WildcardRetained  the same for on_retain_lookup
//	Sink              a write-only sink listing exactly on_message_publish, storing every QoS
//	Serial            run the subtests one at a time
//
// For example:
//
//	func TestConformancePostgres(t *testing.T) {
//		backendtest.Run(t, backendtest.Harness{
//			New: func(t *testing.T) hook.Backend {
//				s, err := sqlstore.Open(context.Background(), sqlstore.Config{
//					Dialect:      sqlstore.Postgres,
//					DSN:          testenv.Postgres(t), // a fresh schema, or a skip
//					EnsureSchema: true,
//				})
//				if err != nil {
//					t.Fatal(err)
//				}
//				return s
//			},
//			Reopen: func(t *testing.T, old hook.Backend) hook.Backend { /* Open(old's Config) */ },
//			Twin:   func(t *testing.T, b hook.Backend) hook.Backend { /* Open(b's Config) */ },
//			Features: backendtest.Features{
//				Functions:        sqlstore.Functions,
//				ExpiredTime:      true,
//				MaxReturnedCount: true,
//				TimeRange:        true,
//				BinaryPayload:    true,
//				WildcardFetch:    true,
//				WildcardRetained: true,
//			},
//		})
//	}
//
// Run fails at once on a harness that contradicts itself (a fetch function without a
// function to store messages with, Sink without ReadBack or with other functions).
//
// # The subtests
//
// Subtests are named after the behaviour they check, e.g.
// TestConformancePostgres/OfflineMessages/on_message_fetch/AcksOutOfOrder, so one can be rerun
// with go test -run. Each opens its own backend and, unless Features.Serial, runs in parallel.
// A subtest that needs an undeclared feature or an unset Harness field is skipped with a
// message naming it.
//
//	Prepare          listed functions give their action kind; unlisted functions, functions at
//	                 a wrong point, foreign statement kinds and unknown options are refused
//	ClientState      on_client_connected / _disconnected: state, node and times per client
//	Subscriptions    SubscriptionStore and on_subscribe_lookup, at both hook points
//	OfflineMessages  for each one-to-many fetch function (on_message_fetch, _for_pubsub):
//	                 which QoS are stored; topic matching (exact, '+', '#', '$' topics); oldest
//	                 first; ack positions per topic, per client, out of order; on_acked_delete;
//	                 offline_opts; expired_time; the same msgid stored once; special characters
//	                 and binary payloads kept; concurrent publish/fetch/ack; Close draining;
//	                 TwoWriters (Twin): two backends writing while a subscriber fetches and acks,
//	                 each message fetched exactly once
//	Queue            the _for_queue functions: an acked message is gone for everyone
//	KeepLatest       the _keep_latest functions, positions included
//	Retained         on_message_retain, on_retain_delete, on_retain_lookup: replace, delete by
//	                 empty payload, wildcards and '$' topics, binary payloads
//	CustomActions    statements with ${var} placeholders: every placeholder recorded exactly,
//	                 hostile values stored exactly or refused, unknown placeholders refused
//	Registration     through a hook.Dispatcher: a registration refused at its second rule leaves
//	                 no trace (its first rule's expired_time does not expire later messages)
//	Restart          Close and Reopen keep client state, subscriptions, stored, queued, latest
//	                 and retained messages and ack positions, and new messages follow the old
//	Sink             ReadBack after writing every QoS, special values, binary payloads, many
//	                 messages concurrently, and across Close and Reopen: each exactly once
//
// The whole suite takes a few seconds against a local database; the expiry and registration
// checks, which wait for an expired_time to pass, dominate.
package backendtest
