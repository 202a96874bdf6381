// Package redisstore is the Redis backend (github.com/redis/go-redis/v9): a single server,
// a master behind Sentinel, or a Redis Cluster, holding the keys of EMQX 4.x's
// emqx_backend_redis so that existing data and the queries run on it keep working.
//
// Open connects (Config: Mode, Addrs, MasterName, DB, Prefix, ...; ConfigFromPool reads an
// EMQX pool), Prepare turns rules into actions without changing the store, Activate (called
// by hook.Dispatcher.Register once every rule of a registration has prepared) applies what
// they need of it, and Close drains the write queue. Writes are queued and written by a
// backend.Writer in pipelined batches; lookups run at once, bounded by the caller's context
// and Options.QueryTimeout.
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
//	mqtt:msg:${topic}               zset  the IDs of the messages stored on the topic, each
//	                                      scored with the server's clock (Unix microseconds)
//	                                      when it arrived: ordered as the writes reached Redis
//	mqtt:retain:${topic}            hash  the retained message (fields as mqtt:msg)
//	mqtt:acked:${clientid}:${topic} string the ID of the newest message the client acked there
//	                                      (see "Ack positions" below)
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
// refused with hook.ErrUnsupported. The store takes no rule options besides the rule format's
// (topic, action, pool, offline_opts, expired_time): any other key of a rule, such as the
// typo "expire_time", is refused with hook.ErrUnknownOption naming it. With expired_time,
// what a function stores gets a TTL (PEXPIRE); without, it gets none (PERSIST, once a rule
// with expired_time is activated, so that a message stored again without expiry loses an
// earlier one).
//
//   - on_client_connected: HSET mqtt:client state 1, online_at, offline_at "undefined", node;
//     HSET mqtt:node:${node} ${clientid}. on_client_disconnected: state 0, offline_at; HDEL
//     from mqtt:node:${node}.
//   - on_subscribe_lookup (session.created or client.connected): the subscriptions in
//     mqtt:sub:${clientid}. A QoS there that is not 0, 1 or 2 fails the lookup, naming it.
//     AddSubscription and DeleteSubscription (and the control channel) maintain the hash.
//   - on_message_publish stores messages of QoS 1 and 2, on_message_store every message:
//     the hash mqtt:msg:${msgid} and its ID in the topic's set, where a script gives it its
//     score (see "Ack positions"). With expired_time, the set lives as long as its last
//     expiring message (unless it holds messages without expiry), and drops, as new messages
//     arrive, the IDs scored longer ago than the longest expired_time of the store's
//     activated rules and a minute; fetches drop the IDs of expired messages they come
//     across. (Brokers sharing a Redis should give a topic the same expired_time: one whose
//     longest is shorter drops the IDs of the other's messages before they expire.)
//   - on_message_retain: a retained message with a payload replaces mqtt:retain:${topic};
//     on_retain_delete: a retained message without payload deletes it. on_retain_lookup
//     returns the retained messages whose topics match the subscription's filter.
//   - on_message_fetch_for_queue returns every stored message on the topics matching the
//     filter, oldest first; on_message_acked_for_queue deletes the acked message (its ID from
//     the set, and its hash) for everyone: each message is gone once one subscriber acked
//     it. Until then a fetch returns it again, to any subscriber (the redelivery of an
//     unacked message): nothing claims a fetched message, so two subscribers fetching before
//     either acks, through one broker or several, both get it. With several brokers the
//     queue is still one per topic, shared: a message stored through any broker is fetched
//     through any, and an ack through any removes it for all.
//   - on_message_fetch_for_pubsub returns, per topic matching the filter, the messages after
//     the client's position (mqtt:acked:${clientid}:${topic}), oldest first;
//     on_message_acked_for_pubsub moves the position forward to the acked message: a read
//     position per subscriber, the messages staying for the others. The spec's
//     session.unsubscribed command, DEL mqtt:acked:${clientid}:${topic}, resets it.
//   - on_message_store_keep_latest keeps only the latest message of each topic, the one
//     with the greatest ID (a message with a smaller ID, arriving late, does not replace a
//     newer one); on_message_fetch_for_keep_latest returns, per topic matching the filter,
//     that message if its ID is greater than the client's position, and
//     on_message_acked_for_keep_latest moves the position forward to the acked ID.
//
// The fetch functions honour offline_opts: max_returned_count caps the messages of one fetch
// (the oldest are returned), time_range skips messages older than it (by their ts). A fetch
// returns each topic's messages in their set's order; the topics' lists are merged by message
// ID, so that one broker's messages come oldest first across topics.
// Lookups of a shared subscription ($share/<group>/<filter>, $queue/<filter>) use the filter.
// Writes are idempotent by message ID: a batch written twice (a retry after an unknown
// outcome) leaves what it left once.
//
// # Ack positions
//
// A client's position on a topic, mqtt:acked:${clientid}:${topic}, is the ID of the newest
// message it acked there, "newest" meaning last in the order the store keeps the topic's
// messages in: for the _for_pubsub functions the order of the topic's sorted set (score,
// then ID byte by byte), for the _keep_latest functions the IDs' byte order. A fetch returns
// the messages after the position in that order. The position only moves forward: acks
// arriving out of order (a late QoS 2 PUBCOMP, acks of one client through two brokers) never
// move it back.
//
//   - _for_pubsub: an ack moves the position only if its message comes after the one the
//     position names. The two live on different keys (on different nodes, in a cluster), so
//     the store reads the scores of both in the topic's set, then sets the position with a
//     script that changes it only if it still holds what was read (compare and set, on the
//     position's key alone), reading again if another writer moved it meanwhile. Scores
//     never change while a message is in its set. An ack of a message that is not in the
//     set (never stored there, or expired) moves nothing; a position whose message is no
//     longer in the set (expired) is moved by any ack of one that is, and a fetch from it
//     returns every message of the set: nothing is skipped, though messages of another
//     expired_time stored before it may come again.
//   - _keep_latest: a script sets the position unless it holds an ID that does not sort
//     before the acked one.
//
// Acks are written in order with the messages of their topic (the writer's key is the
// topic), after them when both are in one batch, so that a broker's ack never precedes the
// message it names.
//
// # Several brokers on one Redis
//
// Brokers that share a Redis (the usual way to scale out) each make their message IDs and
// queue their writes; a message whose ID was made first can reach Redis after another
// broker's later one, which a subscriber may have fetched and acked meanwhile. Were the
// topic's set ordered by ID (the spec gives every member score 1), the late message would
// sort before the position and never be fetched. So the store has Redis order the set:
// the script that adds a topic's messages (one call per topic and batch) scores each with
// the server's clock in microseconds when it runs, or one more than the set's greatest score
// if that is later. Scores thus grow in the order the writes reach Redis, whichever broker
// sent them, and a message arriving after a position always sorts after it: with every
// write applied once it is fetched (once, by a subscriber that acks what it fetched before
// fetching again). Redis runs scripts one at a time, so no two writers interleave in one
// set. The key layout is the spec's: EMQX reading the set by rank (ZRANGE) sees the same
// order; members of score 1 written by other writers (EMQX, or earlier versions of this
// store) sort first, by ID, and positions among them still work (the store finds a position
// by its rank). A failover to a replica whose clock is behind keeps the order of an existing
// set (one more than its greatest score); a set created anew has no member a position could
// name, and a fetch returns all of it.
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
// changed atomically: each atomic step touches one key (an HSET, a ZADD, and the store's
// scripts, which each read and update one key), and what ties keys together is order: a
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
