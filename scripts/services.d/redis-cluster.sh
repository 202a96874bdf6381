# A Redis cluster of three masters (no replicas) on 127.0.0.1:7000-7002. The cluster layout lives
# in each node's nodes.conf, so after `down` the nodes rejoin by themselves on `up`.

redis_cluster_ports() { echo 7000 7001 7002; }

redis_cluster_packages() { redis_packages; }

redis_cluster_up() {
  apt_install $(redis_packages)
  local p nodes=()
  for p in $(redis_cluster_ports); do
    redis_instance "redis-cluster/$p" "$p" --cluster-enabled yes --cluster-config-file nodes.conf \
      --cluster-node-timeout 5000
    nodes+=("127.0.0.1:$p")
  done
  retry 50 redis-cli -h 127.0.0.1 -p 7000 PING >/dev/null 2>&1
  if redis-cli -h 127.0.0.1 -p 7000 CLUSTER INFO | grep -q '^cluster_slots_assigned:0'; then
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes \
      >>"$MQTTSTORE_SERVICES_DIR/log/redis-cluster.log" 2>&1
  fi
}

redis_cluster_down() {
  local p
  for p in $(redis_cluster_ports); do stop_pid "$MQTTSTORE_SERVICES_DIR/redis-cluster/$p/redis.pid"; done
}

# Ready: every node sees the cluster as ok, and keys in different slots are written and read.
redis_cluster_ready() {
  local p
  for p in $(redis_cluster_ports); do
    redis-cli -h 127.0.0.1 -p "$p" CLUSTER INFO | grep -q '^cluster_state:ok' || return 1
  done
  for p in $(redis_cluster_ports); do redis_roundtrip "$p" -c || return 1; done
}

redis_cluster_env() {
  echo "export MQTTSTORE_REDIS_CLUSTER_ADDRS=127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002"
}
