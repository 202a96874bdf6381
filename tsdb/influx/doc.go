// Package influx is the InfluxDB sink of the EMQX 4.x backends ("InfluxDB 消息存储"): each
// message published on a topic a rule selects is turned into points by the templates of the
// template file (emqx_backend_influxdb.tmpl, package template) and written in batches, at
// every QoS. Importing the package registers the store as "influxdb" (backend.Open,
// examples/broker -store influxdb).
//
// # Transports
//
// Config.Server chooses: "host:port" is InfluxDB's UDP line-protocol listener, what EMQX used;
// an http:// or https:// URL is the HTTP API, v1 (/write with Database, RetentionPolicy,
// Username, Password) or, with a Bucket, v2 (/api/v2/write with Bucket, Org and Token; it is
// also what VictoriaMetrics takes). Precision (default ms) is the unit of the timestamps
// written and of numeric timestamps read from payloads; over UDP it must be the listener's
// precision, which the datagram cannot carry. The pool settings are the spec's server,
// pool_size and set_timestamp, and precision, template, string_fields, database, rp,
// username, password, bucket, org, token and the TLS settings (PoolKeys).
//
// # Line protocol
//
// Points are encoded by template.Point.AppendLine, the encoder package template already had:
// it escapes measurements, tag keys and values and field keys as InfluxDB 1.x reads them
// back (github.com/influxdata/line-protocol/v2 escapes tabs and line breaks, which 1.x does
// not unescape, and costs an allocation-heavy encoder for no gain here). A string field may
// hold line breaks (InfluxDB reads a quoted string across lines); anywhere else they are
// refused. A point whose text is not valid UTF-8 is refused too: InfluxDB would return it
// altered.
//
// # Outcomes
//
// A batch over UDP is one datagram of at most MaxDatagram bytes (WriterConfig.MaxBatchBytes):
// a message's points are never split across datagrams, and a message whose points alone do
// not fit is refused. Over UDP the sink promises nothing about delivery: a datagram the
// socket took counts as stored (Stats.Success) whether or not the listener got it, and what
// the listener drops (its buffer full, a parse error) or never receives (it is down: the
// datagrams sent meanwhile) is lost without a count. A send the socket refuses (the
// port-unreachable report of an earlier datagram) is retried; the earlier one is lost. Use
// HTTP where messages must not be lost: there an outage is retried until the server is back
// (the 30 s outage test stores every message once). Over HTTP, 2xx is
// success; 400 "partial write ... dropped=N" means InfluxDB stored the other points: they are
// not written again, and the N dropped points are counted in Stats.Failed (InfluxDB does not
// say which messages they came from; a batch of one message fails that message); any other
// 400 and 413 split the batch so that a bad message fails alone; 429 and 5xx are retried with
// backoff; 401, 403 and 404 (no such database) fail the batch. A request whose outcome is
// unknown (the connection lost mid-request) is retried only for messages whose points all
// carry a timestamp, which overwrite themselves; the others are counted as failed, since a
// point InfluxDB stamps on arrival would be stored twice.
//
// A message the templates do not apply to (no template for its topic, a payload that is not
// JSON, a path that leads nowhere, a value of the wrong type) is counted in Stats.Failed and
// logged, at most once a second, with the rule, the message and the reason.
//
// # Timestamps that collide
//
// InfluxDB keeps one point per series and timestamp: a second point with the same
// measurement, tags and time replaces the first (field by field). With set_timestamp or
// "$timestamp" at ms precision, two messages of one series within a millisecond collide. The
// sink does not move timestamps (that would invent data and still not be unique across
// brokers): it keeps the message time, and says here what to do about it. Give each source
// its own series (a clientid tag, as the spec's example does), write with a finer precision
// over HTTP (Precision time.Nanosecond keeps the broker's clock resolution), or tag by $id
// where every message must be kept.
package influx
