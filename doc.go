// Package mqttstore is a library of pluggable persistence hooks for MQTT brokers.
//
// A broker calls the library at its own hook points (client connected, session created,
// subscribed, published, acked, ...) through a hook.Dispatcher; the dispatcher runs the rules
// of every registered store: it records client state, subscriptions, messages, retained
// messages and ack positions, and answers the broker's lookups (which subscriptions to
// restore, which offline and retained messages to deliver). Table names, key layouts, rule
// syntax and function names follow the EMQX 4.x "backends", so an existing EMQX database and
// configuration keep working.
//
// Writes never block the broker: each store queues them and writes them in batches
// (backend.Writer), retrying transient errors and counting every outcome. Lookups run
// synchronously under the caller's context. Placeholders in custom SQL and Redis actions are
// always bound as parameters.
//
// The packages:
//
//   - topic: MQTT topic-name and topic-filter validation, matching and a filter index
//   - template: the ${var} engine of custom actions, and the payload templates of the
//     time-series stores
//   - hook: events, messages, rules, results, the Backend contract and the Dispatcher
//   - backend: shared options, the asynchronous batching writer, statistics, and the EMQX
//     configuration loader; backend/backendtest is the conformance suite every store runs
//   - sqlstore: MySQL/MariaDB, PostgreSQL and SQLite (the embedded default)
//   - redisstore: Redis single, sentinel and cluster
//   - examples/mochihook and examples/broker: the mochi-mqtt adapter and a runnable broker
package mqttstore
