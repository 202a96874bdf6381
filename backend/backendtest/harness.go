package backendtest

import (
	"context"
	"testing"

	"github.com/mqttstore/mqttstore/hook"
)

// Harness is what a store hands to Run: how to open it on a fresh namespace, and what it
// supports. Only New is required.
type Harness struct {
	// New returns a new backend on a fresh, isolated namespace (its own database, schema,
	// keyspace, key prefix or table prefix, from internal/testenv) that no other call shares,
	// so subtests can run in parallel. The schema must be in place. The suite closes the
	// backend; New may register its own t.Cleanup for the namespace. New reports a missing
	// service as testenv does (skip, or fail under MQTTSTORE_REQUIRE_SERVICES=1).
	New func(t *testing.T) hook.Backend

	// Reopen returns a new backend on the namespace of old, which the suite has already
	// closed (without flushing it first): a restart. It is how the suite checks that Close
	// drains the write queue (CloseDrains) and that a restart keeps everything (Restart):
	// what was written before Close must be readable through the new backend. Optional: when
	// nil, those subtests are skipped, naming this field.
	Reopen func(t *testing.T, old hook.Backend) hook.Backend

	// Twin returns a second backend on the namespace of b, which stays open: two brokers
	// writing one database. The suite closes it. Optional: when nil, the TwoWriters
	// subtests are skipped, naming this field.
	Twin func(t *testing.T, b hook.Backend) hook.Backend

	// ReadBack returns every message a write-only sink (Features.Sink) has stored in b's
	// namespace so far, in any order, each with the ID, Topic, QoS, From, Payload and
	// Timestamp it was written with (the suite compares them as it compares fetched
	// messages). Required with Features.Sink, and only then.
	ReadBack func(ctx context.Context, b hook.Backend) ([]*hook.Message, error)

	// Features declares what the store supports; the suite runs the subtests of everything
	// declared, and checks that what is not declared is refused.
	Features Features

	// Custom, when set, lets the suite check rules whose action is a list of the store's own
	// statements (SQL, CQL or Redis commands) with ${var} placeholders. Nil means the store
	// has no custom actions, and the suite checks that Prepare refuses them.
	Custom *CustomActions
}

// Features declares a store's capabilities. Every flag is positive: a store sets what it
// supports, and what it does not declare is checked to be refused cleanly, never skipped
// silently: Prepare must refuse the functions that are not listed (an error wrapping
// hook.ErrUnsupported), binary payloads and wildcard lookups must be refused as the fields
// say, and a subtest that cannot run without a feature is skipped with a message naming it.
type Features struct {
	// Functions lists the built-in functions the store implements (the hook.On... names),
	// e.g. the SQL stores: on_client_connected, on_client_disconnected, on_subscribe_lookup,
	// on_message_publish, on_message_store, on_message_retain, on_retain_delete,
	// on_retain_lookup, on_message_fetch, on_message_acked, on_acked_delete; Redis lists the
	// _for_queue, _for_pubsub and _keep_latest functions instead of on_message_fetch.
	//
	// Listing a function commits the store to the optional interfaces the suite reads it
	// through: on_client_connected and on_client_disconnected require
	// backend.ClientStateReader; on_subscribe_lookup (or on_subscription_lookup) requires
	// backend.SubscriptionStore. A store that lists on_message_fetch or a _for_queue or
	// _for_pubsub function must list on_message_publish or on_message_store, which the
	// suite stores its messages with.
	Functions []string

	// ExpiredTime: a publish rule's ExpiredTime makes stored messages disappear once it has
	// passed (natively, or filtered out on read).
	ExpiredTime bool
	// MaxReturnedCount: fetch functions honour Rule.OfflineOpts.MaxReturnedCount.
	MaxReturnedCount bool
	// TimeRange: fetch functions honour Rule.OfflineOpts.TimeRange, comparing it with the
	// messages' Timestamp or, for IDs of the hook.IDGenerator form, the time part of the ID
	// (hook.IDTimePrefix): the suite's messages agree on both.
	TimeRange bool

	// BinaryPayload: payloads are stored and returned byte for byte, whatever they hold
	// (NUL, invalid UTF-8). False (a store whose schema keeps text): such a payload must be
	// refused cleanly, by an error from Write or a write counted in Stats.Failed, and never
	// stored altered; a text payload must still be stored exactly.
	BinaryPayload bool
	// WildcardFetch: the fetch functions accept topic filters with '+' and '#'. False: a
	// fetch with such a filter must fail with an error wrapping hook.ErrUnsupported; the
	// suite then fetches topic by topic where it needs several.
	WildcardFetch bool
	// WildcardRetained: on_retain_lookup accepts filters with '+' and '#'. False: such a
	// lookup must fail with an error wrapping hook.ErrUnsupported.
	WildcardRetained bool

	// Sink: the store is a write-only sink (a time-series database): it lists exactly
	// on_message_publish in Functions, stores every message it is given whatever its QoS
	// (a reading is a reading), and Harness.ReadBack reads back what it stored. The Sink
	// subtests need it. A sink need not be idempotent by msgid (a plain INSERT is not): the
	// suite writes each message once and wants it read back exactly once.
	Sink bool

	// Serial makes every subtest run alone; leave it false unless backends on different
	// namespaces of the same server cannot be used at the same time.
	Serial bool
}

// Record is what a custom action stored for one event: the value of each placeholder it
// recorded, by name without "${}" (e.g. "clientid"), exactly as the database holds it,
// byte for byte. Numbers are in their decimal text form: qos "0"-"2", and ts in integer
// milliseconds since the Unix epoch, as package template renders ${ts}.
type Record map[string]string

// CustomActions is the part of the harness that builds custom actions of the store's kind
// and reads back what they stored. Record and Read are required; Setup is optional.
type CustomActions struct {
	// Setup prepares b's namespace for Record's statements, e.g. creates the table or
	// column family they write into. Called once per subtest, before any rule is prepared.
	Setup func(t *testing.T, b hook.Backend)

	// Record returns a rule action of the store's kind (SQL, CQL or Redis commands) that,
	// for each event it runs on, stores one record holding the value of each placeholder in
	// vars, bound as ${name} (e.g. for vars {"clientid", "payload"}:
	// INSERT INTO rec(clientid, payload) VALUES (${clientid}, ${payload})). Values are
	// stored unchanged: binary-safe, or refused by the database with an error (which the
	// store counts as failed, or returns from Write). The suite also passes names that are
	// not placeholders, which Prepare must refuse.
	Record func(vars []string) hook.RuleAction

	// Read returns every record the actions of Record have stored in b's namespace so far,
	// in any order.
	Read func(ctx context.Context, b hook.Backend) ([]Record, error)
}
