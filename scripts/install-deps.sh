#!/usr/bin/env bash
# Installs the Debian 12 packages that building and testing etcd-sidecar needs.
# Idempotent: when every package is already installed it does nothing (no apt-get update, no root needed).
set -euo pipefail

readonly PACKAGES=(
  build-essential
  cmake
  pkg-config
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
  # `make fuzz`: clang with libFuzzer. On Debian 12 libclang_rt.fuzzer-x86_64.a is in libclang-rt-14-dev
  # (clang 14 is the default clang), not in clang itself.
  clang
  libclang-rt-14-dev
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  if [[ "$status" != "installed" ]]; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#PACKAGES[@]} packages already installed"
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
