# Apache Cassandra 5.0 on 127.0.0.1:9042: the real server (cassandra-all and its dependencies from
# Maven Central, run with CassandraDaemon on Java 17), one node, 1 GiB heap, no auth. Its jars are
# cached in $MQTTSTORE_CACHE_DIR; its data lives in $MQTTSTORE_SERVICES_DIR/cassandra.

cassandra_conf=$(cd "$(dirname "${BASH_SOURCE[0]}")/cassandra" && pwd)

cassandra_version() { sed -n 's:.*<cassandra.version>\(.*\)</cassandra.version>.*:\1:p' "$cassandra_conf/pom.xml"; }

# cassandra_java: a Java 17 (Cassandra 5.0 runs on 11 and 17, not on newer ones).
cassandra_java() {
  local j
  for j in "${MQTTSTORE_CASSANDRA_JAVA:-}" /usr/lib/jvm/java-17-openjdk-*/bin/java; do
    [ -n "$j" ] && [ -x "$j" ] && { echo "$j"; return 0; }
  done
  return 1
}

# cassandra_lib: the directory of the server's jars, fetched from Maven Central once.
cassandra_lib() {
  local lib; lib=$MQTTSTORE_CACHE_DIR/cassandra-$(cassandra_version)/lib
  if [ ! -f "$lib/.complete" ]; then
    command -v mvn >/dev/null || apt_install maven
    log "cassandra: fetching cassandra-all $(cassandra_version) and its dependencies from Maven Central"
    rm -rf "$lib"
    mvn -q -B -Dstyle.color=never -f "$cassandra_conf/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$lib" >&2
    touch "$lib/.complete"
  fi
  echo "$lib"
}

cassandra_up() {
  local dir=$MQTTSTORE_SERVICES_DIR/cassandra java lib opts
  go_tool roundtrip >/dev/null
  pid_alive "$dir/pid" && return 0 # started, not ready yet
  cassandra_java >/dev/null || apt_install openjdk-17-jre-headless
  java=$(cassandra_java) lib=$(cassandra_lib)
  mkdir -p "$dir/triggers"
  mapfile -t opts < <(grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$cassandra_conf/jvm.options")
  daemon cassandra "$dir/pid" "$java" "${opts[@]}" \
    -javaagent:"$(ls "$lib"/jamm-*.jar)" \
    -Dcassandra.config="file://$cassandra_conf/cassandra.yaml" \
    -Dlogback.configurationFile="$cassandra_conf/logback.xml" \
    -Dcassandra.storagedir="$dir" -Dcassandra.logdir="$MQTTSTORE_SERVICES_DIR/log" \
    -Dcassandra.triggers_dir="$dir/triggers" -Dcassandra-foreground=yes \
    -cp "$lib/*" org.apache.cassandra.service.CassandraDaemon
}

cassandra_down() { stop_pid "$MQTTSTORE_SERVICES_DIR/cassandra/pid"; }

cassandra_ready() { "$MQTTSTORE_CACHE_DIR/bin/roundtrip" cassandra 127.0.0.1:9042; }

cassandra_env() {
  echo "export MQTTSTORE_CASSANDRA_HOSTS=127.0.0.1"
  echo "export MQTTSTORE_CASSANDRA_PORT=9042"
}
