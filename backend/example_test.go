package backend_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/mqttstore/mqttstore/backend"
)

func ExampleWriter() {
	type write struct{ clientID, msgID string }
	w := backend.NewWriter(backend.WriterConfig[write]{
		Store:   "example",
		Options: backend.Options{BatchSize: 2, BatchInterval: time.Second},
		// A store would run one multi-row INSERT here.
		Flush: func(ctx context.Context, batch []write, _ *backend.BatchResult) error {
			fmt.Println("flush", batch)
			return nil
		},
		Key: func(v write) string { return v.clientID },
	})
	for _, id := range []string{"m1", "m2", "m3", "m4", "m5"} {
		if err := w.Enqueue(write{"client1", id}); err != nil {
			fmt.Println(err)
		}
	}
	// Close writes out the last, partial, batch without waiting for BatchInterval.
	if err := w.Close(context.Background()); err != nil {
		fmt.Println(err)
	}
	st := w.Stats()
	fmt.Printf("matched %d, success %d, failed %d\n", st.Matched, st.Success, st.Failed)
	// Output:
	// flush [{client1 m1} {client1 m2}]
	// flush [{client1 m3} {client1 m4}]
	// flush [{client1 m5}]
	// matched 5, success 5, failed 0
}

func ExampleLoadConfig() {
	const conf = `
## Pgsql 服务器地址
backend.pgsql.pool1.server = 127.0.0.1:5432
backend.pgsql.pool1.pool_size = 8

backend.pgsql.hook.client.connected.1    = {"action": {"function": "on_client_connected"}, "pool": "pool1"}
backend.pgsql.hook.session.subscribed.1  = {"topic": "#", "action": {"function": "on_message_fetch"}, "offline_opts": {"max_returned_count": 500, "time_range": "2h"}, "pool": "pool1"}
`
	c, err := backend.LoadConfig(strings.NewReader(conf))
	if err != nil {
		fmt.Println(err)
		return
	}
	pg := c.Stores["pgsql"]
	pool := pg.Pools["pool1"]
	size, err := pool.Int("pool_size", 8)
	fmt.Println(pool.String("server", ""), size, err)
	for _, r := range pg.Rules {
		fmt.Println(r.Name, r.Action.Function, r.OfflineOpts.TimeRange)
	}

	_, err = backend.LoadConfig(strings.NewReader("backend.pgsql.pool1.server 127.0.0.1\n"))
	fmt.Println(err)
	// Output:
	// 127.0.0.1:5432 8 <nil>
	// backend.pgsql.hook.client.connected.1 on_client_connected 0s
	// backend.pgsql.hook.session.subscribed.1 on_message_fetch 2h0m0s
	// backend config: line 1: want key = value, got "backend.pgsql.pool1.server 127.0.0.1"
}
