#!/usr/bin/env bash
# Builds an etcd-sidecar container image with podman from an already built tree, on the locally debootstrapped
# Debian 12 base (scripts/image-base.sh; no registry is needed).
#   build-image.sh full    <build dir>  packaging/Dockerfile: the .deb (cpack from <build dir>, the default
#                                       dynamic build) installed on Debian 12 -> etcd-sidecar:<version>
#   build-image.sh minimal <build dir>  packaging/Dockerfile.minimal: <build dir>/etcd-sidecar, which must be
#                                       the static build (SIDECAR_STATIC_DEPS=ON), stripped, on an empty image
#                                       -> etcd-sidecar:<version>-minimal
# Prints the image name on stdout; progress and the image size on stderr. The image this replaces under the
# same tag is removed (only that one, and only when no container uses it), so reruns do not pile up images.
# Needs root.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(dirname "$here")
# shellcheck source=podman-env.sh
source "$here/podman-env.sh"

log() { echo "build-image: $*" >&2; }
die() { echo "build-image: FAIL: $*" >&2; exit 1; }

[[ $# -eq 2 && ($1 == full || $1 == minimal) ]] || die "usage: build-image.sh full|minimal <build dir>"
kind=$1
build=$(realpath "$2")
bin=$build/etcd-sidecar
[[ -x $bin ]] || die "$bin not built"
version=$("$bin" --version | awk '{print $2}')
[[ -n $version ]] || die "$bin --version printed no version"

base=$("$here/image-base.sh")
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
SECONDS=0

case $kind in
  full)
    tag=etcd-sidecar:$version
    dockerfile=$src/packaging/Dockerfile
    # cpack installs the build tree (its `preinstall` step builds what is not built yet) into a .deb.
    (cd "$build" && cpack -G DEB -B "$ctx/cpack" >"$ctx/cpack.log" 2>&1) ||
      { cat "$ctx/cpack.log" >&2; die "cpack in $build"; }
    deb=$(ls "$ctx"/cpack/etcd-sidecar_*.deb) || die "cpack made no .deb"
    cp "$deb" "$ctx/etcd-sidecar.deb"
    # Package names of the Depends (the first of any alternatives, without versions): installed from Debian
    # in a cached layer before the package itself.
    dpkg-deb --field "$deb" Depends | tr ',' '\n' | sed -E 's/\|.*//; s/\(.*\)//; s/^ +//; s/ +$//' |
      grep -v '^$' | sort -u >"$ctx/depends.txt"
    rm -rf "$ctx/cpack" "$ctx/cpack.log"
    ;;
  minimal)
    tag=etcd-sidecar:$version-minimal
    dockerfile=$src/packaging/Dockerfile.minimal
    # An empty image has no dynamic loader and no shared libraries.
    ! readelf -lW "$bin" | grep -q 'Requesting program interpreter' ||
      die "$bin is dynamically linked; the minimal image needs the static build (-DSIDECAR_STATIC_DEPS=ON)"
    strip -o "$ctx/etcd-sidecar" "$bin"
    ;;
esac

old=$("${PODMAN[@]}" image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
log "building $tag from $(basename "$dockerfile") on $base"
# --layers: the base's update/library layer is reused by later builds. --pull=never: there is no registry.
"${PODMAN[@]}" build --layers --pull=never "${PODMAN_RUN_FLAGS[@]}" --build-arg "BASE=$base" \
  -f "$dockerfile" -t "$tag" "$ctx" >"$ctx/build.log" 2>&1 ||
  { cat "$ctx/build.log" >&2; die "podman build $tag"; }
new=$("${PODMAN[@]}" image inspect --format '{{.Id}}' "$tag")
if [[ -n $old && $old != "$new" ]]; then
  "${PODMAN[@]}" image rm "$old" >/dev/null 2>&1 || true
fi
size=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$tag")
log "$tag: $((size / 1000000)) MB ($size bytes), built in ${SECONDS}s"
echo "localhost/$tag"
