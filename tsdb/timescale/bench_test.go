package timescale

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/internal/testenv"
	"github.com/mqttstore/mqttstore/template"
)

// BenchmarkPersist measures messages per second through the sink (Write, then Flush)
// against a raw baseline in the same run: the same INSERTs with the same arguments, rendered
// beforehand, sent as pgx.Batches of the writer's batch size (500) on one connection. It
// reports msgs/s, raw-msgs/s and their ratio.
func BenchmarkPersist(b *testing.B) {
	dsn := testenv.Timescale(b)
	exec(b, dsn, `create table sensor_data(time timestamptz not null, location text, temperature double precision, humidity double precision)`)
	set, err := template.ParseTimescale([]byte(`{"sensor/#": {"name": "s",
		"sql": "insert into sensor_data(time, location, temperature, humidity) values (NOW(), $1, $2, $3)",
		"param_keys": [["$payload", "location"], ["$payload", "temperature"], ["$payload", "humidity"]]}}`))
	if err != nil {
		b.Fatal(err)
	}
	const batch = 500
	s, err := Open(context.Background(), Config{DSN: dsn, Templates: set, Options: backend.Options{BatchSize: batch, Logger: slog.New(slog.DiscardHandler)}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background())
	pub := publisher(b, s)
	msgs := make([]*hook.Message, b.N)
	var stmts []template.TimescaleInsert
	for i := range msgs {
		msgs[i] = &hook.Message{ID: fmt.Sprint(i), Topic: fmt.Sprintf("sensor/%d", i%100),
			Payload: []byte(fmt.Sprintf(`{"location": "room%d", "temperature": %d.5, "humidity": 40.%d}`, i%10, i%40, i%10))}
		it := s.render("bench", msgs[i])
		if it.err != nil {
			b.Fatal(it.err)
		}
		stmts = append(stmts, it.stmts...)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)

	b.ResetTimer()
	start := time.Now()
	for i := 0; i < len(stmts); i += batch {
		pb := &pgx.Batch{}
		for _, st := range stmts[i:min(i+batch, len(stmts))] {
			pb.Queue(st.SQL, st.Args...)
		}
		if err := conn.SendBatch(ctx, pb).Close(); err != nil {
			b.Fatal(err)
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
