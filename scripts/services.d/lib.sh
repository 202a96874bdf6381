# Shared helpers for scripts/services; sourced, not run.

log() { printf '[services %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# wait_ready NAME FUNC [SECONDS]: poll FUNC (a real round trip) until it succeeds.
wait_ready() {
  local name=$1 fn=$2 limit=${3:-${MQTTSTORE_SERVICES_TIMEOUT:-300}} i=0
  local started=$MQTTSTORE_SERVICES_DIR/log/$name.pidfiles
  while ! "$fn" >/dev/null 2>&1; do
    i=$((i + 1))
    # A process that `daemon` started and that has died will not become ready: stop waiting.
    if [ -f "$started" ]; then
      local pf
      while read -r pf; do
        if [ -s "$pf" ] && ! pid_alive "$pf"; then
          log "$name: process of $pf died while starting"
          tail -n 30 "$MQTTSTORE_SERVICES_DIR/log/$name.log" >&2 2>/dev/null || true
          return 1
        fi
      done <"$started"
    fi
    if [ "$i" -ge "$limit" ]; then
      log "$name: not ready after ${limit}s"
      tail -n 30 "$MQTTSTORE_SERVICES_DIR/log/$name.log" >&2 2>/dev/null || true
      return 1
    fi
    sleep 1
  done
}

# apt_install PKG...: install Debian packages that are missing (runs apt-get update once).
apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ ! -f "$MQTTSTORE_SERVICES_DIR/.apt-updated" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq >&2 && touch "$MQTTSTORE_SERVICES_DIR/.apt-updated"
  fi
  # Packages must not start their own daemons: we run them ourselves on our own data dirs.
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  # The lock timeout lets two `up`s (or another apt user) install at once without failing.
  log "apt-get install ${missing[*]}"
  local apt_log=$MQTTSTORE_SERVICES_DIR/log/apt.log
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends "${missing[@]}" >>"$apt_log" 2>&1 || { tail -n 20 "$apt_log" >&2; return 1; }
}

# proc_started_at PID: when PID started, in seconds since the epoch.
proc_started_at() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  set -- ${stat##*) } # the fields after "(comm)": state is $1, starttime (field 22) is ${20}
  echo $(($(awk '/^btime/ {print $2}' /proc/stat) + ${20} / $(getconf CLK_TCK)))
}

# pid_alive FILE: the pid in FILE is a running process, and the one that wrote FILE. After a
# kill -9 the pid can be reused (pid_max is 32768 here); a process that started after FILE
# was written is not ours, and must be neither waited for nor stopped.
pid_alive() {
  [ -s "$1" ] || return 1
  local pid started
  pid=$(cat "$1")
  kill -0 "$pid" 2>/dev/null || return 1
  started=$(proc_started_at "$pid") || return 1
  [ "$started" -le $(($(stat -c %Y "$1") + 2)) ]
}

# stop_pid FILE: stop the process whose pid is in FILE.
stop_pid() {
  local f=$1
  pid_alive "$f" || { rm -f "$f"; return 0; }
  local pid; pid=$(cat "$f")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$f"
}

# daemon NAME PIDFILE CMD...: start CMD detached from this script (own session, no terminal,
# output appended to log/NAME.log) and record its pid in PIDFILE; it outlives `up`.
daemon() {
  local name=$1 pidfile=$2; shift 2
  rm -f "$pidfile"
  grep -qxF "$pidfile" "$MQTTSTORE_SERVICES_DIR/log/$name.pidfiles" 2>/dev/null ||
    echo "$pidfile" >>"$MQTTSTORE_SERVICES_DIR/log/$name.pidfiles"
  setsid sh -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" \
    </dev/null >>"$MQTTSTORE_SERVICES_DIR/log/$name.log" 2>&1 &
  for _ in $(seq 1 50); do [ -s "$pidfile" ] && return 0; sleep 0.1; done
  log "$name: no pid in $pidfile"; return 1
}

# retry N CMD...: run CMD up to N times, 0.2s apart, until it succeeds.
retry() {
  local n=$1; shift
  for _ in $(seq 1 "$n"); do "$@" && return 0; sleep 0.2; done
  return 1
}

# rand_token: a fresh value for readiness round trips.
rand_token() { printf 'r%s%s' "$$" "$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"; }

# Downloaded servers and built tools are kept across runs (outside the repo) in the cache.
MQTTSTORE_CACHE_DIR=${MQTTSTORE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mqttstore}

# go_tool NAME: print the path of the program scripts/tools/NAME (a Go module of its own),
# building it into $MQTTSTORE_CACHE_DIR/bin when missing or built from other sources.
go_tool() {
  local src bin stamp
  src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../tools" && pwd)
  bin=$MQTTSTORE_CACHE_DIR/bin/$1
  stamp=$( (go version && cd "$src" && find . -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) |
    LC_ALL=C sort | xargs cat) | sha256sum | cut -c1-16)
  if [ ! -x "$bin" ] || [ "$(cat "$bin.stamp" 2>/dev/null)" != "$stamp" ]; then
    log "building scripts/tools/$1"
    (cd "$src" && go build -buildvcs=false -o "$bin" "./$1") >&2 || return 1
    echo "$stamp" >"$bin.stamp"
  fi
  echo "$bin"
}
