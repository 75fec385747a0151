# Sourced by the image scripts and the container tests: podman with the settings these machines need (see
# packaging/podman/containers.conf). The flags repeat the file so that a caller's own CONTAINERS_CONF cannot
# drop them; `podman kube play` reads only the file.
# shellcheck shell=bash
export CONTAINERS_CONF=${CONTAINERS_CONF:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/packaging/podman/containers.conf}
PODMAN=(podman --runtime runc --cgroup-manager cgroupfs)
# For `podman run` and `podman build`.
PODMAN_RUN_FLAGS=(--network host --ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
