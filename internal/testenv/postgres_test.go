package testenv

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func pgConnect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatalf("connect %s: %v", dsn, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestPostgresRoundTripInOwnSchema(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	var schema string
	t.Run("test", func(t *testing.T) {
		dsn := Postgres(t)
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		schema = u.Query().Get("search_path")
		conn := pgConnect(t, dsn)
		if _, err := conn.Exec(ctx, `CREATE TABLE msg (id bigint PRIMARY KEY, payload bytea)`); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, `INSERT INTO msg VALUES ($1, $2)`, 7, []byte("hello\x00")); err != nil {
			t.Fatal(err)
		}
		var payload []byte
		var where string
		err = conn.QueryRow(ctx, `SELECT payload, (SELECT table_schema FROM information_schema.tables
			WHERE table_name = 'msg' AND table_schema = current_schema()) FROM msg WHERE id = $1`, 7).Scan(&payload, &where)
		if err != nil {
			t.Fatal(err)
		}
		if string(payload) != "hello\x00" || where != schema {
			t.Errorf("read back payload %q from schema %q, want %q from %q", payload, where, "hello\x00", schema)
		}
	})
	if t.Failed() || t.Skipped() {
		return
	}
	// The subtest's cleanup has dropped its schema.
	conn := pgConnect(t, Getenv("MQTTSTORE_POSTGRES_URL", DefaultPostgresURL))
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_namespace WHERE nspname = $1`, schema).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("schema %s still exists after the test ended", schema)
	}
}

func TestPostgresSchemasAreIsolated(t *testing.T) {
	t.Parallel()
	a, b := pgConnect(t, Postgres(t)), pgConnect(t, Postgres(t))
	if _, err := a.Exec(t.Context(), `CREATE TABLE only_in_a (x int)`); err != nil {
		t.Fatal(err)
	}
	_, err := b.Exec(t.Context(), `SELECT x FROM only_in_a`)
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("a table of another test's schema is visible: err = %v", err)
	}
}

func TestTimescaleRoundTrip(t *testing.T) {
	t.Parallel()
	conn := pgConnect(t, Timescale(t))
	ctx := t.Context()
	var hasTimescale bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_available_extensions WHERE name = 'timescaledb')`).Scan(&hasTimescale); err != nil {
		t.Fatal(err)
	}
	t.Logf("timescaledb extension available: %v", hasTimescale)
	if _, err := conn.Exec(ctx, `CREATE TABLE point (ts timestamptz NOT NULL, value double precision)`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO point VALUES (to_timestamp($1), $2)`, 1700000000, 21.5); err != nil {
		t.Fatal(err)
	}
	var v float64
	if err := conn.QueryRow(ctx, `SELECT value FROM point WHERE ts = to_timestamp($1)`, 1700000000).Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != 21.5 {
		t.Errorf("read back %v, want 21.5", v)
	}
}
