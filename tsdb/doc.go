// Package tsdb holds what the three time-series sinks of the EMQX 4.x backends share: the
// one function they support (on_message_publish, at every QoS: a reading is a reading), the
// check of their rules, and the mapping of a message to the values their payload templates
// render (package template). The sinks themselves are subpackages:
//
//	tsdb/influx     InfluxDB: UDP line protocol, HTTP /write (v1) and /api/v2/write
//	tsdb/opentsdb   OpenTSDB: HTTP /api/put
//	tsdb/timescale  TimescaleDB (PostgreSQL): the template file's SQL over pgx
//
// They are subpackages, not one package, because they share no code path past the template
// step and each has its own configuration, transport and failure model: a broker that imports
// tsdb/influx registers the "influxdb" store without pulling in pgx, and each package's doc,
// Config and Examples speak of one database only. Importing a subpackage registers its store
// with package backend (backend.Open, examples/broker -store NAME).
//
// Every message whose template does not apply (no template for its topic, a payload that is
// not JSON, a path that leads nowhere, $0 arrays of unequal length, a value of the wrong type)
// is counted in the sink's Stats.Failed and logged, at most once a second, with the rule and
// the reason; it never stops the batch it would have been part of.
package tsdb
