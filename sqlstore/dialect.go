package sqlstore

import (
	"database/sql/driver"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/template"
	"github.com/mqttstore/mqttstore/topic"
)

// dialect holds what differs between the databases: the statements of the built-in
// functions, how a time and a topic-filter match are written, and which errors are transient.
// The statements take their arguments in the order the comments of the fields give.
type dialect struct {
	tmpl    template.Dialect
	dollar  bool // $n bind markers (PostgreSQL) rather than ?
	hasNode bool // mqtt_msg and mqtt_retain have a node column (not in EMQX's PostgreSQL schema)

	// topicCol writes a topic column as it is compared: PostgreSQL compares in "C" collation
	// so that its (topic COLLATE "C") indexes serve ranges.
	topicCol func(col string) string
	// matchCond writes "col matches the filter given by argument ph"; matchArg is that
	// argument.
	matchCond func(col, ph string) string
	matchArg  func(p filterPlan) any

	connected    string // clientid, node, at
	disconnected string // clientid, node, at
	retainUpsert string // topic, msgid, sender, [node,] qos, payload, arrived
	retainDelete string // topic
	acked        string // clientid, topic, at, msgid
	// ackedMany (MySQL) is acked for several messages acknowledged by one client:
	// clientid, at, then the msgids, whose list of ? markers goes in its %s. Each topic's
	// position moves to its greatest message, as one acked each would. (PostgreSQL needs
	// none: a batch is one pipeline, and its planner takes a seq scan of mqtt_msg for an
	// ANY(array) of a few hundred msgids, 9x slower than the acks one by one.)
	ackedMany    string
	ackedDelete  string // clientid, topic
	ackedMatch   string // clientid, matchArg
	msgInsert    string // one row (SQLite) or the part before VALUES (MySQL) or unnest (PostgreSQL, without ON CONFLICT)
	msgInsertTxt string // PostgreSQL, for a text payload column
	msgLock      string // first statement of a transaction that inserts into mqtt_msg (PostgreSQL, MySQL); see msgLockKey
	subAdd       string // clientid, topic, qos, at
	subDelete    string // clientid, topic
	subLookup    string // clientid
	clientState  string // clientid

	transient func(error) bool
}

// msgLockKey is the first key of the PostgreSQL transaction-level advisory lock that every
// transaction inserting into mqtt_msg takes first, pg_advisory_xact_lock(msgLockKey, oid of
// mqtt_msg): 0x6d717474, "mqtt" in ASCII. The second key is the table's oid (as int4), so
// stores on tables of different schemas do not wait for one another. See the package doc,
// "Several brokers".
const msgLockKey = "1836152948"

// sqliteMatchFunc is topic.Match as a SQLite function, registered with the driver once.
const sqliteMatchFunc = "mqttstore_topic_match"

func init() {
	sqlite.MustRegisterDeterministicScalarFunction(sqliteMatchFunc, 2, func(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
		f, ok1 := textValue(args[0])
		t, ok2 := textValue(args[1])
		return ok1 && ok2 && topic.Match(f, t), nil
	})
}

func textValue(v driver.Value) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case []byte:
		return string(v), true
	}
	return "", false
}

