package hook

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/topic"
)

type specLine struct {
	specLine   string // "spec:N"
	key, value string
}

// specRuleLines returns the rule lines of the spec, from testdata/emqx-rules.conf.
func specRuleLines(t testing.TB) []specLine {
	t.Helper()
	f, err := os.Open("testdata/emqx-rules.conf")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []specLine
	var where string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if w, ok := strings.CutPrefix(line, "# "); ok {
			where = w
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: no '=' in %q", where, line)
		}
		lines = append(lines, specLine{where, strings.TrimSpace(key), strings.TrimSpace(value)})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(lines) != 87 {
		t.Fatalf("testdata/emqx-rules.conf has %d rule lines, want the spec's 87", len(lines))
	}
	return lines
}

// Every rule line of the spec parses, except the one the spec misspells.
func TestParseRuleSpecLines(t *testing.T) {
	for _, l := range specRuleLines(t) {
		store, p, err := ParseRuleKey(l.key)
		if err != nil {
			t.Errorf("%s: ParseRuleKey(%q): %v", l.specLine, l.key, err)
			continue
		}
		if !strings.HasPrefix(l.key, "backend."+store+".hook."+p.String()+".") {
			t.Errorf("%s: ParseRuleKey(%q) = %q, %v", l.specLine, l.key, store, p)
		}
		r, err := ParseRule(l.key, p, []byte(l.value))
		if l.specLine == "spec:1283" { // {"topic": "#", action": {"cql": ...
			var re *RuleError
			if !errors.As(err, &re) || re.Rule != l.key || !errors.Is(err, ErrSyntax) {
				t.Errorf("%s: ParseRule(%s) error = %v, want a *RuleError naming the rule wrapping ErrSyntax", l.specLine, l.value, err)
			} else if want := `invalid JSON at byte 16, near "opic\": \"#\", action\": {\"cq": invalid character 'a'`; !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error %q does not contain %q", l.specLine, err, want)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: ParseRule(%s): %v", l.specLine, l.value, err)
			continue
		}
		// The rule says what the value says.
		var v struct {
			Topic  string
			Pool   string
			Action struct {
				Function string
				Commands []string
				SQL      []string
				CQL      []string
			}
		}
		if err := json.Unmarshal([]byte(l.value), &v); err != nil {
			t.Fatal(err)
		}
		want := RuleAction{Function: v.Action.Function, Commands: v.Action.Commands, SQL: v.Action.SQL, CQL: v.Action.CQL}
		if r.Name != l.key || r.Point != p || r.Topic != v.Topic || r.Pool != v.Pool || !reflect.DeepEqual(r.Action, want) {
			t.Errorf("%s: ParseRule(%s) = %+v", l.specLine, l.value, r)
		}
	}
}

