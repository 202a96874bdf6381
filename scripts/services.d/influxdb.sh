# InfluxDB 1.x (Debian's) with HTTP on 127.0.0.1:8086 (auth off) and the UDP line-protocol listener
# of the spec on 127.0.0.1:8089: database "emqx", precision "ms". The listener is bound to that one
# database, so UDP tests share it and must use their own measurement names. batch-timeout is
# shorter than InfluxDB's 1s default so UDP points show up quickly.

influxdb_dir() { echo "$MQTTSTORE_SERVICES_DIR/influxdb"; }

influxdb_packages() { echo influxdb curl; }

influxdb_up() {
  apt_install $(influxdb_packages)
  local dir; dir=$(influxdb_dir)
  pid_alive "$dir/influxd.pid" && return 0
  mkdir -p "$dir"
  cat >"$dir/influxdb.conf" <<EOF
reporting-disabled = true
bind-address = "127.0.0.1:8088"
[meta]
  dir = "$dir/meta"
[data]
  dir = "$dir/data"
  wal-dir = "$dir/wal"
  query-log-enabled = false
  cache-max-memory-size = "256m"
[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:8086"
  auth-enabled = false
  log-enabled = false
[[udp]]
  enabled = true
  bind-address = "127.0.0.1:8089"
  database = "emqx"
  precision = "ms"
  batch-size = 1000
  batch-pending = 5
  batch-timeout = "100ms"
  read-buffer = 0
[continuous_queries]
  enabled = false
[subscriber]
  enabled = false
EOF
  daemon influxdb "$dir/influxd.pid" influxd run -config "$dir/influxdb.conf"
}

influxdb_down() { stop_pid "$(influxdb_dir)/influxd.pid"; }

# influxdb_query DB Q: run an InfluxQL statement over HTTP.
influxdb_query() {
  curl -sf --max-time 3 -XPOST http://127.0.0.1:8086/query --data-urlencode "db=$1" \
    --data-urlencode "q=$2"
}

# Ready: a point written over HTTP and one sent over UDP are both read back over HTTP.
influxdb_ready() {
  local v t; v=$(rand_token) t=$(date +%s%3N)
  influxdb_query "" 'CREATE DATABASE mqttstore_ready' >/dev/null || return 1
  curl -sf --max-time 3 -XPOST 'http://127.0.0.1:8086/write?db=mqttstore_ready' \
    --data-binary "mqttstore_ready,v=$v value=1" || return 1
  influxdb_has mqttstore_ready "$v" || return 1
  printf 'mqttstore_ready,v=%s value=1 %s\n' "$v" "$t" >/dev/udp/127.0.0.1/8089 || return 1
  retry 25 influxdb_has emqx "$v"
}

# influxdb_has DB V: measurement mqttstore_ready of DB has a point tagged v=V.
influxdb_has() {
  influxdb_query "$1" "SELECT value FROM mqttstore_ready WHERE v = '$2'" | grep -q '"values"'
}

influxdb_env() {
  echo "export MQTTSTORE_INFLUXDB_URL=http://127.0.0.1:8086"
  echo "export MQTTSTORE_INFLUXDB_UDP_ADDR=127.0.0.1:8089"
  echo "export MQTTSTORE_INFLUXDB_UDP_DATABASE=emqx"
}
