#!/usr/bin/env bash
# Builds the .deb from a configured build tree, installs it with dpkg, checks what it put on the system (files,
# conffile, system user, a working binary), reinstalls it (idempotent postinst, local conffile edits kept),
# removes it (the conffile stays) and purges it (the conffile goes). Needs root for dpkg: without it the
# test reports SKIPPED (exit 77), never passed.
# Usage: deb_test.sh <build dir> <project version>
set -euo pipefail
build=$(realpath "$1")
version=$2

if [[ $(id -u) -ne 0 ]]; then
  echo "SKIP: dpkg -i needs root" >&2
  exit 77
fi
if dpkg-query -W -f='${db:Status-Status}' etcd-sidecar 2>/dev/null | grep -q installed; then
  echo "FAIL: etcd-sidecar is already installed on this machine; refusing to replace and remove it" >&2
  exit 1
fi

out=$(mktemp -d)
installed=0
cleanup() {
  if ((installed)); then dpkg --purge etcd-sidecar >/dev/null 2>&1 || true; fi
  rm -rf "$out"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

(cd "$build" && cpack -G DEB -B "$out" >"$out/cpack.log" 2>&1) || { cat "$out/cpack.log" >&2; fail "cpack"; }
deb=$(ls "$out"/etcd-sidecar_*.deb)
[[ -f $deb ]] || fail "no .deb in $out"

# ---- the package itself
dpkg-deb --field "$deb" Package | grep -qx etcd-sidecar || fail "package name"
dpkg-deb --field "$deb" Version | grep -qx "$version" || fail "package version is not $version"
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles | grep -qx /etc/etcd-sidecar/manifest.yaml ||
  fail "/etc/etcd-sidecar/manifest.yaml is not a conffile"

# ---- install (this machine runs no systemd as PID 1: the scripts must cope)
dpkg -i "$deb" >"$out/install.log" 2>&1 || { cat "$out/install.log" >&2; fail "dpkg -i"; }
installed=1
for f in /usr/bin/etcd-sidecar /lib/systemd/system/etcd-sidecar.service /lib/systemd/system/etcd-sidecar@.service \
  /etc/etcd-sidecar/manifest.yaml /usr/share/doc/etcd-sidecar/manifest.reference.yaml \
  /usr/share/etcd-sidecar/templates/nginx-upstream.mustache; do
  [[ -f $f ]] || fail "$f not installed"
done
[[ -x /usr/bin/etcd-sidecar ]] || fail "/usr/bin/etcd-sidecar not executable"

entry=$(getent passwd etcd-sidecar) || fail "user etcd-sidecar not created"
IFS=: read -r _ _ uid gid _ home shell <<<"$entry"
((uid < 1000)) || fail "etcd-sidecar is not a system user (uid $uid)"
[[ $shell == /usr/sbin/nologin ]] || fail "etcd-sidecar has login shell $shell"
[[ $home == /var/lib/etcd-sidecar ]] || fail "etcd-sidecar home is $home"
[[ $(getent group etcd-sidecar | cut -d: -f3) == "$gid" ]] || fail "etcd-sidecar's primary group is not etcd-sidecar"

got=$(/usr/bin/etcd-sidecar --version)
[[ $got == "etcd-sidecar $version" ]] || fail "--version printed '$got'"
/usr/bin/etcd-sidecar --manifest /etc/etcd-sidecar/manifest.yaml --check >/dev/null ||
  fail "the shipped manifest does not pass --check"

# ---- reinstall: postinst runs again without error or a second user, and a local edit survives
echo "# local edit" >>/etc/etcd-sidecar/manifest.yaml
dpkg -i "$deb" >"$out/reinstall.log" 2>&1 || { cat "$out/reinstall.log" >&2; fail "second dpkg -i"; }
[[ $(getent passwd | grep -c '^etcd-sidecar:') -eq 1 ]] || fail "user etcd-sidecar duplicated"
[[ $(getent passwd etcd-sidecar | cut -d: -f3) == "$uid" ]] || fail "uid changed on reinstall"
grep -qx "# local edit" /etc/etcd-sidecar/manifest.yaml || fail "reinstall overwrote the edited conffile"

# ---- remove: program and units go, the conffile stays; purge: the conffile goes too
dpkg -r etcd-sidecar >"$out/remove.log" 2>&1 || { cat "$out/remove.log" >&2; fail "dpkg -r"; }
[[ ! -e /usr/bin/etcd-sidecar ]] || fail "/usr/bin/etcd-sidecar left after dpkg -r"
[[ ! -e /lib/systemd/system/etcd-sidecar.service ]] || fail "unit left after dpkg -r"
[[ -f /etc/etcd-sidecar/manifest.yaml ]] || fail "dpkg -r removed the conffile (only purge may)"
dpkg --purge etcd-sidecar >"$out/purge.log" 2>&1 || { cat "$out/purge.log" >&2; fail "dpkg --purge"; }
installed=0
[[ ! -e /etc/etcd-sidecar/manifest.yaml ]] || fail "conffile left after purge"
echo "ok: $(basename "$deb") installs, reinstalls, removes and purges cleanly"
