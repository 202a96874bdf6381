package sqlstore

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/hook"
)

// TestPostgresExplain logs PostgreSQL's plans of the fetch and retained-lookup queries on a
// table of 40,000 messages of the last hour over 4,000 topics under 10 prefixes (and as many
// retained messages), and checks that none of them scans mqtt_msg or mqtt_retain
// sequentially: run with -v to see them.
func TestPostgresExplain(t *testing.T) {
	s := newStore(t, Postgres)
	ctx := t.Context()
	pub, _ := s.Prepare(&hook.Rule{Name: "pub", Point: hook.MessagePublish, Action: hook.RuleAction{Function: hook.OnMessagePublish}})
	ret, _ := s.Prepare(&hook.Rule{Name: "ret", Point: hook.MessagePublish, Action: hook.RuleAction{Function: hook.OnMessageRetain}})
	ack, _ := s.Prepare(&hook.Rule{Name: "ack", Point: hook.MessageAcked, Action: hook.RuleAction{Function: hook.OnMessageAcked}})
	ids := hook.NewIDGenerator("")
	now := time.Now()
	for i := range 40000 {
		prefixes := []string{"dev", "site", "fleet", "home", "lab", "car", "plant", "farm", "shop", "ship"}
		m := &hook.Message{ID: ids.Next(), From: "p", Topic: fmt.Sprintf("%s/%d/temp", prefixes[i%10], i%4000), QoS: 1, Retain: i < 4000,
			Payload: []byte("21.5"), Timestamp: now.Add(time.Duration(i-40000) * 50 * time.Millisecond)}
		if err := pub.(hook.WriteAction).Write(context.Background(), &hook.PublishEvent{Message: m}); err != nil {
			t.Fatal(err)
		}
		if m.Retain {
			if err := ret.(hook.WriteAction).Write(context.Background(), &hook.PublishEvent{Message: m}); err != nil {
				t.Fatal(err)
			}
		}
		if i < 2000 { // positions of 20 clients on 100 topics each
			ack.(hook.WriteAction).Write(context.Background(), &hook.AckedEvent{ClientID: fmt.Sprint("c", i%20), Message: m})
		}
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tbl := range []string{"mqtt_msg", "mqtt_retain", "mqtt_acked"} {
		if _, err := s.pg.Exec(ctx, "ANALYZE "+tbl); err != nil {
			t.Fatal(err)
		}
	}
	opts := hook.OfflineOpts{MaxReturnedCount: 100, TimeRange: 2 * time.Hour}
	cases := []struct {
		name string
		sql  string
		args []any
	}{}
	add := func(name, sql string, args []any) {
		cases = append(cases, struct {
			name string
			sql  string
			args []any
		}{name, sql, args})
	}
	for _, f := range []string{"dev/10/temp", "dev/10/+", "dev/+/temp", "dev/#"} {
		q, a := s.fetchQuery("c1", f, opts, nil, now)
		add("on_message_fetch "+f+" (max_returned_count 100, time_range 2h)", q, a)
	}
	for _, f := range []string{"dev/10/temp", "dev/+/temp", "dev/10/#"} {
		q, a := s.retainedQuery(f)
		add("on_retain_lookup "+f, q, a)
	}
	for _, c := range cases {
		rows, err := s.pg.Query(ctx, "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) "+c.sql, c.args...)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var plan []string
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, line)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		text := strings.Join(plan, "\n")
		t.Logf("%s\n%s\n%s", c.name, c.sql, text)
		if strings.Contains(text, "Seq Scan on mqtt_msg") || strings.Contains(text, "Seq Scan on mqtt_retain") {
			t.Errorf("%s scans a table sequentially:\n%s", c.name, text)
		}
	}
}
