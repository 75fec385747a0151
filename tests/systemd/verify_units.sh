#!/usr/bin/env bash
# Runs `systemd-analyze verify` on every unit in systemd/ and fails on any message at all: verify exits 0
# even for unknown keys, so its output is the real verdict. Fails (never skips) when the tool is missing.
# Usage: verify_units.sh <source dir> <built etcd-sidecar binary>
set -euo pipefail
src=$1
binary=$(realpath "$2")

if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "FAIL: systemd-analyze not found; install the 'systemd' package (scripts/install-deps.sh does)" >&2
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# verify checks that ExecStart's program exists; on a build machine /usr/bin/etcd-sidecar usually does not,
# so the copies point at the built binary. Everything else is verified as shipped.
verify() {  # <unit file or instance path> -> prints messages
  systemd-analyze verify --man=no "$1" 2>&1 || echo "systemd-analyze exited $?"
}
target_of() {  # a template is verified through an instance of it
  local unit=$1 name
  name=$(basename "$unit")
  if [[ $name == *@.service ]]; then echo "$(dirname "$unit")/${name%@.service}@verify.service"; else echo "$unit"; fi
}

# Self-test: a unit with an unknown key must produce a message, or an empty output proves nothing.
printf '[Service]\nExecStart=%s\nNoSuchKey=1\n' "$binary" >"$tmp/selftest-broken.service"
if [[ -z $(verify "$tmp/selftest-broken.service") ]]; then
  echo "FAIL: systemd-analyze verify did not report an unknown key; this check would not catch mistakes" >&2
  exit 1
fi
rm "$tmp/selftest-broken.service"

failed=0
count=0
for unit in "$src"/systemd/*.service; do
  copy="$tmp/$(basename "$unit")"
  sed "s|/usr/bin/etcd-sidecar|$binary|g" "$unit" >"$copy"
  out=$(verify "$(target_of "$copy")")
  count=$((count + 1))
  if [[ -n $out ]]; then
    echo "FAIL: $(basename "$unit"):" >&2
    echo "$out" >&2
    failed=1
  else
    echo "ok: $(basename "$unit")"
  fi
done
if ((count < 2)); then
  echo "FAIL: expected etcd-sidecar.service and etcd-sidecar@.service in $src/systemd, found $count unit(s)" >&2
  exit 1
fi
exit $failed
