// Package cassastore is the Cassandra store (EMQX 4.x "Cassandra 消息存储").
package cassastore
