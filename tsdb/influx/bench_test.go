package influx

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/internal/testenv"
	"github.com/mqttstore/mqttstore/template"
)

// benchMessages makes n messages of one reading each, on 100 topics.
func benchMessages(n int) []*hook.Message {
	ids := hook.NewIDGenerator("bench")
	now := time.Now()
	msgs := make([]*hook.Message, n)
	for i := range msgs {
		msgs[i] = &hook.Message{ID: ids.Next(), From: fmt.Sprint("client-", i%100), Topic: fmt.Sprintf("sensor/%d/temp", i%100), QoS: 1,
			Payload: []byte(fmt.Sprintf(`{"host": "server%d", "region": "hangzhou", "temp": %d.5}`, i%10, i%40)), Timestamp: now.Add(time.Duration(i) * time.Microsecond)}
	}
	return msgs
}

// BenchmarkPersist measures messages per second through the sink (Write of PublishEvents,
// then Flush) against a raw baseline in the same run: the same line-protocol bytes, encoded
// beforehand, over one HTTP client in requests of the same batch size, or over one UDP socket
// in datagrams of up to MaxDatagram bytes. It reports msgs/s, raw-msgs/s and their ratio.
// Over UDP, "persisted" means sent: the listener may drop what it cannot keep up with.
func BenchmarkPersist(b *testing.B) {
	for _, udp := range []bool{false, true} {
		name := map[bool]string{false: "HTTP", true: "UDP"}[udp]
		b.Run(name, func(b *testing.B) {
			c := testenv.InfluxDB(b)
			measurement := c.Measurement
			set, err := template.ParseInflux([]byte(`{"sensor/#": {"measurement": "`+measurement+`",
				"tags": {"host": ["$payload", "host"], "region": ["$payload", "region"], "clientid": "$clientid"},
				"fields": {"temp": ["$payload", "temp"]}, "timestamp": "$timestamp"}}`), template.InfluxOptions{TimeUnit: time.Microsecond})
			if err != nil {
				b.Fatal(err)
			}
			const batch = 500
			cfg := Config{Server: c.HTTPURL, Database: c.Database, Precision: time.Microsecond, Templates: set,
				Options: backend.Options{BatchSize: batch, Logger: slog.New(slog.DiscardHandler)}}
			if udp {
				cfg.Server, cfg.Precision = c.UDPAddr, time.Millisecond // the listener's precision
			}
			s, err := Open(context.Background(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close(context.Background())
			pub := publisher(b, s, "#")
			msgs := benchMessages(b.N)
			// The baseline's bytes: the same points, encoded before the clock starts.
			var lines [][]byte
			for _, m := range msgs {
				it := s.render("bench", m)
				if it.err != nil {
					b.Fatal(it.err)
				}
				lines = append(lines, it.lines)
			}
			ctx := context.Background()
			client := &http.Client{}
			conn, err := net.Dial("udp", c.UDPAddr)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()

			b.ResetTimer()
			start := time.Now()
			var body []byte
			send := func() {
				if len(body) == 0 {
					return
				}
				if udp {
					if _, err := conn.Write(body); err != nil {
						b.Fatal(err)
					}
				} else {
					resp, err := client.Post(s.writeURL, "text/plain", bytes.NewReader(body))
					if err != nil {
						b.Fatal(err)
					}
					resp.Body.Close()
					if resp.StatusCode != http.StatusNoContent {
						b.Fatal(resp.Status)
					}
				}
				body = body[:0]
			}
			for i, l := range lines {
				if udp && len(body)+len(l) > MaxDatagram || !udp && i%batch == 0 {
					send()
				}
				body = append(body, l...)
			}
			send()
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
		})
	}
}

// BenchmarkRender is the cost of turning one message into its line protocol (the part of
// Write that the raw baseline does before its clock starts).
func BenchmarkRender(b *testing.B) {
	set, err := template.ParseInflux([]byte(`{"sensor/#": {"measurement": "m",
		"tags": {"host": ["$payload", "host"], "region": ["$payload", "region"], "clientid": "$clientid"},
		"fields": {"temp": ["$payload", "temp"]}, "timestamp": "$timestamp"}}`), template.InfluxOptions{})
	if err != nil {
		b.Fatal(err)
	}
	s := &Store{cfg: Config{Templates: set, Precision: time.Millisecond}}
	m := benchMessages(1)[0]
	b.ReportAllocs()
	for b.Loop() {
		if it := s.render("bench", m); it.err != nil {
			b.Fatal(it.err)
		}
	}
}
