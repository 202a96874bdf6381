package opentsdb

import (
	"fmt"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/internal/testenv"
	"github.com/mqttstore/mqttstore/template"
	"github.com/mqttstore/mqttstore/tsdb/internal/tsdbtest"
)

// TestOutage: the /api/put endpoint down for 30 s (a testenv.Proxy resetting every
// connection) under a steady publish: the writes are retried, and once it is back every
// message is stored exactly once, read back from VictoriaMetrics.
func TestOutage(t *testing.T) {
	c := testenv.OpenTSDB(t)
	metric := c.MetricPrefix + "o"
	set, err := template.ParseOpenTSDB([]byte(`{"#": {"measurement": "`+metric+`", "tags": {"id": "$id"},
		"value": ["$payload", "v"], "timestamp": "$timestamp"}}`), template.OpenTSDBOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p := testenv.NewProxy(t, c.Addr)
	s, err := Open(t.Context(), Config{Server: p.Addr(), Details: true, Templates: set,
		Options: backend.Options{Retry: backend.Retry{MinBackoff: 10 * time.Millisecond, MaxBackoff: 500 * time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(t.Context())
	o := tsdbtest.Issue
	o.Run(t, p, s, publisher(t, s), func(i int) *hook.Message {
		return &hook.Message{ID: fmt.Sprintf("m%04d", i), Topic: fmt.Sprint("t/", i%7), Timestamp: time.Now(), Payload: []byte(fmt.Sprintf(`{"v": %d}`, i))}
	})
	got := export(t, c, metric, o.Total())
	points := 0
	for _, sr := range got {
		points += len(sr.Values)
	}
	if len(got) != o.Total() || points != o.Total() {
		t.Errorf("%d points of %d messages stored, want %d once each", points, len(got), o.Total())
	}
}
