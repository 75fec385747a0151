#!/usr/bin/env bash
# Builds (once) the Debian 12 base image the container images start FROM, and prints its name.
# There is no registry to pull debian:12 from: the root file system comes from `debootstrap --variant=minbase
# bookworm` out of Debian's archive and is turned into an image with `podman import`.
#
# Cached twice, outside any build tree, under a key made of what shapes the image (suite, variant, mirror,
# recipe: bump it when the root file system's preparation below changes), so a rerun or a fresh clone on the
# same machine reuses it:
#   - the image itself, localhost/etcd-sidecar-base:bookworm-<key>, in podman's storage;
#   - the root file system tarball in $SIDECAR_IMAGE_CACHE (default /var/cache/etcd-sidecar-image), so that
#     losing podman's storage costs an import (~15 s), not a debootstrap (~3.5 min).
# Debian's security updates reach the images through `apt-get upgrade` in their first layer (see
# packaging/Dockerfile), not through this cache: refresh the base itself with IMAGE_BASE_REFRESH=1.
# Needs root (debootstrap, podman without a user namespace).
# Usage: image-base.sh   (stdout: the image name; progress goes to stderr)
set -euo pipefail

readonly suite=bookworm variant=minbase recipe=1
# debootstrap's own default mirror unless one is given.
readonly mirror=${DEBOOTSTRAP_MIRROR:-}
cache=${SIDECAR_IMAGE_CACHE:-/var/cache/etcd-sidecar-image}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=podman-env.sh
source "$here/podman-env.sh"

log() { echo "image-base: $*" >&2; }
die() { echo "image-base: FAIL: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "needs root (debootstrap, podman); run as root"
for tool in debootstrap podman; do
  command -v $tool >/dev/null || die "$tool not found (scripts/install-deps.sh installs it)"
done
out=$("${PODMAN[@]}" info --format '{{.Host.OCIRuntime.Name}}' 2>&1) || die "podman cannot run here: $out"

key=$(echo "$suite $variant $mirror $recipe" | sha256sum | cut -c1-12)
image=localhost/etcd-sidecar-base:$suite-$key
# The stable name the Dockerfiles default to (BASE), for a plain `podman build` by hand.
alias=localhost/etcd-sidecar-base:$suite
tarball=$cache/$suite-$variant-$key.tar.gz

mkdir -p "$cache"
# One builder at a time (two test runs on the same machine would otherwise debootstrap twice).
exec 9>"$cache/lock"
flock 9

if [[ ${IMAGE_BASE_REFRESH:-0} == 1 ]]; then
  log "IMAGE_BASE_REFRESH=1: rebuilding $image"
  rm -f "$tarball"
  "${PODMAN[@]}" image rm "$image" >/dev/null 2>&1 || true
fi
if "${PODMAN[@]}" image exists "$image"; then
  log "reusing $image"
  "${PODMAN[@]}" tag "$image" "$alias"
  echo "$image"
  exit 0
fi

if [[ ! -s $tarball ]]; then
  root=$(mktemp -d "$cache/rootfs.XXXXXX")
  trap 'rm -rf "$root"' EXIT
  log "debootstrap --variant=$variant $suite (a few minutes; cached in $cache afterwards)"
  SECONDS=0
  debootstrap --variant=$variant $suite "$root" ${mirror:+"$mirror"} >"$root.log" 2>&1 ||
    { tail -20 "$root.log" >&2; die "debootstrap failed (log: $root.log)"; }
  rm -f "$root.log"
  # Where this machine is Debian 12 too, the image takes its apt sources (the same archive, security
  # updates included); otherwise it keeps debootstrap's single bookworm line.
  if [[ $(. /etc/os-release && echo "${VERSION_CODENAME:-}") == "$suite" ]]; then
    [[ -f /etc/apt/sources.list ]] && cp /etc/apt/sources.list "$root/etc/apt/sources.list"
    for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
      [[ -f $f ]] && cp "$f" "$root/etc/apt/sources.list.d/"
    done
  fi
  # As Debian's -slim images: no documentation, man pages or translations, now or from later installs
  # (copyright files stay).
  cat >"$root/etc/dpkg/dpkg.cfg.d/01-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
  find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  rm -rf "$root"/usr/share/{man,info,locale,lintian}/* "$root"/var/cache/apt/archives/*.deb \
    "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/* "$root"/var/log/*.log
  tar --numeric-owner -C "$root" -c . | gzip -1 >"$tarball.tmp"
  mv "$tarball.tmp" "$tarball"
  rm -rf "$root"
  trap - EXIT
  log "debootstrap took ${SECONDS}s: $tarball ($(du -m "$tarball" | cut -f1) MB)"
fi

# An imported root file system has no configuration at all: PATH in particular must be set here.
"${PODMAN[@]}" import --quiet \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["/bin/bash"]' \
  "$tarball" "$image" >/dev/null || die "podman import $tarball"

"${PODMAN[@]}" tag "$image" "$alias"
log "imported $image"
echo "$image"
