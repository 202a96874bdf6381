# Redis with Sentinel: master on 127.0.0.1:6380, its replica on 6381, one sentinel on 26379
# monitoring them as `mymaster` (quorum 1). Every `up` starts from this layout again.

redis_sentinel_dir() { echo "$MQTTSTORE_SERVICES_DIR/redis-sentinel"; }

redis_sentinel_packages() { redis_packages; }

redis_sentinel_up() {
  apt_install $(redis_packages)
  local dir; dir=$(redis_sentinel_dir)
  # Full resyncs start at once rather than after the default 5s wait for more replicas.
  redis_instance redis-sentinel/master 6380 --repl-diskless-sync-delay 0
  redis_instance redis-sentinel/replica 6381 --replicaof 127.0.0.1 6380
  pid_alive "$dir/sentinel.pid" && return 0
  # Sentinel rewrites its config file, so it gets a fresh one each start.
  cat >"$dir/sentinel.conf" <<EOF
port 26379
bind 127.0.0.1
daemonize yes
pidfile $dir/sentinel.pid
logfile $MQTTSTORE_SERVICES_DIR/log/redis-sentinel.log
dir $dir
sentinel monitor mymaster 127.0.0.1 6380 1
sentinel known-replica mymaster 127.0.0.1 6381
sentinel down-after-milliseconds mymaster 5000
sentinel failover-timeout mymaster 10000
sentinel parallel-syncs mymaster 1
EOF
  redis-server "$dir/sentinel.conf" --sentinel
}

redis_sentinel_down() {
  local dir; dir=$(redis_sentinel_dir)
  stop_pid "$dir/sentinel.pid"
  stop_pid "$dir/replica/redis.pid"
  stop_pid "$dir/master/redis.pid"
}

# Ready: the sentinel names the master and knows a replica, and a write on the master is read
# back from the replica.
redis_sentinel_ready() {
  [ "$(redis-cli -h 127.0.0.1 -p 26379 SENTINEL get-master-addr-by-name mymaster | tr '\n' ' ')" = \
    "127.0.0.1 6380 " ] || return 1
  redis-cli -h 127.0.0.1 -p 26379 SENTINEL replicas mymaster | grep -qx 6381 || return 1
  local v; v=$(rand_token)
  [ "$(redis-cli -h 127.0.0.1 -p 6380 SET "mqttstore:ready:$v" "$v" EX 60)" = OK ] || return 1
  retry 25 redis_sentinel_replicated "$v"
}

redis_sentinel_replicated() { [ "$(redis-cli -h 127.0.0.1 -p 6381 GET "mqttstore:ready:$1")" = "$1" ]; }

redis_sentinel_env() {
  echo "export MQTTSTORE_REDIS_SENTINEL_ADDRS=127.0.0.1:26379"
  echo "export MQTTSTORE_REDIS_SENTINEL_MASTER=mymaster"
}