var dialects = map[Dialect]*dialect{
	Postgres: {
		tmpl:      template.PostgreSQL,
		dollar:    true,
		topicCol:  func(col string) string { return col + ` COLLATE "C"` },
		matchCond: func(col, ph string) string { return col + " ~ " + ph },
		matchArg:  func(p filterPlan) any { return p.regexp(false) },
		connected: `INSERT INTO mqtt_client (clientid, state, node, online_at, offline_at, created) VALUES ($1, 1, $2, $3, NULL, $3)
 ON CONFLICT (clientid) DO UPDATE SET state = 1, node = EXCLUDED.node, online_at = EXCLUDED.online_at, offline_at = NULL`,
		disconnected: `INSERT INTO mqtt_client (clientid, state, node, offline_at, created) VALUES ($1, 0, $2, $3, $3)
 ON CONFLICT (clientid) DO UPDATE SET state = 0, node = COALESCE(EXCLUDED.node, mqtt_client.node), offline_at = EXCLUDED.offline_at`,
		retainUpsert: `INSERT INTO mqtt_retain (topic, msgid, sender, qos, payload, arrived) VALUES ($1, $2, $3, $4, $5, $6)
 ON CONFLICT (topic) DO UPDATE SET msgid = EXCLUDED.msgid, sender = EXCLUDED.sender, qos = EXCLUDED.qos, payload = EXCLUDED.payload, arrived = EXCLUDED.arrived`,
		retainDelete: `DELETE FROM mqtt_retain WHERE topic = $1`,
		acked: `INSERT INTO mqtt_acked (clientid, topic, mid, created)
 SELECT $1::text, $2::text, id, $3::timestamp FROM mqtt_msg WHERE msgid = $4 ORDER BY id DESC LIMIT 1
 ON CONFLICT (clientid, topic) DO UPDATE SET mid = GREATEST(mqtt_acked.mid, EXCLUDED.mid), created = EXCLUDED.created`,
		ackedDelete: `DELETE FROM mqtt_acked WHERE clientid = $1 AND topic = $2`,
		ackedMatch:  `DELETE FROM mqtt_acked WHERE clientid = $1 AND topic ~ $2`,
		// One statement for any number of rows: the columns as arrays.
		msgInsert: `INSERT INTO mqtt_msg (msgid, sender, topic, qos, retain, payload, arrived)
 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int4[], $5::int4[], $6::bytea[], $7::timestamp[])`,
		msgInsertTxt: `INSERT INTO mqtt_msg (msgid, sender, topic, qos, retain, payload, arrived)
 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int4[], $5::int4[], $6::text[], $7::timestamp[])`,
		msgLock: `SELECT pg_advisory_xact_lock(` + msgLockKey + `, 'mqtt_msg'::regclass::oid::int4)`,
		subAdd: `INSERT INTO mqtt_sub (clientid, topic, qos, created) VALUES ($1, $2, $3, $4)
 ON CONFLICT (clientid, topic) DO UPDATE SET qos = EXCLUDED.qos`,
		subDelete:   `DELETE FROM mqtt_sub WHERE clientid = $1 AND topic = $2`,
		subLookup:   `SELECT topic, qos FROM mqtt_sub WHERE clientid = $1 ORDER BY id`,
		clientState: `SELECT state, node, online_at, offline_at FROM mqtt_client WHERE clientid = $1`,
		transient:   pgTransient,
	},
	MySQL: {
		tmpl:      template.MySQL,
		hasNode:   true,
		topicCol:  func(col string) string { return col },
		matchCond: func(col, ph string) string { return col + " COLLATE utf8mb4_bin REGEXP " + ph },
		matchArg:  func(p filterPlan) any { return p.regexp(true) },
		connected: "INSERT INTO mqtt_client (clientid, state, node, online_at, offline_at) VALUES (?, '1', ?, ?, NULL)" +
			" ON DUPLICATE KEY UPDATE state = '1', node = VALUES(node), online_at = VALUES(online_at), offline_at = NULL",
		disconnected: "INSERT INTO mqtt_client (clientid, state, node, offline_at) VALUES (?, '0', ?, ?)" +
			" ON DUPLICATE KEY UPDATE state = '0', node = COALESCE(VALUES(node), node), offline_at = VALUES(offline_at)",
		retainUpsert: "INSERT INTO mqtt_retain (topic, msgid, sender, node, qos, payload, arrived) VALUES (?, ?, ?, ?, ?, ?, ?)" +
			" ON DUPLICATE KEY UPDATE msgid = VALUES(msgid), sender = VALUES(sender), node = VALUES(node), qos = VALUES(qos)," +
			" payload = VALUES(payload), arrived = VALUES(arrived)",
		retainDelete: "DELETE FROM mqtt_retain WHERE topic = ?",
		acked: "INSERT INTO mqtt_acked (clientid, topic, mid, created)" +
			" SELECT ?, ?, id, ? FROM mqtt_msg WHERE msgid = ? ORDER BY id DESC LIMIT 1" +
			" ON DUPLICATE KEY UPDATE mid = GREATEST(COALESCE(mqtt_acked.mid, 0), VALUES(mid)), created = VALUES(created)",
		ackedMany: "INSERT INTO mqtt_acked (clientid, topic, mid, created)" +
			" SELECT ?, topic, MAX(id), ? FROM mqtt_msg WHERE msgid IN (%s) GROUP BY topic" +
			" ON DUPLICATE KEY UPDATE mid = GREATEST(COALESCE(mqtt_acked.mid, 0), VALUES(mid)), created = VALUES(created)",
		ackedDelete: "DELETE FROM mqtt_acked WHERE clientid = ? AND topic = ?",
		ackedMatch:  "DELETE FROM mqtt_acked WHERE clientid = ? AND topic COLLATE utf8mb4_bin REGEXP ?",
		msgInsert:   "INSERT INTO mqtt_msg (msgid, sender, node, topic, qos, retain, payload, arrived) VALUES ",
		msgLock:     "SELECT id FROM mqtt_msg_lock WHERE id = 1 FOR UPDATE",
		subAdd:      "INSERT INTO mqtt_sub (clientid, topic, qos) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE qos = VALUES(qos)",
		subDelete:   "DELETE FROM mqtt_sub WHERE clientid = ? AND topic = ?",
		subLookup:   "SELECT topic, qos FROM mqtt_sub WHERE clientid = ? ORDER BY id",
		clientState: "SELECT state, node, online_at, offline_at FROM mqtt_client WHERE clientid = ?",
		transient:   mysqlTransient,
	},
	SQLite: {
		tmpl:      template.SQLite,
		hasNode:   true,
		topicCol:  func(col string) string { return col },
		matchCond: func(col, ph string) string { return sqliteMatchFunc + "(" + ph + ", " + col + ")" },
		matchArg:  func(p filterPlan) any { return p.filter },
		connected: `INSERT INTO mqtt_client (clientid, state, node, online_at, offline_at) VALUES (?, 1, ?, ?, NULL)
 ON CONFLICT (clientid) DO UPDATE SET state = 1, node = excluded.node, online_at = excluded.online_at, offline_at = NULL`,
		disconnected: `INSERT INTO mqtt_client (clientid, state, node, offline_at) VALUES (?, 0, ?, ?)
 ON CONFLICT (clientid) DO UPDATE SET state = 0, node = COALESCE(excluded.node, mqtt_client.node), offline_at = excluded.offline_at`,
		retainUpsert: `INSERT INTO mqtt_retain (topic, msgid, sender, node, qos, payload, arrived) VALUES (?, ?, ?, ?, ?, ?, ?)
 ON CONFLICT (topic) DO UPDATE SET msgid = excluded.msgid, sender = excluded.sender, node = excluded.node, qos = excluded.qos,
 payload = excluded.payload, arrived = excluded.arrived`,
		retainDelete: `DELETE FROM mqtt_retain WHERE topic = ?`,
		acked: `INSERT INTO mqtt_acked (clientid, topic, mid, created)
 SELECT ?, ?, id, ? FROM mqtt_msg WHERE msgid = ? ORDER BY id DESC LIMIT 1
 ON CONFLICT (clientid, topic) DO UPDATE SET mid = max(COALESCE(mqtt_acked.mid, 0), excluded.mid), created = excluded.created`,
		ackedDelete: `DELETE FROM mqtt_acked WHERE clientid = ? AND topic = ?`,
		ackedMatch:  `DELETE FROM mqtt_acked WHERE clientid = ? AND ` + sqliteMatchFunc + `(?, topic)`,
		msgInsert:   `INSERT INTO mqtt_msg (msgid, sender, node, topic, qos, retain, payload, arrived) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		subAdd: `INSERT INTO mqtt_sub (clientid, topic, qos) VALUES (?, ?, ?)
 ON CONFLICT (clientid, topic) DO UPDATE SET qos = excluded.qos`,
		subDelete:   `DELETE FROM mqtt_sub WHERE clientid = ? AND topic = ?`,
		subLookup:   `SELECT topic, qos FROM mqtt_sub WHERE clientid = ? ORDER BY id`,
		clientState: `SELECT state, node, online_at, offline_at FROM mqtt_client WHERE clientid = ?`,
		transient:   sqliteTransient,
	},
}

// sqlTimeLayout is how times are bound for MySQL and SQLite: UTC text, which both compare
// and convert as DATETIME (and which, fixed-width, sorts as it compares in SQLite).
const sqlTimeLayout = "2006-01-02 15:04:05.000"

// timeArg is t as a bound argument: time.Time in UTC for PostgreSQL's timestamp (without
// time zone), UTC text for the others.
func (d *dialect) timeArg(t time.Time) any {
	if d.dollar {
		return t.UTC()
	}
	return t.UTC().Format(sqlTimeLayout)
}

// ph returns the n-th (1-based) bind marker.
func (d *dialect) ph(n int) string {
	if d.dollar {
		return "$" + strconv.Itoa(n)
	}
	return "?"
}

// nullString is s, or NULL when s is empty.
func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func boolInt(b bool) int32 {
	if b {
		return 1
	}
	return 0
}

// pgTransient: connection failures, and the SQLSTATEs of serialization failure, deadlock,
// lock timeout, shutdown and resource exhaustion.
func pgTransient(err error) bool {
	if backend.IsTransient(err) || pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return true
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "40001", "40P01", "55P03", "55006", "57P01", "57P02", "57P03", "57014":
			return true
		}
		return strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "53")
	}
	return false
}

// mysqlTransient: connection failures, deadlock, lock wait timeout, too many connections,
// shutdown, killed connections.
func mysqlTransient(err error) bool {
	if backend.IsTransient(err) || errors.Is(err, driver.ErrBadConn) || errors.Is(err, mysql.ErrInvalidConn) {
		return true
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1040, // too many connections
			1053,       // server shutdown in progress
			1205,       // lock wait timeout
			1213,       // deadlock
			1317,       // query interrupted
			1927,       // connection killed (MariaDB)
			2006, 2013, // server gone away, lost connection
			3572,             // NOWAIT lock not available
			4031,             // disconnected for inactivity
			1158, 1159, 1160, // network read/write errors
			1161:
			return true
		}
	}
	return false
}

// sqliteTransient: SQLITE_BUSY and SQLITE_LOCKED (with their extended codes).
func sqliteTransient(err error) bool {
	if backend.IsTransient(err) {
		return true
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case 5, 6: // SQLITE_BUSY, SQLITE_LOCKED
			return true
		}
	}
	return false
}
