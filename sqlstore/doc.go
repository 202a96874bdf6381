// Package sqlstore is the SQL backend of mqttstore: one Store for MySQL/MariaDB
// (go-sql-driver/mysql), PostgreSQL (pgx/v5 with its own pool) and SQLite (modernc.org/sqlite,
// pure Go, WAL mode: the embedded default), keeping the tables of the EMQX 4.x MySQL and
// PostgreSQL backends (mqtt_client, mqtt_sub, mqtt_msg, mqtt_retain, mqtt_acked) with the same
// names and columns, so an existing EMQX database and its queries keep working.
//
// # Functions
//
// Prepare accepts the built-in functions in Functions and custom "sql" actions:
//
//	on_client_connected      upsert mqtt_client: state 1, node, online_at; offline_at NULL
//	on_client_disconnected   upsert mqtt_client: state 0, offline_at
//	on_subscribe_lookup      mqtt_sub rows of the client (also on_subscription_lookup)
//	on_message_publish       insert into mqtt_msg if QoS > 0 (on_message_store: any QoS)
//	on_message_retain        retain flag and a payload: upsert mqtt_retain by topic
//	on_retain_delete         retain flag and an empty payload: delete it
//	on_retain_lookup         mqtt_retain rows whose topic the subscribed filter matches
//	on_message_fetch         mqtt_msg rows on matching topics with id above the client's
//	                         acked position for their topic, oldest first, within offline_opts
//	on_message_acked         upsert mqtt_acked (clientid, topic, mid = the message's id),
//	                         never moving a position backwards
//	on_acked_delete          delete the client's mqtt_acked rows under the unsubscribed filter
//
// Prepare is pure: it checks the rule and builds its action. Activate (hook.Activator, called
// by Dispatcher.Register once every rule of a registration has prepared) applies the state a
// registration brings: the expired_time of its storing rules (see Expiry). A registration
// that fails leaves nothing behind. sqlstore reads no store-specific rule keys: any key in
// Rule.Options (a typo such as "expire_time") is refused with hook.ErrUnknownOption.
//
// Other functions (the Redis _for_queue, _for_pubsub and _keep_latest families), Redis
// commands and CQL are refused with an error wrapping hook.ErrUnsupported. In an "sql"
// action every ${var} is a bound parameter (? or $n, package template): a placeholder inside
// a quoted literal, or an unknown one, is refused by Prepare with the rule's name and the
// position. A rule's statements run in order, in the transaction of their batch.
// A value goes into whatever column it is bound to, as with EMQX: MySQL and SQLite convert
// it themselves; on PostgreSQL each statement is prepared once per connection and, by the
// parameter types the server infers, ${qos} and ${ts} are bound as text to text parameters,
// ${ts} as a time (milliseconds since the epoch) to timestamp ones, a string as a number to
// numeric ones and as bytes to bytea. A payload that is not text for a text parameter, or a
// string that is not a number for a numeric one, fails the write: nothing is altered.
//
// # Writes
//
// Recording functions and custom statements are queued in a backend.Writer and return without
// waiting for the database (under the default OverflowBlock they wait only for room in a full
// queue). A batch is written in one transaction: on PostgreSQL as one pipeline, each run of
// messages as one INSERT ... SELECT FROM unnest(arrays); on MySQL with a multi-row INSERT per
// run of messages; on SQLite with prepared statements. Writes are idempotent by msgid (a
// UNIQUE index on mqtt_msg.msgid, ON CONFLICT DO NOTHING / ON DUPLICATE KEY UPDATE id = id),
// so a batch retried after an unknown outcome stores each message once. Custom statements are
// not made idempotent: a retried batch runs them again.
//
// Messages, acks and acked deletes are one ordered stream, so a broker's messages get ids in
// the order it published them and an ack always finds its message. Errors are classified per
// dialect: connection failures, deadlocks, serialization
// failures, lock and statement timeouts and SQLITE_BUSY are retried; a batch failing otherwise
// is split by the writer until the bad write is isolated and counted.
//
// # Ack positions
//
// A client's position for a topic is the mqtt_msg id of the newest message it acknowledged on
// that topic (mqtt_acked.mid). It never moves backwards: an ack of an older message (a late
// QoS 2 ack) leaves it, and an ack of a message not in mqtt_msg (never stored, or purged)
// changes nothing. on_message_fetch returns the messages on the topic with an id above it.
//
// # Several brokers on one database
//
// Ids are assigned at insert and transactions commit in any order, so with several writers a
// subscriber could fetch and acknowledge id 200 (committed by broker B) while id 150 (broker
// A) is still uncommitted, and never see 150. The store therefore makes ids visible in id
// order: every transaction that inserts into mqtt_msg first takes a lock held to its end, so
// inserts into mqtt_msg are serialized across writers and ids are assigned in commit order.
//
//   - PostgreSQL: pg_advisory_xact_lock(1836152948, oid of mqtt_msg as int4), the first key
//     being "mqtt" in ASCII (0x6d717474), as the first statement of the batch's pipeline, which
//     pgx runs as one implicit transaction (one Sync). The id sequence must keep its default
//     CACHE 1 (a per-session cache hands out ids out of order whatever the lock).
//   - MySQL/MariaDB: SELECT ... FOR UPDATE of the one row of mqtt_msg_lock (a table EnsureSchema
//     creates, on an existing EMQX database too) as the first statement of the batch's
//     transaction: a batch of messages costs BEGIN, the lock and COMMIT besides its INSERT.
//     Without the table (EnsureSchema not run) messages are written unlocked and a warning is
//     logged once. Multi-primary clusters (Galera) are not covered: row locks are local.
//   - SQLite: nothing to add. One connection writes at a time: a write transaction holds the
//     database's write lock from its BEGIN IMMEDIATE (or its first write) to its commit, so
//     ids are assigned in commit order by construction.
//
// Writers that do not take the lock (EMQX nodes, custom statements inserting into mqtt_msg)
// are outside this guarantee. A broker's message batches wait for another's to commit; an
// ack of a message another broker has not committed yet finds no row and changes nothing, so
// the message is fetched again later (at least once, never skipped).
//
// # Lookups
//
// Lookups run at once within the context's deadline (and Options.QueryTimeout). A filter
// without wildcards is an equality on the topic; a filter with wildcards is an index range on
// its literal levels before the first wildcard ("a/b/" for "a/b/+/c"), narrowed in SQL by a
// pattern (a regular expression on PostgreSQL and MySQL, topic.Match as a registered function
// on SQLite) so that max_returned_count counts matching rows only, and checked again with
// topic.Match. A filter starting with a wildcard skips topics starting with '$'.
// Shared-subscription prefixes ($share/g/, $queue/) are stripped.
//
// # Schema
//
// The schemas are embedded files (see Schema), applied by EnsureSchema (or
// Config.EnsureSchema), which only creates what is missing: on an existing EMQX database it
// adds the indexes the store needs (and, on MySQL, the table mqtt_msg_lock) and changes
// nothing else. Compatible additions:
//
//   - mqtt_msg: UNIQUE (msgid) for idempotent writes, (topic, id) for on_message_fetch,
//     (arrived) for expiry;
//   - PostgreSQL: payload columns are bytea, topic columns COLLATE "C", and the indexes are on
//     (topic COLLATE "C") so that a topic prefix is an index range whatever the database's
//     collation; mqtt_acked.topic is varchar(255) and mid bigint (EMQX: 64 and integer);
//   - MySQL: tables use a binary NO PAD collation (topics and client IDs compare byte for byte:
//     "a", "A" and "a " are three topics); ids are BIGINT and times DATETIME(3); the one-row
//     table mqtt_msg_lock (see Several brokers on one database);
//   - SQLite (no EMQX schema): the MySQL tables in SQLite types, AUTOINCREMENT ids (never
//     reused, so acked positions stay valid), times as UTC text.
//
// EMQX's PostgreSQL schema stores payloads as text, which cannot hold NUL or invalid UTF-8.
// The store reads the type of the payload columns when it opens: with Config.MigratePayload,
// EnsureSchema converts a text column to bytea (an ALTER TABLE that rewrites the table);
// otherwise the column is used as it is, payloads that are UTF-8 text without NUL are stored as
// EMQX stored them, and Write refuses any other payload at once with an error wrapping
// ErrPayloadNotText, so nothing is lost silently. EMQX's MySQL tables (blob payloads,
// case-insensitive collation) are used as they are: lookups stay exact (results are checked
// byte for byte), but retained messages and acked positions of topics differing only in case
// share a row until the tables are converted to a binary collation.
//
// # Expiry
//
// SQL has no TTL. A storing rule's ExpiredTime (the spec's expired_time), once activated
// (Activate; a rule only prepared has none), is applied on read,
// where Fetch never returns a message older than it (the shortest one among the storing rules
// matching its topic), and by a purge that deletes such messages every Config.PurgeInterval
// (PurgeExpired runs it on demand), in chunks, using the arrived index.
//
// # Concurrency
//
// A Store is safe for concurrent use by any number of goroutines.
package sqlstore
