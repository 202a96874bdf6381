package testenv

import (
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestRedisRoundTripUnderPrefix(t *testing.T) {
	t.Parallel()
	for name, get := range map[string]func(testing.TB) RedisConfig{
		"single":   Redis,
		"cluster":  RedisCluster,
		"sentinel": RedisSentinel,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			var cfg RedisConfig
			var keys []string
			t.Run("test", func(t *testing.T) {
				cfg = get(t)
				client := cfg.NewClient()
				defer client.Close()
				for i := range 20 {
					key := fmt.Sprintf("%smsg:%d", cfg.Prefix, i)
					keys = append(keys, key)
					if err := client.Set(ctx, key, i, 0).Err(); err != nil {
						t.Fatal(err)
					}
				}
				for i, key := range keys {
					got, err := client.Get(ctx, key).Int()
					if err != nil || got != i {
						t.Errorf("GET %s = %d, %v; want %d", key, got, err, i)
					}
				}
				if name == "cluster" {
					slots := map[int64]bool{}
					for _, key := range keys {
						slot, err := client.ClusterKeySlot(ctx, key).Result()
						if err != nil {
							t.Fatal(err)
						}
						slots[slot] = true
					}
					if len(slots) < 2 {
						t.Errorf("keys fell in %d slot(s); want several", len(slots))
					}
				}
			})
			if t.Failed() || t.Skipped() {
				return
			}
			// The subtest's cleanup has deleted its keys.
			client := cfg.NewClient()
			defer client.Close()
			for _, key := range keys {
				if n, err := client.Exists(ctx, key).Result(); err != nil || n != 0 {
					t.Errorf("EXISTS %s = %d, %v after the test ended; want 0", key, n, err)
				}
			}
		})
	}
}

// The sentinel config resolves the master through the sentinel, and what is written there
// reaches the replica.
func TestRedisSentinelReplicates(t *testing.T) {
	t.Parallel()
	cfg := RedisSentinel(t)
	ctx := t.Context()
	sentinel := redis.NewSentinelClient(&redis.Options{Addr: cfg.Addrs[0]})
	defer sentinel.Close()
	replicas, err := sentinel.Replicas(ctx, cfg.MasterName).Result()
	if err != nil || len(replicas) == 0 {
		t.Fatalf("SENTINEL REPLICAS %s = %v, %v; want at least one", cfg.MasterName, replicas, err)
	}
	master := cfg.NewClient()
	defer master.Close()
	key := cfg.Prefix + "replicated"
	if err := master.Set(ctx, key, "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// WAIT returns once the write reached that many replicas.
	if n, err := master.Do(ctx, "WAIT", 1, 5000).Int(); err != nil || n < 1 {
		t.Fatalf("WAIT 1 = %d, %v; want 1", n, err)
	}
	replica := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: cfg.MasterName, SentinelAddrs: cfg.Addrs, ReplicaOnly: true})
	defer replica.Close()
	if got, err := replica.Get(ctx, key).Result(); err != nil || got != "v" {
		t.Errorf("GET %s on a replica = %q, %v; want v", key, got, err)
	}
}
