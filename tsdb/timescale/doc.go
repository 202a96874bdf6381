// Package timescale is the TimescaleDB sink of the EMQX 4.x backends ("Timescale 消息存储"):
// each message published on a topic a rule selects is turned into the INSERT statements of
// the templates of the template file (emqx_backend_timescale.tmpl: name, sql with $1..$n,
// param_keys; package template) and run over pgx, at every QoS. Importing the package
// registers the store as "timescale" (backend.Open, examples/broker -store timescale).
//
// The pool settings are the spec's: server, pool_size, username, password, database, ssl
// with keyfile, certfile and cacertfile, plus template (the file) (PoolKeys). Arguments are
// always bound ($1..$n of the template's statement, in param_keys order), never spliced.
//
// A batch of messages is one pgx.Batch: one round trip, run in one implicit transaction.
// The statements are plain INSERTs, so the writer is NotIdempotent: a batch whose outcome is
// unknown (the connection lost mid-batch) is counted as failed, never run twice. A server
// that is down loses nothing: a connection that cannot be made sent nothing, and is retried
// until the server is back; a pooled connection closed while idle (the server restarted, a
// proxy reset it) is seen closed before it takes a batch (a non-blocking peek at its socket,
// on Linux and the BSDs) and dropped, and the batch runs on a new one. When a
// statement fails, nothing of its batch is stored: when the server refused a value (SQLSTATE
// class 22 or 23) its message fails and the other messages are run again; when the statement
// itself is at fault (class 42: a missing table or column, bad SQL; pgx may report it while
// preparing, before any statement runs) the batch is split until that template's messages
// fail alone. A message the templates
// do not apply to (no template for its topic, a payload that is not JSON, a path that leads
// nowhere, $0 arrays of unequal length) is counted in Stats.Failed and logged, at most once
// a second, with the rule, the message and the reason.
//
// The tables are the user's, as in EMQX: the sink creates none, and so no hypertable (with
// the timescaledb extension, SELECT create_hypertable('sensor_data', 'time') once). The
// tests run on plain PostgreSQL, TimescaleDB not being installable here.
package timescale
