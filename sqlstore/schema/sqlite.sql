-- mqttstore schema for SQLite. EMQX has no SQLite backend: these are the tables of its MySQL
-- schema (names and columns), in SQLite's types. Every statement is idempotent.
--
--   * ids are INTEGER PRIMARY KEY AUTOINCREMENT: never reused, so an acked position (mid)
--     stays below every later message even after the newest rows are deleted.
--   * times are DATETIME text in UTC, 'YYYY-MM-DD HH:MM:SS.SSS', which sorts as it compares.
--   * text compares byte for byte (SQLite's BINARY collation), so a topic prefix is a range.
--   * indexes: mqtt_msg (msgid) UNIQUE for idempotent writes, (topic, id) for
--     on_message_fetch, (arrived) for expiry.

CREATE TABLE IF NOT EXISTS mqtt_client (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  clientid TEXT UNIQUE,
  state INTEGER,
  node TEXT,
  online_at DATETIME,
  offline_at DATETIME,
  created DATETIME DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE IF NOT EXISTS mqtt_sub (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  clientid TEXT,
  topic TEXT,
  qos INTEGER,
  created DATETIME DEFAULT CURRENT_TIMESTAMP,
  UNIQUE (clientid, topic)
);

CREATE TABLE IF NOT EXISTS mqtt_msg (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  msgid TEXT,
  topic TEXT NOT NULL,
  sender TEXT,
  node TEXT,
  qos INTEGER NOT NULL DEFAULT 0,
  retain INTEGER,
  payload BLOB,
  arrived DATETIME NOT NULL
);

CREATE UNIQUE INDEX IF NOT EXISTS mqtt_msg_msgid_key ON mqtt_msg (msgid);
CREATE INDEX IF NOT EXISTS mqtt_msg_topic_id_idx ON mqtt_msg (topic, id);
CREATE INDEX IF NOT EXISTS mqtt_msg_arrived_idx ON mqtt_msg (arrived);

CREATE TABLE IF NOT EXISTS mqtt_retain (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  topic TEXT UNIQUE,
  msgid TEXT,
  sender TEXT,
  node TEXT,
  qos INTEGER,
  payload BLOB,
  arrived DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE IF NOT EXISTS mqtt_acked (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  clientid TEXT,
  topic TEXT,
  mid INTEGER,
  created DATETIME,
  UNIQUE (clientid, topic)
);
