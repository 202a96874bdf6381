package sqlstore

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/hook"
)

// TestCustomStatementColumnTypes: a custom statement binds each placeholder into whatever
// column EMQX users put it in (as epgsql, go-sql-driver/mysql and SQLite accept): numbers and
// the payload into text columns, a numeric string into an integer column and, in PostgreSQL,
// the timestamp into timestamp columns and a topic into bytea.
func TestCustomStatementColumnTypes(t *testing.T) {
	at := time.Date(2026, 11, 26, 7, 44, 29, 123e6, time.UTC)
	for _, d := range dialectsUnderTest {
		t.Run(d.String(), func(t *testing.T) {
			t.Parallel()
			s := newStore(t, d)
			ctx := t.Context()
			ddl := "CREATE TABLE conn (clientid VARCHAR(64), qos TEXT, ts VARCHAR(20), payload TEXT, topic CHAR(8), n INTEGER, q BIGINT)"
			if d == Postgres {
				ddl = "CREATE TABLE conn (clientid VARCHAR(64), qos TEXT, ts VARCHAR(20), payload TEXT, topic CHAR(8), n INTEGER, q BIGINT," +
					" at TIMESTAMP, atz TIMESTAMPTZ, bin BYTEA, nm NAME, s SMALLINT)"
			}
			if err := s.execDDL(ctx, ddl); err != nil {
				t.Fatal(err)
			}
			stmts := []string{
				"INSERT INTO conn (clientid, qos, ts, payload, topic, n, q) VALUES (${clientid}, ${qos}, ${ts}, ${payload}, ${topic}, ${msgid}, ${qos})",
				// A string compared to an integer column.
				"UPDATE conn SET q = q + 1 WHERE n = ${msgid} AND clientid = ${clientid}",
			}
			if d == Postgres {
				stmts = append(stmts, "UPDATE conn SET at = ${ts}, atz = ${ts}, bin = ${topic}, nm = ${qos}, s = ${msgid} WHERE qos = ${qos}")
			}
			a, err := s.Prepare(&hook.Rule{Name: "types", Point: hook.MessagePublish, Action: hook.RuleAction{SQL: stmts}})
			if err != nil {
				t.Fatal(err)
			}
			w := a.(hook.WriteAction)
			mustWrite(t, w, &hook.PublishEvent{Message: &hook.Message{ID: "42", From: "c1", Topic: "t/1", QoS: 2, Payload: []byte(`{"v":"é"}`), Timestamp: at}})
			s.Flush(ctx)
			if st := s.Stats(); st.Failed != 0 || st.Success != 1 {
				t.Fatalf("stats %+v, want 1 success", st)
			}
			var clientid, qos, ts, payload, topic string
			var n, q int64
			err = s.query(ctx, "SELECT clientid, qos, ts, payload, topic, n, q FROM conn", nil, func(scan func(...any) error) error {
				return scan(&clientid, &qos, &ts, &payload, &topic, &n, &q)
			})
			if err != nil {
				t.Fatal(err)
			}
			topic = strings.TrimRight(topic, " ") // CHAR(8) pads in PostgreSQL
			if clientid != "c1" || qos != "2" || ts != strconv.FormatInt(at.UnixMilli(), 10) || payload != `{"v":"é"}` || topic != "t/1" || n != 42 || q != 3 {
				t.Errorf("row = (%q, %q, %q, %q, %q, %d, %d), want (c1, 2, %d, {\"v\":\"é\"}, t/1, 42, 3)", clientid, qos, ts, payload, topic, n, q, at.UnixMilli())
			}
			if d != Postgres {
				return
			}
			var gotAt, gotAtz time.Time
			var bin []byte
			var nm string
			var sm int16
			err = s.query(ctx, "SELECT at, atz, bin, nm, s FROM conn", nil, func(scan func(...any) error) error {
				return scan(&gotAt, &gotAtz, &bin, &nm, &sm)
			})
			if err != nil {
				t.Fatal(err)
			}
			if !gotAt.Equal(at) || !gotAtz.Equal(at) || string(bin) != "t/1" || nm != "2" || sm != 42 {
				t.Errorf("row = (%v, %v, %q, %q, %d), want (%v, %v, t/1, 2, 42)", gotAt, gotAtz, bin, nm, sm, at, at)
			}

			// A payload that is not text cannot go into a text column, nor a string that is not
			// a number into an integer one: failed writes, nothing altered or stored.
			for _, m := range []*hook.Message{
				{ID: "43", From: "bad-utf8", Topic: "t", Payload: []byte{0xff, 'x'}},
				{ID: "44", From: "nul", Topic: "t", Payload: []byte{'x', 0}},
				{ID: "x44", From: "not-int", Topic: "t", Payload: []byte("x")},
			} {
				mustWrite(t, w, &hook.PublishEvent{Message: m})
			}
			s.Flush(ctx)
			if st := s.Stats(); st.Failed != 3 || st.Success != 1 {
				t.Errorf("stats %+v, want 3 failed", st)
			}
			var rows int64
			if err := s.query(ctx, "SELECT count(*) FROM conn", nil, func(scan func(...any) error) error { return scan(&rows) }); err != nil || rows != 1 {
				t.Errorf("rows = %d, %v; want 1", rows, err)
			}
		})
	}
}

// TestPostgresArgErrors: the errors of arguments that do not fit their parameter say which
// and why.
func TestPostgresArgErrors(t *testing.T) {
	for _, c := range []struct {
		oid  uint32
		v    any
		want error
	}{
		{25, []byte{0xff}, ErrPayloadNotText},
		{1043, []byte{0}, ErrPayloadNotText},
		{23, "x", errNotNumber},
		{20, "1.5", errNotNumber},
	} {
		if _, err := pgArg(c.oid, c.v); !errors.Is(err, c.want) {
			t.Errorf("pgArg(%d, %#v) = %v, want %v", c.oid, c.v, err, c.want)
		}
	}
}
