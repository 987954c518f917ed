#!/usr/bin/env bash
# The installed copy works (docs/operations.md, "Installing"):
#
#   1. `cmake --install BUILD --prefix P` into a temporary P puts the
#      programs, the library, its headers, the CMake package, the pkg-config
#      file, the systemd unit and the configurations where they belong;
#   2. the unit passes `systemd-analyze verify` (when systemd-analyze exists);
#   3. every example configuration parses: the installed fencelockd starts
#      with it (listening on loopback instead of the example's addresses)
#      and stops gracefully;
#   4. a program outside the tree (tests/install/consumer) builds against P
#      twice, with find_package(fencelock) and with pkg-config, and fails
#      cleanly with no server;
#   5. a 3-node cluster of P's fencelockd, started from the example
#      configurations, serves both builds of the program, survives a rolling
#      restart done as docs/operations.md says (followers first, the leader
#      last, each caught up before the next), serves them again, and stops
#      gracefully.
#
#   install_test.sh BUILD_DIR SOURCE_DIR CXX_COMPILER [SANITIZE]
#
# SANITIZE: the build's FENCELOCK_SANITIZE (e.g. address,undefined); the
# program is then built with the same -fsanitize, as the library needs.
set -euo pipefail

build=$1
src=$2
cxx=$3
sanitize_flags=()
if [ -n "${4:-}" ]; then
  sanitize_flags=("-fsanitize=$4" -fno-omit-frame-pointer)
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/fencelock-install-test.XXXXXX")
prefix=$work/prefix
pids=()
cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  if ((status != 0)); then
    for log in "$work"/*.log; do
      [ -e "$log" ] || continue
      echo "--- $log (last lines)" >&2
      tail -n 15 "$log" >&2
    done
  fi
  rm -rf "$work"
}
trap cleanup EXIT

step() { echo "== $*"; }
die() {
  echo "install_test: $*" >&2
  exit 1
}

step "cmake --install $build --prefix $prefix"
cmake --install "$build" --prefix "$prefix" >"$work/install.log"
pc=$(find "$prefix" -name fencelock.pc)
[ -n "$pc" ] || die "no fencelock.pc under $prefix"
libdir=$(dirname "$(dirname "$pc")")
for file in bin/fencelockd bin/fencelock bin/fencelock-bench bin/fencelock-sim \
  include/fencelock/fence.h include/fencelock/version.h include/fencelock/client/session.h \
  include/fencelock/proto/client.pb.h etc/fencelock/fencelockd.toml \
  lib/systemd/system/fencelockd.service share/doc/fencelock/operations.md \
  share/doc/fencelock/examples/node1.toml share/doc/fencelock/examples/node2.toml \
  share/doc/fencelock/examples/node3.toml; do
  [ -e "$prefix/$file" ] || die "$prefix/$file was not installed"
done
for file in libfencelock.a cmake/fencelock/fencelockConfig.cmake \
  cmake/fencelock/fencelockConfigVersion.cmake cmake/fencelock/fencelockTargets.cmake; do
  [ -e "$libdir/$file" ] || die "$libdir/$file was not installed"
done
cmp -s "$prefix/etc/fencelock/fencelockd.toml" "$prefix/share/doc/fencelock/examples/node1.toml" ||
  die "etc/fencelock/fencelockd.toml is not the example for node 1"
grep -q "^ExecStart=$prefix/bin/fencelockd --config $prefix/etc/fencelock/fencelockd.toml\$" \
  "$prefix/lib/systemd/system/fencelockd.service" || die "the unit's ExecStart does not name the prefix"
version=$("$prefix/bin/fencelockd" --version)
echo "$version"
[[ $version == "fencelockd "* ]] || die "fencelockd --version printed '$version'"
# A second install keeps an edited configuration.
echo "# edited" >>"$prefix/etc/fencelock/fencelockd.toml"
cmake --install "$build" --prefix "$prefix" >"$work/install-again.log"
grep -q '^# edited$' "$prefix/etc/fencelock/fencelockd.toml" || die "a second install replaced the edited configuration"

if command -v systemd-analyze >/dev/null 2>&1; then
  step "systemd-analyze verify fencelockd.service"
  unit=$prefix/lib/systemd/system/fencelockd.service
  # verify exits 0 on unknown keys and only warns: any output is a failure.
  out=$(systemd-analyze verify "$unit" 2>&1) || die "systemd-analyze verify failed: $out"
  [ -z "$out" ] || die "systemd-analyze verify warns: $out"
  systemd-analyze security --offline=true --threshold=20 "$unit" >"$work/security.log" 2>&1 ||
    die "the unit's exposure is above 2.0: $(tail -n 1 "$work/security.log")"
  tail -n 1 "$work/security.log"
else
  step "systemd-analyze not found: the unit is not verified"
fi

# Sets `port` to a port below the kernel's ephemeral range (32768-60999),
# so no outgoing connection takes it meanwhile, that nothing listens on and
# that this script has not picked before.
used_ports=" "
next_port() {
  while true; do
    port=$((20000 + RANDOM % 12000))
    [[ $used_ports == *" $port "* ]] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      used_ports+="$port "
      return
    fi
  done
}

# Starts P's fencelockd (output to $work/NAME.log) and records its pid.
start_node() {
  local name=$1
  shift
  "$prefix/bin/fencelockd" "$@" >>"$work/$name.log" 2>&1 &
  pids+=($!)
  eval "pid_$name=$!"
}

# Sends SIGTERM and expects exit code 0 within 15 s.
stop_node() {
  local name=$1 pid
  eval "pid=\$pid_$name"
  kill -TERM "$pid"
  local status=0
  wait "$pid" || status=$?
  ((status == 0)) || die "$name exited with $status after SIGTERM"
}

step "every example configuration starts fencelockd"
configs=("$prefix/etc/fencelock/fencelockd.toml" "$prefix"/share/doc/fencelock/examples/node*.toml)
for i in "${!configs[@]}"; do
  start_node "check$i" --config "${configs[$i]}" --client-addr 127.0.0.1:0 --peer-addr 127.0.0.1:0 \
    --data-dir "$work/check$i"
done
deadline=$((SECONDS + 15))
for i in "${!configs[@]}"; do
  until grep -q 'serving clients' "$work/check$i.log"; do
    eval "pid=\$pid_check$i"
    kill -0 "$pid" 2>/dev/null || die "fencelockd --config ${configs[$i]} exited: $(cat "$work/check$i.log")"
    ((SECONDS < deadline)) || die "fencelockd --config ${configs[$i]} did not start"
    sleep 0.1
  done
  stop_node "check$i"
  echo "${configs[$i]#"$prefix/"}: parses and starts"
done

launcher=()
if command -v ccache >/dev/null 2>&1; then
  launcher=(ccache)
  # The paths under $work differ from run to run; hash them relative to it.
  export CCACHE_BASEDIR=$work CCACHE_NOHASHDIR=1
fi

step "build a program with find_package(fencelock)"
cmake -S "$src/consumer" -B "$work/find-package" -G Ninja -DCMAKE_CXX_COMPILER="$cxx" \
  -DCMAKE_PREFIX_PATH="$prefix" ${launcher:+-DCMAKE_CXX_COMPILER_LAUNCHER=ccache} \
  -DCMAKE_CXX_FLAGS="${sanitize_flags[*]}" -DCMAKE_EXE_LINKER_FLAGS="${sanitize_flags[*]}" \
  >"$work/find-package-configure.log" 2>&1 || die "configure failed: $(cat "$work/find-package-configure.log")"
cmake --build "$work/find-package" >"$work/find-package-build.log" 2>&1 ||
  die "build failed: $(cat "$work/find-package-build.log")"

step "build a program with pkg-config"
mkdir -p "$work/pkg-config"
flags=$(PKG_CONFIG_PATH="$libdir/pkgconfig" pkg-config --cflags --libs fencelock)
echo "pkg-config --cflags --libs fencelock: $flags"
# shellcheck disable=SC2086 # $flags is a list of words
(cd "$work/pkg-config" &&
  "${launcher[@]}" "$cxx" -std=c++20 "${sanitize_flags[@]}" -o fencelock-consumer "$src/consumer/main.cc" \
    $flags) ||
  die "the pkg-config build failed"

programs=("$work/find-package/fencelock-consumer" "$work/pkg-config/fencelock-consumer")
for program in "${programs[@]}"; do
  "$program" || die "$program failed"
  next_port
  "$program" --no-server "127.0.0.1:$port" || die "$program did not fail cleanly without a server"
done

step "a 3-node cluster of the installed fencelockd, from the example configurations"
peers="" endpoints=""
for i in 1 2 3; do
  next_port
  client_port[i]=$port
  next_port
  peers+="${peers:+,}$i=127.0.0.1:$port"
  endpoints+="${endpoints:+,}127.0.0.1:${client_port[$i]}"
done
node_args() {
  echo --config "$prefix/share/doc/fencelock/examples/node$1.toml" --peers "$peers" \
    --client-addr "127.0.0.1:${client_port[$1]}" --data-dir "$work/n$1"
}
for i in 1 2 3; do
  # shellcheck disable=SC2046
  start_node "n$i" $(node_args "$i")
done

cli() { "$prefix/bin/fencelock" --timeout 1s --endpoints "$endpoints" "$@"; }
# The member (its id) that reports itself leader, or nothing.
leader() { cli status 2>/dev/null | awk '$3 == "leader" { print $1; exit }' || true; }
wait_for_leader() {
  local deadline=$((SECONDS + 15))
  while [ -z "$(leader)" ]; do
    ((SECONDS < deadline)) || die "no leader after 15 s"
    sleep 0.2
  done
}
# Waits until member $1 (its row in its own status) has applied everything
# the leader had committed when the wait began: it caught up.
wait_caught_up() {
  local id=$1 target applied deadline=$((SECONDS + 15))
  wait_for_leader
  target=$(cli status | awk -v l="$(leader)" '$1 == l { print $5 }')
  while true; do
    applied=$(cli status 2>/dev/null | awk -v id="$id" '$1 == id && $7 == "yes" { print $6 }')
    if [ -n "$applied" ] && ((applied >= target)); then
      echo "node $id applied $applied (the leader had committed $target)"
      return
    fi
    ((SECONDS < deadline)) || die "node $id did not catch up to $target in 15 s (applied: ${applied:-?})"
    sleep 0.2
  done
}

wait_for_leader
cli status
for program in "${programs[@]}"; do
  "$program" "$endpoints" install-test/lock || die "$program failed against the cluster"
done

step "rolling restart: followers first, the leader last"
first_leader=$(leader)
for i in 1 2 3; do
  [ "$i" = "$first_leader" ] || order+=("$i")
done
order+=("$first_leader")
for i in "${order[@]}"; do
  stop_node "n$i"
  # shellcheck disable=SC2046
  start_node "n$i" $(node_args "$i")
  wait_caught_up "$i"
done
wait_for_leader
[ "$(leader)" != "$first_leader" ] || die "node $first_leader leads again after the rolling restart"
cli status
for program in "${programs[@]}"; do
  "$program" "$endpoints" install-test/lock || die "$program failed after the rolling restart"
done

step "stop the cluster (SIGTERM, exit code 0)"
for i in 1 2 3; do stop_node "n$i"; done
pids=()
echo "install_test: OK"
