// Package redisstore is the Redis backend (go-redis v9): single server, Sentinel or Cluster.
package redisstore
