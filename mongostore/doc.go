// Package mongostore is the MongoDB backend of mqttstore (go.mongodb.org/mongo-driver/v2),
// keeping the collections of the EMQX 4.x MongoDB backend (mqtt_client, mqtt_sub, mqtt_msg,
// mqtt_retain, mqtt_acked) with the same names and fields, so that an existing EMQX database
// and the queries run on it keep working. It is written for MongoDB and tested against
// FerretDB (see "FerretDB and MongoDB" below).
//
// Open connects (Config: URI, Database, ...; ConfigFromPool reads an EMQX pool, and the
// registry opens it as "mongo"), Prepare turns rules into actions without changing the store,
// Activate applies what they need of it, and Close drains the write queue.
//
// # Functions
//
// Prepare accepts the built-in functions in Functions (the spec's Mongo rule list):
//
//	on_client_connected      upsert mqtt_client {_id: clientid}: state 1, node, online_at, offline_at null
//	on_client_disconnected   upsert mqtt_client {_id: clientid}: state 0, node, offline_at
//	on_subscribe_lookup      the client's mqtt_sub documents (also on_subscription_lookup)
//	on_message_publish       insert into mqtt_msg if QoS > 0 (on_message_store: any QoS)
//	on_message_retain        retain flag and a payload: upsert mqtt_retain {_id: topic}
//	on_retain_delete         retain flag and an empty payload: delete it
//	on_retain_lookup         mqtt_retain documents whose topic the subscribed filter matches
//	on_message_fetch         mqtt_msg documents on matching topics with an _id above the
//	                         client's position for their topic, oldest first, within offline_opts
//	on_message_acked         mqtt_acked {clientid, topic}: mongo_id = the acked message's _id,
//	                         never moving back ($max)
//	on_acked_delete          delete the client's mqtt_acked documents under the unsubscribed filter
//
// Other functions (the Redis families) and statements of any kind are refused with
// hook.ErrUnsupported: MongoDB has no custom actions. The one store-specific rule key is
// payload_format (OptPayloadFormat); any other key of Rule.Options is refused with
// hook.ErrUnknownOption.
//
// # Documents
//
// mqtt_msg: {_id: int64, topic, msgid, sender, node, qos: int32, retain: bool, payload,
// arrived: date, expire_at: date (messages of a rule with expired_time)}. The _id is an
// integer as in the spec, given out in commit order (see "Several brokers on one database");
// mqtt_acked.mongo_id is the _id of the newest message acked; the store keys its mqtt_acked
// documents by _id ("<len(clientid)>:<clientid>/<topic>", besides the spec's clientid and
// topic fields), so that moving a position is a primary-key upsert (FerretDB scans the
// collection for any other filter); a fetch takes the greater of that and a position EMQX
// wrote with an ObjectId. mqtt_retain: {_id: topic, topic, msgid, sender, node, qos, payload,
// arrived}. mqtt_client: {_id: clientid, clientid, state: 0|1, node, online_at, offline_at}:
// keyed by _id for the same reason, and so that two brokers upserting one client or topic at
// once cannot make two documents where upserts are not atomic (FerretDB); a document EMQX
// wrote (ObjectId _id, found through the unique clientid or topic index as a duplicate key)
// is updated by its field instead. mqtt_sub: {clientid, topic, qos}. Times are BSON dates
// (EMQX wrote Unix seconds, which the store reads too, as it reads qos and retain stored as
// other numbers).
//
// A payload that is valid UTF-8 is a string, any other (NUL bytes are fine in a string) a
// binary of subtype 0: byte for byte either way. With "payload_format": "mongo_json" on a
// storing rule (on_message_publish, on_message_store or on_message_retain), a payload that is
// a JSON object or array is stored as a document or array, which queries can reach
// (db.mqtt_msg.find({"payload.temp": {$gt: 20}})); it reads back as equal JSON, not byte for
// byte ("1.0" as 1). A payload MongoDB would refuse or misread stays text or binary: invalid
// JSON, scalars, nesting deeper than 64 levels, keys starting with '$' or holding '.' or NUL,
// a key twice in one object, numbers that would lose digits.
//
// # Writes
//
// Recording functions are queued in a backend.Writer and return without waiting for the
// server. Messages, acks and acked deletes are one ordered stream; client states are keyed by
// client ID and retained messages by topic. A batch is written as few commands as its runs
// allow: each run of messages as one unordered InsertMany, each run of acks as one unordered
// BulkWrite of upserts (one per position: the greatest _id of the run), each run of client
// states and retained messages as ordered BulkWrites. Writes are acknowledged (w_mode safe)
// unless Config.Unacknowledged (w_mode unsafe; see its doc for what that risks).
//
// Writes are idempotent: a message whose msgid is already stored (duplicate key 11000 on the
// unique msgid index: a batch written again after an unknown outcome) is success for that
// document, never a failure of its batch; upserts and deletes are by key. Per-document errors
// are marked on the document: a transient one is retried, a duplicate key on an upsert by _id
// (two upserts racing, or a document EMQX keyed otherwise) becomes an update by clientid or
// topic, any other fails that document alone. Network errors, timeouts,
// not-primary and shutdown codes, and errors labelled RetryableWriteError retry the batch.
//
// # Several brokers on one database
//
// A subscriber's position is the _id of the newest message it acked; a fetch returns the
// messages above it. With several brokers writing, a message given a smaller _id must never
// become visible after a greater one has been fetched and acked, or it would be skipped. So
// _ids are given out in commit order: a batch with messages or acks first takes a lock, by
// inserting the document {_id: "mqtt_msg"} into mqtt_lock (the uniqueness of _id is the one
// atomic primitive every MongoDB-compatible server has; FerretDB's upserts and findAndModify
// are not atomic), then takes its _ids from a range reserved with $inc on the counter in
// mqtt_seq, inserts, and moves the positions of its acks. A store keeps the lock for the next
// batch if it comes within 5ms, 50ms at most from taking it, and reserves _ids 1024 at a time
// while it holds it (ids reserved under one holding are used only under it; those left over
// are skipped): under load a batch costs its InsertMany alone. Another broker's batch waits
// (polling every millisecond or two) until the lock document is deleted. Acks go under the same lock so that $max, which FerretDB
// runs as a read and a write, never moves a position back. A lock older than
// Config.LockLease (a broker that died holding it) is taken over and logged. An ack of a
// message not in mqtt_msg (not stored, or not written yet by another broker) changes nothing,
// so the message is fetched again: at least once, never skipped. Writers that do not take
// the lock (EMQX nodes) are outside this guarantee.
//
// # Lookups
//
// Lookups run at once within the context's deadline (and Options.QueryTimeout). A filter
// without wildcards is an equality on the topic; a filter with wildcards is an anchored
// regular expression with its literal prefix first (which MongoDB serves from the topic index),
// in the syntax common to PCRE (MongoDB) and RE2 (FerretDB), so that max_returned_count counts
// matching messages only; results are checked again with topic.Match. A filter starting with a
// wildcard does not match topics starting with '$'. Shared-subscription prefixes are
// stripped. A fetch reads the client's positions under the filter first, then the messages in
// one query ($or of a range per acked topic and the filter minus those topics), sorted by _id.
//
// # Schema
//
// EnsureSchema (or Config.EnsureSchema) creates what is missing and changes nothing else: the
// collections, the spec's indexes (mqtt_client {clientid, node}, mqtt_msg {sender, topic},
// mqtt_retain {topic}, made unique) and the store's: unique mqtt_msg {msgid} for idempotent
// writes, mqtt_msg {topic, _id} for fetches, unique {clientid} of mqtt_client (so that a
// document EMQX wrote and the store's _id-keyed one cannot both be there) and {clientid,
// topic} of mqtt_sub (so that concurrent upserts cannot create twins), and mqtt_acked
// {clientid, topic}; and the collections mqtt_seq (seeded after the greatest numeric _id of
// an existing mqtt_msg) and mqtt_lock. An index that conflicts with an existing one, or a unique index the data
// violates, is logged and left out, so an existing EMQX database stays usable.
//
// # Expiry
//
// A storing rule's expired_time, once activated (Activate), gives its messages an expire_at
// date. Activate sets up expiry once: a TTL index on expire_at (expireAfterSeconds 0) where
// the server has TTL indexes; where it refuses them (FerretDB v1: code 238, NotImplemented,
// "and never expires anything") a plain index and a sweeper that deletes expired messages
// every Config.SweepInterval (SweepExpired runs it on demand); the choice is made by trying,
// and logged once (NativeTTL reports it). Either way fetches never return an expired message
// (MongoDB's TTL monitor runs once a minute).
//
// # FerretDB and MongoDB
//
// What FerretDB v1 (on SQLite, as in scripts/services) lacks, and what the store does:
//   - TTL indexes: the sweeper above, chosen by probe.
//   - Atomic upserts, findAndModify and $max: the lock serializes everything that reads and
//     writes mqtt_msg and mqtt_acked; unique indexes turn a lost upsert race into a duplicate
//     key, which the writer retries.
//   - Transactions: not used.
//   - Unacknowledged writes (w: 0): FerretDB answers them; w_mode = unsafe is ignored there
//     (see "Configuration").
//   - Secondary indexes for reads, sorting in memory: fetches scan and sort the matching
//     documents; acceptable for a test server, not a production one.
//   - Bulk writes: one command updating a hundred or more existing documents was seen to
//     stall past any timeout, and upserts by a filter other than _id scan the collection
//     (1,000 positions by {clientid, topic} took over 20 s): acks are folded to one update per
//     position, positions, client states and retained messages are upserted by _id, and bulk
//     writes go in commands of 50. Lookups of a client state or a retained topic are by field
//     (so that EMQX's documents are found), and scan on FerretDB.
//
// # Configuration
//
// The registry opens the store as "mongo" from an EMQX pool (ConfigFromPool): type single
// (one server: a direct connection), unknown, sharded or rs (with rs_set_name), server (a
// list), c_pool_size (or pool_size), database, login, password, auth_source, ssl with
// keyfile, certfile and cacertfile, w_mode, r_mode (master; slave_ok reads from secondaries
// where they are). A broker's -dsn URI replaces the server settings, and the database if it
// names one. Other keys are refused with hook.ErrConfig.
//
// The erlang driver's topology settings are read as the pool's keys "topology.<key>"
// (backend.mongo.pool1.topology.pool_size = 4) or the store's (PoolConfig.Settings,
// "topology.<key>"), in milliseconds where named so: pool_size plus max_overflow is the
// driver's MaxPoolSize, overflow_ttl its MaxConnIdleTime, local_threshold_ms,
// connect_timeout_ms, server_selection_timeout_ms and heartbeat_frequency_ms map to the
// settings of those names. mongo-driver v2 has no overflow_check_period, socket_timeout_ms
// (operations are bounded by Options.QueryTimeout), wait_queue_timeout_ms (bounded by the
// operation's context) or min_heartbeat_frequency_ms (fixed at 500ms): they are refused with
// hook.ErrConfig naming the key unless they hold EMQX's default, which changes nothing. EMQX's
// own file writes these keys without a pool, "backend.mongo.topology.pool_size", which
// backend.LoadConfig files as the store setting "topology.pool_size" (StoreConfig.Settings):
// a broker passes it as PoolConfig.Settings to every pool of the store.
//
// Whatever the timeouts, a write the server does not take while it is unreachable is
// retried, not failed: server selection and socket timeouts, refused and reset connections
// are transient (see "Writes"), and the writer retries without limit by default
// (Options.Retry.MaxAttempts 0). Each try is bounded by Options.QueryTimeout, and server
// selection by Options.ConnectTimeout unless server_selection_timeout_ms says otherwise.
//
// w_mode = unsafe (Config.Unacknowledged) writes messages, retained messages, acks and client
// states unacknowledged (write concern w: 0): a flush costs a send, not a round trip, and
// what the server refuses or loses (a duplicate key, a failover, a crash before the write is
// journaled) is counted as written and never retried; across brokers, a message may become
// visible after a later one was fetched and acked, and be skipped. Use it only for data that
// may be lost. FerretDB answers unacknowledged writes, which puts the driver's reading of the
// connection out of step (the next command gets the write's answer): on FerretDB the store
// logs a warning and writes acknowledged (Store.Unacknowledged).
//
// # Concurrency
//
// A Store is safe for concurrent use by any number of goroutines.
package mongostore
