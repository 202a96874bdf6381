package opentsdb

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/internal/testenv"
	"github.com/mqttstore/mqttstore/template"
)

// BenchmarkPersist measures messages per second through the sink (Write, then Flush)
// against a raw baseline in the same run: the same JSON data points, encoded beforehand, put
// by one HTTP client in requests of max_batch_size (20) points. It reports msgs/s,
// raw-msgs/s and their ratio.
func BenchmarkPersist(b *testing.B) {
	c := testenv.OpenTSDB(b)
	set, err := template.ParseOpenTSDB([]byte(`{"sensor/#": {"measurement": "`+c.MetricPrefix+`temp",
		"tags": {"host": ["$payload", "host"], "region": ["$payload", "region"], "clientid": "$clientid"},
		"value": ["$payload", "temp"], "timestamp": "$timestamp"}}`), template.OpenTSDBOptions{})
	if err != nil {
		b.Fatal(err)
	}
	s, err := Open(context.Background(), Config{Server: c.Addr, Templates: set, Options: backend.Options{Logger: slog.New(slog.DiscardHandler)}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background())
	pub := publisher(b, s)
	ids := hook.NewIDGenerator("bench")
	now := time.Now()
	msgs := make([]*hook.Message, b.N)
	var points [][]byte
	for i := range msgs {
		msgs[i] = &hook.Message{ID: ids.Next(), From: fmt.Sprint("client-", i%100), Topic: fmt.Sprintf("sensor/%d/temp", i%100), QoS: 1,
			Payload: []byte(fmt.Sprintf(`{"host": "server%d", "region": "hangzhou", "temp": %d.5}`, i%10, i%40)), Timestamp: now.Add(time.Duration(i) * time.Millisecond)}
		it := s.render("bench", msgs[i])
		if it.err != nil {
			b.Fatal(it.err)
		}
		points = append(points, it.points...)
	}
	client := &http.Client{}
	ctx := context.Background()

	b.ResetTimer()
	start := time.Now()
	for i := 0; i < len(points); i += DefaultMaxBatch {
		body := append([]byte("["), bytes.Join(points[i:min(i+DefaultMaxBatch, len(points))], []byte(","))...)
		resp, err := client.Post(s.putURL, "application/json", bytes.NewReader(append(body, ']')))
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			b.Fatal(resp.Status)
		}
	}
	rawTime := time.Since(start)

	start = time.Now()
	for _, m := range msgs {
		if err := pub.Write(ctx, &hook.PublishEvent{Message: m}); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	storeTime := time.Since(start)
	b.StopTimer()
	if st := s.Stats(); st.Success != uint64(b.N) || st.Failed != 0 {
		b.Fatalf("stats after %d writes: %+v", b.N, st)
	}
	rate, rawRate := float64(b.N)/storeTime.Seconds(), float64(b.N)/rawTime.Seconds()
	b.ReportMetric(rate, "msgs/s")
	b.ReportMetric(rawRate, "raw-msgs/s")
	b.ReportMetric(rate/rawRate, "ratio")
}
