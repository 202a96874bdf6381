-- mqttstore schema for MySQL and MariaDB: the tables of EMQX's emqx_backend_mysql.sql, with
-- the same names and columns, plus what correctness and speed need. Every statement is
-- idempotent, so EnsureSchema can run on an empty database and on an existing EMQX one alike.
--
-- Differences from the EMQX schema, all compatible with its queries:
--   * COLLATE utf8mb4_bin: topics and client IDs compare byte for byte ("a" and "A" are two
--     topics). EnsureSchema replaces it with the NO PAD binary collation of the server
--     (MariaDB utf8mb4_nopad_bin, MySQL 8 utf8mb4_0900_bin), so that "a" and "a " differ too.
--   * ids are BIGINT UNSIGNED, times DATETIME(3) (milliseconds).
--   * indexes: mqtt_msg (msgid) UNIQUE for idempotent writes, (topic, id) for
--     on_message_fetch, (arrived) for expiry.
--
--   * mqtt_msg_lock (not in EMQX): one row, which every transaction inserting into mqtt_msg
--     locks first (SELECT ... FOR UPDATE), so that with several brokers writing one database
--     message ids become visible in id order. Created on an existing EMQX database too.
--
-- The CREATE INDEX statements at the end add those indexes to existing EMQX tables; MySQL
-- has no CREATE INDEX IF NOT EXISTS, so EnsureSchema runs each only when information_schema
-- shows no index of that name.

CREATE TABLE IF NOT EXISTS `mqtt_client` (
  `id` bigint unsigned NOT NULL AUTO_INCREMENT,
  `clientid` varchar(64) DEFAULT NULL,
  `state` varchar(3) DEFAULT NULL,
  `node` varchar(64) DEFAULT NULL,
  `online_at` datetime(3) DEFAULT NULL,
  `offline_at` datetime(3) DEFAULT NULL,
  `created` timestamp NULL DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY (`id`),
  UNIQUE KEY `mqtt_client_key` (`clientid`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS `mqtt_sub` (
  `id` bigint unsigned NOT NULL AUTO_INCREMENT,
  `clientid` varchar(64) DEFAULT NULL,
  `topic` varchar(180) DEFAULT NULL,
  `qos` tinyint(1) DEFAULT NULL,
  `created` timestamp NULL DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY (`id`),
  UNIQUE KEY `mqtt_sub_key` (`clientid`,`topic`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS `mqtt_msg` (
  `id` bigint unsigned NOT NULL AUTO_INCREMENT,
  `msgid` varchar(64) DEFAULT NULL,
  `topic` varchar(180) NOT NULL,
  `sender` varchar(64) DEFAULT NULL,
  `node` varchar(64) DEFAULT NULL,
  `qos` tinyint(1) NOT NULL DEFAULT '0',
  `retain` tinyint(1) DEFAULT NULL,
  `payload` blob,
  `arrived` datetime(3) NOT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `mqtt_msg_msgid_key` (`msgid`),
  KEY `mqtt_msg_topic_id_idx` (`topic`, `id`),
  KEY `mqtt_msg_arrived_idx` (`arrived`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS `mqtt_retain` (
  `id` bigint unsigned NOT NULL AUTO_INCREMENT,
  `topic` varchar(180) DEFAULT NULL,
  `msgid` varchar(64) DEFAULT NULL,
  `sender` varchar(64) DEFAULT NULL,
  `node` varchar(64) DEFAULT NULL,
  `qos` tinyint(1) DEFAULT NULL,
  `payload` blob,
  `arrived` timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (`id`),
  UNIQUE KEY `mqtt_retain_key` (`topic`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS `mqtt_acked` (
  `id` bigint unsigned NOT NULL AUTO_INCREMENT,
  `clientid` varchar(64) DEFAULT NULL,
  `topic` varchar(180) DEFAULT NULL,
  `mid` bigint unsigned DEFAULT NULL,
  `created` timestamp(3) NULL DEFAULT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `mqtt_acked_key` (`clientid`,`topic`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS `mqtt_msg_lock` (
  `id` tinyint unsigned NOT NULL,
  PRIMARY KEY (`id`)
) ENGINE=InnoDB;

INSERT IGNORE INTO `mqtt_msg_lock` (`id`) VALUES (1);

CREATE UNIQUE INDEX mqtt_msg_msgid_key ON mqtt_msg (msgid);
CREATE INDEX mqtt_msg_topic_id_idx ON mqtt_msg (topic, id);
CREATE INDEX mqtt_msg_arrived_idx ON mqtt_msg (arrived);
