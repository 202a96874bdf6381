package testenv

import (
	"context"
	"testing"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
)

func cassandraSession(t *testing.T, cfg CassandraConfig) *gocql.Session {
	t.Helper()
	cluster := gocql.NewCluster(cfg.Hosts...)
	cluster.Port = cfg.Port
	cluster.Keyspace = cfg.Keyspace
	session, err := cluster.CreateSession()
	if err != nil {
		t.Fatalf("connect to %v: %v", cfg, err)
	}
	t.Cleanup(session.Close)
	return session
}

func TestCassandraWritesReadBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	session := cassandraSession(t, Cassandra(t))
	if err := session.Query(`CREATE TABLE kv (k text PRIMARY KEY, v blob)`).ExecContext(ctx); err != nil {
		t.Fatal(err)
	}
	want := []byte("hello \x00 cassandra")
	if err := session.Query(`INSERT INTO kv (k, v) VALUES (?, ?)`, "a/b", want).ExecContext(ctx); err != nil {
		t.Fatal(err)
	}
	var got []byte
	if err := session.Query(`SELECT v FROM kv WHERE k = ?`, "a/b").ScanContext(ctx, &got); err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("read back %q, wrote %q", got, want)
	}
}

func TestCassandraKeyspaceIsFreshAndDropped(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var inner CassandraConfig
	t.Run("inner", func(t *testing.T) { inner = Cassandra(t) })
	outer := Cassandra(t)
	if inner.Keyspace == outer.Keyspace {
		t.Fatalf("two tests got keyspace %s", outer.Keyspace)
	}
	session := cassandraSession(t, outer)
	var n int
	for _, ks := range []struct {
		name string
		want int
	}{{outer.Keyspace, 1}, {inner.Keyspace, 0}} {
		err := session.Query(`SELECT count(*) FROM system_schema.keyspaces WHERE keyspace_name = ?`, ks.name).ScanContext(ctx, &n)
		if err != nil {
			t.Fatal(err)
		}
		if n != ks.want {
			t.Errorf("keyspace %s: %d rows in system_schema.keyspaces, want %d", ks.name, n, ks.want)
		}
	}
}
