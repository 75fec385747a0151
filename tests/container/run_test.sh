#!/usr/bin/env bash
# The image, run the way the README shows: against a real etcd on the host's loopback (started here on free
# ports, in a temp dir of its own), the manifest mounted read-only, the output directory mounted read-write,
# as the image's non-root user, on a read-only root file system. It must register its service, write the
# discovered file, answer /livez and /readyz with 200, and on `podman stop` deregister within 1 s of the
# SIGTERM (3 s of issuing the stop) and exit 0.
# Fails (never skips) when podman cannot run.
# Usage: run_test.sh <source dir> <image> <etcd binary> <etcdctl binary>
set -euo pipefail
src=$1 image=$2 ETCD=$3 ETCDCTL=$4
# shellcheck source=../../scripts/podman-env.sh
source "$src/scripts/podman-env.sh"
# shellcheck source=lib.sh
source "$src/tests/container/lib.sh"

require_podman
require_image "$image"

tmp=$(mktemp -d)
name=etcd-sidecar-run-test-$$-$RANDOM
created=0
cleanup() {
  if ((created)); then
    "${PODMAN[@]}" logs "$name" >"$tmp/container.log" 2>&1 || true
    "${PODMAN[@]}" rm -f -t 0 "$name" >/dev/null 2>&1 || true
  fi
  stop_etcd
  rm -rf "$tmp"
}
trap cleanup EXIT
dump() { note "--- container log"; "${PODMAN[@]}" logs "$name" 2>&1 | tail -30 >&2 || true; }

start_etcd "$tmp"
admin_port=$(free_port)

# Another instance already in etcd, for the agent to discover (the NestJS etcd3 value shape).
etcdctl put /services/order-service/o1 '{"address":"10.1.2.3","port":9090}' >/dev/null

mkdir -p "$tmp/conf" "$tmp/out"
cat >"$tmp/conf/manifest.yaml" <<EOF
etcd:
  endpoints: ["$ETCD_ENDPOINT"]
lease:
  ttl: 10s
services:
  - name: web
    id: container-1
    address: 127.0.0.1
    port: 8080
    metadata: {image: "$image"}
discover:
  - service: order-service
    output: /out/order-service.json
    format: json
admin:
  listen: "127.0.0.1:$admin_port"
EOF
chmod 0644 "$tmp/conf/manifest.yaml"
# The agent runs as the image's uid 10001 (no user namespace: the same uid on the host).
chown 10001:10001 "$tmp/out"

# The line the README shows (with the test's paths and names).
"${PODMAN[@]}" run -d --name "$name" "${PODMAN_RUN_FLAGS[@]}" --read-only \
  -v "$tmp/conf/manifest.yaml:/etc/etcd-sidecar/manifest.yaml:ro" -v "$tmp/out:/out" \
  "$image" >"$tmp/id" 2>"$tmp/run.err" || { cat "$tmp/run.err" >&2; fail "podman run"; }
created=1
note "started container $name ($(cut -c1-12 "$tmp/id")) from $image"

# Not root: the process's uid as the host sees it.
pid=$("${PODMAN[@]}" inspect --format '{{.State.Pid}}' "$name")
[[ $pid =~ ^[0-9]+$ && $pid -gt 0 ]] || { dump; fail "container is not running (pid '$pid')"; }
uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")
[[ $uid == 10001 ]] || fail "the agent runs as uid $uid, not the image's 10001"

key=/services/web/container-1
wait_until 15000 key_present "$key" || { dump; fail "$key not registered within 15 s"; }
value=$(key_value "$key")
for field in '"name":"web"' '"id":"container-1"' '"address":"127.0.0.1"' '"port":8080' "\"image\":\"$image\""; do
  [[ $value == *"$field"* ]] || fail "registered value lacks $field: $value"
done
note "registered: $key = $value"

file=$tmp/out/order-service.json
wait_until 10000 grep -q '"10.1.2.3"' "$file" || { dump; fail "$file not written with the discovered instance"; }
grep -q '"port": *9090' "$file" || fail "$file lacks port 9090: $(cat "$file")"
[[ $(stat -c %u "$file") == 10001 ]] || fail "$file is not owned by uid 10001"
note "discovered: $(tr -d '\n ' <"$file")"

wait_until 5000 http_200 "http://127.0.0.1:$admin_port/livez" || { dump; fail "/livez did not answer 200"; }
wait_until 5000 http_200 "http://127.0.0.1:$admin_port/readyz" ||
  { curl -s "http://127.0.0.1:$admin_port/readyz" >&2 || true; dump; fail "/readyz did not answer 200"; }
note "/livez and /readyz: 200"

# Deregistration on `podman stop` (SIGTERM): the key must be gone within 1 s of the signal reaching the agent
# (the lease's TTL is 10 s, so only a revoke does that), and within 3 s of the stop being issued (the rest is
# podman's own latency: ~0.5 s on an idle machine, more under a loaded test run). The stop runs in the
# background while this polls.
t0=$(now_ms)
"${PODMAN[@]}" stop -t 10 "$name" >/dev/null 2>"$tmp/stop.err" &
stopper=$!
gone=0
wait_until 5000 key_absent "$key" && gone=1
t_gone=$(now_ms)
wait "$stopper" || { cat "$tmp/stop.err" >&2; fail "podman stop"; }
((gone)) || { dump; fail "$key still registered 5 s after podman stop"; }
"${PODMAN[@]}" logs "$name" >"$tmp/agent.log" 2>&1
t_term=$(term_ms "$tmp/agent.log") || { dump; fail "the agent did not log the SIGTERM"; }
agent=$((t_gone - t_term)) total=$((t_gone - t0))
note "podman stop: SIGTERM reached the agent after $((t_term - t0)) ms; key gone $agent ms after that ($total ms in all)"
((agent <= 1000)) || { dump; fail "$key deregistered $agent ms after SIGTERM reached the agent (limit 1000 ms)"; }
((total <= 3000)) || fail "$key deregistered $total ms after podman stop was issued (limit 3000 ms)"
code=$("${PODMAN[@]}" inspect --format '{{.State.ExitCode}}' "$name")
[[ $code == 0 ]] || { dump; fail "the agent exited with $code on SIGTERM"; }
echo "ok: $image registers, discovers, answers /livez and /readyz, deregisters $agent ms after SIGTERM" \
  "($total ms after podman stop), exits 0"
