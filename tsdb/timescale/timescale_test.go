package timescale

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/backend/backendtest"
	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/internal/testenv"
	"github.com/mqttstore/mqttstore/template"
	"github.com/mqttstore/mqttstore/tsdb"
)

// exec runs statements on dsn.
func exec(t testing.TB, dsn string, stmts ...string) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, s := range stmts {
		if _, err := conn.Exec(context.Background(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// query returns the rows of q as text.
func query(t testing.TB, dsn, q string) [][]string {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		row := make([]string, len(vals))
		for i, v := range vals {
			row[i] = fmt.Sprint(v)
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

var dsns sync.Map // *Store -> DSN

// messageTemplate records everything the conformance suite reads back.
const messageTemplate = `{"#": {"name": "msg", "sql": "insert into msgs(id, topic, qos, clientid, payload, ts) values ($1, $2, $3, $4, $5, $6)",
	"param_keys": ["$id", "$topic", "$qos", "$clientid", "$payload", "$timestamp"]}}`

func open(t testing.TB, dsn, tmpl string) *Store {
	t.Helper()
	set, err := template.ParseTimescale([]byte(tmpl))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), Config{DSN: dsn, Templates: set})
	if err != nil {
		t.Fatal(err)
	}
	dsns.Store(s, dsn)
	return s
}

func dsnOf(b hook.Backend) string {
	d, _ := dsns.Load(b.(*Store))
	return d.(string)
}

func TestConformance(t *testing.T) {
	backendtest.Run(t, backendtest.Harness{
		New: func(t *testing.T) hook.Backend {
			dsn := testenv.Timescale(t)
			exec(t, dsn, `create table msgs(id text, topic text, qos int, clientid text, payload text, ts bigint)`)
			return open(t, dsn, messageTemplate)
		},
		Reopen: func(t *testing.T, old hook.Backend) hook.Backend { return open(t, dsnOf(old), messageTemplate) },
		ReadBack: func(ctx context.Context, b hook.Backend) ([]*hook.Message, error) {
			rows, err := b.(*Store).pool.Query(ctx, `select id, topic, qos, clientid, payload, ts from msgs`)
			if err != nil {
				return nil, err
			}
			defer rows.Close()
			var out []*hook.Message
			for rows.Next() {
				var m hook.Message
				var qos int
				var payload string
				var ts int64
				if err := rows.Scan(&m.ID, &m.Topic, &qos, &m.From, &payload, &ts); err != nil {
					return nil, err
				}
				m.QoS, m.Payload, m.Timestamp = byte(qos), []byte(payload), time.UnixMilli(ts)
				out = append(out, &m)
			}
			return out, rows.Err()
		},
		Features: backendtest.Features{Functions: tsdb.Functions, Sink: true},
	})
}

func publisher(t testing.TB, b hook.Backend) hook.WriteAction {
	t.Helper()
	a, err := b.Prepare(&hook.Rule{Name: "backend.timescale.hook.message.publish.1", Point: hook.MessagePublish, Topic: "#",
		Action: hook.RuleAction{Function: hook.OnMessagePublish}, Pool: "pool1"})
	if err != nil {
		t.Fatal(err)
	}
	return a.(hook.WriteAction)
}

func publishAll(t testing.TB, b hook.Backend, msgs ...*hook.Message) {
	t.Helper()
	w := publisher(t, b)
	for _, m := range msgs {
		if err := w.Write(context.Background(), &hook.PublishEvent{Message: m}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.(hook.Flusher).Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

const sensorPayload = `{"data":[{"location":"bedroom","temperature":21.3,"humidity":40.3},
	{"location":"bathroom","temperature":22.3,"humidity":61.8},{"location":"kitchen","temperature":29.5,"humidity":58.7}]}`

// TestSpecExample opens the sink from the spec's pool settings and template file and
// publishes the spec's sensor_data payload (its 3 rows), a sensor_data2/# message and an
// easy_data message (the whole payload).
func TestSpecExample(t *testing.T) {
	dsn := testenv.Timescale(t)
	exec(t, dsn, `create table sensor_data(time timestamptz not null, location text, temperature double precision, humidity double precision)`,
		`create table easy_data(time timestamptz not null, data text)`)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	// The pool settings carry no search_path: give the test's schema through the DSN.
	pw, _ := u.User.Password()
	b, err := backend.Open(context.Background(), backend.PoolConfig{Store: "timescale", DSN: dsn, Pool: backend.NewPool("pool1", map[string]string{
		"server": u.Host, "pool_size": "2", "username": u.User.Username(), "password": pw, "database": strings.TrimPrefix(u.Path, "/"),
		"ssl": "false", "template": "example.tmpl"})})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	publishAll(t, b,
		&hook.Message{ID: "1", Topic: "sensor_data", Payload: []byte(sensorPayload)},
		&hook.Message{ID: "2", Topic: "sensor_data2/hall", Payload: []byte(`{"location": "hall", "temperature": 18, "humidity": null}`)},
		&hook.Message{ID: "3", Topic: "easy_data", Payload: []byte(`{"any": ["json", 1]}`)})
	got := query(t, dsn, `select location, temperature::text, coalesce(humidity::text, 'NULL') from sensor_data order by location`)
	want := [][]string{{"bathroom", "22.3", "61.8"}, {"bedroom", "21.3", "40.3"}, {"hall", "18", "NULL"}, {"kitchen", "29.5", "58.7"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("sensor_data rows %v, want %v", got, want)
	}
	if got := query(t, dsn, `select data from easy_data`); !reflect.DeepEqual(got, [][]string{{`{"any": ["json", 1]}`}}) {
		t.Errorf("easy_data rows %v, want the payload", got)
	}
	if st := b.(backend.StatsReporter).Stats(); st.Success != 3 || st.Failed != 0 {
		t.Errorf("Stats %+v", st)
	}
}

// TestFailuresStayAlone: a message whose template does not apply, a message whose value the
// column refuses and the messages of a template whose table is missing fail; the others of
// the same batches are stored, once.
func TestFailuresStayAlone(t *testing.T) {
	dsn := testenv.Timescale(t)
	exec(t, dsn, `create table r(v double precision)`)
	s := open(t, dsn, `{"r": {"name": "r", "sql": "insert into r(v) values ($1)", "param_keys": [["$payload", "v"]]},
		"gone": {"name": "gone", "sql": "insert into nosuchtable(v) values ($1)", "param_keys": [["$payload", "v"]]},
		"rows": {"name": "rows", "sql": "insert into r(v) values ($1)", "param_keys": [["$payload", "$0", "v"]]},
		"two": {"name": "two", "sql": "insert into r(v) values ($1 + $2)", "param_keys": [["$payload", "a", "$0"], ["$payload", "b", "$0"]]}}`)
	defer s.Close(context.Background())
	msg := func(topic, payload string) *hook.Message {
		return &hook.Message{ID: topic + payload, Topic: topic, Payload: []byte(payload)}
	}
	publishAll(t, s,
		msg("r", `{"v": 1}`),
		msg("r", `{"v": "warm"}`), // 22P02 from the server
		msg("gone", `{"v": 2}`),   // 42P01
		msg("r", `not json`),
		msg("r", `{"w": 3}`),
		msg("two", `{"a": [1, 2], "b": [1]}`), // $0 arrays of unequal length
		msg("rows", `[{"v": 4}, {"v": 5}]`),
		msg("nothing", `{"v": 6}`),
		msg("r", `{"v": 7}`))
	if st := s.Stats(); st.Success != 3 || st.Failed != 6 {
		t.Errorf("Stats %+v, want 3 stored and 6 failed", st)
	}
	if got := query(t, dsn, `select v::text from r order by v`); !reflect.DeepEqual(got, [][]string{{"1"}, {"4"}, {"5"}, {"7"}}) {
		t.Errorf("rows %v, want 1, 4, 5, 7 once each", got)
	}
}

func TestClassify(t *testing.T) {
	if got := classify(fmt.Errorf("x: %w", errRolledBack)); got != backend.FailRetry {
		t.Errorf("rolled back: %v", got)
	}
	if got := classify(errors.New("connection reset mid-batch")); got != backend.FailUnknown {
		t.Errorf("lost: %v", got)
	}
	// What pgxpool returns when the server is down: nothing was sent.
	_, err := pgx.Connect(context.Background(), "postgres://u@127.0.0.1:1/db?connect_timeout=1")
	if got := classify(fmt.Errorf("x: %w", err)); err == nil || got != backend.FailRetry {
		t.Errorf("no connection (%v): %v", err, got)
	}
}

// TestPeerClosed: a connection the other end closed is seen closed before anything is sent
// on it; an open one is not, the check takes nothing from it, and it does not wait behind a
// Read in progress (pgx's background reader may have left one).
func TestPeerClosed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if peerClosed(c) {
		t.Error("an open, idle connection seen closed")
	}
	read := make(chan string)
	go func() {
		var b [1]byte
		n, _ := c.Read(b[:])
		read <- string(b[:n])
	}()
	if peerClosed(c) { // while the Read may be waiting; it must not wait for it
		t.Error("an open connection with a Read waiting seen closed")
	}
	if _, err := srv.Write([]byte("N")); err != nil {
		t.Fatal(err)
	}
	if got := <-read; got != "N" {
		t.Errorf("read %q, want the byte sent", got)
	}
	srv.Close()
	if runtime.GOOS == "linux" {
		testenv.Eventually(t, "the close is seen", func() bool { return peerClosed(c) })
	}
}

func TestDefaultConfig(t *testing.T) {
	conf, ok := backend.DefaultConfig("timescale")
	if !ok {
		t.Fatal("no default config")
	}
	cfg, err := backend.LoadConfig(strings.NewReader(string(conf)))
	if err != nil {
		t.Fatal(err)
	}
	if sc := cfg.Stores["timescale"]; sc == nil || len(sc.Rules) != 1 || sc.Pools["pool1"] == nil {
		t.Fatalf("default config: %+v", sc)
	}
	_, err = backend.Open(context.Background(), backend.PoolConfig{Store: "timescale", Pool: backend.NewPool("pool1", map[string]string{"user": "x"})})
	if !errors.Is(err, hook.ErrConfig) {
		t.Errorf("a misspelt setting: %v, want ErrConfig", err)
	}
}

// TestPoolSettings: the spec's pool settings make the connection (read back from the pool's
// config; the pool connects lazily).
func TestPoolSettings(t *testing.T) {
	b, err := backend.Open(context.Background(), backend.PoolConfig{Store: "timescale", Pool: backend.NewPool("pool1", map[string]string{
		"server": "db.example:5433", "pool_size": "3", "username": "emqx", "password": "p@ss word", "database": "tutorial",
		"ssl": "false", "template": "example.tmpl"})})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	pc := b.(*Store).pool.Config()
	cc := pc.ConnConfig
	if cc.Host != "db.example" || cc.Port != 5433 || cc.User != "emqx" || cc.Password != "p@ss word" || cc.Database != "tutorial" || cc.TLSConfig != nil || pc.MaxConns != 3 {
		t.Errorf("connection %s:%d user %q password %q database %q tls %v, %d conns", cc.Host, cc.Port, cc.User, cc.Password, cc.Database, cc.TLSConfig != nil, pc.MaxConns)
	}
	_, err = backend.Open(context.Background(), backend.PoolConfig{Store: "timescale", Pool: backend.NewPool("pool1", map[string]string{
		"server": "db.example", "ssl": "true", "cacertfile": "/nonexistent/ca.pem", "template": "example.tmpl"})})
	if !errors.Is(err, hook.ErrConfig) {
		t.Errorf("a missing CA file: %v, want ErrConfig", err)
	}
}
