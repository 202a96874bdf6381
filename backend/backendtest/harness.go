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
	// closed (without flushing it first). It is how the suite checks that Close drains the
	// write queue: what was written before Close must be readable through the new backend.
	// Optional: when nil, the CloseDrains subtest is skipped, naming this field.
	Reopen func(t *testing.T, old hook.Backend) hook.Backend

	// Features declares what the store supports; the suite runs the subtests of everything
	// declared, and checks that what is not declared is refused.
	Features Features

	// Custom, when set, lets the suite check rules whose action is a list of the store's own
	// statements (SQL, CQL or Redis commands) with ${var} placeholders. Nil means the store
	// has no custom actions, and the suite checks that Prepare refuses them.
	Custom *CustomActions
}

// Features declares a store's capabilities. A store states what it does not support here,
// never by skipping subtests itself: each subtest that needs something undeclared is skipped
// with a message naming the missing feature, and Prepare must refuse the functions that are
// not listed (with an error wrapping hook.ErrUnsupported).
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
	// messages' Timestamp.
	TimeRange bool

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
