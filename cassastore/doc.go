// Package cassastore is the Cassandra backend of mqttstore (EMQX 4.x "Cassandra 消息存储"),
// on the gocql driver: github.com/apache/cassandra-gocql-driver/v2, the maintained path of
// github.com/gocql/gocql since the project moved to the Apache Software Foundation. It keeps
// the tables of the EMQX Cassandra backend (client, sub, msg, retain, acked in the keyspace
// mqtt) with the same names, columns and keys, so that an existing EMQX keyspace and the
// queries run on it keep working.
//
// Open connects (Config: Hosts, Keyspace, ...; ConfigFromPool reads an EMQX pool,
// backend.ecql.pool1.*, and the registry opens it as "cassa", "cassandra" or "ecql", with the
// spec's rule list as its default configuration), Prepare turns rules into actions without
// changing anything, and Close drains the write queue.
//
// # Functions and custom statements
//
// Prepare accepts the built-in functions in Functions (the spec's Cassandra rule list, plus
// on_message_store and on_acked_delete):
//
//	on_client_connected      UPDATE client SET state = 1, connected, node, disconnected = null
//	on_client_disconnected   UPDATE client SET state = 0, disconnected (and node if the event has one)
//	on_subscription_lookup   the client's sub rows (the spec's spelling; on_subscribe_lookup too)
//	on_message_publish       INSERT INTO msg if QoS > 0 (on_message_store: any QoS)
//	on_message_retain        retain flag and a payload: INSERT INTO retain (the whole message)
//	on_retain_delete         retain flag and an empty payload: DELETE FROM retain
//	on_retain_lookup         the retained messages whose topic the subscribed filter matches
//	on_message_fetch         msg rows on matching topics with a msgid above the client's acked
//	                         position for their topic, oldest first, within offline_opts
//	on_message_acked         acked (client_id, topic) = the acked msgid, never moving back
//	on_acked_delete          deletes the client's acked rows under the unsubscribed filter
//
// A rule may instead carry "cql": a list of CQL statements with ${var} placeholders (the
// spec's "delete from acked where client_id = ${clientid} and topic = ${topic}"). They are
// compiled once by package template (dialect CQL): each placeholder becomes a bind marker and
// the event's value is bound, never spliced, so a topic or payload holding quotes is a value;
// a placeholder inside a string, a comment or a name is refused when the rule is prepared.
// ${payload} is bound as bytes (a blob column takes any payload; a text column refuses one
// that is not UTF-8, and the write is counted as failed), ${qos} as an int, ${ts} as a bigint
// of milliseconds. Unqualified table names are in the pool's keyspace. Statements of a rule
// run in order, as separate statements; an event whose statement timed out is written again
// from its first statement (the outcome was unknown), so statements should be idempotent
// (keyed by ${msgid} or ${clientid}, not by now()). Redis commands and SQL are refused with
// hook.ErrUnsupported; rule keys the store does not read with hook.ErrUnknownOption.
//
// expired_time is a USING TTL on every row a storing rule writes (msg, and retain for
// on_message_retain), in whole seconds rounded up, plus one: Cassandra starts the clock at the
// second it received the write, and a message never disappears before its expired_time.
// offline_opts: max_returned_count caps a fetch (each topic's read stops there, the merged
// result is cut to it); time_range drops messages whose arrived is older.
//
// # Tables
//
// EnsureSchema (Config.EnsureSchema) creates what is missing: the keyspace (the spec's
// SimpleStrategy, replication factor 1, unless Config.Replication), the spec's tables with
// the spec's columns and keys, and this store's additions:
//
//	msg          payload_bin blob: the payload when it is not valid UTF-8 (payload text is
//	             then null; a UTF-8 payload, NUL bytes included, is in payload as EMQX writes it)
//	retain       arrived, payload, qos, sender, payload_bin: the retained message itself, not
//	             only its msgid, because msg rows expire (TTL) and on_message_publish does not
//	             store QoS 0, while a retained message lives until replaced or deleted
//	topic_index  (bucket text, topic text, PRIMARY KEY (bucket, topic)): the topics that
//	             wildcard filters are matched against (below)
//	writer_mark  the writers' low-water marks (see "Several brokers")
//
// Tables and columns that exist are left as they are; adding columns (ALTER TABLE ... ADD)
// changes nothing for EMQX's queries. A keyspace EMQX made works without EnsureSchema: a
// retain row that holds only a msgid (EMQX's) is read through msg (topic, msgid), and without
// this store's retain columns on_message_retain writes the EMQX way (the message into msg, its
// msgid into retain). Without payload_bin, a payload that is not UTF-8 is refused by Write
// (hook.ErrInvalidEvent), never altered; without topic_index, wildcard fetches and retained
// lookups are refused with hook.ErrUnsupported (exact topics work).
//
// # Wildcards: topic_index
//
// msg is partitioned by topic, and Cassandra cannot find the partitions matching dev/+/temp
// without a scan (SAI in Cassandra 5 has no prefix or LIKE search on a partition key). So each
// topic written to msg (kind "m") or retain (kind "r") is recorded once in topic_index, in two
// rows: (kind, first level) in the kind's root partition, and (kind/first level, topic). A
// filter whose first level is literal reads one partition, from the filter's literal prefix on
// (a clustering range: bucket = 'm/dev' AND topic >= 'dev/' AND topic < 'dev/\U0010FFFF'); a
// filter that starts with + or # reads the root partition first (the first levels, leaving out
// those starting with '$', as MQTT requires), then one partition per first level, in
// parallel. Every candidate is checked with topic.Match, then each matching topic is one
// partition read of msg or retain. No ALLOW FILTERING, no scan of msg. The index is bounded by
// the number of distinct topics (two rows each; a store remembers what it wrote and writes a
// row once per process); rows are never deleted (a retained message deleted leaves its topic
// there, found and skipped). A deployment with millions of topics under one first level makes
// that partition large: a filter with a literal second level still reads only its range.
//
// # Writes
//
// Recording functions are queued in a backend.Writer and return without waiting for the node
// (a Write costs about 0.3 µs). The ordering key is the topic for messages and retained
// messages, the client for states, acks and acked deletes. A flush groups its items by key and
// runs the groups concurrently (Config.Concurrency statements at most), each group in order:
//
//   - runs of messages of one topic go as unlogged batches within that one partition, of at
//     most 5 KiB (Cassandra warns at 5 KiB, fails at 50 KiB; a bigger message goes alone as a
//     plain statement); messages of different topics are concurrent statements, never one batch;
//   - a run of retained messages and deletes of a topic writes only the last one;
//   - a run of acks reads the client's positions (one partition) and writes, as one unlogged
//     batch of that partition, only those that move forward: a position never moves back,
//     whatever the order of the acks;
//   - the topic_index rows a batch needs are written before its messages.
//
// Every statement is prepared (gocql prepares each on first use per connection), routed to a
// replica of its partition (token-aware policy, replicas shuffled), idempotent (an insert
// keyed by (topic, msgid), an upsert of a state or a position, a delete by key), and carries
// a client timestamp from a per-store clock that never repeats a value, so two writes of one
// cell in quick succession never tie (Cassandra would then keep the greater value, not the
// later one). The driver does not retry; the writer does, counted and in order per key:
// timeouts, unavailable, overload and connection errors retry the item and the later items of
// its key (a write timeout is an unknown outcome, safe to retry since the write is
// idempotent); an invalid value fails its item alone (a batch that fails so is written again
// statement by statement to find it); a missing table or a permission fails the batch.
//
// # Consistency
//
// Reads and writes use LOCAL_QUORUM (Config.Consistency): with replication factor 3, a fetch
// sees every message and position written before it was acknowledged, which is what "newer
// than the acked position" needs, and a data centre still serves with one replica down. On a
// single node (the spec's SimpleStrategy, factor 1) it is the same as ONE.
//
// # Tombstones
//
// Cassandra reads abort at 100,000 tombstones, and queue-like deletes are what make them. This
// layout has no queue: on_message_fetch is one-to-many by position (EMQX's scheme), so a
// message is never deleted when it is acked; an ack overwrites one cell of one row per (client,
// topic). msg rows go only by TTL (expired_time): a fetch reads a topic from the client's
// position on (msgid > position, a clustering range in msgid order), so expired rows behind
// the position are never read; a subscriber with no position on a topic whose expired rows
// have not been compacted yet reads past them, which time_range does not avoid (it filters on
// read). Topics with a heavy, expiring stream should therefore use a table-level
// default_time_to_live with TimeWindowCompactionStrategy (ALTER TABLE msg; the store does not
// change compaction). on_retain_delete and acked deletes make one tombstone per row deleted,
// in partitions of one row (retain) or one client (acked). on_client_connected nulls
// disconnected: one cell tombstone per client row, overwritten at the next disconnect.
//
// # Several brokers
//
// An ack position is a msgid, and a fetch returns msgids above it (EMQX's scheme). Message IDs
// come from each broker's clock (hook.IDGenerator), and a message is visible only once its
// write has reached the node: with several brokers writing one keyspace, a message with a
// smaller msgid could become visible after a subscriber had fetched and acked a greater one
// written by another broker, and that subscriber would skip it. The SQL and MongoDB stores
// give out ids in commit order under a lock; in Cassandra that would take a lightweight
// transaction per batch. This store uses low-water marks instead, in a table of its own:
//
//	writer_mark  (bucket text, writer text, mark text, PRIMARY KEY (bucket, writer))
//
// Each store that stores messages (a rule with on_message_publish or on_message_store,
// published at Activate, before its first message is queued) keeps one row: its mark, the
// smallest msgid it has queued and not yet written, or the ID time of now when it has none.
// Every message of that store not visible yet is at or above its mark. The store republishes
// its mark every 200 ms and after each Flush, with a TTL of 30 s, and deletes it at Close. A
// fetch reads the marks (one partition) and returns only messages below the smallest (its
// own store's taken as it is now): a message at or above it waits for a later fetch, and no
// position can pass a message that is not visible yet. The cost: one read per fetch, five
// small writes a second per store, and a message of another broker published within the last
// ~200 ms is fetched by the next subscription rather than this one. Limits: it holds for IDs
// made by a hook.IDGenerator (others are not time-ordered and are never held back) on clocks
// in step; a store cut off from the node for more than 30 s, or a message queued that long,
// stops holding others back (its writer may have died); a broker that dies without closing
// its store holds fetches of newer messages back until its mark expires (30 s). Without the writer_mark table (an
// EMQX keyspace opened without EnsureSchema), fetches are not held back.
//
// # Driver
//
// Config.Cluster sees the gocql.ClusterConfig before the session is made (an
// AddressTranslator or HostFilter behind NAT or a proxy, compression, TLS details). The
// password never appears in errors, logs, or a printed Config.
package cassastore
