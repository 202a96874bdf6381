// Package dynamostore is the DynamoDB store (github.com/aws/aws-sdk-go-v2/service/dynamodb),
// the EMQX 4.x DynamoDB backend ("DynamoDB 消息存储") on the contract of package hook.
//
// # Tables
//
// The spec's tables and keys, exactly (with Config.TablePrefix before each name, "" in
// production); EnsureSchema creates the missing ones (on-demand billing unless
// Config.Provisioned) and waits until they are ACTIVE:
//
//	mqtt_client         HASH clientid                connect_state, node, online_at, offline_at (seconds)
//	mqtt_sub            HASH clientid, RANGE topic   qos
//	mqtt_msg            HASH msgid                   topic, qos, sender, payload, retain, arrived (seconds)
//	mqtt_topic_msg_map  HASH topic                   MsgId: string set of the topic's message IDs
//	mqtt_retain         HASH topic                   as mqtt_msg
//	mqtt_acked          HASH topic, RANGE clientid   msgid
//
// Items carry a few attributes beyond the spec's, which EMQX ignores: ts (milliseconds),
// username, online_at_ms/offline_at_ms, and with expired_time expire_at (seconds, the TTL
// attribute) and expire_ms. A payload is a string when it is valid UTF-8 (as EMQX writes it),
// binary otherwise, and left out when empty.
//
// # Wildcards without Scans
//
// The spec's keys are HASH-only: a filter with '+' or '#' cannot be answered by a range read.
// The store adds one table, mqtt_topic_index (HASH bucket, RANGE topic), written with every
// stored or retained message (once per topic and process: entries are never deleted):
//
//	bucket "m/<first level>"  topic <topic>          a topic with stored messages
//	bucket "m"                topic "L<first level>" the first levels in use
//	bucket "r/..." and "r"                           the same for retained messages
//
// A wildcard fetch or retained lookup Queries the bucket of the filter's first level with
// begins_with(topic, <the filter's literal prefix>) and keeps the topics topic.Match accepts;
// a filter starting with '+' or '#' first Queries the list of first levels ('$' levels
// skipped, as MQTT wants). Then GetItem on mqtt_topic_msg_map per topic (bounded
// concurrency) and BatchGetItem on mqtt_msg (or mqtt_retain). A topic whose messages are all
// acked keeps its index entries: it costs one empty GetItem per matching fetch.
//
// # Queue semantics
//
// The spec's DynamoDB rules are the one-to-one ones: on_message_fetch_for_queue returns every
// stored message of the matching topics, oldest first (message ID order), to whichever
// subscriber asks; on_message_acked_for_queue removes the acked message for everyone (its
// mqtt_msg item, its ID from the topic's set) and records the ack in mqtt_acked. A message
// fetched by two subscribers is delivered to both until one acks it; once acked it is gone.
// on_acked_delete removes the client's mqtt_acked entries under the filter.
//
// # Writes
//
// Writes go through a backend.Writer (MaxBatch 25: DynamoDB's BatchWriteItem limit), keyed
// by topic for messages and acks (in order per topic) and by client for client state. A
// flush turns its items into put and delete requests, keeping only the last write of a key
// (BatchWriteItem refuses a repeated key), and sends them 25 at a time; UnprocessedItems
// (throttling) are marked for retry with the writer's jittered backoff, together with the
// later items of the same topic or client so that their order survives. Throttling and 5xx
// answers are FailRetry; an item over 400 KB is refused before sending and counted in
// Stats.Failed. The SDK does not retry writes itself: the writer does, and counts. Then the
// mqtt_topic_msg_map string sets are updated with UpdateItem ADD (stored) and DELETE (acked),
// netted per message and grouped per topic, and on_client_disconnected's updates of
// mqtt_client are UpdateItems, Config.UpdateConcurrency calls at a time. Writes are
// idempotent (keyed by msgid, topic, client), so a retry never duplicates.
//
// # Outages
//
// The writer owns the retries of writes: BatchWriteItem and UpdateItem make one SDK attempt
// each (RetryMaxAttempts 1), and the writer retries with Options.Retry (without limit by
// default), in order per topic. The SDK's HTTP client has no timeout but its dial's
// (Options.ConnectTimeout); every call is bounded by its context, Options.QueryTimeout for a
// flush, so an endpoint that accepts connections and never answers costs a timeout per
// flush, not a hung shard. A failed send (refused, reset, closed idle connection, timeout)
// or a cut answer is "maybe written" (backend.FailUnknown) and retried, never failed as a
// bad item: an outage of any length loses nothing while the queue has room.
//
// # Expiry
//
// A rule's expired_time stores expire_at; Activate enables DynamoDB's TTL on it
// (UpdateTimeToLive on mqtt_msg and mqtt_retain) once. DynamoDB deletes expired items only
// within hours, so fetches filter expired items in every case; a server without TTL
// (dynalite) is logged once and relies on that filter alone.
//
// # Configuration
//
// Registered as "dynamo" for backend.Open: backend.dynamo.region (a store setting), and the
// pool's server, pool_size, aws_access_key_id and aws_secret_access_key (the SDK's default
// credential chain when absent). The secret key never appears in errors or logs.
package dynamostore
