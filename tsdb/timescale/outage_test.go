package timescale

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/internal/testenv"
	"github.com/mqttstore/mqttstore/template"
	"github.com/mqttstore/mqttstore/tsdb/internal/tsdbtest"
)

// TestOutage: PostgreSQL down for 30 s (a testenv.Proxy resetting every connection) under a
// steady publish: the batches are retried, none failed, and once it is back every message
// is one row.
func TestOutage(t *testing.T) {
	dsn := testenv.Timescale(t)
	exec(t, dsn, `create table msgs(id text, topic text, qos int, clientid text, payload text, ts bigint)`)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	p := testenv.NewProxy(t, u.Host)
	u.Host = p.Addr()
	set, err := template.ParseTimescale([]byte(messageTemplate))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), Config{DSN: u.String(), Templates: set,
		Options: backend.Options{Retry: backend.Retry{MinBackoff: 10 * time.Millisecond, MaxBackoff: 500 * time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	o := tsdbtest.Issue
	o.Run(t, p, s, publisher(t, s), func(i int) *hook.Message {
		return &hook.Message{ID: fmt.Sprintf("m%04d", i), Topic: fmt.Sprint("t/", i%7), Timestamp: time.Now(), Payload: []byte("x")}
	})
	got := query(t, dsn, `select count(*), count(distinct id) from msgs`)
	if want := fmt.Sprint(o.Total()); got[0][0] != want || got[0][1] != want {
		t.Errorf("%s rows of %s messages stored, want %s once each", got[0][0], got[0][1], want)
	}
}
