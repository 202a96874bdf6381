// Package mqttstore is a library of pluggable persistence hooks for MQTT brokers.
//
// A broker calls the library at its own hook points (client connected, session
// created, subscribed, published, acked, ...) through a [hook.Dispatcher]; the
// dispatcher runs the rules of every registered store: it records client state,
// subscriptions, messages, retained messages and ack positions, and answers the
// broker's lookups (which subscriptions to restore, which offline and retained
// messages to deliver). Table names, key layouts and function names follow the
// EMQX 4.x "backends", so an existing EMQX database keeps working.
//
// The packages:
//
//   - topic: MQTT topic-name and topic-filter validation, matching and an index
//   - template: the ${var} engine for custom actions and the payload templates
//     of the time-series stores
//   - hook: events, messages, rules, results and the dispatcher
//   - backend: the store contract, shared options and the asynchronous writer
//   - sqlstore, redisstore, mongostore, cassastore, dynamostore, tsdb: the stores
package mqttstore
