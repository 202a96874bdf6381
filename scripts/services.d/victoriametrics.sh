# VictoriaMetrics (Debian's victoria-metrics) as the OpenTSDB-protocol server: OpenTSDB HTTP
# /api/put on 127.0.0.1:4242, its own HTTP API (/api/v1/export, /api/v1/query, ...) on
# 127.0.0.1:8428 for reading back. Retention is the maximum, so points with old timestamps are
# kept; -search.latencyOffset=0s makes fresh points visible to queries (/internal/force_flush
# makes them visible at once).

victoriametrics_dir() { echo "$MQTTSTORE_SERVICES_DIR/victoriametrics"; }

victoriametrics_packages() { echo victoria-metrics curl; }

victoriametrics_up() {
  apt_install $(victoriametrics_packages)
  local dir; dir=$(victoriametrics_dir)
  pid_alive "$dir/victoria-metrics.pid" && return 0
  mkdir -p "$dir"
  daemon victoriametrics "$dir/victoria-metrics.pid" victoria-metrics \
    -storageDataPath="$dir/data" -retentionPeriod=100y \
    -httpListenAddr=127.0.0.1:8428 -opentsdbHTTPListenAddr=127.0.0.1:4242 \
    -search.latencyOffset=0s -memory.allowedBytes=256MiB -loggerLevel=WARN
}

victoriametrics_down() { stop_pid "$(victoriametrics_dir)/victoria-metrics.pid"; }

# Ready: a point put through the OpenTSDB listener is exported back by the HTTP API.
victoriametrics_ready() {
  local v t; v=$RANDOM$RANDOM t=$(date +%s%3N)
  curl -sf --max-time 3 -XPOST http://127.0.0.1:4242/api/put -H 'Content-Type: application/json' \
    --data-binary "{\"metric\":\"mqttstore.ready\",\"timestamp\":$t,\"value\":$v,\"tags\":{\"check\":\"ready\"}}" ||
    return 1
  retry 25 victoriametrics_has "$v"
}

# victoriametrics_has V: the series mqttstore.ready has the value V.
victoriametrics_has() {
  curl -sf --max-time 3 http://127.0.0.1:8428/internal/force_flush >/dev/null &&
    curl -sf --max-time 3 http://127.0.0.1:8428/api/v1/export \
      --data-urlencode 'match[]={__name__="mqttstore.ready"}' | grep -q "[[,]$1[],]"
}

victoriametrics_env() {
  echo "export MQTTSTORE_OPENTSDB_URL=http://127.0.0.1:4242"
  echo "export MQTTSTORE_VICTORIAMETRICS_URL=http://127.0.0.1:8428"
}
