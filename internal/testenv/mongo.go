package testenv

import (
	"context"
	"net"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// MongoConfig locates a MongoDB-protocol server and a database that belongs to one test.
type MongoConfig struct {
	URI      string // e.g. mongodb://127.0.0.1:27017/
	Database string // fresh; dropped when the test ends
}

// Mongo returns the server named by MQTTSTORE_MONGO_URI (default mongodb://127.0.0.1:27017/;
// FerretDB in scripts/services) and a database name for t, dropped when t ends.
func Mongo(t testing.TB) MongoConfig {
	t.Helper()
	cfg := MongoConfig{
		URI:      Getenv("MQTTSTORE_MONGO_URI", "mongodb://127.0.0.1:27017/"),
		Database: Name(t, 63), // FerretDB's limit
	}
	opts := options.Client().ApplyURI(cfg.URI).SetServerSelectionTimeout(probeTimeout).SetConnectTimeout(probeTimeout)
	// The driver retries a refused connection until its timeout: dial first to skip at once.
	for _, host := range opts.Hosts {
		conn, err := net.DialTimeout("tcp", host, probeTimeout)
		if err != nil {
			Unavailable(t, "ferretdb", err)
		}
		conn.Close()
	}
	client, err := mongo.Connect(opts)
	if err != nil {
		t.Fatalf("testenv: mongo: MQTTSTORE_MONGO_URI=%q: %v", cfg.URI, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	if err := client.Ping(ctx, nil); err != nil {
		_ = client.Disconnect(context.Background())
		Unavailable(t, "ferretdb", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		defer client.Disconnect(ctx)
		if err := client.Database(cfg.Database).Drop(ctx); err != nil {
			t.Errorf("testenv: mongo: drop database %s: %v", cfg.Database, err)
		}
	})
	return cfg
}
