# MongoDB wire protocol on 127.0.0.1:27017: FerretDB 1.24 with its SQLite backend, embedded in
# scripts/tools/ferretdb and built with `go build`. Data lives in $MQTTSTORE_SERVICES_DIR/ferretdb.

ferretdb_up() {
  local dir=$MQTTSTORE_SERVICES_DIR/ferretdb bin
  go_tool roundtrip >/dev/null
  bin=$(go_tool ferretdb)
  pid_alive "$dir/pid" && return 0
  mkdir -p "$dir/data"
  daemon ferretdb "$dir/pid" "$bin" -listen 127.0.0.1:27017 -dir "$dir/data"
}

ferretdb_down() { stop_pid "$MQTTSTORE_SERVICES_DIR/ferretdb/pid"; }

ferretdb_ready() { "$MQTTSTORE_CACHE_DIR/bin/roundtrip" mongo mongodb://127.0.0.1:27017/; }

ferretdb_env() { echo "export MQTTSTORE_MONGO_URI=mongodb://127.0.0.1:27017/"; }
