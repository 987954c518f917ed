#!/usr/bin/env bash
# Fault-injection run (docs/faults.md): a real cluster under kills, pauses,
# partitions and client cut-offs, checked by fencing; then a short proof run
# with fencing switched off in the resource, which must report lost updates.
#
#   scripts/faults.sh [--seconds 60] [--seed S] [--nodes 3|5] [--proof-seconds 15] [--no-proof]
#
# A fresh seed each run unless --seed is given; it is printed with the
# command to replay it. Histories go to $FENCELOCK_FAULTS_OUT (default a new
# directory under /tmp), one subdirectory per run. Exits non-zero on any
# violation, or if the proof run shows no lost update.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${FENCELOCK_BUILD_DIR:-build}
seconds=60
nodes=3
seed=""
proof_seconds=15
proof=1
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --nodes) nodes=$2; shift 2 ;;
    --proof-seconds) proof_seconds=$2; shift 2 ;;
    --no-proof) proof=0; shift ;;
    *) echo "faults.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ -z "$seed" ]; then
  seed=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
fi

cd "$root"
if [ ! -f "$build_dir/build.ninja" ]; then
  "$root/scripts/setup.sh"
fi
cmake --build "$build_dir" --target fencelock-faults fencelockd
driver="$build_dir/tests/faults/fencelock-faults"
out=${FENCELOCK_FAULTS_OUT:-$(mktemp -d /tmp/fencelock-faults.XXXXXX)}
echo "faults.sh: seed $seed, $nodes nodes, $seconds s; replay: scripts/faults.sh --seconds $seconds --nodes $nodes --seed $seed"
echo "faults.sh: histories under $out"

status=0
"$driver" --seconds "$seconds" --nodes "$nodes" --seed "$seed" --out "$out/run" || status=$?
if [ "$proof" = 1 ]; then
  echo "faults.sh: proof run, fencing off in the resource: lost updates must be reported"
  "$driver" --seconds "$proof_seconds" --nodes "$nodes" --seed "$seed" --out "$out/no-fence" \
    --no-fence --expect-lost-updates || status=$?
fi
if [ "$status" != 0 ]; then
  echo "faults.sh: FAILED (seed $seed); histories and node logs under $out" >&2
  exit "$status"
fi
# The histories of a passing run are only for inspection: drop the nodes'
# data directories, keep the history files and logs.
rm -rf "$out"/*/nodes/n*/data
echo "faults.sh: passed (seed $seed)"
