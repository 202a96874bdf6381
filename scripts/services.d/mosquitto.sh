# Mosquitto (Debian's) on 127.0.0.1:1883: anonymous access, no persistence, its own config.

mosquitto_dir() { echo "$MQTTSTORE_SERVICES_DIR/mosquitto"; }

mosquitto_packages() { echo mosquitto mosquitto-clients; }

mosquitto_up() {
  apt_install $(mosquitto_packages)
  local dir; dir=$(mosquitto_dir)
  pid_alive "$dir/mosquitto.pid" && return 0
  mkdir -p "$dir"
  cat >"$dir/mosquitto.conf" <<EOF
listener 1883 127.0.0.1
allow_anonymous true
persistence false
log_dest stderr
log_type error
log_type warning
max_queued_messages 10000
EOF
  daemon mosquitto "$dir/mosquitto.pid" mosquitto -c "$dir/mosquitto.conf"
}

mosquitto_down() { stop_pid "$(mosquitto_dir)/mosquitto.pid"; }

# Ready: a retained message published at QoS 1 is delivered to a new subscriber.
mosquitto_ready() {
  local v; v=$(rand_token)
  mosquitto_pub -h 127.0.0.1 -p 1883 -q 1 -r -t mqttstore/ready -m "$v" || return 1
  [ "$(mosquitto_sub -h 127.0.0.1 -p 1883 -t mqttstore/ready -C 1 -W 3)" = "$v" ]
}

mosquitto_env() { echo "export MQTTSTORE_MQTT_ADDR=127.0.0.1:1883"; }
