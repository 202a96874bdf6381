package testenv

import (
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

func TestMySQLRoundTripInOwnDatabase(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	var name string
	t.Run("test", func(t *testing.T) {
		dsn := MySQL(t)
		cfg, err := mysql.ParseDSN(dsn)
		if err != nil {
			t.Fatal(err)
		}
		name = cfg.DBName
		if !cfg.ParseTime || cfg.MultiStatements || cfg.InterpolateParams || cfg.Loc != time.UTC {
			t.Errorf("DSN %s: want parseTime, loc=UTC, no multiStatements, no interpolateParams", dsn)
		}
		db, err := sql.Open("mysql", dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.ExecContext(ctx, `CREATE TABLE msg (id BIGINT PRIMARY KEY, payload BLOB, arrived DATETIME(3))`); err != nil {
			t.Fatal(err)
		}
		at := time.Date(2024, 5, 6, 7, 8, 9, 123e6, time.UTC)
		if _, err := db.ExecContext(ctx, `INSERT INTO msg VALUES (?, ?, ?)`, 7, []byte("x'); DROP TABLE msg; --"), at); err != nil {
			t.Fatal(err)
		}
		var payload []byte
		var arrived time.Time
		var schema string
		if err := db.QueryRowContext(ctx, `SELECT payload, arrived, DATABASE() FROM msg WHERE id = ?`, 7).Scan(&payload, &arrived, &schema); err != nil {
			t.Fatal(err)
		}
		if string(payload) != "x'); DROP TABLE msg; --" || !arrived.Equal(at) || schema != name {
			t.Errorf("read back %q, %v in %s; want %q, %v in %s", payload, arrived, schema, "x'); DROP TABLE msg; --", at, name)
		}
		if _, err := db.ExecContext(ctx, `SELECT 1; SELECT 2`); err == nil {
			t.Error("two statements in one query were accepted: multiStatements is on")
		}
	})
	if t.Failed() || t.Skipped() {
		return
	}
	// The subtest's cleanup has dropped its database.
	cfg, err := mysql.ParseDSN(Getenv("MQTTSTORE_MYSQL_DSN", DefaultMySQLDSN))
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = ?`, name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("database %s still exists after the test ended", name)
	}
}

func TestMySQLDatabasesAreIsolated(t *testing.T) {
	t.Parallel()
	a, err := sql.Open("mysql", MySQL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := sql.Open("mysql", MySQL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := a.ExecContext(t.Context(), `CREATE TABLE only_in_a (x INT)`); err != nil {
		t.Fatal(err)
	}
	_, err = b.ExecContext(t.Context(), `SELECT x FROM only_in_a`)
	if err == nil || !strings.Contains(err.Error(), "doesn't exist") {
		t.Errorf("a table of another test's database is visible: err = %v", err)
	}
}
