#!/usr/bin/env bash
# fencelock against etcd and ZooKeeper on this machine, in one run
# (docs/benchmark.md, issue #8).
#
#   scripts/bench-vs.sh                 the full run (about 8 minutes)
#   scripts/bench-vs.sh --quick         2 s per run, fewer client counts (a smoke test;
#                                       results under /tmp/fencelock-bench-vs/quick-results)
#   scripts/bench-vs.sh --systems "fencelock etcd"
#   scripts/bench-vs.sh start SYSTEM    start one 3-node cluster and leave it running;
#                                       prints its endpoints and pids (stop with `stop`)
#   scripts/bench-vs.sh stop            stop what `start` left running
#   scripts/bench-vs.sh tls             fencelock with TLS against fencelock without, in
#                                       one run: uncontended at 64 clients, rounds
#                                       alternating between the two clusters
#                                       (BENCH_TLS_ROUNDS, 3); prints both rates and
#                                       their ratio (docs/security.md)
#   scripts/bench-vs.sh metrics         the cost of metrics (docs/benchmark.md): this
#                                       build with --http-addr, /metrics scraped every
#                                       second, against FENCELOCKD_BASELINE (a fencelockd
#                                       built before metrics existed), uncontended at 64
#                                       clients, rounds alternating (BENCH_METRICS_ROUNDS, 3)
#
# Installs what is missing from Debian (etcd-server, zookeeper, the client
# libraries and protos, gnuplot) with apt-get as root or through sudo, builds
# fencelock-bench, starts a 3-node cluster of each system on 127.0.0.1 with
# its default durability (fsync on), and runs every workload and client
# count against each system in turn (the others idle), so outside load
# during the run falls on all alike; stops each cluster by pid.
# Writes bench/results/<date>.md (table, figures, client vs server CPU),
# <date>.jsonl (every run, as fencelock-bench --output json printed it) and
# <date>-*.png (gnuplot).
#
# Environment: FENCELOCK_BUILD_DIR (default build), BENCH_DURATION (10s),
# BENCH_WARMUP (2s), BENCH_CLIENTS ("1 16 64 256"), BENCH_CONTENDED_CLIENTS
# ("16 64 256"), BENCH_SESSIONS (10000), BENCH_FAILOVER_CLIENTS (64),
# BENCH_OUT (bench/results).
set -euo pipefail
# 10,000 idle ZooKeeper sessions are 10,000 connections, to the servers too.
ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${FENCELOCK_BUILD_DIR:-build}
[[ "$build_dir" = /* ]] || build_dir="$root/$build_dir"
bench="$build_dir/cli/bench/fencelock-bench"
duration=${BENCH_DURATION:-10s}
warmup=${BENCH_WARMUP:-2s}
clients=${BENCH_CLIENTS:-1 16 64 256}
contended_clients=${BENCH_CONTENDED_CLIENTS:-16 64 256}
sessions=${BENCH_SESSIONS:-10000}
failover_clients=${BENCH_FAILOVER_CLIENTS:-64}
kill_after=2s
failover_duration=$duration
prime=10s
out_dir=${BENCH_OUT:-$root/bench/results}
systems="fencelock etcd zookeeper"
state_dir=${BENCH_STATE_DIR:-/tmp/fencelock-bench-vs}
tls_dir=$state_dir/tls

# Ports: fencelock 27001-3 (peers 27101-3), etcd 12379/22379/32379 (peers
# x2380), ZooKeeper 12181-3 (quorum 12888.., election 13888..): none of the
# defaults, so a developer's own cluster.sh cluster is left alone.
fencelock_endpoints=127.0.0.1:27001,127.0.0.1:27002,127.0.0.1:27003
etcd_endpoints=127.0.0.1:12379,127.0.0.1:22379,127.0.0.1:32379
zookeeper_endpoints=127.0.0.1:12181,127.0.0.1:12182,127.0.0.1:12183
fencelock_tls_endpoints=127.0.0.1:28001,127.0.0.1:28002,127.0.0.1:28003
fencelock_metrics_endpoints=127.0.0.1:29001,127.0.0.1:29002,127.0.0.1:29003
fencelock_baseline_endpoints=127.0.0.1:30001,127.0.0.1:30002,127.0.0.1:30003

log() { echo "bench-vs: $*" >&2; }
die() {
  log "$*"
  exit 1
}

install_packages() {
  local packages=(etcd-server etcd-client zookeeper default-jre-headless libzookeeper-mt-dev
    libgrpc++-dev protobuf-compiler-grpc golang-etcd-server-dev golang-github-gogo-protobuf-dev
    golang-github-grpc-ecosystem-grpc-gateway-dev gnuplot-nox python3)
  local missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  command -v apt-get >/dev/null || die "apt-get not found; install by hand: ${missing[*]}"
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "not root and no sudo; as root: apt-get install ${missing[*]}"
    sudo=(sudo)
  fi
  log "installing ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
  # Debian starts a ZooKeeper service on 2181 on install; we run our own.
  if command -v systemctl >/dev/null && systemctl is-active --quiet zookeeper 2>/dev/null; then
    "${sudo[@]}" systemctl stop zookeeper || true
  fi
}

build() {
  log "building (scripts/setup.sh, then fencelock-bench)"
  "$root/scripts/setup.sh" >/dev/null
  cmake -S "$root" -B "$build_dir" >/dev/null  # picks up the drivers' packages
  cmake --build "$build_dir" --target fencelock-bench fencelockd fencelock >/dev/null
}

# --- clusters: each start_* writes $state_dir/<system>.pids (one per line,
# in endpoint order) and returns when the cluster has a leader.

pids_of() { paste -sd, "$state_dir/$1.pids"; }

wait_until() {  # wait_until SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2
  shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# start_fencelock [tls]: ports 2700x (peers 2710x), or with tls 2800x (2810x),
# TLS on both ports with client certificates (certificates in $tls_dir).
start_fencelock() {
  local name=fencelock base=27 tls=() binary="$build_dir/cli/fencelockd"
  case "${1:-}" in
    metrics) name=fencelock_metrics base=29 ;;
    baseline) name=fencelock_baseline base=30 binary=${FENCELOCKD_BASELINE:?set FENCELOCKD_BASELINE} ;;
  esac
  if [ "${1:-}" = tls ]; then
    name=fencelock_tls base=28
    "$root/scripts/tls-certs.sh" "$tls_dir" node 1 2 3 >/dev/null
    "$root/scripts/tls-certs.sh" "$tls_dir" client admin >/dev/null
    printf 'admin * lock,read,admin\n' >"$tls_dir/acl"
  fi
  local dir="$state_dir/$name" peers="1=127.0.0.1:${base}101,2=127.0.0.1:${base}102,3=127.0.0.1:${base}103"
  rm -rf "$dir" && mkdir -p "$dir"
  : >"$state_dir/$name.pids"
  for i in 1 2 3; do
    [ "$name" = fencelock_tls ] && tls=(--tls-cert "$tls_dir/n$i.crt" --tls-key "$tls_dir/n$i.key"
      --tls-ca "$tls_dir/ca.crt" --client-auth cert --acl "$tls_dir/acl")
    [ "$name" = fencelock_metrics ] && tls=(--http-addr "127.0.0.1:${base}20$i")
    nohup "$binary" --id "$i" --peers "$peers" --client-addr "127.0.0.1:${base}00$i" \
      --data-dir "$dir/n$i" --log-level warn "${tls[@]}" >"$dir/n$i.log" 2>&1 &
    echo $! >>"$state_dir/$name.pids"
    disown  # no "Killed" notice from bash when failover kills it
  done
  local endpoints
  endpoints=$(endpoints_of "$name")
  fencelock_has_leader() {
    "$build_dir/cli/fencelock" "${client_tls[@]}" --timeout 1s --endpoints "$endpoints" status 2>/dev/null |
      awk '$3 == "leader" { found = 1 } END { exit !found }'
  }
  local client_tls=()
  [ "$name" = fencelock_tls ] && client_tls=(--cacert "$tls_dir/ca.crt" --cert "$tls_dir/admin.crt" --key "$tls_dir/admin.key")
  wait_until 20 "a fencelock leader" fencelock_has_leader || die "fencelock: no leader; see $dir/n*.log"
}

start_etcd() {
  local dir="$state_dir/etcd"
  local cluster="e1=http://127.0.0.1:12380,e2=http://127.0.0.1:22380,e3=http://127.0.0.1:32380"
  rm -rf "$dir" && mkdir -p "$dir"
  : >"$state_dir/etcd.pids"
  for i in 1 2 3; do
    # Defaults otherwise: every raft entry is fsynced before it is acknowledged.
    nohup etcd --name "e$i" --data-dir "$dir/e$i" \
      --listen-client-urls "http://127.0.0.1:${i}2379" --advertise-client-urls "http://127.0.0.1:${i}2379" \
      --listen-peer-urls "http://127.0.0.1:${i}2380" --initial-advertise-peer-urls "http://127.0.0.1:${i}2380" \
      --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token fencelock-bench \
      --log-level warn --logger zap >"$dir/e$i.log" 2>&1 &
    echo $! >>"$state_dir/etcd.pids"
    disown  # no "Killed" notice from bash when failover kills it
  done
  etcd_has_leader() {
    ETCDCTL_API=3 etcdctl --command-timeout=1s --endpoints "$etcd_endpoints" endpoint status 2>/dev/null |
      grep -q ", true, false,"
  }
  wait_until 30 "an etcd leader" etcd_has_leader || die "etcd: no leader; see $dir/e*.log"
}

zk_word() {  # zk_word PORT WORD: a four-letter word's answer
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1 && printf $2 >&3 && cat <&3" 2>/dev/null
}

start_zookeeper() {
  local dir="$state_dir/zookeeper"
  rm -rf "$dir" && mkdir -p "$dir"
  : >"$state_dir/zookeeper.pids"
  for i in 1 2 3; do
    mkdir -p "$dir/z$i/data"
    echo "$i" >"$dir/z$i/data/myid"
    # Upstream's sample settings; forceSync (fsync of the transaction log
    # before acknowledging) is on by default.
    cat >"$dir/z$i/zoo.cfg" <<EOF
tickTime=2000
initLimit=10
syncLimit=5
dataDir=$dir/z$i/data
clientPort=1218$i
clientPortAddress=127.0.0.1
maxClientCnxns=0
4lw.commands.whitelist=srvr,mntr,ruok
admin.enableServer=false
server.1=127.0.0.1:12888:13888
server.2=127.0.0.1:22888:23888
server.3=127.0.0.1:32888:33888
EOF
    # -Xmx1000m is zkServer.sh's default heap (ZK_SERVER_HEAP).
    nohup java -Xmx1000m -cp /etc/zookeeper/conf:/usr/share/java/zookeeper.jar \
      -Dzookeeper.log.dir="$dir/z$i" -Dzookeeper.root.logger=WARN,CONSOLE \
      org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/z$i/zoo.cfg" >"$dir/z$i.log" 2>&1 &
    echo $! >>"$state_dir/zookeeper.pids"
    disown  # no "Killed" notice from bash when failover kills it
  done
  zk_has_leader() {
    local modes=""
    for i in 1 2 3; do modes+=$(zk_word "1218$i" srvr | grep Mode:); done
    [[ "$modes" == *leader* && $(grep -o follower <<<"$modes" | wc -l) -eq 2 ]]
  }
  wait_until 40 "a ZooKeeper leader" zk_has_leader || die "zookeeper: no leader; see $dir/z*.log"
}

stop_system() {  # SIGTERM, then SIGKILL after 10 s: by pid, only what we started
  local file="$state_dir/$1.pids"
  [ -f "$file" ] || return 0
  local pids
  pids=$(cat "$file")
  for pid in $pids; do kill -TERM "$pid" 2>/dev/null || true; done
  local deadline=$((SECONDS + 10))
  for pid in $pids; do
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -f "$file"
}

stop_all() {
  for s in fencelock fencelock_tls fencelock_metrics fencelock_baseline etcd zookeeper; do
    stop_system "$s"
  done
}

endpoints_of() { eval echo "\$${1}_endpoints"; }

# --- runs

run_bench() {  # run_bench SYSTEM WORKLOAD DURATION [ARGS...]: one JSON line per run, appended
  local system=$1 workload=$2 run_duration=$3
  shift 3
  log "$system $workload $*"
  timeout 300 "$bench" --system "$system" --endpoints "$(endpoints_of "$system")" \
    --server-pids "$(pids_of "$system")" --workload "$workload" --warmup "$warmup" \
    --duration "$run_duration" --output json "$@" >>"$results" ||
    log "$system $workload: fencelock-bench exited $? (see the failure field)"
}

prime_system() {
  # Not recorded, the same for every system: first connections, caches, and
  # above all the JIT of ZooKeeper's JVM (its 64-client rate rises by half
  # over the first 10 s of load).
  timeout 60 "$bench" --system "$1" --endpoints "$(endpoints_of "$1")" --workload uncontended \
    --clients 64 --warmup 0s --duration "$prime" --output json >/dev/null 2>&1 || true
}

zookeeper_idle_sessions() {
  # A ZooKeeper session is a connection: 3 descriptors in the C client
  # (socket and wake-up pipe), whatever this shell may open.
  local fit=$((($(ulimit -n) - 1000) / 3 / 1000 * 1000))
  ((sessions <= fit)) && echo "$sessions" || echo "$fit"
}

# All clusters run at once, but only one is ever under load: every workload
# and client count runs against each system back to back, so load that other
# work puts on this machine during the run falls on all systems alike
# instead of on whichever system's turn it was.
bench_all() {
  for s in $systems; do
    log "starting $s"
    "start_$s"
    prime_system "$s"
  done
  for c in $clients; do
    for s in $systems; do run_bench "$s" uncontended "$duration" --clients "$c"; done
  done
  for c in $contended_clients; do
    for s in $systems; do run_bench "$s" contended "$duration" --clients "$c"; done
  done
  for s in $systems; do
    local idle=$sessions
    [ "$s" = zookeeper ] && idle=$(zookeeper_idle_sessions)
    run_bench "$s" keepalive "$duration" --sessions "$idle"
  done
  # Last: it kills the leader; each system is stopped after its run.
  for s in $systems; do
    run_bench "$s" failover "$failover_duration" --clients "$failover_clients" --kill-after "$kill_after"
    stop_system "$s"
  done
}

# Both fencelock clusters run at once; rounds alternate so that outside load
# falls on both alike.
cmd_tls() {
  build
  mkdir -p "$state_dir"
  stop_all
  trap 'stop_all' EXIT
  trap 'exit 130' INT TERM
  results="$state_dir/tls.jsonl"
  : >"$results"
  start_fencelock
  start_fencelock tls
  for s in fencelock fencelock_tls; do
    local extra=()
    [ "$s" = fencelock_tls ] && extra=(--tls "$tls_dir")
    timeout 60 "$bench" --system fencelock --endpoints "$(endpoints_of "$s")" --workload uncontended \
      --clients 64 --warmup 0s --duration "$prime" --output json "${extra[@]}" >/dev/null 2>&1 || true
  done
  for _ in $(seq 1 "${BENCH_TLS_ROUNDS:-3}"); do
    for s in fencelock fencelock_tls; do
      local extra=()
      [ "$s" = fencelock_tls ] && extra=(--tls "$tls_dir")
      log "$s uncontended --clients 64"
      timeout 300 "$bench" --system fencelock --endpoints "$(endpoints_of "$s")" \
        --server-pids "$(pids_of "$s")" --workload uncontended --clients 64 --warmup "$warmup" \
        --duration "$duration" --output json "${extra[@]}" | sed "s/^{/{\"cluster\":\"$s\",/" >>"$results"
    done
  done
  python3 - "$results" <<'PY'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
rate = {}
for run in runs:
    rate.setdefault(run["cluster"], []).append(run["pairs_per_s"])
plain, tls = statistics.median(rate["fencelock"]), statistics.median(rate["fencelock_tls"])
print(f"plaintext: {plain:,.0f} pairs/s (runs: {', '.join(f'{r:,.0f}' for r in rate['fencelock'])})")
print(f"TLS:       {tls:,.0f} pairs/s (runs: {', '.join(f'{r:,.0f}' for r in rate['fencelock_tls'])})")
print(f"TLS / plaintext (medians): {tls / plain:.2f}")
PY
}

cmd_metrics() {
  build
  mkdir -p "$state_dir"
  stop_all
  metrics_scraper=""
  trap 'stop_all; if [ -n "$metrics_scraper" ]; then kill "$metrics_scraper" 2>/dev/null || true; fi' EXIT
  trap 'exit 130' INT TERM
  results="$state_dir/metrics.jsonl"
  : >"$results"
  start_fencelock baseline
  start_fencelock metrics
  # A Prometheus scraping every node each second (bounded: it stops after
  # an hour, or with this script).
  python3 - <<'PY' &
import time, urllib.request
for _ in range(3600):
    for i in (1, 2, 3):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:2920{i}/metrics", timeout=2).read()
        except OSError:
            pass
    time.sleep(1)
PY
  metrics_scraper=$!
  for s in fencelock_baseline fencelock_metrics; do
    timeout 60 "$bench" --system fencelock --endpoints "$(endpoints_of "$s")" --workload uncontended \
      --clients 64 --warmup 0s --duration "$prime" --output json >/dev/null 2>&1 || true
  done
  for _ in $(seq 1 "${BENCH_METRICS_ROUNDS:-3}"); do
    for s in fencelock_baseline fencelock_metrics; do
      log "$s uncontended --clients 64"
      timeout 300 "$bench" --system fencelock --endpoints "$(endpoints_of "$s")" \
        --server-pids "$(pids_of "$s")" --workload uncontended --clients 64 --warmup "$warmup" \
        --duration "$duration" --output json | sed "s/^{/{\"cluster\":\"$s\",/" >>"$results"
    done
  done
  python3 - "$results" <<'PY'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
rate = {}
for run in runs:
    rate.setdefault(run["cluster"], []).append(run["pairs_per_s"])
base, metrics = statistics.median(rate["fencelock_baseline"]), statistics.median(rate["fencelock_metrics"])
print(f"baseline (no metrics): {base:,.0f} pairs/s (runs: {', '.join(f'{r:,.0f}' for r in rate['fencelock_baseline'])})")
print(f"metrics, scraped 1/s:  {metrics:,.0f} pairs/s (runs: {', '.join(f'{r:,.0f}' for r in rate['fencelock_metrics'])})")
print(f"metrics / baseline (medians): {metrics / base:.3f}")
PY
}

cmd_run() {
  install_packages
  build
  mkdir -p "$state_dir" "$out_dir"
  stop_all
  trap 'stop_all' EXIT
  trap 'exit 130' INT TERM
  local stamp
  stamp=$(date +%F)
  [ -e "$out_dir/$stamp.md" ] && stamp=$(date +%F-%H%M)
  results="$out_dir/$stamp.jsonl"
  : >"$results"
  local started=$SECONDS load_before
  load_before=$(cut -d' ' -f1-3 /proc/loadavg)
  bench_all
  log "all runs done in $((SECONDS - started)) s"
  python3 "$root/scripts/bench-report.py" "$results" "$out_dir/$stamp" \
    --duration "$duration" --warmup "$warmup" --load-before "$load_before" \
    --load-after "$(cut -d' ' -f1-3 /proc/loadavg)" --elapsed "$((SECONDS - started))" \
    --fencelock-version "$(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)" \
    --etcd-version "$(etcd --version 2>/dev/null | head -1 | awk '{print $3}')" \
    --zookeeper-version "$(dpkg-query -W -f='${Version}' zookeeper 2>/dev/null)"
  log "wrote $out_dir/$stamp.md"
}

quick=0
args=()
while (($#)); do
  case "$1" in
    --quick) quick=1 ;;
    --systems) systems=$2; shift ;;
    *) args+=("$1") ;;
  esac
  shift
done
if ((quick)); then
  duration=${BENCH_DURATION:-2s}
  warmup=${BENCH_WARMUP:-1s}
  clients=${BENCH_CLIENTS:-1 64}
  contended_clients=${BENCH_CONTENDED_CLIENTS:-64}
  sessions=${BENCH_SESSIONS:-1000}
  kill_after=1s
  failover_duration=5s
  prime=2s
  out_dir=${BENCH_OUT:-$state_dir/quick-results}
fi

case "${args[0]:-run}" in
  run) cmd_run ;;
  start)
    system=${args[1]:-}
    [[ " fencelock etcd zookeeper " == *" $system "* ]] || die "usage: bench-vs.sh start fencelock|etcd|zookeeper"
    install_packages
    build
    mkdir -p "$state_dir"
    stop_system "$system"
    "start_$system"
    echo "endpoints: $(endpoints_of "$system")"
    echo "pids:      $(pids_of "$system")"
    echo "try:       $bench --system $system --endpoints $(endpoints_of "$system") --server-pids $(pids_of "$system") --workload uncontended --clients 64"
    ;;
  stop) stop_all ;;
  tls) cmd_tls ;;
  metrics) cmd_metrics ;;
  *) die "usage: bench-vs.sh [--quick] [--systems \"...\"] [run | start SYSTEM | stop | tls | metrics]" ;;
esac
