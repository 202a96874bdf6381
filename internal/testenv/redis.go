package testenv

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisConfig locates a Redis deployment and the part of it a test owns.
type RedisConfig struct {
	// Addrs is the server (single), the seed nodes (cluster) or the sentinels (sentinel).
	Addrs []string
	// MasterName is the master the sentinels monitor; empty unless sentinel.
	MasterName string
	// Prefix is a fresh key prefix of the test's own, ending in ':'. Every key the test
	// writes starts with it; keys under it are deleted when the test ends.
	Prefix string
	// DB is the database number (always 0: a cluster has no other).
	DB int
}

// Redis returns a single Redis server (MQTTSTORE_REDIS_ADDR, default 127.0.0.1:6379) and a
// fresh key prefix; scripts/services' redis.
func Redis(t testing.TB) RedisConfig {
	t.Helper()
	return redisPrefix(t, "redis", RedisConfig{Addrs: []string{Getenv("MQTTSTORE_REDIS_ADDR", "127.0.0.1:6379")}})
}

// RedisCluster returns a Redis cluster of three masters (MQTTSTORE_REDIS_CLUSTER_ADDRS, comma
// separated, default 127.0.0.1:7000-7002) and a fresh key prefix; scripts/services'
// redis-cluster. The prefix has no hash tag, so the test's keys spread over the slots.
func RedisCluster(t testing.TB) RedisConfig {
	t.Helper()
	addrs := strings.Split(Getenv("MQTTSTORE_REDIS_CLUSTER_ADDRS", "127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002"), ",")
	return redisPrefix(t, "redis-cluster", RedisConfig{Addrs: addrs})
}

// RedisSentinel returns a master/replica pair behind Sentinel (MQTTSTORE_REDIS_SENTINEL_ADDRS,
// default 127.0.0.1:26379; master name MQTTSTORE_REDIS_SENTINEL_MASTER, default mymaster) and a
// fresh key prefix; scripts/services' redis-sentinel.
func RedisSentinel(t testing.TB) RedisConfig {
	t.Helper()
	return redisPrefix(t, "redis-sentinel", RedisConfig{
		Addrs:      strings.Split(Getenv("MQTTSTORE_REDIS_SENTINEL_ADDRS", "127.0.0.1:26379"), ","),
		MasterName: Getenv("MQTTSTORE_REDIS_SENTINEL_MASTER", "mymaster"),
	})
}

// NewClient returns a go-redis client for c: a failover client when MasterName is set, a
// cluster client when there are several Addrs, a plain client otherwise.
func (c RedisConfig) NewClient() redis.UniversalClient {
	switch {
	case c.MasterName != "":
		return redis.NewFailoverClient(&redis.FailoverOptions{MasterName: c.MasterName, SentinelAddrs: c.Addrs, DB: c.DB})
	case len(c.Addrs) > 1:
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs})
	default:
		return redis.NewClient(&redis.Options{Addr: c.Addrs[0], DB: c.DB})
	}
}

func redisPrefix(t testing.TB, service string, c RedisConfig) RedisConfig {
	t.Helper()
	c.Prefix = Name(t, 48) + ":"
	client := c.NewClient()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		client.Close()
		Unavailable(t, service, err)
	}
	t.Cleanup(func() {
		defer client.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := redisDeletePrefix(ctx, client, c.Prefix); err != nil {
			t.Errorf("testenv: delete keys %s*: %v", c.Prefix, err)
		}
	})
	return c
}

// redisDeletePrefix deletes the keys under prefix with SCAN (KEYS would block the server), one
// DEL per key since a cluster refuses multi-key commands across slots.
func redisDeletePrefix(ctx context.Context, client redis.UniversalClient, prefix string) error {
	del := func(ctx context.Context, node *redis.Client) error {
		iter := node.Scan(ctx, 0, prefix+"*", 500).Iterator()
		pipe := node.Pipeline()
		for iter.Next(ctx) {
			pipe.Del(ctx, iter.Val())
		}
		if err := iter.Err(); err != nil {
			return fmt.Errorf("scan %s: %w", node.Options().Addr, err)
		}
		if pipe.Len() == 0 {
			return nil
		}
		_, err := pipe.Exec(ctx)
		return err
	}
	switch c := client.(type) {
	case *redis.ClusterClient:
		return c.ForEachMaster(ctx, del)
	case *redis.Client:
		return del(ctx, c)
	}
	return fmt.Errorf("unexpected client %T", client)
}