func TestParseRule(t *testing.T) {
	tests := []struct {
		name  string
		point Point
		value string
		want  Rule
	}{{
		name:  "spec:122 redis queue fetch",
		point: SessionSubscribed,
		value: `{"topic": "queue/#", "action": {"function": "on_message_fetch_for_queue"}, "pool": "pool1"}`,
		want:  Rule{Point: SessionSubscribed, Topic: "queue/#", Action: RuleAction{Function: OnMessageFetchForQueue}, Pool: "pool1"},
	}, {
		name:  "spec:124 no topic",
		point: SessionSubscribed,
		value: `{"action": {"function": "on_retain_lookup"}, "pool": "pool1"}`,
		want:  Rule{Point: SessionSubscribed, Action: RuleAction{Function: OnRetainLookup}, Pool: "pool1"},
	}, {
		name:  "spec:125 redis commands",
		point: SessionUnsubscribed,
		value: `{"topic": "#", "action": {"commands": ["DEL mqtt:acked:${clientid}:${topic}"]}, "pool": "pool1"}`,
		want:  Rule{Point: SessionUnsubscribed, Topic: "#", Action: RuleAction{Commands: []string{"DEL mqtt:acked:${clientid}:${topic}"}}, Pool: "pool1"},
	}, {
		name:  "spec:126 expired_time",
		point: MessagePublish,
		value: `{"topic": "#", "action": {"function": "on_message_publish"}, "expired_time" : 3600, "pool": "pool1"}`,
		want:  Rule{Point: MessagePublish, Topic: "#", Action: RuleAction{Function: OnMessagePublish}, Pool: "pool1", ExpiredTime: time.Hour},
	}, {
		name:  "spec:398 offline_opts",
		point: SessionSubscribed,
		value: `{"topic": "#", "action": {"function": "on_message_fetch"}, "offline_opts": {"max_returned_count": 500, "time_range": "2h"}, "pool": "pool1"}`,
		want: Rule{Point: SessionSubscribed, Topic: "#", Action: RuleAction{Function: OnMessageFetch}, Pool: "pool1",
			OfflineOpts: OfflineOpts{MaxReturnedCount: 500, TimeRange: 2 * time.Hour}},
	}, {
		name:  "spec:1005 offline_opts last",
		point: SessionSubscribed,
		value: `{"topic": "#", "action": {"function": "on_message_fetch"}, "pool": "pool1", "offline_opts": {"time_range": "2h", "max_returned_count": 500}}`,
		want: Rule{Point: SessionSubscribed, Topic: "#", Action: RuleAction{Function: OnMessageFetch}, Pool: "pool1",
			OfflineOpts: OfflineOpts{MaxReturnedCount: 500, TimeRange: 2 * time.Hour}},
	}, {
		name:  "spec:437 sql",
		point: ClientConnected,
		value: `{"action": {"sql": ["insert into conn(clientid) values(${clientid})"]}, "pool": "pool1"}`,
		want:  Rule{Point: ClientConnected, Action: RuleAction{SQL: []string{"insert into conn(clientid) values(${clientid})"}}, Pool: "pool1"},
	}, {
		name:  "spec:1021 mongo payload_format kept raw",
		point: MessagePublish,
		value: `{"topic": "#", "action": {"function": "on_message_store"}, "pool": "pool1", "payload_format": "mongo_json"}`,
		want: Rule{Point: MessagePublish, Topic: "#", Action: RuleAction{Function: OnMessageStore}, Pool: "pool1",
			Options: map[string]json.RawMessage{"payload_format": json.RawMessage(`"mongo_json"`)}},
	}, {
		name:  "spec:1268 cassandra on_subscription_lookup",
		point: SessionCreated,
		value: `{"action": {"function": "on_subscription_lookup"}, "pool": "pool1"}`,
		want:  Rule{Point: SessionCreated, Action: RuleAction{Function: OnSubscriptionLookup}, Pool: "pool1"},
	}, {
		name:  "spec:1342 cql",
		point: ClientConnected,
		value: `{"action": {"cql": ["insert into conn(clientid) values(${clientid})"]}, "pool": "pool1"}`,
		want:  Rule{Point: ClientConnected, Action: RuleAction{CQL: []string{"insert into conn(clientid) values(${clientid})"}}, Pool: "pool1"},
	}, {
		name:  "spec:1542 dynamo queue fetch",
		point: SessionSubscribed,
		value: `{"topic": "#", "action": {"function": "on_message_fetch_for_queue"}, "pool": "pool1"}`,
		want:  Rule{Point: SessionSubscribed, Topic: "#", Action: RuleAction{Function: OnMessageFetchForQueue}, Pool: "pool1"},
	}, {
		name:  "time_range in days, as a number of seconds, several statements",
		point: SessionSubscribed,
		value: `{"topic":"a/+/c","action":{"sql":["a ${topic}","b"]},"offline_opts":{"time_range":"1d12h"},"expired_time":0}`,
		want:  Rule{Point: SessionSubscribed, Topic: "a/+/c", Action: RuleAction{SQL: []string{"a ${topic}", "b"}}, OfflineOpts: OfflineOpts{TimeRange: 36 * time.Hour}},
	}, {
		name:  "time_range as seconds",
		point: SessionSubscribed,
		value: `{"action":{"function":"on_message_fetch"},"offline_opts":{"time_range":7200}}`,
		want:  Rule{Point: SessionSubscribed, Action: RuleAction{Function: OnMessageFetch}, OfflineOpts: OfflineOpts{TimeRange: 2 * time.Hour}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRule("r1", tt.point, []byte(tt.value))
			if err != nil {
				t.Fatal(err)
			}
			tt.want.Name = "r1"
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseRule(%s)\n got %+v\nwant %+v", tt.value, got, tt.want)
			}
		})
	}
}

