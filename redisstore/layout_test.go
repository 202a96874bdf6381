package redisstore

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mqttstore/mqttstore/hook"
)

// TestKeyLayout writes through every write function with the default (empty) prefix, on a
// server of the test's own, and checks the keys and values are the spec's, and that nothing
// else was written but the store's topic indexes.
func TestKeyLayout(t *testing.T) {
	t.Parallel()
	srv := startRedisServer(t, false)
	s := openStore(t, Config{Addrs: []string{srv.addr}, Options: testOptions})
	defer s.Close(context.Background())
	ctx := context.Background()
	rdb := s.client
	ids := hook.NewIDGenerator("layout")
	at := time.Unix(1481685802, 0)

	write := func(p hook.Point, fn string, e hook.Event, mods ...func(*hook.Rule)) {
		t.Helper()
		if err := mustWriter(t, s, p, fn, mods...).Write(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	write(hook.ClientConnected, hook.OnClientConnected, &hook.ConnectedEvent{ClientID: "test", Node: "emqx@127.0.0.1", ConnectedAt: at}, noTopic)
	write(hook.ClientConnected, hook.OnClientConnected, &hook.ConnectedEvent{ClientID: "other", Node: "emqx@127.0.0.1", ConnectedAt: at}, noTopic)
	write(hook.ClientDisconnected, hook.OnClientDisconnected, &hook.DisconnectedEvent{ClientID: "other", Node: "emqx@127.0.0.1", DisconnectedAt: at.Add(time.Minute)}, noTopic)
	if err := s.AddSubscription(ctx, "test", hook.Subscription{Topic: "topic1", QoS: 1}); err != nil {
		t.Fatal(err)
	}
	m := &hook.Message{ID: ids.Next(), From: "test", Topic: "a/b", QoS: 1, Payload: []byte("Hello world!"), Timestamp: at}
	write(hook.MessagePublish, hook.OnMessagePublish, &hook.PublishEvent{Message: m})
	exp := &hook.Message{ID: ids.Next(), From: "test", Topic: "a/exp", QoS: 2, Payload: []byte("x"), Timestamp: at}
	write(hook.MessagePublish, hook.OnMessagePublish, &hook.PublishEvent{Message: exp}, func(r *hook.Rule) { r.ExpiredTime = time.Hour })
	r := &hook.Message{ID: ids.Next(), From: "test", Topic: "topic", QoS: 1, Retain: true, Payload: []byte("Hello world!"), Timestamp: at}
	write(hook.MessagePublish, hook.OnMessageRetain, &hook.PublishEvent{Message: r}, func(r *hook.Rule) { r.ExpiredTime = time.Hour })
	write(hook.MessageAcked, hook.OnMessageAckedForPubsub, &hook.AckedEvent{ClientID: "test", Message: m})
	l := &hook.Message{ID: ids.Next(), From: "test", Topic: "k/a", QoS: 1, Payload: []byte("latest"), Timestamp: at}
	write(hook.MessagePublish, hook.OnMessageStoreKeepLatest, &hook.PublishEvent{Message: l})
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	hash := func(key string, want map[string]string) {
		t.Helper()
		got, err := rdb.HGetAll(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if !mapsEqual(got, want) {
			t.Errorf("HGETALL %s\n got %v\nwant %v", key, got, want)
		}
	}
	msgHash := func(m *hook.Message) map[string]string {
		return map[string]string{"id": m.ID, "from": m.From, "qos": strconv.Itoa(int(m.QoS)), "topic": m.Topic,
			"retain": strconv.FormatBool(m.Retain), "payload": string(m.Payload), "ts": strconv.FormatInt(m.Timestamp.UnixMilli(), 10)}
	}
	hash("mqtt:client:test", map[string]string{"state": "1", "online_at": "1481685802", "offline_at": "undefined", "node": "emqx@127.0.0.1"})
	hash("mqtt:client:other", map[string]string{"state": "0", "online_at": "1481685802", "offline_at": "1481685862", "node": "emqx@127.0.0.1"})
	hash("mqtt:node:emqx@127.0.0.1", map[string]string{"test": "1481685802"}) // other disconnected
	hash("mqtt:sub:test", map[string]string{"topic1": "1"})
	hash("mqtt:msg:"+m.ID, msgHash(m))
	hash("mqtt:msg:"+exp.ID, msgHash(exp))
	hash("mqtt:retain:topic", msgHash(r))
	hash("mqtt:latest:k/a", msgHash(l))
	zset := func(key string, want ...redis.Z) {
		t.Helper()
		got, err := rdb.ZRangeWithScores(ctx, key, 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("ZRANGE %s 0 -1 WITHSCORES = %v, want %v", key, got, want)
		}
	}
	// A topic's set holds the IDs of its messages, each scored with the server's clock (in
	// microseconds) when it arrived.
	serverTime, err := rdb.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	for key, id := range map[string]string{"mqtt:msg:a/b": m.ID, "mqtt:msg:a/exp": exp.ID} {
		got, err := rdb.ZRangeWithScores(ctx, key, 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].Member != id {
			t.Errorf("ZRANGE %s 0 -1 WITHSCORES = %v, want the member %s", key, got, id)
			continue
		}
		if at := time.UnixMicro(int64(got[0].Score)); at.After(serverTime) || at.Before(serverTime.Add(-time.Minute)) {
			t.Errorf("%s scores %s at %v; want the server's time of the write (the server's time now: %v)", key, id, at, serverTime)
		}
	}
	zset("mqtt:index:msg", redis.Z{Member: "a/b"}, redis.Z{Member: "a/exp"})
	zset("mqtt:index:retain", redis.Z{Member: "topic"})
	zset("mqtt:index:latest", redis.Z{Member: "k/a"})
	if got, err := rdb.Get(ctx, "mqtt:acked:test:a/b").Result(); err != nil || got != m.ID {
		t.Errorf("GET mqtt:acked:test:a/b = %q, %v; want %q", got, err, m.ID)
	}

	// expired_time is EXPIRE on the message (and its topic's set), and on the retained message.
	for _, key := range []string{"mqtt:msg:" + exp.ID, "mqtt:msg:a/exp", "mqtt:retain:topic"} {
		if ttl, err := rdb.TTL(ctx, key).Result(); err != nil || ttl <= 59*time.Minute || ttl > time.Hour {
			t.Errorf("TTL %s = %v, %v; want about an hour", key, ttl, err)
		}
	}
	for _, key := range []string{"mqtt:msg:" + m.ID, "mqtt:msg:a/b", "mqtt:latest:k/a"} {
		if ttl, err := rdb.TTL(ctx, key).Result(); err != nil || ttl != -1 {
			t.Errorf("TTL %s = %v, %v; want none (-1)", key, ttl, err)
		}
	}

	all, err := rdb.Keys(ctx, "*").Result() // a server of the test's own: KEYS is fine
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(all)
	want := []string{"mqtt:acked:test:a/b", "mqtt:client:other", "mqtt:client:test", "mqtt:index:latest", "mqtt:index:msg",
		"mqtt:index:retain", "mqtt:latest:k/a", "mqtt:msg:" + exp.ID, "mqtt:msg:" + m.ID, "mqtt:msg:a/b", "mqtt:msg:a/exp",
		"mqtt:node:emqx@127.0.0.1", "mqtt:retain:topic", "mqtt:sub:test"}
	slices.Sort(want)
	if !slices.Equal(all, want) {
		t.Errorf("keys:\n got %s\nwant %s", strings.Join(all, " "), strings.Join(want, " "))
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
