package topic_test

import (
	"errors"
	"fmt"
	"slices"

	"github.com/mqttstore/mqttstore/topic"
)

func Example() {
	// Validate what clients send.
	fmt.Println(topic.ValidateFilter("sport/tennis/+"))
	err := topic.ValidateFilter("sport/tennis#")
	fmt.Println(errors.Is(err, topic.ErrMisplacedWildcard), err)

	// Match one filter.
	fmt.Println(topic.Match("sport/#", "sport"), topic.Match("#", "$SYS/uptime"))

	// Index many: which subscribers get a message on "sport/tennis/player1"?
	var subs topic.Index[string]
	subs.Add("sport/tennis/+", "alice")
	subs.Add("sport/#", "bob")
	subs.Add("sport/golf/#", "carol")
	_, filter, _ := topic.ParseShared("$share/g1/sport/tennis/player1")
	subs.Add(filter, "dave")
	got := subs.Match("sport/tennis/player1")
	slices.Sort(got)
	fmt.Println(got)
	// Output:
	// <nil>
	// true topic: invalid topic filter "sport/tennis#": misplaced wildcard: '#' must be a whole level at byte 12 (level 1)
	// true false
	// [alice bob dave]
}

func ExampleParseShared() {
	fmt.Println(topic.ParseShared("$share/workers/jobs/+"))
	fmt.Println(topic.ParseShared("$queue/jobs/+"))
	fmt.Println(topic.ParseShared("jobs/+"))
	// Output:
	// workers jobs/+ true
	//  jobs/+ true
	//  jobs/+ false
}

func ExampleIndex_MatchAppend() {
	var rules topic.Index[int]
	rules.Add("devices/+/status", 1)
	rules.Add("devices/#", 2)
	rules.Add("#", 3)

	buf := make([]int, 0, 8) // reused: no allocation per lookup
	for _, t := range []string{"devices/d1/status", "$SYS/uptime", "devices"} {
		buf = rules.MatchAppend(buf[:0], t)
		slices.Sort(buf)
		fmt.Println(t, buf)
	}
	// Output:
	// devices/d1/status [1 2 3]
	// $SYS/uptime []
	// devices [2 3]
}
