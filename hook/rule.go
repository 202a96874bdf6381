package hook

import (
	"encoding/json"
	"time"
)

// Rule says what a backend does at a hook point: for events at Point whose topic matches
// Topic, run Action on the backend's pool Pool. Rules are written in Go or parsed from EMQX
// 4.x configuration values (see ParseRule).
type Rule struct {
	// Name identifies the rule in errors and logs, e.g. "backend.pgsql.hook.message.publish.1".
	Name  string
	Point Point
	// Topic is an MQTT topic filter; "" matches every event of the point.
	Topic  string
	Action RuleAction
	Pool   string
	// OfflineOpts bound the messages on_message_fetch returns.
	OfflineOpts OfflineOpts
	// ExpiredTime, when positive, is how long stored messages live (the spec's expired_time,
	// in seconds there).
	ExpiredTime time.Duration
	// Options holds the rule's other keys (store-specific, e.g. MongoDB's payload_format) raw.
	Options map[string]json.RawMessage
}

// RuleAction is a built-in function, or a list of statements with ${var} placeholders: Redis
// commands, SQL or CQL. Exactly one of the fields is set.
type RuleAction struct {
	Function string
	Commands []string // Redis
	SQL      []string
	CQL      []string
}

// OfflineOpts are the spec's offline_opts. Zero values mean no limit.
type OfflineOpts struct {
	MaxReturnedCount int
	TimeRange        time.Duration
}
