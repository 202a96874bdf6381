// Package memstore is an in-memory hook.Backend: a fake store for unit-testing broker glue
// (rules, the dispatcher, an adapter) without a database. It implements every built-in
// function as ARCHITECTURE.md describes them, passes the conformance suite of package
// backend/backendtest, and behaves like a real store where a test can tell:
//
//   - Writes are asynchronous. Write queues and returns; a goroutine applies the queue in
//     order, a batch at a time. Lookups see what has been applied: call Flush (hook.Flusher,
//     or hook.Dispatcher.Flush) before reading what was just written. The queue is bounded
//     (Config.QueueSize): when it is full, Write waits for room as long as its context
//     allows, then drops the write and says so with an error wrapping hook.ErrDropped.
//   - Every write is counted (backend.StatsReporter): once the Store is idle, Matched equals
//     Success + Failed + the drops.
//   - Close applies what is queued (within its context) and refuses later writes with an error
//     wrapping hook.ErrClosed.
//   - The data lives in a Namespace, which outlives the Store: open a new Store on the
//     Namespace of a closed one to fake a restart, or two Stores on one Namespace to fake two
//     brokers sharing a database. Namespace.Messages, Retained and Records read it back.
//   - Prepare is pure. An expired_time is a property of the rule that stored a message;
//     Activate (called by hook.Dispatcher.Register) starts the purge that removes expired
//     messages from memory.
//   - Ack positions are per client and topic and never move back. Stored messages get an
//     order key when they are applied, under the Namespace's lock, and a position is the key
//     of the newest message acked: a message applied after a fetch always sorts after what
//     the fetch returned, whichever Store wrote it, so no ack skips it. The keep_latest
//     functions compare msgids, as only the newest message of a topic is kept.
//
// It also implements backend.ClientStateReader, backend.SubscriptionStore and backend.Pinger.
// It takes no rule options of its own (any key in Rule.Options is refused with
// hook.ErrUnknownOption). Its custom actions are commands (Rule.Action.Commands) of the form
//
//	RECORD name=${var} name2=${var2} ...
//
// each of which appends a Record of the placeholders' values, bound as they are (the payload
// byte for byte, qos in decimal, ts in milliseconds), to the Namespace.
package memstore
