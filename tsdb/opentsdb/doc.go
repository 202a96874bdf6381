// Package opentsdb is the OpenTSDB sink of the EMQX 4.x backends ("OpenTSDB 消息存储"):
// each message published on a topic a rule selects is turned into data points by the
// templates of the template file (emqx_backend_opentsdb.tmpl, package template) and put
// through the HTTP API, /api/put, at every QoS. Importing the package registers the store
// as "opentsdb" (backend.Open, examples/broker -store opentsdb).
//
// The pool settings are the spec's: server, pool_size, summary, details, sync, sync_timeout
// and max_batch_size (default 20), plus template (the file) and the TLS settings (PoolKeys).
// A request carries max_batch_size data points at most: the writer's batches are bounded by
// points (a message makes several with $0), and a lone message with more goes alone.
// Points are sent with millisecond timestamps: the template's, or the message's time.
//
// Outcomes: 2xx is success. 400 means OpenTSDB stored some points and refused others: the
// stored ones are never put again; with details = true each refused point is matched to its
// message, which is counted as failed with OpenTSDB's reason; with summary only, the refused
// points are counted (Stats.Failed) without their messages; with neither, every point of the
// request is. 413 splits the batch, 429 and 5xx are retried with backoff, 401, 403 and 404
// fail the batch, and a request whose outcome is unknown is put again (OpenTSDB keeps one
// value per metric, tags and timestamp; VictoriaMetrics keeps both samples unless its
// deduplication is on).
//
// Two points with the same metric, tags and millisecond are one point to OpenTSDB: two
// messages in the same millisecond whose templates render the same tags collide, and
// OpenTSDB keeps one value (tsd.storage.fix_duplicates) or refuses to read the series back.
// The sink does not move a timestamp to make it unique (that would store a reading at a time
// it was not taken): where two readings of a series can share a millisecond, give the
// template a tag that tells them apart ($clientid, or $id for one series per message).
// VictoriaMetrics keeps both samples, unless its -dedup.minScrapeInterval is set.
//
// A message the templates do not apply to (no template for its topic, a payload that is not
// JSON, a path that leads nowhere, a value that is not a number, text that is not valid
// UTF-8) is counted in Stats.Failed and logged, at most once a second, with the rule, the
// message and the reason.
//
// VictoriaMetrics, the OpenTSDB-protocol server the tests run against, answers 204 whatever
// it stored and ignores summary, details and sync: the tests count what was stored by
// reading it back.
package opentsdb
