-- mqttstore schema for PostgreSQL: the tables of EMQX's emqx_backend_pgsql.sql, with the same
-- names and columns, plus what correctness and speed need. Every statement is idempotent, so
-- EnsureSchema can run on an empty database and on an existing EMQX one alike.
--
-- Differences from the EMQX schema, all compatible with its queries:
--   * payload is bytea, not text: text cannot hold NUL or invalid UTF-8. An existing text
--     payload column is detected at open (see the package doc).
--   * topic columns are COLLATE "C" (byte order), so that a topic prefix is an index range.
--   * mqtt_acked.topic is varchar(255) like the other topic columns (EMQX: 64), mid bigint
--     like mqtt_msg.id (EMQX: integer).
--   * indexes: mqtt_msg (msgid) UNIQUE for idempotent writes, (topic, id) for
--     on_message_fetch, (arrived) for expiry; mqtt_retain (topic COLLATE "C") for wildcard
--     retained lookups on a table whose topic column has another collation.

CREATE TABLE IF NOT EXISTS mqtt_client (
  id SERIAL8 PRIMARY KEY,
  clientid character varying(64),
  state integer,
  node character varying(64),
  online_at timestamp,
  offline_at timestamp,
  created timestamp without time zone,
  UNIQUE (clientid)
);

CREATE TABLE IF NOT EXISTS mqtt_sub (
  id SERIAL8 PRIMARY KEY,
  clientid character varying(64),
  topic character varying(255) COLLATE "C",
  qos integer,
  created timestamp without time zone,
  UNIQUE (clientid, topic)
);

CREATE TABLE IF NOT EXISTS mqtt_msg (
  id SERIAL8 PRIMARY KEY,
  msgid character varying(64),
  sender character varying(64),
  topic character varying(255) COLLATE "C",
  qos integer,
  retain integer,
  payload bytea,
  arrived timestamp without time zone
);

CREATE UNIQUE INDEX IF NOT EXISTS mqtt_msg_msgid_key ON mqtt_msg (msgid);
CREATE INDEX IF NOT EXISTS mqtt_msg_topic_id_idx ON mqtt_msg ((topic COLLATE "C"), id);
CREATE INDEX IF NOT EXISTS mqtt_msg_arrived_idx ON mqtt_msg (arrived);

CREATE TABLE IF NOT EXISTS mqtt_retain (
  id SERIAL8 PRIMARY KEY,
  topic character varying(255) COLLATE "C",
  msgid character varying(64),
  sender character varying(64),
  qos integer,
  payload bytea,
  arrived timestamp without time zone,
  UNIQUE (topic)
);

CREATE INDEX IF NOT EXISTS mqtt_retain_topic_c_idx ON mqtt_retain ((topic COLLATE "C"));

CREATE TABLE IF NOT EXISTS mqtt_acked (
  id SERIAL8 PRIMARY KEY,
  clientid character varying(64),
  topic character varying(255) COLLATE "C",
  mid bigint,
  created timestamp without time zone,
  UNIQUE (clientid, topic)
);
