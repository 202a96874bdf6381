// Package redisstore is the Redis backend (github.com/redis/go-redis/v9): a single server,
// a master behind Sentinel, or a Redis Cluster, holding the keys of EMQX 4.x's
// emqx_backend_redis so that existing data and the queries run on it keep working.
//
// Open connects (Config: Mode, Addrs, MasterName, DB, Prefix, ...; ConfigFromPool reads an
// EMQX pool), Prepare turns rules into actions, and Close drains the write queue. Writes are
// queued and written by a backend.Writer in pipelined batches; lookups run at once, bounded by
// the caller's context and Options.QueryTimeout.
//
// # Keys
//
// Under Config.Prefix ("" by default, giving exactly these names):
//
//	mqtt:client:${clientid}         hash  state (1/0), online_at, offline_at (Unix seconds;
//	                                      "undefined" until the first disconnect), node
//	mqtt:node:${node}               hash  ${clientid} → online_at, for the clients connected there
//	mqtt:sub:${clientid}            hash  ${topic filter} → ${qos}
//	mqtt:msg:${msgid}               hash  id, from, qos, topic, retain, payload, ts (ms)
//	mqtt:msg:${topic}               zset  the IDs of the messages stored on the topic, all of
//	                                      score 1, so ordered by ID, which is time order
//	mqtt:retain:${topic}            hash  the retained message (fields as mqtt:msg)
//	mqtt:acked:${clientid}:${topic} string the ID of the last message the client acked there
//
// The store adds what the spec leaves open: the "node" field of mqtt:client, the latest
// message of each topic for the _keep_latest functions (mqtt:latest:${topic}, a hash as
// mqtt:msg), and three topic indexes for wildcard lookups (mqtt:index:msg,
// mqtt:index:retain, mqtt:index:latest; see below). Their names lie outside the spec's
// patterns. Payloads, topics and client IDs are stored byte for byte. (The spec gives message
// hashes and topic sets the same "mqtt:msg:" prefix; a topic spelt like a message ID would
// collide, which the IDs' 24 base32 characters make unlikely.)
//
// # Functions
//
// Functions lists them; others (on_message_fetch, on_message_acked, on_acked_delete) are
// refused with hook.ErrUnsupported. With expired_time, what a function stores gets a TTL
// (PEXPIRE); without, it gets none (PERSIST, so a message stored again without expiry loses an
// earlier one).
//
//   - on_client_connected: HSET mqtt:client state 1, online_at, offline_at "undefined", node;
//     HSET mqtt:node:${node} ${clientid}. on_client_disconnected: state 0, offline_at; HDEL
//     from mqtt:node:${node}.
//   - on_subscribe_lookup (session.created or client.connected): the subscriptions in
//     mqtt:sub:${clientid}. A QoS there that is not 0, 1 or 2 fails the lookup, naming it.
//     AddSubscription and DeleteSubscription (and the control channel) maintain the hash.
//   - on_message_publish stores messages of QoS 1 and 2, on_message_store every message:
//     the hash mqtt:msg:${msgid} and its ID in the topic's set. With expired_time, the set
//     lives as long as its last expiring message (unless it holds messages without expiry),
//     and drops, as new messages arrive, the IDs made (by hook.IDGenerator, whose IDs carry
//     their time) longer ago than the longest expired_time and a minute; fetches drop the
//     IDs of expired messages they come across.
//   - on_message_retain: a retained message with a payload replaces mqtt:retain:${topic};
//     on_retain_delete: a retained message without payload deletes it. on_retain_lookup
//     returns the retained messages whose topics match the subscription's filter.
//   - on_message_fetch_for_queue returns every stored message on the topics matching the
//     filter, oldest first; on_message_acked_for_queue deletes the acked message (its ID from
//     the set, and its hash) for everyone: each message reaches one subscriber and is gone
//     once acked. Until then a fetch returns it again, to any subscriber (the redelivery of
//     an unacked message).
//   - on_message_fetch_for_pubsub returns, per topic matching the filter, the messages after
//     the client's position (mqtt:acked:${clientid}:${topic}), oldest first;
//     on_message_acked_for_pubsub sets the position to the acked message: a read position per
//     subscriber, the messages staying for the others. The spec's session.unsubscribed
//     command, DEL mqtt:acked:${clientid}:${topic}, resets it.
//   - on_message_store_keep_latest keeps only the latest message of each topic (a message
//     with a smaller ID, arriving late, does not replace a newer one);
//     on_message_fetch_for_keep_latest returns, per topic matching the filter, that message
//     if it is newer than the client's position, and on_message_acked_for_keep_latest moves
//     the position.
//
// The fetch functions honour offline_opts: max_returned_count caps the messages of one fetch
// (the oldest are returned), time_range skips messages older than it (by their ts).
// Lookups of a shared subscription ($share/<group>/<filter>, $queue/<filter>) use the filter.
// Writes are idempotent by message ID: a batch written twice (a retry after an unknown
// outcome) leaves what it left once.
//
// # Wildcard lookups: topic indexes, not SCAN
//
// A lookup with an exact topic reads its keys directly. For a wildcard filter the store reads
// a topic index: a sorted set of topics, all of score 0, so ordered byte by byte, which
// ZRANGEBYLEX reads from the filter's literal prefix ("dev/42/" for "dev/42/+", and the
// parent "dev/42" for "dev/42/#"); topic.Match then picks the matching topics. KEYS would
// block the server; SCAN MATCH walks the whole keyspace (every message, client and
// subscription key, on every master) for each lookup, however few keys match. The index
// costs one ZADD per write (a no-op for a known topic) and answers in time proportional to
// the topics under the prefix. With 100,000 retained topics (dev/<10,000>/<10>, on a
// server holding nothing else, so SCAN's best case), on the 2-core machine of BENCHMARKS.md:
//
//	filter          index     SCAN       messages
//	dev/4242/7      55 µs     21 ms      1       (exact: one HGETALL, no index)
//	dev/4242/+      113 µs    19.4 ms    10
//	dev/4242/#      109 µs    19.3 ms    10
//	dev/+/7         34 ms     59 ms      10,000  (no literal prefix: both read every topic)
//	#               185 ms    245 ms     100,000
//
// Index entries whose data is gone (expired, deleted, a queue emptied by acks) are removed by
// the wildcard lookups that come across them, checking again afterwards so that a concurrent
// write is never unindexed (writers add the data before its index entry). Entries of topics
// no wildcard lookup covers stay until one does: one member per topic.
//
// # Cluster
//
// The key layout does not change in Cluster mode: no hash tags. No write needs two keys
// changed atomically: each atomic step touches one key (an HSET, a ZADD, and the two scripts
// of the store, which update one key each), and what ties keys together is order: a
// message's hash is written before its ID enters the topic's set, the set before the topic
// enters the index; removals go the other way. On one server the batch's pipeline runs in
// that order; in a cluster a pipeline's parts run on their nodes independently, so a batch is
// written as three pipelines, one per stage (three round trips instead of one). Readers then
// skip, and clean up, pointers to missing keys without ever dropping a write in progress.
// Hash tags would have renamed the spec's keys, and put a hot topic's messages and sets on
// one node.
//
// # Custom commands
//
// A rule's "commands" are Redis commands with ${var} placeholders (package template), split
// into arguments when the rule is prepared: each placeholder stays one argument whatever its
// value holds (spaces, newlines, NUL). Commands that block or change the connection
// (SUBSCRIBE, MULTI, BLPOP, SELECT, ...) are refused. Under a Prefix, the prefix is put before
// the command's key arguments, found in the server's COMMAND table; commands whose keys
// cannot be found that way (EVAL, OBJECT, XINFO, ...) are refused under a prefix. Commands
// run in the write pipelines, in order per client (per topic for message.publish), and run
// again when a failed batch is retried: commands that add rather than set (INCR, RPUSH, XADD)
// may then apply twice.
//
// # SUB/UNSUB control channel
//
// With Config.OnControl set, the store subscribes to Config.Channel ("mqtt_channel") and
// reads the spec's requests, {"type": "subscribe"|"unsubscribe", "topic": ..., "clientid":
// ..., "qos": ...} (ParseControl; qos as a number or a string). Each valid request is recorded
// in mqtt:sub:${clientid} (so that on_subscribe_lookup restores it when the client connects)
// and handed to OnControl, which subscribes or unsubscribes the client in the broker. Malformed
// messages, and requests that fail, are logged and counted (ControlStats); nothing stops the
// listener. After a restart or a failover go-redis reconnects and subscribes again by itself;
// requests published meanwhile are lost, as pub/sub messages are. The channel works in
// Cluster mode too (PUBLISH reaches every node), but Redis Cluster keeps the order of requests
// only among those published to the same node: a publisher that needs a subscribe and a later
// unsubscribe applied in order must publish them on one connection to one node (a go-redis
// ClusterClient sends each PUBLISH to a random node).
package redisstore
