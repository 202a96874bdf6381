package influx

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/internal/testenv"
	"github.com/mqttstore/mqttstore/template"
	"github.com/mqttstore/mqttstore/tsdb/internal/tsdbtest"
)

// TestStatusesThroughProxy puts a proxy in front of the real InfluxDB that answers 503 and
// 429 to the first writes and 413 to any body over 2 KiB: the batches are retried and split
// until they pass, and every message is stored exactly once.
func TestStatusesThroughProxy(t *testing.T) {
	c := testenv.InfluxDB(t)
	target, err := url.Parse(c.HTTPURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	var requests, refused atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch n := requests.Add(1); {
		case n == 1:
			http.Error(w, `{"error":"overloaded"}`, http.StatusServiceUnavailable)
		case n == 2:
			http.Error(w, `{"error":"slow down"}`, http.StatusTooManyRequests)
		case r.ContentLength > 2048:
			refused.Add(1)
			http.Error(w, `{"error":"Request Entity Too Large"}`, http.StatusRequestEntityTooLarge)
		default:
			proxy.ServeHTTP(w, r)
		}
	}))
	defer srv.Close()
	set, err := template.ParseInflux([]byte(`{"#": {"measurement": "m", "fields": {"v": ["$payload", "v"]}, "tags": {"id": "$id"}}}`), template.InfluxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// No timestamps: a point written twice would be stored twice.
	s, err := Open(t.Context(), Config{Server: srv.URL, Database: c.Database, Templates: set,
		Options: backend.Options{BatchInterval: 50 * time.Millisecond, Shards: 1, Retry: backend.Retry{MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(t.Context())
	w := publisher(t, s, "#")
	const n = 200 // about 6 KiB of line protocol
	for i := range n {
		publishAll(t, w, msg("t", fmt.Sprintf(`{"v": %d}`, i)))
	}
	flush(t, s)
	st := s.Stats()
	if st.Success != n || st.Failed != 0 || st.Retried < 2 {
		t.Errorf("Stats %+v, want %d stored, none failed, at least 2 retries", st, n)
	}
	if refused.Load() == 0 {
		t.Error("no request was refused with 413: the test did not test splitting")
	}
	got := rows(t, c, c.Database, "m", n)
	seen := map[string]int{}
	for _, r := range got {
		seen[r["id"]]++
	}
	if len(got) != n || len(seen) != n {
		t.Errorf("%d points of %d messages stored, want %d once each", len(got), len(seen), n)
	}
}

// TestOutage: InfluxDB's HTTP endpoint down for 30 s (a testenv.Proxy resetting every
// connection) under a steady publish: the writes are retried, and once it is back every
// message is stored exactly once.
func TestOutage(t *testing.T) {
	c := testenv.InfluxDB(t)
	target, err := url.Parse(c.HTTPURL)
	if err != nil {
		t.Fatal(err)
	}
	p := testenv.NewProxy(t, target.Host)
	set, err := template.ParseInflux([]byte(`{"#": {"measurement": "m", "fields": {"v": ["$payload", "v"]}, "tags": {"id": "$id"}, "timestamp": "$timestamp"}}`), template.InfluxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(t.Context(), Config{Server: "http://" + p.Addr(), Database: c.Database, Templates: set,
		Options: backend.Options{Retry: backend.Retry{MinBackoff: 10 * time.Millisecond, MaxBackoff: 500 * time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(t.Context())
	o := tsdbtest.Issue
	o.Run(t, p, s, publisher(t, s, "#"), func(i int) *hook.Message { return msg(fmt.Sprint("t/", i%7), fmt.Sprintf(`{"v": %d}`, i)) })
	got := rows(t, c, c.Database, "m", o.Total())
	seen := map[string]int{}
	for _, r := range got {
		seen[r["id"]]++
	}
	if len(got) != o.Total() || len(seen) != o.Total() {
		t.Errorf("%d points of %d messages stored, want %d once each", len(got), len(seen), o.Total())
	}
}
