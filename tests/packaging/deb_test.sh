#!/usr/bin/env bash
# Builds the .deb (and its -dbgsym .ddeb) from a configured build tree, checks the package itself (lintian:
# no error and no warning without an override; the binary stripped and dynamically linked; Depends filled by
# dpkg-shlibdeps; the debug info in the dbgsym package), then installs it with dpkg and checks what it put on
# the system (files, conffile, system user, the unit enabled the Debian way, a working binary), reinstalls it
# (idempotent postinst, local conffile edits and an admin's `systemctl disable` kept), removes it (the conffile
# and state stay, the unit is masked) and purges it (conffile, state, runtime files, enable links go).
# This machine runs no systemd as PID 1, as in CI: the scripts must cope, so starting/stopping is not
# exercised here, only that the scripts ask deb-systemd-invoke for it.
# Needs root for dpkg: without it the test reports SKIPPED (exit 77), never passed.
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
for tool in lintian readelf; do
  command -v $tool >/dev/null || { echo "FAIL: $tool not found (scripts/install-deps.sh installs it)" >&2; exit 1; }
done

out=$(mktemp -d)
installed=0
cleanup() {
  if ((installed)); then dpkg --purge etcd-sidecar >/dev/null 2>&1 || true; fi
  rm -rf "$out"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
SECONDS=0

(cd "$build" && cpack -G DEB -B "$out" >"$out/cpack.log" 2>&1) || { cat "$out/cpack.log" >&2; fail "cpack"; }
deb=$(ls "$out"/etcd-sidecar_*.deb)
[[ -f $deb ]] || fail "no .deb in $out"
ddeb=$(ls "$out"/etcd-sidecar-dbgsym_*.ddeb 2>/dev/null) || fail "no etcd-sidecar-dbgsym .ddeb in $out"

# ---- the package itself
dpkg-deb --field "$deb" Package | grep -qx etcd-sidecar || fail "package name"
dpkg-deb --field "$deb" Version | grep -qx "$version" || fail "package version is not $version"
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles | grep -x >/dev/null /etc/etcd-sidecar/manifest.yaml ||
  fail "/etc/etcd-sidecar/manifest.yaml is not a conffile"
depends=$(dpkg-deb --field "$deb" Depends)
for lib in libc6 'libgrpc\+\+' libprotobuf-lite libyaml-cpp; do
  grep -Eq "(^|, )$lib[^,]* \(>= " <<<"$depends" || fail "Depends lacks a versioned $lib (shlibdeps): $depends"
done

mkdir "$out/x" "$out/dbg"
dpkg-deb -x "$deb" "$out/x"
bin=$out/x/usr/bin/etcd-sidecar
# Outputs are captured first: `cmd | grep -q` fails under pipefail when grep's early exit kills cmd (SIGPIPE).
program_headers=$(readelf -lW "$bin")
grep -q 'Requesting program interpreter' <<<"$program_headers" || fail "etcd-sidecar is linked statically"
dynamic=$(readelf -dW "$bin")
grep -q 'NEEDED.*libgrpc++' <<<"$dynamic" || fail "etcd-sidecar does not link libgrpc++.so"
sections=$(readelf -SW "$bin")
! grep -Eq '\.(debug_[a-z]+|symtab) ' <<<"$sections" || fail "etcd-sidecar is not stripped"
build_id=$(readelf -nW "$bin" | sed -n 's/.*Build ID: *//p')
[[ -n $build_id ]] || fail "etcd-sidecar has no build-id"
dpkg-deb -x "$ddeb" "$out/dbg"
debug=$out/dbg/usr/lib/debug/.build-id/${build_id:0:2}/${build_id:2}.debug
[[ -f $debug ]] || fail "no $debug in $ddeb"
debug_sections=$(readelf -SW "$debug" 2>/dev/null)
grep -q '\.debug_info' <<<"$debug_sections" || fail "no debug info for build-id $build_id in $ddeb"

# No error, and every warning overridden in usr/share/lintian/overrides/etcd-sidecar (with its reason).
lintian --fail-on error,warning --tag-display-limit 0 "$deb" >"$out/lintian.log" 2>&1 ||
  { cat "$out/lintian.log" >&2; fail "lintian"; }

# ---- install (this machine runs no systemd as PID 1: the scripts must cope)
wants=/etc/systemd/system/multi-user.target.wants/etcd-sidecar.service
dsh_state=/var/lib/systemd/deb-systemd-helper-enabled/etcd-sidecar.service.dsh-also
mask=/etc/systemd/system/etcd-sidecar.service
[[ ! -e $wants && ! -L $wants && ! -e $dsh_state && ! -L $mask ]] ||
  fail "leftovers of an earlier etcd-sidecar install in /etc/systemd or /var/lib/systemd; remove them first"
dpkg -i "$deb" >"$out/install.log" 2>&1 || { cat "$out/install.log" >&2; fail "dpkg -i"; }
installed=1
for f in /usr/bin/etcd-sidecar /lib/systemd/system/etcd-sidecar.service /lib/systemd/system/etcd-sidecar@.service \
  /etc/etcd-sidecar/manifest.yaml /usr/share/doc/etcd-sidecar/manifest.reference.yaml \
  /usr/share/doc/etcd-sidecar/copyright /usr/share/doc/etcd-sidecar/changelog.gz \
  /usr/share/lintian/overrides/etcd-sidecar /usr/share/etcd-sidecar/templates/nginx-upstream.mustache; do
  [[ -f $f ]] || fail "$f not installed"
done
[[ -x /usr/bin/etcd-sidecar ]] || fail "/usr/bin/etcd-sidecar not executable"

entry=$(getent passwd etcd-sidecar) || fail "user etcd-sidecar not created"
IFS=: read -r _ _ uid gid _ home shell <<<"$entry"
((uid < 1000)) || fail "etcd-sidecar is not a system user (uid $uid)"
[[ $shell == /usr/sbin/nologin ]] || fail "etcd-sidecar has login shell $shell"
[[ $home == /var/lib/etcd-sidecar ]] || fail "etcd-sidecar home is $home"
[[ $(getent group etcd-sidecar | cut -d: -f3) == "$gid" ]] || fail "etcd-sidecar's primary group is not etcd-sidecar"

# Enabled the Debian way (deb-systemd-helper), even without a running systemd; the template is not.
[[ $(readlink "$wants") == /lib/systemd/system/etcd-sidecar.service ]] || fail "etcd-sidecar.service not enabled"
[[ -f $dsh_state ]] || fail "deb-systemd-helper recorded no state for etcd-sidecar.service"
! ls /etc/systemd/system/multi-user.target.wants/etcd-sidecar@* >/dev/null 2>&1 || fail "the template got enabled"
# Started on install / restarted on upgrade, stopped on removal: through deb-systemd-invoke when systemd runs.
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./postinst | grep >/dev/null 'deb-systemd-invoke \$_action .etcd-sidecar.service' ||
  fail "postinst does not start the unit through deb-systemd-invoke"
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./prerm | grep >/dev/null "deb-systemd-invoke stop 'etcd-sidecar.service'" ||
  fail "prerm does not stop the unit through deb-systemd-invoke"

got=$(/usr/bin/etcd-sidecar --version)
[[ $got == "etcd-sidecar $version" ]] || fail "--version printed '$got'"
/usr/bin/etcd-sidecar --manifest /etc/etcd-sidecar/manifest.yaml --check >/dev/null ||
  fail "the shipped manifest does not pass --check"

# ---- reinstall: postinst runs again without error or a second user, a local edit and `disable` survive
echo "# local edit" >>/etc/etcd-sidecar/manifest.yaml
systemctl disable etcd-sidecar.service >/dev/null 2>&1 || fail "systemctl disable (offline)"
[[ ! -e $wants ]] || fail "systemctl disable left $wants"
dpkg -i "$deb" >"$out/reinstall.log" 2>&1 || { cat "$out/reinstall.log" >&2; fail "second dpkg -i"; }
[[ $(getent passwd | grep -c '^etcd-sidecar:') -eq 1 ]] || fail "user etcd-sidecar duplicated"
[[ $(getent passwd etcd-sidecar | cut -d: -f3) == "$uid" ]] || fail "uid changed on reinstall"
grep -qx "# local edit" /etc/etcd-sidecar/manifest.yaml || fail "reinstall overwrote the edited conffile"
[[ ! -e $wants ]] || fail "reinstall re-enabled a unit the admin disabled"
systemctl enable etcd-sidecar.service >/dev/null 2>&1 || fail "systemctl enable (offline)"

# Files the agent would have written as its user: state and runtime directories.
install -d -o etcd-sidecar -g etcd-sidecar /var/lib/etcd-sidecar /run/etcd-sidecar
install -o etcd-sidecar -g etcd-sidecar /dev/null /var/lib/etcd-sidecar/state
install -o etcd-sidecar -g etcd-sidecar /dev/null /run/etcd-sidecar/peers.json

# ---- remove: program and units go, the conffile and state stay, the unit is masked
dpkg -r etcd-sidecar >"$out/remove.log" 2>&1 || { cat "$out/remove.log" >&2; fail "dpkg -r"; }
[[ ! -e /usr/bin/etcd-sidecar ]] || fail "/usr/bin/etcd-sidecar left after dpkg -r"
[[ ! -e /lib/systemd/system/etcd-sidecar.service ]] || fail "unit left after dpkg -r"
[[ -f /etc/etcd-sidecar/manifest.yaml ]] || fail "dpkg -r removed the conffile (only purge may)"
[[ -f /var/lib/etcd-sidecar/state ]] || fail "dpkg -r removed the state directory (only purge may)"
[[ $(readlink "$mask") == /dev/null ]] || fail "etcd-sidecar.service not masked after dpkg -r"

# ---- purge: conffile, state, runtime files, enable links and deb-systemd-helper's state go
dpkg --purge etcd-sidecar >"$out/purge.log" 2>&1 || { cat "$out/purge.log" >&2; fail "dpkg --purge"; }
installed=0
[[ ! -e /etc/etcd-sidecar/manifest.yaml ]] || fail "conffile left after purge"
[[ ! -e /var/lib/etcd-sidecar ]] || fail "/var/lib/etcd-sidecar left after purge"
[[ ! -e /run/etcd-sidecar ]] || fail "/run/etcd-sidecar left after purge"
[[ ! -L $wants && ! -L $mask && ! -e $dsh_state ]] || fail "enable/mask links or deb-systemd-helper state left after purge"
leftover=$(find /etc /var /run /tmp -xdev -user etcd-sidecar -print 2>/dev/null | head -5)
[[ -z $leftover ]] || fail "files of user etcd-sidecar left after purge: $leftover"
echo "ok: $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB) lintian-clean, installs, reinstalls, removes" \
  "and purges cleanly in ${SECONDS}s"
