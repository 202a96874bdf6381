# DynamoDB API on 127.0.0.1:8000, in memory: dynalite (npm). DynamoDB Local (Maven Central) is
# served under its vendor's licence, not an open-source one, so the project does not use it.
# Tables switch state at once (no CREATING/DELETING delay), which keeps tests quick.

dynamodb_dynalite_version=4.0.0

dynamodb_up() {
  local dir=$MQTTSTORE_SERVICES_DIR/dynamodb pkg=$MQTTSTORE_CACHE_DIR/dynalite-$dynamodb_dynalite_version
  go_tool roundtrip >/dev/null
  pid_alive "$dir/pid" && return 0
  command -v node >/dev/null || apt_install nodejs npm
  if [ ! -f "$pkg/.complete" ]; then
    log "dynamodb: installing dynalite $dynamodb_dynalite_version from npm"
    rm -rf "$pkg"
    npm install --prefix "$pkg" --no-audit --no-fund --loglevel=error "dynalite@$dynamodb_dynalite_version" >&2
    touch "$pkg/.complete"
  fi
  mkdir -p "$dir"
  daemon dynamodb "$dir/pid" node "$pkg/node_modules/dynalite/cli.js" --host 127.0.0.1 --port 8000 \
    --createTableMs 0 --deleteTableMs 0 --updateTableMs 0
}

dynamodb_down() { stop_pid "$MQTTSTORE_SERVICES_DIR/dynamodb/pid"; }

dynamodb_ready() { "$MQTTSTORE_CACHE_DIR/bin/roundtrip" dynamodb http://127.0.0.1:8000; }

dynamodb_env() {
  echo "export MQTTSTORE_DYNAMODB_ENDPOINT=http://127.0.0.1:8000"
  echo "export MQTTSTORE_DYNAMODB_REGION=us-east-1"
}
