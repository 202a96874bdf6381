// Package template compiles the two template languages of the EMQX 4.x backends: the ${var}
// placeholders of custom actions (SQL, CQL and Redis commands), and the JSON payload
// templates of the time-series stores (InfluxDB, OpenTSDB, TimescaleDB). Templates are
// compiled once, when rules are loaded, and rendered for every event; compiled templates are
// immutable and safe for concurrent use.
//
// # ${var} templates
//
// A placeholder is ${name} with one of the names clientid, username, peerhost, node, topic,
// qos, msgid, payload and ts (see Var; names are lower case, and there is no ${message}: the
// message body is ${payload}). Values holds what they render to. "$${" is a literal "${"; any
// other '$' is literal, so $1, $$ and $tag$ are left alone. Placeholders are found before
// anything else, inside quotes and comments too: write "$${" there for a literal "${".
//
// Placeholders are never written into statement text. CompileStatement turns each one into a
// bind marker of the Dialect (? for MySQL, SQLite and CQL, $1..$n for PostgreSQL) and
// Statement.Args gives the arguments in marker order, so
//
//	insert into mqtt_sub(clientid, topic, qos) values (${clientid}, ${topic}, ${qos})
//
// becomes "insert into mqtt_sub(clientid, topic, qos) values (?, ?, ?)" with the arguments
// clientid, topic and qos. A placeholder where no value can be bound is a compile error: in
// a quoted string or identifier ('${topic}', "${topic}", `${topic}`), in a comment, or joined
// to a name, a number or another placeholder (t_${clientid}). So are unknown names, an
// unclosed "${", and bind markers of the statement's own (?, $1, :name).
//
// CompileRedis splits a command into arguments on whitespace when it is compiled; a token
// holding placeholders stays one argument whatever the values hold, so
// "HSET mqtt:sub:${clientid} ${topic} ${qos}" always has four arguments. CompileText renders
// plain text (log lines, keys).
//
// Compile errors are *SyntaxError values naming the byte offset (and line and column) and the
// reason, wrapping one of ErrUnknownVar, ErrUnterminated, ErrQuotedPlaceholder,
// ErrMisplacedPlaceholder, ErrBindMarker and ErrEmpty.
//
// Rendered types: strings are string, the payload []byte (binary-safe; it aliases
// Values.Payload), qos an int64 and ts an int64 of milliseconds since the Unix epoch (0 for
// the zero time), or their decimal text where a value is part of text.
//
// # Payload templates
//
// ParseInflux, ParseOpenTSDB and ParseTimescale read the spec's template files: a JSON object
// from MQTT topic filters to a template or a list of templates. A template value is
//
//   - a constant: "host1", 12.5, true, null (a string starting "$$" stands for itself with
//     one '$' less);
//   - a placeholder: "$id" (Values.MsgID), "$clientid", "$username", "$peerhost", "$qos",
//     "$topic", "$payload" (the whole payload, as text) or "$timestamp" (Values.TS);
//   - a path into the JSON payload, ["$payload", "data", "$0", "temp"]: object keys, "$N"
//     for the N-th array element (1-based) and "$0" for every element, which makes one
//     output row per element. Several $0 paths in a template must give the same number of
//     elements (ErrRowCount); an empty array makes no row.
//
// A path needs a JSON payload (ErrPayloadNotJSON), and a path that leads nowhere is an error
// (ErrNoValue), so a misspelt key fails loudly rather than writing nothing. An explicit JSON
// null is a value: SQL NULL for Timescale, no tag (InfluxDB, OpenTSDB) or no field
// (InfluxDB); a null measurement or OpenTSDB value is ErrValueType.
// $timestamp in a timestamp slot is the message time itself (InfluxDB then writes it at the
// writer's precision); elsewhere it is an integer of milliseconds.
//
// Set.Select picks the templates for a topic with the caller's MQTT matcher; Render on a
// template appends its rows: InfluxDB Points (Point.AppendLine encodes line protocol),
// OpenTSDB DataPoints, or TimescaleInserts (SQL and arguments in param_keys order).
package template
