# Redis (Debian's) on 127.0.0.1:6379, no persistence. Its helpers also start the instances of
# redis-cluster and redis-sentinel.

redis_packages() { echo redis-server redis-tools; }

# redis_instance NAME PORT [ARG...]: start a redis-server on PORT with its files under
# $MQTTSTORE_SERVICES_DIR/NAME, daemonized, no persistence (nodes.conf of a cluster excepted).
redis_instance() {
  local name=$1 port=$2; shift 2
  local dir=$MQTTSTORE_SERVICES_DIR/$name
  pid_alive "$dir/redis.pid" && return 0
  mkdir -p "$dir"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --daemonize yes \
    --pidfile "$dir/redis.pid" --logfile "$MQTTSTORE_SERVICES_DIR/log/${name//\//-}.log" \
    --save '' --appendonly no "$@"
}

# redis_roundtrip PORT [-c]: SET a fresh value and GET it back.
redis_roundtrip() {
  local v; v=$(rand_token)
  [ "$(redis-cli -h 127.0.0.1 -p "$1" ${2:-} SET "mqttstore:ready:$v" "$v" EX 60)" = OK ] &&
    [ "$(redis-cli -h 127.0.0.1 -p "$1" ${2:-} GET "mqttstore:ready:$v")" = "$v" ]
}

redis_up() {
  apt_install $(redis_packages)
  redis_instance redis 6379
}

redis_down() { stop_pid "$MQTTSTORE_SERVICES_DIR/redis/redis.pid"; }

redis_ready() { redis_roundtrip 6379; }

redis_env() { echo "export MQTTSTORE_REDIS_ADDR=127.0.0.1:6379"; }
