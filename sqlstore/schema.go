package sqlstore

import (
	"context"
	"embed"
	"fmt"
	"regexp"
	"strings"
)

//go:embed schema/*.sql
var schemaFS embed.FS

// Schema returns the schema file of dialect d (schema/postgres.sql, mysql.sql or sqlite.sql):
// the EMQX tables and the indexes the store adds, as EnsureSchema applies them.
func Schema(d Dialect) (string, error) {
	b, err := schemaFS.ReadFile("schema/" + d.String() + ".sql")
	if err != nil {
		return "", fmt.Errorf("sqlstore: schema of %v: %w", d, err)
	}
	return string(b), nil
}

// statements splits a schema file into its statements, without comments.
func statements(src string) []string {
	var lines []string
	for _, l := range strings.Split(src, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "--") {
			lines = append(lines, l)
		}
	}
	var out []string
	for _, st := range strings.Split(strings.Join(lines, "\n"), ";") {
		if st = strings.TrimSpace(st); st != "" {
			out = append(out, st)
		}
	}
	return out
}

// mysqlIndex matches the CREATE INDEX statements of mysql.sql: name and table.
var mysqlIndex = regexp.MustCompile(`^CREATE (?:UNIQUE )?INDEX (\w+) ON (\w+) `)

// EnsureSchema creates the tables of the dialect's schema file that do not exist, and the
// indexes the store needs that an existing (EMQX) table lacks; it changes nothing else, so it
// is safe to run on every start. On PostgreSQL it then checks the payload columns: with
// Config.MigratePayload a text payload column is converted to bytea, otherwise it is used as
// text (see ErrPayloadNotText).
//
// On MySQL it also creates mqtt_msg_lock, the one-row table that transactions inserting into
// mqtt_msg lock first (see the package doc, "Several brokers on one database").
//
// Adding the unique msgid index to an existing mqtt_msg fails if the table holds duplicate
// msgids; the error says so and nothing is changed.
func (s *Store) EnsureSchema(ctx context.Context) error {
	src, err := Schema(s.cfg.Dialect)
	if err != nil {
		return err
	}
	collation := ""
	if s.cfg.Dialect == MySQL {
		if collation, err = s.mysqlBinaryCollation(ctx); err != nil {
			return fmt.Errorf("sqlstore: ensure schema: %w", err)
		}
	}
	for _, st := range statements(src) {
		if s.cfg.Dialect == MySQL {
			if m := mysqlIndex.FindStringSubmatch(st); m != nil {
				var n int64
				err := s.query(ctx, "SELECT COUNT(*) FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name = ? AND index_name = ?",
					[]any{m[2], m[1]}, func(scan func(...any) error) error { return scan(&n) })
				if err != nil {
					return fmt.Errorf("sqlstore: ensure schema: index %s: %w", m[1], err)
				}
				if n > 0 {
					continue
				}
			}
			st = strings.ReplaceAll(st, "utf8mb4_bin", collation)
		}
		if err := s.execDDL(ctx, st); err != nil {
			return fmt.Errorf("sqlstore: ensure schema: %s: %w", firstLine(st), err)
		}
	}
	s.noMsgLock.Store(false) // MySQL: mqtt_msg_lock exists now
	return s.inspect(ctx)
}

func (s *Store) execDDL(ctx context.Context, st string) error {
	if s.pg != nil {
		_, err := s.pg.Exec(ctx, st)
		return err
	}
	_, err := s.db.ExecContext(ctx, st)
	return err
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// mysqlBinaryCollation picks the byte-order collation without trailing-space padding the
// server has: MariaDB utf8mb4_nopad_bin (10.2+), MySQL 8 utf8mb4_0900_bin, else utf8mb4_bin.
func (s *Store) mysqlBinaryCollation(ctx context.Context) (string, error) {
	for _, c := range []string{"utf8mb4_nopad_bin", "utf8mb4_0900_bin"} {
		var n int64
		err := s.query(ctx, "SELECT COUNT(*) FROM information_schema.collations WHERE collation_name = ?", []any{c},
			func(scan func(...any) error) error { return scan(&n) })
		if err != nil {
			return "", err
		}
		if n > 0 {
			return c, nil
		}
	}
	return "utf8mb4_bin", nil
}

// inspect reads what the store must know of the existing tables: payload column types and
// string column widths.
func (s *Store) inspect(ctx context.Context) error {
	if err := s.detectPayload(ctx); err != nil {
		return err
	}
	return s.columnWidths(ctx)
}

// columnWidths reads the widths, in characters, of the string columns the built-in writes
// fill (PostgreSQL and MySQL; SQLite's TEXT has none), so that a value too long for its
// column is refused when the broker hands it over (Write returns ErrValueTooLong), before
// the broker acknowledges it, rather than failing later in its batch ("value too long").
func (s *Store) columnWidths(ctx context.Context) error {
	var q string
	switch s.cfg.Dialect {
	case Postgres:
		q = `SELECT table_name::text, column_name::text, character_maximum_length::int FROM information_schema.columns
 WHERE table_schema = current_schema() AND character_maximum_length IS NOT NULL
 AND table_name IN ('mqtt_client', 'mqtt_msg', 'mqtt_retain', 'mqtt_acked')`
	case MySQL:
		q = `SELECT table_name, column_name, CAST(character_maximum_length AS SIGNED) FROM information_schema.columns
 WHERE table_schema = DATABASE() AND character_maximum_length IS NOT NULL
 AND table_name IN ('mqtt_client', 'mqtt_msg', 'mqtt_retain', 'mqtt_acked')`
	default:
		return nil
	}
	widths := map[string]int{}
	err := s.query(ctx, q, nil, func(scan func(...any) error) error {
		var table, column string
		var n int64
		if err := scan(&table, &column, &n); err != nil {
			return err
		}
		widths[strings.ToLower(table)+"."+strings.ToLower(column)] = int(n)
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlstore: column widths: %w", err)
	}
	s.widths.Store(&widths)
	return nil
}

// detectPayload finds out whether the PostgreSQL payload columns are text (an EMQX table),
// converting them to bytea if Config.MigratePayload.
func (s *Store) detectPayload(ctx context.Context) error {
	if s.pg == nil {
		return nil
	}
	for _, t := range []struct {
		table string
		flag  interface{ Store(bool) }
	}{{"mqtt_msg", &s.msgText}, {"mqtt_retain", &s.retainText}} {
		var typ string
		err := s.query(ctx, `SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
 WHERE a.attrelid = to_regclass($1) AND a.attname = 'payload' AND NOT a.attisdropped`, []any{t.table},
			func(scan func(...any) error) error { return scan(&typ) })
		if err != nil {
			return fmt.Errorf("sqlstore: payload column of %s: %w", t.table, err)
		}
		text := typ != "" && typ != "bytea"
		if text && s.cfg.MigratePayload {
			// The table name is one of the two constants above.
			if _, err := s.pg.Exec(ctx, "ALTER TABLE "+t.table+" ALTER COLUMN payload TYPE bytea USING convert_to(payload, 'UTF8')"); err != nil {
				return fmt.Errorf("sqlstore: convert %s.payload from %s to bytea: %w", t.table, typ, err)
			}
			s.opts.Logger.Info("converted payload column to bytea", "store", "sqlstore/postgres", "table", t.table, "was", typ)
			text = false
		} else if text {
			s.opts.Logger.Warn("payload column is text: payloads that are not UTF-8 text without NUL are refused (Config.MigratePayload converts it to bytea)",
				"store", "sqlstore/postgres", "table", t.table, "type", typ)
		}
		t.flag.Store(text)
	}
	return nil
}
