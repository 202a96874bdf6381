package topic

import (
	"slices"
	"testing"
)

// matchCases are named after the MQTT 5.0 section (and conformance statement,
// where there is one) whose rule they check; most are the spec's own examples.
var matchCases = []struct {
	name          string
	filter, topic string
	want          bool
}{
	// §4.7.1.2 Multi-level wildcard.
	{"4.7.1.2_multi_level_wildcard_matches_parent", "sport/tennis/player1/#", "sport/tennis/player1", true},
	{"4.7.1.2_multi_level_wildcard_matches_child", "sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
	{"4.7.1.2_multi_level_wildcard_matches_grandchild", "sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
	{"4.7.1.2_multi_level_wildcard_not_sibling", "sport/tennis/player1/#", "sport/tennis/player2", false},
	{"4.7.1.2_multi_level_wildcard_not_grandparent", "sport/tennis/player1/#", "sport/tennis", false},
	{"4.7.1.2_sport_hash_matches_singular_sport", "sport/#", "sport", true},
	{"4.7.1.2_sport_hash_matches_empty_child", "sport/#", "sport/", true},
	{"4.7.1.2_sport_hash_not_level_prefix", "sport/#", "sports", false},
	{"4.7.1.2_hash_alone_matches_every_topic", "#", "sport/tennis/player1", true},
	{"4.7.1.2_hash_alone_matches_slash", "#", "/", true},
	{"4.7.1.2_sport_tennis_hash", "sport/tennis/#", "sport/tennis/player2", true},
	// §4.7.1.3 Single-level wildcard.
	{"4.7.1.3_single_level_wildcard_matches_player1", "sport/tennis/+", "sport/tennis/player1", true},
	{"4.7.1.3_single_level_wildcard_matches_player2", "sport/tennis/+", "sport/tennis/player2", true},
	{"4.7.1.3_single_level_wildcard_not_two_levels", "sport/tennis/+", "sport/tennis/player1/ranking", false},
	{"4.7.1.3_sport_plus_not_sport", "sport/+", "sport", false},
	{"4.7.1.3_sport_plus_matches_sport_slash", "sport/+", "sport/", true},
	{"4.7.1.3_plus_alone", "+", "sport", true},
	{"4.7.1.3_plus_tennis_hash", "+/tennis/#", "sport/tennis/player1", true},
	{"4.7.1.3_plus_tennis_hash_parent", "+/tennis/#", "sport/tennis", true},
	{"4.7.1.3_plus_tennis_hash_not_golf", "+/tennis/#", "sport/golf", false},
	{"4.7.1.3_plus_in_middle", "sport/+/player1", "sport/tennis/player1", true},
	{"4.7.1.3_plus_in_middle_not_other_player", "sport/+/player1", "sport/tennis/player2", false},
	{"4.7.1.3_slash_finance_matches_plus_plus", "+/+", "/finance", true},
	{"4.7.1.3_slash_finance_matches_slash_plus", "/+", "/finance", true},
	{"4.7.1.3_slash_finance_not_plus", "+", "/finance", false},
	{"4.7.1.3_plus_matches_empty_level", "a/+/b", "a//b", true},
	// §4.7.2 Topics beginning with $ [MQTT-4.7.2-1].
	{"4.7.2-1_hash_not_dollar_topic", "#", "$SYS/monitor/Clients", false},
	{"4.7.2-1_hash_not_dollar_alone", "#", "$SYS", false},
	{"4.7.2-1_plus_first_not_dollar_topic", "+/monitor/Clients", "$SYS/monitor/Clients", false},
	{"4.7.2-1_plus_alone_not_dollar", "+", "$", false},
	{"4.7.2-1_plus_hash_not_dollar", "+/#", "$SYS/x", false},
	{"4.7.2_dollar_sys_hash_matches", "$SYS/#", "$SYS/monitor/Clients", true},
	{"4.7.2_dollar_sys_hash_matches_parent", "$SYS/#", "$SYS", true},
	{"4.7.2_dollar_sys_plus_matches", "$SYS/monitor/+", "$SYS/monitor/Clients", true},
	{"4.7.2_dollar_exact", "$SYS/monitor/Clients", "$SYS/monitor/Clients", true},
	{"4.7.2_dollar_sys_hash_not_other_topics", "$SYS/#", "SYS/monitor", false},
	{"4.7.2_wildcard_after_first_level_matches_dollar_level", "a/+", "a/$b", true},
	{"4.7.2_hash_after_first_level_matches_dollar_level", "a/#", "a/$b/c", true},
	{"4.7.2_dollar_not_first_character_of_topic", "#", "a$", true},
	// §4.7.3 Topic semantic and usage.
	{"4.7.3_case_sensitive", "ACCOUNTS", "Accounts", false},
	{"4.7.3_space_allowed", "Accounts payable", "Accounts payable", true},
	{"4.7.3_leading_slash_distinct", "/finance", "finance", false},
	{"4.7.3_leading_slash_distinct_reverse", "finance", "/finance", false},
	{"4.7.3_trailing_slash_distinct", "finance/", "finance", false},
	{"4.7.3_only_slash", "/", "/", true},
	{"4.7.3_only_slash_plus_plus", "+/+", "/", true},
	{"4.7.3_only_slash_not_plus", "+", "/", false},
	{"4.7.3_slash_hash_matches_slash", "/#", "/", true},
	{"4.7.3_exact_not_longer", "sport", "sport/tennis", false},
	{"4.7.3_exact_not_shorter", "sport/tennis", "sport", false},
	{"4.7.3-4_no_normalisation_of_empty_levels", "a//b", "a/b", false},
	{"4.7.3-4_no_unicode_normalisation", "caf\u00e9", "cafe\u0301", false},
	{"4.7.3_utf8_levels", "温度/+", "温度/室内", true},
	// Literal wildcards in the topic argument, as EMQX matches filter against filter.
	{"emqx_filter_as_topic_hash_covers_plus", "queue/#", "queue/+/x", true},
	{"emqx_filter_as_topic_plus_covers_plus", "queue/+/x", "queue/+/x", true},
	{"emqx_filter_as_topic_literal_not_plus", "queue/a/x", "queue/+/x", false},
	{"emqx_filter_as_topic_literal_hash", "a/#/b", "a/#/b", true},
	{"emqx_hash_not_last_is_literal", "a/#/b", "a/x/b", false},
}

func TestMatch(t *testing.T) {
	for _, c := range matchCases {
		t.Run(c.name, func(t *testing.T) {
			if got := Match(c.filter, c.topic); got != c.want {
				t.Errorf("Match(%q, %q) = %v, want %v", c.filter, c.topic, got, c.want)
			}
		})
	}
}

// TestIndexMatchSpec holds all the filters of matchCases in one Index and
// checks every topic of the table against the brute-force answer, which the
// table itself pins down for its own pairs.
func TestIndexMatchSpec(t *testing.T) {
	var x Index[int]
	for i, c := range matchCases {
		x.Add(c.filter, i)
	}
	for _, c := range matchCases {
		t.Run(c.name, func(t *testing.T) {
			got := x.Match(c.topic)
			var want []int
			for i, d := range matchCases {
				if Match(d.filter, c.topic) {
					want = append(want, i)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("Index.Match(%q) = %v, want %v", c.topic, got, want)
			}
		})
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		Match("devices/+/sensor/#", "devices/4711/sensor/status")
	})
	if allocs != 0 {
		t.Errorf("Match allocates %v times per call", allocs)
	}
}
