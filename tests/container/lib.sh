# Shared by the container tests (sourced): preconditions that fail loudly, free loopback ports, a throwaway
# etcd on them, and waiting helpers. Every test cleans up only what it started (its etcd by PID, its
# containers and pods by the names it chose).
# shellcheck shell=bash

fail() { echo "FAIL: $*" >&2; exit 1; }
note() { echo "$*" >&2; }
now_ms() { date +%s%3N; }

# A container test never skips: where podman cannot run, it fails and says why.
require_podman() {
  [[ $(id -u) -eq 0 ]] ||
    fail "the container tests run podman as root (no user namespaces on these machines); run them as root"
  for tool in podman curl ss "$ETCD" "$ETCDCTL"; do
    command -v "$tool" >/dev/null || fail "$tool not found (scripts/install-deps.sh installs it)"
  done
  local out
  out=$("${PODMAN[@]}" info --format '{{.Host.OCIRuntime.Name}} {{.Host.CgroupManager}}' 2>&1) ||
    fail "podman cannot run here: $out"
}

# The image under test, built by the container_image_build fixture.
require_image() {
  "${PODMAN[@]}" image exists "$1" || fail "image $1 not built (the container_image fixture builds it)"
}

# A port nothing listens on or connects from; the caller still checks that its server came up on it.
free_port() {
  local port
  for _ in $(seq 1 200); do
    port=$((20000 + RANDOM % 40000))
    if [[ -z $(ss -Htan "( sport = :$port )" 2>/dev/null) && " ${USED_PORTS:-} " != *" $port "* ]]; then
      USED_PORTS="${USED_PORTS:-} $port"
      echo "$port"
      return 0
    fi
  done
  fail "no free port found"
}

# wait_until <timeout ms> <command...>: polls every 20 ms; returns 1 on timeout.
wait_until() {
  local deadline=$(($(now_ms) + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    (($(now_ms) < deadline)) || return 1
    sleep 0.02
  done
}

# start_etcd <dir>: etcd on two free loopback ports; sets ETCD_PID and ETCD_ENDPOINT.
start_etcd() {
  local dir=$1 client peer
  for _ in 1 2 3; do
    client=$(free_port)
    peer=$(free_port)
    "$ETCD" --name container-test --data-dir "$dir/etcd" \
      --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
      --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
      --initial-cluster "container-test=http://127.0.0.1:$peer" >"$dir/etcd.log" 2>&1 &
    ETCD_PID=$!
    ETCD_ENDPOINT=http://127.0.0.1:$client
    if wait_until 10000 etcdctl endpoint health; then
      return 0
    fi
    kill "$ETCD_PID" 2>/dev/null || true
    wait "$ETCD_PID" 2>/dev/null || true
    ETCD_PID=
    rm -rf "$dir/etcd"
  done
  tail -20 "$dir/etcd.log" >&2
  fail "etcd did not start"
}

stop_etcd() {
  if [[ -n ${ETCD_PID:-} ]]; then
    kill "$ETCD_PID" 2>/dev/null || true
    wait "$ETCD_PID" 2>/dev/null || true
    ETCD_PID=
  fi
}

etcdctl() { "$ETCDCTL" --endpoints "$ETCD_ENDPOINT" --dial-timeout 2s --command-timeout 2s "$@"; }
# key_value <key>: the value, empty when the key is absent.
key_value() { etcdctl get --print-value-only "$1"; }
key_present() { local v; v=$(key_value "$1") && [[ -n $v ]]; }
# Absent only on an answer from etcd: a failed etcdctl is not an absence.
key_absent() { local v; v=$(key_value "$1") && [[ -z $v ]]; }
http_200() { [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1") == 200 ]]; }

# term_ms <log file>: when the agent logged that SIGTERM arrived (its JSON log's "ts", ms since the epoch).
# The time podman itself takes to deliver the signal (its start-up, locks, runc) grows with the machine's
# load, so the agent's share is measured from here; the whole stop is bounded separately.
term_ms() {
  local ts
  ts=$(grep -m1 '"msg":"Terminated received' "$1" | sed -E 's/.*"ts":"([^"]+)".*/\1/') || return 1
  [[ -n $ts ]] && date -d "$ts" +%s%3N
}
