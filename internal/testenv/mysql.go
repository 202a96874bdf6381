package testenv

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// DefaultMySQLDSN is the server scripts/services starts (MariaDB): user mqttstore, allowed to
// create databases.
const DefaultMySQLDSN = "mqttstore:public@tcp(127.0.0.1:3306)/"

// MySQLParams are the parameters MySQL appends to its DSNs:
//   - parseTime=true: DATETIME and TIMESTAMP columns scan into time.Time;
//   - loc=UTC: and are read (and written) as UTC;
//   - multiStatements=false: one statement per query, so nothing can ride along a value;
//   - interpolateParams=false: placeholders are bound by the server (prepared statements),
//     never spliced into the statement text by the driver.
const MySQLParams = "parseTime=true&loc=UTC&multiStatements=false&interpolateParams=false"

// MySQL returns a go-sql-driver/mysql DSN for a fresh database of the test's own (the MySQL
// protocol is served by MariaDB), dropped when the test ends. The DSN carries MySQLParams.
//
// The server is MQTTSTORE_MYSQL_DSN (default DefaultMySQLDSN), scripts/services' mariadb.
func MySQL(t testing.TB) string {
	t.Helper()
	cfg, err := mysql.ParseDSN(Getenv("MQTTSTORE_MYSQL_DSN", DefaultMySQLDSN))
	if err != nil {
		t.Fatalf("testenv: MQTTSTORE_MYSQL_DSN: %v", err)
	}
	cfg.DBName = ""
	admin := cfg.FormatDSN()
	name := Name(t, 64)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	db, err := sql.Open("mysql", admin)
	if err != nil {
		t.Fatalf("testenv: MQTTSTORE_MYSQL_DSN: %v", err)
	}
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		Unavailable(t, "mariadb", err)
	}
	// The database name comes from Name: letters, digits and '_' only.
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("testenv: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		db, err := sql.Open("mysql", admin)
		if err == nil {
			defer db.Close()
			_, err = db.ExecContext(ctx, "DROP DATABASE "+name)
		}
		if err != nil {
			t.Errorf("testenv: drop database %s: %v", name, err)
		}
	})
	cfg.DBName = name
	dsn := cfg.FormatDSN()
	if strings.Contains(dsn, "?") {
		return dsn + "&" + MySQLParams
	}
	return dsn + "?" + MySQLParams
}