func TestParseRuleErrors(t *testing.T) {
	const name = "backend.pgsql.hook.session.subscribed.9"
	tests := []struct {
		name  string
		point Point
		value string
		is    error  // errors.Is target
		field string // RuleError.Field
		msg   string // in the message
	}{
		{"empty", SessionSubscribed, ``, ErrSyntax, "", "unexpected end of JSON input"},
		{"spec:1283 typo", SessionUnsubscribed, `{"topic": "#", action": {"cql": ["x"]}, "pool": "pool1"}`, ErrSyntax, "", `at byte 16, near "opic\": \"#\", action\": {\"cq": invalid character 'a' looking for beginning of object key string`},
		{"trailing garbage", SessionSubscribed, `{"action": {"function": "on_retain_lookup"}} x`, ErrSyntax, "", "after top-level value"},
		{"not an object", SessionSubscribed, `["on_retain_lookup"]`, ErrValue, "", "want an object, got array"},
		{"null", SessionSubscribed, `null`, ErrValue, "", "got null"},
		{"no action", SessionSubscribed, `{"topic": "#", "pool": "pool1"}`, ErrAction, "action", "missing"},
		{"action is a string", SessionSubscribed, `{"action": "on_retain_lookup"}`, ErrValue, "action", "want an object, got string"},
		{"empty action", SessionSubscribed, `{"action": {}}`, ErrAction, "action", "got 0"},
		{"two kinds", ClientConnected, `{"action": {"function": "on_client_connected", "sql": ["x"]}}`, ErrAction, "action", "exactly one"},
		{"unknown action key", ClientConnected, `{"action": {"fucntion": "on_client_connected"}}`, ErrAction, "action.fucntion", "unknown key"},
		{"unknown function", ClientConnected, `{"action": {"function": "on_client_connect"}}`, ErrUnknownFunction, "action.function", `"on_client_connect"`},
		{"empty function", ClientConnected, `{"action": {"function": ""}}`, ErrAction, "action.function", "empty function name"},
		{"function at the wrong point", MessagePublish, `{"action": {"function": "on_message_fetch"}}`, ErrFunctionPoint, "action.function", "on_message_fetch at message.publish (allowed at [session.subscribed])"},
		{"function not a string", ClientConnected, `{"action": {"function": 1}}`, ErrValue, "action.function", "want a string, got number"},
		{"empty sql list", ClientConnected, `{"action": {"sql": []}}`, ErrAction, "action.sql", "empty list"},
		{"blank statement", ClientConnected, `{"action": {"commands": ["SET a b", "  "]}}`, ErrAction, "action.commands[1]", "empty statement"},
		{"sql not a list", ClientConnected, `{"action": {"sql": "insert"}}`, ErrValue, "action.sql", "want a list of strings, got string"},
		{"null sql", ClientConnected, `{"action": {"sql": null}}`, ErrAction, "action", "got 0"},
		{"bad filter", SessionSubscribed, `{"topic": "a/#/b", "action": {"function": "on_retain_lookup"}}`, topic.ErrMisplacedWildcard, "topic", "misplaced wildcard"},
		{"topic not a string", SessionSubscribed, `{"topic": 1, "action": {"function": "on_retain_lookup"}}`, ErrValue, "topic", "want a string"},
		{"pool not a string", SessionSubscribed, `{"pool": ["p"], "action": {"function": "on_retain_lookup"}}`, ErrValue, "pool", "want a string, got array"},
		{"negative count", SessionSubscribed, `{"action": {"function": "on_message_fetch"}, "offline_opts": {"max_returned_count": -1}}`, ErrValue, "offline_opts.max_returned_count", "negative"},
		{"fractional count", SessionSubscribed, `{"action": {"function": "on_message_fetch"}, "offline_opts": {"max_returned_count": 1.5}}`, ErrValue, "offline_opts.max_returned_count", "want an integer, got number 1.5"},
		{"bad time_range unit", SessionSubscribed, `{"action": {"function": "on_message_fetch"}, "offline_opts": {"time_range": "2x"}}`, ErrDuration, "offline_opts.time_range", `"2x"`},
		{"time_range without unit", SessionSubscribed, `{"action": {"function": "on_message_fetch"}, "offline_opts": {"time_range": "2"}}`, ErrDuration, "offline_opts.time_range", "missing unit"},
		{"negative time_range", SessionSubscribed, `{"action": {"function": "on_message_fetch"}, "offline_opts": {"time_range": "-2h"}}`, ErrDuration, "offline_opts.time_range", "negative"},
		{"time_range not a string", SessionSubscribed, `{"action": {"function": "on_message_fetch"}, "offline_opts": {"time_range": true}}`, ErrDuration, "offline_opts.time_range", "want a duration string"},
		{"unknown offline_opts key", SessionSubscribed, `{"action": {"function": "on_message_fetch"}, "offline_opts": {"max_count": 5}}`, ErrValue, "offline_opts.max_count", "unknown key"},
		{"offline_opts not an object", SessionSubscribed, `{"action": {"function": "on_message_fetch"}, "offline_opts": 5}`, ErrValue, "offline_opts", "want an object"},
		{"negative expired_time", MessagePublish, `{"action": {"function": "on_message_publish"}, "expired_time": -1}`, ErrValue, "expired_time", "negative"},
		{"expired_time as a string", MessagePublish, `{"action": {"function": "on_message_publish"}, "expired_time": "1h"}`, ErrValue, "expired_time", "want an integer, got string"},
		{"huge expired_time", MessagePublish, `{"action": {"function": "on_message_publish"}, "expired_time": 9223372036854775807}`, ErrValue, "expired_time", "too large"},
		{"bad point", Point(0), `{"action": {"sql": ["x"]}}`, ErrUnknownPoint, "", "Point(0)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseRule(name, tt.point, []byte(tt.value))
			if err == nil {
				t.Fatalf("ParseRule(%s) = %+v, want an error", tt.value, r)
			}
			var re *RuleError
			if !errors.As(err, &re) || re.Rule != name || re.Field != tt.field {
				t.Fatalf("ParseRule(%s) error %#v, want a *RuleError for rule %q, field %q", tt.value, err, name, tt.field)
			}
			if !errors.Is(err, tt.is) {
				t.Errorf("error %q is not %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.msg) || !strings.Contains(err.Error(), name) {
				t.Errorf("error %q does not contain %q and the rule name", err, tt.msg)
			}
		})
	}
}

