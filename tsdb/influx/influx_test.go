package influx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/backend/backendtest"
	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/internal/testenv"
	"github.com/mqttstore/mqttstore/template"
	"github.com/mqttstore/mqttstore/tsdb"
)

// messageTemplate records everything the conformance suite reads back: the msgid as a tag
// (one series per message, so that no two messages share a series and timestamp), the
// rest as string and integer fields, which InfluxDB keeps exactly.
func messageTemplate(t testing.TB, measurement string, precision time.Duration) *template.Set[template.InfluxTemplate] {
	t.Helper()
	src := fmt.Sprintf(`{"#": {"measurement": %q, "tags": {"id": "$id"},
		"fields": {"clientid": "$clientid", "topic": "$topic", "qos": "$qos", "payload": "$payload"},
		"timestamp": "$timestamp"}}`, measurement)
	s, err := template.ParseInflux([]byte(src), template.InfluxOptions{TimeUnit: precision})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// env is a store's namespace: where its points go and how to read them back.
type env struct {
	cfg         Config
	influx      testenv.InfluxConfig
	db          string
	measurement string
	udp         bool
}

var envs sync.Map // *Store -> env

func open(t testing.TB, e env) *Store {
	t.Helper()
	s, err := Open(context.Background(), e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	envs.Store(s, e)
	return s
}

func newEnv(t testing.TB, udp bool) env {
	c := testenv.InfluxDB(t)
	e := env{influx: c, db: c.Database, measurement: c.Measurement, udp: udp}
	e.cfg = Config{Server: c.HTTPURL, Database: c.Database, Precision: time.Millisecond}
	if udp {
		e.cfg = Config{Server: c.UDPAddr, Precision: time.Millisecond}
		e.db = c.UDPDatabase
	}
	e.cfg.Templates = messageTemplate(t, e.measurement, e.cfg.Precision)
	return e
}

// readBack reads the messages stored in e's measurement. Over UDP the listener writes what
// it received after its batch timeout: read until two reads a while apart agree.
func (e env) readBack(ctx context.Context) ([]*hook.Message, error) {
	read := func() ([]*hook.Message, error) {
		series, err := e.influx.Query(ctx, e.db, `SELECT * FROM "`+e.measurement+`"`)
		if err != nil {
			return nil, err
		}
		var out []*hook.Message
		for _, s := range series {
			col := map[string]int{}
			for i, c := range s.Columns {
				col[c] = i
			}
			for _, row := range s.Values {
				str := func(k string) string { v, _ := row[col[k]].(string); return v }
				ts, err := time.Parse(time.RFC3339Nano, str("time"))
				if err != nil {
					return nil, err
				}
				n, ok := row[col["qos"]].(json.Number)
				if !ok || row[col["topic"]] == nil || row[col["payload"]] == nil {
					// Over UDP the listener may be writing the point now: InfluxDB stores
					// each field apart, and a read sees those written so far.
					return nil, errIncomplete
				}
				qos, _ := n.Int64()
				out = append(out, &hook.Message{ID: str("id"), Topic: str("topic"), QoS: byte(qos), From: str("clientid"),
					Payload: []byte(str("payload")), Timestamp: ts})
			}
		}
		return out, nil
	}
	if !e.udp {
		return read()
	}
	prev := -1
	for {
		got, err := read()
		switch {
		case errors.Is(err, errIncomplete):
			got, prev = nil, -1
		case err != nil || len(got) == prev:
			return got, err
		}
		prev = len(got)
		select {
		case <-ctx.Done():
			return got, nil
		case <-time.After(400 * time.Millisecond): // the listener's batch timeout is 100ms
		}
	}
}

var errIncomplete = errors.New("a point read while it is being written")

func harness(udp bool) backendtest.Harness {
	return backendtest.Harness{
		New: func(t *testing.T) hook.Backend { return open(t, newEnv(t, udp)) },
		Reopen: func(t *testing.T, old hook.Backend) hook.Backend {
			return open(t, envOf(old))
		},
		ReadBack: func(ctx context.Context, b hook.Backend) ([]*hook.Message, error) {
			return envOf(b).readBack(ctx)
		},
		// Serial: testenv's cleanup drops databases and series, which InfluxDB 1.6 answers with
		// "engine is closed" when another test's drop runs at the same time.
		Features: backendtest.Features{Functions: tsdb.Functions, Sink: true, Serial: true},
	}
}

func TestConformanceHTTP(t *testing.T) { backendtest.Run(t, harness(false)) }
func TestConformanceUDP(t *testing.T)  { backendtest.Run(t, harness(true)) }

func envOf(b hook.Backend) env {
	e, _ := envs.Load(b.(*Store))
	return e.(env)
}
