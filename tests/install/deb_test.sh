#!/usr/bin/env bash
# `cpack -G DEB` builds the Debian package `fencelock` (packaging/debian.cmake),
# and it holds what docs/operations.md says: the programs (stripped, and they
# run), the library, headers, CMake package and pkg-config file for /usr, the
# systemd unit for /usr/bin/fencelockd and /etc/fencelock/fencelockd.toml,
# that file as a conffile, maintainer scripts creating the fencelock user and
# /var/lib/fencelock, and shared-library dependencies from dpkg-shlibdeps.
# Installs nothing on this machine. About 15 s.
#
#   deb_test.sh BUILD_DIR SOURCE_DIR VERSION
# Exit code 77 (skipped) without dpkg-deb and dpkg-shlibdeps (dpkg-dev).
set -euo pipefail

build=$1
src=$2
version=$3

for tool in dpkg-deb dpkg-shlibdeps; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "deb_test: $tool not found (apt-get install dpkg-dev): skipped"
    exit 77
  fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/fencelock-deb-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
die() {
  echo "deb_test: $*" >&2
  exit 1
}

echo "== cpack -G DEB"
cpack -G DEB --config "$build/CPackConfig.cmake" -B "$work" >"$work/cpack.log" 2>&1 ||
  die "cpack failed: $(cat "$work/cpack.log")"
deb=$work/fencelock_${version}-1_$(dpkg --print-architecture).deb
[ -f "$deb" ] || die "no $deb; cpack said: $(cat "$work/cpack.log")"
ls -l "$deb"

echo "== dpkg-deb -I"
dpkg-deb -I "$deb" | tee "$work/info"
field() { dpkg-deb -f "$deb" "$1"; }
[ "$(field Package)" = fencelock ] || die "Package is not fencelock"
[ "$(field Version)" = "$version-1" ] || die "Version is not $version-1"
depends=$(field Depends)
for dep in adduser librocksdb libprotobuf libc6; do
  [[ $depends == *"$dep"* ]] || die "Depends lacks $dep: $depends"
done
[ "$(dpkg-deb -I "$deb" conffiles)" = /etc/fencelock/fencelockd.toml ] ||
  die "conffiles is not /etc/fencelock/fencelockd.toml"
for script in postinst prerm postrm; do
  dpkg-deb -I "$deb" "$script" >"$work/$script" || die "no $script"
  sh -n "$work/$script" || die "$script is not valid sh"
done
grep -q 'adduser --system' "$work/postinst" || die "postinst does not create the fencelock user"
grep -q 'install -d -o fencelock -g fencelock -m 0750 /var/lib/fencelock' "$work/postinst" ||
  die "postinst does not create /var/lib/fencelock"

echo "== dpkg-deb -c"
dpkg-deb -c "$deb" | awk '{ print $NF }' >"$work/contents"
for path in ./usr/bin/fencelockd ./usr/bin/fencelock ./usr/bin/fencelock-bench ./usr/bin/fencelock-sim \
  ./usr/lib/libfencelock.a ./usr/include/fencelock/fence.h ./usr/include/fencelock/version.h \
  ./usr/include/fencelock/client/session.h ./usr/include/fencelock/proto/client.pb.h \
  ./usr/lib/cmake/fencelock/fencelockConfig.cmake ./usr/lib/cmake/fencelock/fencelockConfigVersion.cmake \
  ./usr/lib/pkgconfig/fencelock.pc ./usr/lib/systemd/system/fencelockd.service \
  ./etc/fencelock/fencelockd.toml ./usr/share/doc/fencelock/operations.md \
  ./usr/share/doc/fencelock/examples/node1.toml ./usr/share/doc/fencelock/examples/node2.toml \
  ./usr/share/doc/fencelock/examples/node3.toml; do
  grep -qx "$path" "$work/contents" || die "the package lacks $path"
done
if grep -v -E '^\./(usr/(bin|lib|include|share/doc)|etc/fencelock)(/|$)|^\./(usr|usr/share|etc)/$' "$work/contents"; then
  die "the package installs outside /usr/{bin,lib,include,share/doc} and /etc/fencelock (above)"
fi

echo "== the unpacked files"
root=$work/root
dpkg-deb -x "$deb" "$root"
unit=$root/usr/lib/systemd/system/fencelockd.service
grep -qx 'ExecStart=/usr/bin/fencelockd --config /etc/fencelock/fencelockd.toml' "$unit" ||
  die "the unit's ExecStart is not /usr/bin/fencelockd --config /etc/fencelock/fencelockd.toml"
grep -qx 'prefix=/usr' "$root/usr/lib/pkgconfig/fencelock.pc" || die "fencelock.pc's prefix is not /usr"
cmp -s "$root/etc/fencelock/fencelockd.toml" "$src/packaging/config/node1.toml" ||
  die "/etc/fencelock/fencelockd.toml is not packaging/config/node1.toml"
for program in fencelockd fencelock; do
  readelf -S "$root/usr/bin/$program" | grep -q '\.debug_info' && die "/usr/bin/$program is not stripped"
  [ "$("$root/usr/bin/$program" --version)" = "$program $version" ] || die "/usr/bin/$program --version is wrong"
done
if command -v systemd-analyze >/dev/null 2>&1; then
  # As packaged, but for where the unpacked fencelockd lies.
  sed "s|=/usr/bin/fencelockd|=$root/usr/bin/fencelockd|" "$unit" >"$work/fencelockd.service"
  out=$(systemd-analyze verify "$work/fencelockd.service" 2>&1) || die "systemd-analyze verify: $out"
  [ -z "$out" ] || die "systemd-analyze verify warns: $out"
fi
echo "deb_test: OK"
