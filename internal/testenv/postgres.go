package testenv

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultPostgresURL is the server scripts/services starts: superuser mqttstore on database
// mqttstore, trust authentication on loopback.
const DefaultPostgresURL = "postgres://mqttstore:public@127.0.0.1:5432/mqttstore?sslmode=disable"

// Postgres returns a connection URL (for pgx or libpq) whose search_path is a fresh schema of
// the test's own, dropped with everything in it when the test ends. Unqualified table names
// resolve to that schema, so tests do not see each other's tables. A schema rather than a
// database: creating one costs a millisecond where CREATE DATABASE costs hundreds. Catalog
// queries (information_schema, pg_tables) see every test's schemas unless they filter on
// current_schema().
//
// The server is MQTTSTORE_POSTGRES_URL (default DefaultPostgresURL), scripts/services' postgres.
func Postgres(t testing.TB) string {
	t.Helper()
	return postgresSchema(t, Getenv("MQTTSTORE_POSTGRES_URL", DefaultPostgresURL), "")
}

// Timescale is Postgres for TimescaleDB tests: a URL whose search_path is a fresh schema of the
// test's own followed by public, where extensions such as timescaledb live.
//
// TimescaleDB cannot be had from the package registries this project uses, so by default
// (MQTTSTORE_TIMESCALE_URL unset) this is the plain PostgreSQL server of Postgres: a test that
// needs the extension checks pg_extension and skips without it.
func Timescale(t testing.TB) string {
	t.Helper()
	return postgresSchema(t, Getenv("MQTTSTORE_TIMESCALE_URL", Getenv("MQTTSTORE_POSTGRES_URL", DefaultPostgresURL)), ",public")
}

func postgresSchema(t testing.TB, admin, searchPathTail string) string {
	t.Helper()
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("testenv: postgres URL %q: %v", admin, err)
	}
	schema := Name(t, 63)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		Unavailable(t, "postgres", err)
	}
	defer conn.Close(context.Background())
	// The schema name comes from Name: letters, digits and '_' only.
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("testenv: create schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("testenv: drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("testenv: drop schema %s: %v", schema, err)
		}
	})
	q := u.Query()
	q.Set("search_path", schema+searchPathTail)
	u.RawQuery = q.Encode()
	return u.String()
}
