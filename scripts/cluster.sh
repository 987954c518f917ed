#!/usr/bin/env bash
# Runs a local fencelock cluster on 127.0.0.1, data and logs under ./var/.
#
#   scripts/cluster.sh start [3|5]   build if needed, start, wait for a leader
#   scripts/cluster.sh stop          SIGTERM every node (graceful), wait for exit
#   scripts/cluster.sh status        which nodes run, who leads
#
# Node i listens for clients on 127.0.0.1:(7000+i) and for peers on
# 127.0.0.1:(7100+i). Environment: FENCELOCK_BUILD_DIR (default build),
# FENCELOCK_VAR (default ./var).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${FENCELOCK_BUILD_DIR:-build}
[[ "$build_dir" = /* ]] || build_dir="$root/$build_dir"
var=${FENCELOCK_VAR:-$root/var}
daemon="$build_dir/cli/fencelockd"

usage() {
  echo "usage: scripts/cluster.sh start [3|5] | stop | status" >&2
  exit 2
}

running_ids() {
  for pidfile in "$var"/n*/fencelockd.pid; do
    [ -e "$pidfile" ] || continue
    local pid
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
      basename "$(dirname "$pidfile")" | sed 's/^n//'
    fi
  done
}

endpoints_of() {
  local out=""
  for i in $(seq 1 "$(cat "$var/cluster-size" 2>/dev/null || echo 3)"); do
    out+="${out:+,}127.0.0.1:$((7000 + i))"
  done
  echo "$out"
}

leader_of() {
  # Asks every member (fencelock status); prints "ID (term T)" of the one
  # that reports itself leader, or nothing.
  "$build_dir/cli/fencelock" --timeout 1s --endpoints "$(endpoints_of)" status 2>/dev/null |
    awk '$3 == "leader" { print $1 " (term " $4 ")"; exit }'
}

cmd_start() {
  local n=${1:-3}
  [[ "$n" = 3 || "$n" = 5 ]] || usage
  if [ -n "$(running_ids)" ]; then
    echo "cluster.sh: a cluster is already running (scripts/cluster.sh stop first)" >&2
    exit 1
  fi
  # Membership is fixed at first start: the data of a 3-node cluster cannot
  # be restarted as 5 nodes.
  if [ -f "$var/cluster-size" ] && [ "$(cat "$var/cluster-size")" != "$n" ]; then
    echo "cluster.sh: $var holds a $(cat "$var/cluster-size")-node cluster; start it with that size," \
      "or remove $var to start afresh" >&2
    exit 1
  fi
  mkdir -p "$var"
  echo "$n" >"$var/cluster-size"
  if [ ! -x "$daemon" ] || [ ! -x "$build_dir/cli/fencelock" ]; then
    echo "cluster.sh: building (scripts/setup.sh)..."
    "$root/scripts/setup.sh"
  fi
  local peers="" endpoints=""
  for i in $(seq 1 "$n"); do
    peers+="${peers:+,}$i=127.0.0.1:$((7100 + i))"
    endpoints+="${endpoints:+,}127.0.0.1:$((7000 + i))"
  done
  for i in $(seq 1 "$n"); do
    local dir="$var/n$i"
    mkdir -p "$dir"
    nohup "$daemon" --id "$i" --peers "$peers" --client-addr "127.0.0.1:$((7000 + i))" \
      --data-dir "$dir/data" >>"$dir/fencelockd.log" 2>&1 &
    echo $! >"$dir/fencelockd.pid"
  done
  local deadline=$((SECONDS + 15))
  while [ -z "$(leader_of)" ]; do
    if ((SECONDS >= deadline)); then
      echo "cluster.sh: no leader after 15 s; see $var/n*/fencelockd.log" >&2
      exit 1
    fi
    for i in $(seq 1 "$n"); do
      if ! kill -0 "$(cat "$var/n$i/fencelockd.pid")" 2>/dev/null; then
        echo "cluster.sh: node $i exited; its log:" >&2
        tail -n 5 "$var/n$i/fencelockd.log" >&2
        exit 1
      fi
    done
    sleep 0.2
  done
  echo "fencelock: $n nodes running, leader is node $(leader_of)"
  echo "client endpoints: $endpoints"
  echo "logs and data:    $var/n*/"
  echo "try:  $build_dir/cli/fencelock --endpoints $endpoints lock jobs/demo -- echo hello"
}

cmd_stop() {
  local ids
  ids=$(running_ids)
  if [ -z "$ids" ]; then
    echo "cluster.sh: no node is running"
    return 0
  fi
  for i in $ids; do kill -TERM "$(cat "$var/n$i/fencelockd.pid")" 2>/dev/null || true; done
  local deadline=$((SECONDS + 15))
  while [ -n "$(running_ids)" ] && ((SECONDS < deadline)); do sleep 0.2; done
  for i in $(running_ids); do
    echo "cluster.sh: node $i did not stop in 15 s; killing it" >&2
    kill -KILL "$(cat "$var/n$i/fencelockd.pid")" 2>/dev/null || true
  done
  echo "cluster.sh: stopped nodes $(echo $ids)"
}

cmd_status() {
  local ids
  ids=$(running_ids)
  if [ -z "$ids" ]; then
    echo "no node is running"
    return 1
  fi
  echo "running nodes: $(echo $ids)"
  "$build_dir/cli/fencelock" --timeout 1s --endpoints "$(endpoints_of)" status || true
}

case "${1:-}" in
  start) shift; cmd_start "$@" ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) usage ;;
esac
