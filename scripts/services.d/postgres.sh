# PostgreSQL (Debian's) on 127.0.0.1:5432: its own cluster under $MQTTSTORE_SERVICES_DIR/postgres,
# trust authentication on loopback, superuser mqttstore (password public), database mqttstore.
# fsync is off: test data need not survive a crash.
#
# TimescaleDB is not packaged by Debian 12 nor served by the other registries, so there is no
# timescale service: MQTTSTORE_TIMESCALE_URL points at this plain PostgreSQL.

postgres_dir() { echo "$MQTTSTORE_SERVICES_DIR/postgres"; }
postgres_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1; }
postgres_url() { echo "postgres://mqttstore:public@127.0.0.1:5432/mqttstore?sslmode=disable"; }

postgres_packages() { echo postgresql; }

postgres_up() {
  apt_install $(postgres_packages)
  local dir bin data logf
  dir=$(postgres_dir) bin=$(postgres_bin) data=$(postgres_dir)/data
  logf=$MQTTSTORE_SERVICES_DIR/log/postgres.log
  [ -n "$bin" ] || { log "postgres: no /usr/lib/postgresql/*/bin"; return 1; }
  mkdir -p "$dir" && chown postgres:postgres "$dir" && touch "$logf" && chown postgres "$logf"
  if [ ! -f "$data/PG_VERSION" ]; then
    rm -rf "$data"
    runuser -u postgres -- "$bin/initdb" -D "$data" -U postgres -A trust -E UTF8 --no-locale \
      --no-sync >>"$logf"
    cat >>"$data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = 5432
unix_socket_directories = '$dir'
max_connections = 200
shared_buffers = 64MB
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
  fi
  # pg_ctl detaches the server (setsid) and waits until it accepts connections.
  if ! runuser -u postgres -- "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    runuser -u postgres -- "$bin/pg_ctl" -D "$data" -l "$logf" -w -t 120 start >>"$logf"
  fi
  psql -h "$dir" -p 5432 -U postgres -d postgres -v ON_ERROR_STOP=1 -q >>"$logf" <<'EOF'
SELECT 'CREATE ROLE mqttstore LOGIN SUPERUSER PASSWORD ''public'''
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'mqttstore') \gexec
SELECT 'CREATE DATABASE mqttstore OWNER mqttstore'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'mqttstore') \gexec
EOF
}

postgres_down() {
  local bin data
  bin=$(postgres_bin) data=$(postgres_dir)/data
  [ -n "$bin" ] && [ -f "$data/postmaster.pid" ] || return 0
  runuser -u postgres -- "$bin/pg_ctl" -D "$data" -m fast -w stop >&2 || true
}

postgres_ready() {
  local v; v=$(rand_token)
  PGCONNECT_TIMEOUT=2 psql "$(postgres_url)" -X -q -A -t -v ON_ERROR_STOP=1 \
    -c "CREATE TEMP TABLE ready (v text); INSERT INTO ready VALUES ('$v'); SELECT v FROM ready" |
    grep -qx "$v"
}

postgres_env() {
  echo "export MQTTSTORE_POSTGRES_URL='$(postgres_url)'"
  echo "export MQTTSTORE_TIMESCALE_URL='$(postgres_url)'"
}
