package topic

import "strings"

// Match reports whether the topic filter matches the topic name.
//
// A filter level "+" matches any one topic level, including an empty one; a
// last filter level "#" matches any number of remaining topic levels,
// including none, so "sport/#" matches "sport". Any other filter level,
// including a "#" that is not last, must equal the topic level byte for byte.
// A filter whose first level is a wildcard does not match a topic that starts
// with '$' (MQTT 5.0 §4.7.2).
//
// Match does not validate its arguments (see [ValidateFilter] and
// [ValidateName]) and never fails: '+' and '#' in topic are ordinary
// characters, so a subscribed filter can be matched as a topic against
// another filter, as EMQX does ("queue/#" matches "queue/+/x"). Shared
// prefixes are not interpreted; see [ParseShared]. Match does not allocate.
func Match(filter, topic string) bool {
	if topic != "" && topic[0] == '$' && filter != "" && (filter[0] == '+' || filter[0] == '#') {
		// A first filter level starting with '+' or '#' is either a wildcard,
		// excluded by the '$' rule, or a literal that cannot equal a level
		// starting with '$'.
		return false
	}
	for {
		fl, tl := filter, topic
		fi := strings.IndexByte(filter, '/')
		if fi >= 0 {
			fl = filter[:fi]
		}
		ti := strings.IndexByte(topic, '/')
		if ti >= 0 {
			tl = topic[:ti]
		}
		switch {
		case fi < 0 && fl == "#":
			return true
		case fl != "+" && fl != tl:
			return false
		case fi < 0:
			return ti < 0
		case ti < 0:
			// The topic has no more levels: only a trailing "#" matches the parent.
			return filter[fi+1:] == "#"
		}
		filter, topic = filter[fi+1:], topic[ti+1:]
	}
}
