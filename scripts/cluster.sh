#!/usr/bin/env bash
# Runs a local fencelock cluster on 127.0.0.1, data and logs under ./var/.
#
#   scripts/cluster.sh start [3|5] [--tls]
#                                    build if needed, start, wait for a leader
#                                    (an existing ./var restarts its members);
#                                    --tls: a new cluster with TLS on both
#                                    ports and client certificates checked
#                                    (certificates under ./var/tls, made with
#                                    scripts/tls-certs.sh; docs/security.md)
#   scripts/cluster.sh add           start one more node and make it a voter
#                                    (member add, fencelockd --join, member promote)
#   scripts/cluster.sh remove ID     remove member ID from the cluster and stop it
#   scripts/cluster.sh stop          SIGTERM every node (graceful), wait for exit
#   scripts/cluster.sh status        which nodes run, who leads, the members
#
# Node i listens for clients on 127.0.0.1:(7000+i), for peers on
# 127.0.0.1:(7100+i) and for HTTP (/metrics, /healthz, /readyz, the
# operator page) on 127.0.0.1:(7200+i); ids are never reused. $var/members lists the current
# members, $var/nI/args how node I starts. Environment: FENCELOCK_BUILD_DIR
# (default build), FENCELOCK_VAR (default ./var).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${FENCELOCK_BUILD_DIR:-build}
[[ "$build_dir" = /* ]] || build_dir="$root/$build_dir"
var=${FENCELOCK_VAR:-$root/var}
daemon="$build_dir/cli/fencelockd"
cli="$build_dir/cli/fencelock"

usage() {
  echo "usage: scripts/cluster.sh start [3|5] [--tls] | add | remove ID | stop | status" >&2
  exit 2
}

tls_dir="$var/tls"
# What this script's own fencelock commands need to reach a TLS cluster: the
# CA, and the admin client's certificate (every right, by $tls_dir/acl).
cli_flags=()
if [ -f "$tls_dir/ca.crt" ]; then
  cli_flags=(--cacert "$tls_dir/ca.crt" --cert "$tls_dir/admin.crt" --key "$tls_dir/admin.key")
fi
fl() { "$cli" "${cli_flags[@]}" "$@"; }

# fencelockd's TLS and access flags for node $1, one per line (none
# without TLS).
tls_args() {
  [ -f "$tls_dir/ca.crt" ] || return 0
  "$root/scripts/tls-certs.sh" "$tls_dir" node "$1"
  printf '%s\n' --tls-cert "$tls_dir/n$1.crt" --tls-key "$tls_dir/n$1.key" \
    --tls-ca "$tls_dir/ca.crt" --client-auth cert --acl "$tls_dir/acl"
}

# A new TLS setup: the CA, the admin client and the ACL.
make_tls() {
  "$root/scripts/tls-certs.sh" "$tls_dir" client admin
  cat >"$tls_dir/acl" <<'ACL'
# PRINCIPAL  PREFIX  RIGHTS  (docs/security.md)
admin        *       lock,read,admin
ACL
  cli_flags=(--cacert "$tls_dir/ca.crt" --cert "$tls_dir/admin.crt" --key "$tls_dir/admin.key")
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

member_ids() {
  # A ./var from before membership change recorded only its size.
  if [ ! -f "$var/members" ] && [ -f "$var/cluster-size" ]; then
    seq 1 "$(cat "$var/cluster-size")" >"$var/members"
  fi
  [ -f "$var/members" ] && cat "$var/members"
  return 0
}

endpoints_of() {
  local out=""
  for i in $(member_ids); do
    out+="${out:+,}127.0.0.1:$((7000 + i))"
  done
  echo "$out"
}

leader_of() {
  # Asks every member (fencelock status); prints "ID (term T)" of the one
  # that reports itself leader, or nothing.
  fl --timeout 1s --endpoints "$(endpoints_of)" status 2>/dev/null |
    awk '$3 == "leader" { print $1 " (term " $4 ")"; exit }'
}

ensure_built() {
  if [ ! -x "$daemon" ] || [ ! -x "$cli" ]; then
    echo "cluster.sh: building (scripts/setup.sh)..."
    "$root/scripts/setup.sh"
  fi
}

# Starts node $1 with the arguments recorded in its args file.
launch() {
  local dir="$var/n$1"
  local -a args
  mapfile -t args <"$dir/args"
  nohup "$daemon" "${args[@]}" >>"$dir/fencelockd.log" 2>&1 &
  echo $! >"$dir/fencelockd.pid"
}

wait_for_leader() {
  local deadline=$((SECONDS + 15))
  while [ -z "$(leader_of)" ]; do
    if ((SECONDS >= deadline)); then
      echo "cluster.sh: no leader after 15 s; see $var/n*/fencelockd.log" >&2
      exit 1
    fi
    for i in $(member_ids); do
      if ! kill -0 "$(cat "$var/n$i/fencelockd.pid")" 2>/dev/null; then
        echo "cluster.sh: node $i exited; its log:" >&2
        tail -n 5 "$var/n$i/fencelockd.log" >&2
        exit 1
      fi
    done
    sleep 0.2
  done
}

cmd_start() {
  local n=3 tls=false
  for arg in "$@"; do
    case "$arg" in
      3 | 5) n=$arg ;;
      --tls) tls=true ;;
      *) usage ;;
    esac
  done
  if [ -n "$(running_ids)" ]; then
    echo "cluster.sh: a cluster is already running (scripts/cluster.sh stop first)" >&2
    exit 1
  fi
  ensure_built
  mkdir -p "$var"
  if [ -n "$(member_ids)" ]; then
    # Restart the cluster ./var holds, whatever its size now.
    if $tls && [ ! -f "$tls_dir/ca.crt" ]; then
      echo "cluster.sh: $var holds a cluster without TLS; remove $var to start afresh with --tls" >&2
      exit 1
    fi
    if [ $# -gt 0 ] && [ "$(member_ids | wc -l)" != "$n" ]; then
      echo "cluster.sh: $var holds a $(member_ids | wc -l)-member cluster; restarting that"         "(remove $var to start afresh with $n)" >&2
    fi
    for i in $(member_ids); do
      if [ ! -f "$var/n$i/args" ]; then
        # Started before args were recorded: a founding member.
        local peers=""
        for j in $(member_ids); do peers+="${peers:+,}$j=127.0.0.1:$((7100 + j))"; done
        printf '%s\n' --id "$i" --peers "$peers" --client-addr "127.0.0.1:$((7000 + i))" \
          --data-dir "$var/n$i/data" >"$var/n$i/args"
      fi
      launch "$i"
    done
  else
    local peers=""
    for i in $(seq 1 "$n"); do peers+="${peers:+,}$i=127.0.0.1:$((7100 + i))"; done
    seq 1 "$n" >"$var/members"
    echo $((n + 1)) >"$var/next-id"
    if $tls; then make_tls; fi
    for i in $(seq 1 "$n"); do
      mkdir -p "$var/n$i"
      {
        printf '%s\n' --id "$i" --peers "$peers" --client-addr "127.0.0.1:$((7000 + i))" \
          --http-addr "127.0.0.1:$((7200 + i))" --data-dir "$var/n$i/data"
        tls_args "$i"
      } >"$var/n$i/args"
      launch "$i"
    done
  fi
  wait_for_leader
  local endpoints
  endpoints=$(endpoints_of)
  echo "fencelock: $(member_ids | wc -l) nodes running, leader is node $(leader_of)"
  echo "client endpoints: $endpoints"
  local scheme=http
  if $tls; then scheme=https; fi
  local pages=""
  for i in $(member_ids); do pages+="${pages:+ }$scheme://127.0.0.1:$((7200 + i))/"; done
  echo "HTTP (page, /metrics, /healthz, /readyz): $pages"
  echo "logs and data:    $var/n*/"
  if [ ${#cli_flags[@]} -gt 0 ]; then
    echo "TLS on both ports; clients authenticate with certificates (ACL: $tls_dir/acl)."
    echo "client flags:     ${cli_flags[*]}"
    echo "or:  export FENCELOCK_CACERT=$tls_dir/ca.crt FENCELOCK_CERT=$tls_dir/admin.crt FENCELOCK_KEY=$tls_dir/admin.key"
    echo "try:  $cli ${cli_flags[*]} --endpoints $endpoints lock jobs/demo -- echo hello"
  else
    echo "try:  $cli --endpoints $endpoints lock jobs/demo -- echo hello"
  fi
}

cmd_add() {
  if [ -z "$(running_ids)" ]; then
    echo "cluster.sh: no cluster is running (scripts/cluster.sh start first)" >&2
    exit 1
  fi
  local endpoints id
  endpoints=$(endpoints_of)
  id=$(cat "$var/next-id" 2>/dev/null || echo $(($(member_ids | sort -n | tail -n 1) + 1)))
  local peer="127.0.0.1:$((7100 + id))" client="127.0.0.1:$((7000 + id))"
  fl --endpoints "$endpoints" member add "$id" "$peer" "$client" >/dev/null
  echo $((id + 1)) >"$var/next-id"
  mkdir -p "$var/n$id"
  {
    printf '%s\n' --id "$id" --join "$endpoints" --peer-addr "$peer" --client-addr "$client" \
      --http-addr "127.0.0.1:$((7200 + id))" --data-dir "$var/n$id/data"
    tls_args "$id"
  } >"$var/n$id/args"
  launch "$id"
  echo "$id" >>"$var/members"
  if ! fl --endpoints "$endpoints" member promote "$id" --wait 120s >/dev/null; then
    echo "cluster.sh: node $id joined as a learner but was not promoted; see $var/n$id/fencelockd.log" >&2
    exit 1
  fi
  echo "cluster.sh: node $id added (clients $client, peers $peer)"
  fl --endpoints "$(endpoints_of)" member list
}

cmd_remove() {
  local id=${1:-}
  [[ "$id" =~ ^[0-9]+$ ]] || usage
  if ! member_ids | grep -qx "$id"; then
    echo "cluster.sh: node $id is not a member of the local cluster" >&2
    exit 1
  fi
  fl --endpoints "$(endpoints_of)" member remove "$id" >/dev/null
  grep -vx "$id" "$var/members" >"$var/members.new" || true
  mv "$var/members.new" "$var/members"
  if kill -0 "$(cat "$var/n$id/fencelockd.pid" 2>/dev/null)" 2>/dev/null; then
    kill -TERM "$(cat "$var/n$id/fencelockd.pid")" 2>/dev/null || true
    local deadline=$((SECONDS + 15))
    while kill -0 "$(cat "$var/n$id/fencelockd.pid")" 2>/dev/null && ((SECONDS < deadline)); do
      sleep 0.2
    done
    kill -KILL "$(cat "$var/n$id/fencelockd.pid")" 2>/dev/null || true
  fi
  mv "$var/n$id" "$var/removed-n$id"
  echo "cluster.sh: node $id removed and stopped (its data is in $var/removed-n$id)"
  fl --endpoints "$(endpoints_of)" member list
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
  fl --timeout 1s --endpoints "$(endpoints_of)" status || true
  fl --timeout 2s --endpoints "$(endpoints_of)" member list || true
}

case "${1:-}" in
  start) shift; cmd_start "$@" ;;
  add) cmd_add ;;
  remove) shift; cmd_remove "$@" ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) usage ;;
esac
