#!/usr/bin/env bash
# Installs the Debian 12 packages that building and testing etcd-sidecar needs.
# Idempotent: when every package is already installed it does nothing (no apt-get update, no root needed).
set -euo pipefail

readonly PACKAGES=(
  build-essential
  cmake
  pkg-config
  # Compiler cache: `make` uses it when present, so a second build of the same sources (another clone,
  # the sanitizer and fuzz builds of unchanged files) takes minutes instead of a quarter of an hour.
  ccache
  # Asio and Beast are header-only; Boost.System is header-only since 1.69, so no libboost-system-dev.
  libboost-dev
  libgrpc++-dev
  protobuf-compiler-grpc
  libprotobuf-dev
  protobuf-compiler
  libspdlog-dev
  libyaml-cpp-dev
  libcli11-dev
  nlohmann-json3-dev
  libkainjow-mustache-dev
  libgtest-dev
  libgmock-dev
  # Tests start their own etcd on free loopback ports from these binaries. If the package's own service
  # starts on :2379 at install time, nothing here uses it.
  etcd-server
  etcd-client
  # `systemd-analyze verify` checks the shipped units (tests/systemd/verify_units.sh); no systemd needs to run.
  systemd
  # tests/packaging/deb_test.sh checks the built .deb with lintian (no errors, no warning without an override).
  lintian
  # The TLS tests generate their CA, server and client certificates with the openssl command.
  openssl
  # `make fuzz`: clang with libFuzzer. On Debian 12 libclang_rt.fuzzer-x86_64.a is in libclang-rt-14-dev
  # (clang 14 is the default clang), not in clang itself.
  clang
  libclang-rt-14-dev
  # Container image (`make image`, the `container` test label): podman builds and runs it as root with runc
  # (crun refuses the machine's hybrid cgroups; packaging/podman/containers.conf); catatonit is the pause
  # process of `podman kube play`'s pods; debootstrap makes the Debian 12 base (no registry to pull from).
  podman
  buildah
  runc
  catatonit
  debootstrap
  # The container tests probe /livez and /readyz and look for free ports.
  curl
  iproute2
  # The DNS front-end encodes and decodes DNS messages with libknot (Knot DNS's wire library). Tests ask it
  # with dig and kdig; `make bench` loads it with dnsperf next to knotd serving the same records.
  libknot-dev
  knot
  dnsperf
  dnsutils
  knot-dnsutils
)

# The interop test runs a real app on the `etcd3` npm library. A machine that already has node and npm
# (e.g. from NodeSource) keeps them; otherwise Debian's packages provide them.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  PACKAGES+=(nodejs npm)
fi

# npm packages of the interop test app, pinned by its package-lock.json. No install scripts run.
install_npm_deps() {
  local app
  app="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/interop/etcd3-node"
  if [[ -d "$app/node_modules/etcd3" && "$app/node_modules/.package-lock.json" -nt "$app/package-lock.json" ]]; then
    return 0
  fi
  echo "install-deps: npm ci in $app"
  (cd "$app" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
}

missing=()
for pkg in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  if [[ "$status" != "installed" ]]; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#PACKAGES[@]} packages already installed"
  install_npm_deps
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
if [[ "$(id -u)" -eq 0 ]]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  echo "install-deps: missing packages and not root; passwordless sudo is not available either." >&2
  echo "install-deps: run as root: apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi

# env rather than export: sudo drops the caller's environment.
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y --no-install-recommends "${missing[@]}"
install_npm_deps
