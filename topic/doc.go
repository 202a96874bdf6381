// Package topic validates and matches MQTT topic names and topic filters
// (MQTT 3.1.1 §4.7 and MQTT 5.0 §4.7), and indexes many filters for fast
// lookup by topic.
//
// A topic name is what a message is published to ("sport/tennis/player1"); a
// topic filter is what a client subscribes to and may hold the wildcards '+'
// (exactly one level) and '#' (any number of levels, including none, and
// only as the last level). [ValidateName] and [ValidateFilter] check the rules
// and return an [*Error] that says what is wrong and where; [Match] tests one
// filter against one topic; [Index] finds, among many filters, the values of
// those that match a topic.
//
// Matching follows the specification, including its less obvious rules:
// "sport/#" matches "sport" (the parent level), "sport/+" matches "sport/"
// but not "sport", and a filter whose first level is a wildcard does not match
// a topic that starts with '$' ("#" does not match "$SYS/uptime"; "$SYS/#"
// does). Nothing is normalised: case, spaces, and leading, trailing or empty
// levels are significant.
//
// Shared subscriptions ("$share/<group>/<filter>" in MQTT 5.0 and EMQX, and
// EMQX's "$queue/<filter>") are recognised by [ParseShared] and
// [ValidateFilter]. [Match] and [Index] take filters literally; strip a
// shared prefix with [ParseShared] before matching against published topics.
package topic