func TestParseRuleKey(t *testing.T) {
	tests := []struct {
		key   string
		store string
		point Point
		err   error
	}{
		{"backend.pgsql.hook.message.publish.1", "pgsql", MessagePublish, nil},
		{"backend.redis.hook.session.unsubscribed.12", "redis", SessionUnsubscribed, nil},
		{"backend.cassa.hook.client.connected.3", "cassa", ClientConnected, nil},
		{"backend.pgsql.hook.message.publish", "", 0, ErrRuleKey}, // no <n>
		{"backend.pgsql.hook.message.publish.x", "", 0, ErrRuleKey},
		{"backend.pgsql.hook.message.publish.", "", 0, ErrRuleKey},
		{"backend.pgsql.hook.message.published.1", "", 0, ErrUnknownPoint},
		{"backend.pgsql.pool1.server", "", 0, ErrRuleKey},
		{"backend..hook.message.publish.1", "", 0, ErrRuleKey},
		{"plugins.hook.message.publish.1", "", 0, ErrRuleKey},
		{"", "", 0, ErrRuleKey},
	}
	for _, tt := range tests {
		store, p, err := ParseRuleKey(tt.key)
		if store != tt.store || p != tt.point || !errors.Is(err, tt.err) {
			t.Errorf("ParseRuleKey(%q) = %q, %v, %v; want %q, %v, %v", tt.key, store, p, err, tt.store, tt.point, tt.err)
		}
		var re *RuleError
		if err != nil && (!errors.As(err, &re) || re.Rule != tt.key) {
			t.Errorf("ParseRuleKey(%q) error %v does not name the key", tt.key, err)
		}
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"2h", 2 * time.Hour, true},
		{"30m", 30 * time.Minute, true},
		{"1h30m", 90 * time.Minute, true},
		{"1.5h", 90 * time.Minute, true},
		{"500ms", 500 * time.Millisecond, true},
		{"0", 0, true},
		{"1d", 24 * time.Hour, true},
		{"2w", 14 * 24 * time.Hour, true},
		{"1d12h", 36 * time.Hour, true},
		{"0.5d", 12 * time.Hour, true},
		{"1w1d1h1m1s", (8*24+1)*time.Hour + time.Minute + time.Second, true},
		{"", 0, false},
		{"2", 0, false},
		{"2x", 0, false},
		{"d", 0, false},
		{"1dd", 0, false},
		{"1d2", 0, false},
		{"-1d", 0, false},
		{"-2h", 0, false},
		{"1..5d", 0, false},
		{"999999999w", 0, false},
		{"106751d106751d", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if got != tt.want || (err == nil) != tt.ok || err != nil && !errors.Is(err, ErrDuration) {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestParsePoint(t *testing.T) {
	names := []string{"client.connected", "client.disconnected", "session.created", "session.subscribed",
		"session.unsubscribed", "message.publish", "message.deliver", "message.acked"}
	for i, name := range names {
		p, err := ParsePoint(name)
		if err != nil || p != Point(i+1) || p.String() != name {
			t.Errorf("ParsePoint(%q) = %v (%d), %v", name, p, p, err)
		}
		text, err := p.MarshalText()
		var back Point
		if err != nil || string(text) != name || back.UnmarshalText(text) != nil || back != p {
			t.Errorf("%v: MarshalText/UnmarshalText round trip: %q, %v, %v", p, text, err, back)
		}
	}
	for _, bad := range []string{"", "client", "Client.Connected", "message.publish.1", "message.acked "} {
		if p, err := ParsePoint(bad); !errors.Is(err, ErrUnknownPoint) || p != 0 {
			t.Errorf("ParsePoint(%q) = %v, %v; want ErrUnknownPoint", bad, p, err)
		}
	}
	if s := Point(0).String(); s != "Point(0)" {
		t.Errorf("Point(0).String() = %q", s)
	}
	if _, err := Point(9).MarshalText(); !errors.Is(err, ErrUnknownPoint) {
		t.Errorf("Point(9).MarshalText() error = %v", err)
	}
}

func TestLookupFunction(t *testing.T) {
	info, ok := LookupFunction(OnMessageFetch)
	if !ok || !info.Lookup || !info.AllowedAt(SessionSubscribed) || info.AllowedAt(MessagePublish) {
		t.Errorf("LookupFunction(%q) = %+v, %v", OnMessageFetch, info, ok)
	}
	info.Points[0] = MessagePublish // the caller's copy
	if again, _ := LookupFunction(OnMessageFetch); again.Points[0] != SessionSubscribed {
		t.Error("LookupFunction returned the table's own slice")
	}
	if info, ok := LookupFunction(OnMessagePublish); !ok || info.Lookup {
		t.Errorf("LookupFunction(%q) = %+v, %v", OnMessagePublish, info, ok)
	}
	if _, ok := LookupFunction("on_nothing"); ok {
		t.Error("LookupFunction(on_nothing) reported a function")
	}
}

func FuzzParseRule(f *testing.F) {
	for _, l := range specRuleLines(f) {
		_, p, _ := ParseRuleKey(l.key)
		f.Add(uint8(p), []byte(l.value))
	}
	f.Add(uint8(SessionSubscribed), []byte(`{"action":{"function":"on_message_fetch"},"offline_opts":{"time_range":"1w2d3h","max_returned_count":7}}`))
	f.Fuzz(func(t *testing.T, point uint8, value []byte) {
		const name = "fuzz"
		r, err := ParseRule(name, Point(point), value)
		if err != nil {
			var re *RuleError
			if !errors.As(err, &re) || re.Rule != name {
				t.Fatalf("error %v is not a *RuleError naming the rule", err)
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("ParseRule returned a rule that Validate rejects: %v", err)
		}
		if r.Name != name || r.Point != Point(point) {
			t.Fatalf("rule %+v", r)
		}
	})
}
