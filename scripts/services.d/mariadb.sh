# MariaDB (Debian's) on 127.0.0.1:3306 for the MySQL protocol: its own datadir under
# $MQTTSTORE_SERVICES_DIR/mariadb, user mqttstore (password public) with all privileges, so tests
# can create their own databases. Durability is relaxed: test data need not survive a crash.

mariadb_dir() { echo "$MQTTSTORE_SERVICES_DIR/mariadb"; }

mariadb_packages() { echo mariadb-server mariadb-client; }

mariadb_up() {
  apt_install $(mariadb_packages)
  local dir cnf
  dir=$(mariadb_dir) cnf=$(mariadb_dir)/my.cnf
  pid_alive "$dir/mariadb.pid" && return 0
  mkdir -p "$dir"
  cat >"$cnf" <<EOF
[mysqld]
user = mysql
datadir = $dir/data
socket = $dir/mysqld.sock
pid-file = $dir/data/mysqld.pid
port = 3306
bind-address = 127.0.0.1
skip-name-resolve
character-set-server = utf8mb4
collation-server = utf8mb4_general_ci
max_connections = 300
performance_schema = OFF
innodb_buffer_pool_size = 64M
innodb_log_file_size = 48M
innodb_flush_log_at_trx_commit = 0
innodb_doublewrite = 0
innodb_flush_method = nosync
[client]
socket = $dir/mysqld.sock
EOF
  chown mysql:mysql "$dir"
  if [ ! -d "$dir/data/mysql" ]; then
    rm -rf "$dir/data"
    mariadb-install-db --defaults-file="$cnf" --skip-test-db \
      --auth-root-authentication-method=socket >>"$MQTTSTORE_SERVICES_DIR/log/mariadb.log" 2>&1
  fi
  daemon mariadb "$dir/mariadb.pid" /usr/sbin/mariadbd --defaults-file="$cnf"
  retry 300 mariadb-admin --defaults-file="$cnf" -u root --connect-timeout=2 ping >/dev/null 2>&1
  mariadb --defaults-file="$cnf" -u root <<'EOF'
CREATE USER IF NOT EXISTS 'mqttstore'@'127.0.0.1' IDENTIFIED BY 'public';
CREATE USER IF NOT EXISTS 'mqttstore'@'localhost' IDENTIFIED BY 'public';
GRANT ALL PRIVILEGES ON *.* TO 'mqttstore'@'127.0.0.1' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO 'mqttstore'@'localhost' WITH GRANT OPTION;
CREATE DATABASE IF NOT EXISTS mqttstore;
EOF
}

mariadb_down() { stop_pid "$(mariadb_dir)/mariadb.pid"; }

mariadb_ready() {
  local v; v=$(rand_token)
  mariadb --no-defaults --protocol=tcp -h 127.0.0.1 -P 3306 -u mqttstore -ppublic \
    --connect-timeout=2 -N -B -e "
      CREATE TABLE IF NOT EXISTS mqttstore.ready (id INT PRIMARY KEY, v VARCHAR(64));
      REPLACE INTO mqttstore.ready VALUES (1, '$v');
      SELECT v FROM mqttstore.ready WHERE id = 1" | grep -qx "$v"
}

mariadb_env() {
  echo "export MQTTSTORE_MYSQL_DSN='mqttstore:public@tcp(127.0.0.1:3306)/'"
}
