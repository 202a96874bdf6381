package sqlstore

import (
	"context"
	_ "embed"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-sql-driver/mysql"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
)

// defaultConfig is the registry's default configuration for every SQL name: a SQLite file,
// data/mqttstore.db, and the spec's MySQL/PostgreSQL rule list.
//
//go:embed default.conf
var defaultConfig []byte

func init() {
	backend.Register(backend.Driver{Open: openPool, Config: defaultConfig},
		"sqlite", "sqlite3", "mysql", "mariadb", "pgsql", "postgres", "postgresql")
}

// poolKeys are the pool settings the SQL stores read: EMQX's (server, pool_size, username or
// user, password, database, ssl with keyfile, certfile and cacertfile), and dsn, a connection
// string used as it is instead.
var poolKeys = append([]string{"server", "pool_size", "username", "user", "password", "database", "dsn"}, backend.TLSKeys...)

// openPool opens a SQL store from an EMQX pool (backend.Open): the dialect is the section's
// name (pgsql, mysql, sqlite and their aliases). For SQLite, database is the file name, and its
// directory is created.
func openPool(ctx context.Context, pc backend.PoolConfig) (hook.Backend, error) {
	d, err := ParseDialect(pc.Store)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", hook.ErrConfig, err)
	}
	p := pc.Pool
	if err := p.CheckKeys(poolKeys...); err != nil {
		return nil, err
	}
	dsn := pc.DSN
	if dsn == "" {
		if dsn, err = poolDSN(d, p); err != nil {
			return nil, err
		}
	}
	if dsn == "" {
		return nil, fmt.Errorf("%w: no connection: set the pool's server (SQLite: database) or a DSN", hook.ErrConfig)
	}
	if pc.Options.TLS == nil {
		if pc.Options.TLS, err = p.TLS(); err != nil {
			return nil, err
		}
	}
	if d == SQLite {
		if err := makeDir(dsn); err != nil {
			return nil, err
		}
	}
	s, err := Open(ctx, Config{Dialect: d, DSN: dsn, Options: pc.Options, EnsureSchema: pc.EnsureSchema, Node: pc.Node})
	if err != nil {
		return nil, err // not a nil *Store in a non-nil hook.Backend
	}
	return s, nil
}

// poolDSN builds the connection string of an EMQX pool: server, username (MySQL: user),
// password and database for PostgreSQL and MySQL (TLS comes from Options.TLS), database (a
// file name) for SQLite. A "dsn" setting is used as it is.
func poolDSN(d Dialect, p *backend.Pool) (string, error) {
	if dsn := p.String("dsn", ""); dsn != "" {
		return dsn, nil
	}
	server := p.String("server", "")
	switch d {
	case SQLite:
		return p.String("database", ""), nil
	case Postgres:
		if server == "" {
			return "", nil
		}
		u := url.URL{Scheme: "postgres", Host: server, Path: "/" + p.String("database", ""), RawQuery: "sslmode=disable"}
		if user := p.String("username", p.String("user", "")); user != "" {
			u.User = url.UserPassword(user, p.String("password", ""))
		}
		if ssl, err := p.Bool("ssl", false); err != nil {
			return "", err
		} else if ssl {
			u.RawQuery = "sslmode=require"
		}
		return u.String(), nil
	case MySQL:
		if server == "" {
			return "", nil
		}
		mc := mysql.NewConfig()
		mc.Net, mc.Addr = "tcp", server
		mc.User, mc.Passwd, mc.DBName = p.String("user", p.String("username", "")), p.String("password", ""), p.String("database", "")
		return mc.FormatDSN(), nil
	}
	return "", fmt.Errorf("%w: dialect %v", hook.ErrConfig, d)
}

// makeDir creates the directory of a SQLite database file.
func makeDir(dsn string) error {
	if dsn == ":memory:" || strings.HasPrefix(dsn, "file:") {
		return nil
	}
	if dir := filepath.Dir(dsn); dir != "." {
		return os.MkdirAll(dir, 0o755)
	}
	return nil
}
