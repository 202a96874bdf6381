package testenv

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
)

// CassandraConfig locates a Cassandra node and a keyspace that belongs to one test.
type CassandraConfig struct {
	Hosts    []string // contact points, e.g. 127.0.0.1
	Port     int      // CQL native protocol port
	Keyspace string   // fresh (SimpleStrategy, replication factor 1); dropped when the test ends
}

// probeTimeout bounds how long an accessor waits for a service before calling it unavailable.
const probeTimeout = 5 * time.Second

// Cassandra returns the node named by MQTTSTORE_CASSANDRA_HOSTS (comma-separated, default
// 127.0.0.1) and MQTTSTORE_CASSANDRA_PORT (default 9042), with a keyspace created for t and
// dropped when t ends.
func Cassandra(t testing.TB) CassandraConfig {
	t.Helper()
	portText := Getenv("MQTTSTORE_CASSANDRA_PORT", "9042")
	port, err := strconv.Atoi(portText)
	if err != nil {
		t.Fatalf("testenv: MQTTSTORE_CASSANDRA_PORT=%q: %v", portText, err)
	}
	cfg := CassandraConfig{
		Hosts:    strings.Split(Getenv("MQTTSTORE_CASSANDRA_HOSTS", "127.0.0.1"), ","),
		Port:     port,
		Keyspace: Name(t, 48), // Cassandra's limit
	}
	cluster := gocql.NewCluster(cfg.Hosts...)
	cluster.Port = cfg.Port
	cluster.ConnectTimeout = probeTimeout
	cluster.Timeout = 30 * time.Second // schema changes wait for agreement
	session, err := cluster.CreateSession()
	if err != nil {
		Unavailable(t, "cassandra", err)
	}
	// Name returns a safe identifier; identifiers cannot be bound parameters.
	create := `CREATE KEYSPACE ` + cfg.Keyspace +
		` WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}`
	if err := session.Query(create).ExecContext(context.Background()); err != nil {
		session.Close()
		t.Fatalf("testenv: cassandra: create keyspace %s: %v", cfg.Keyspace, err)
	}
	t.Cleanup(func() {
		defer session.Close()
		if err := session.Query(`DROP KEYSPACE IF EXISTS ` + cfg.Keyspace).ExecContext(context.Background()); err != nil {
			t.Errorf("testenv: cassandra: drop keyspace %s: %v", cfg.Keyspace, err)
		}
	})
	return cfg
}
