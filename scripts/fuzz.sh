#!/usr/bin/env bash
# Fuzzing (docs/fuzzing.md): installs clang-14 and libFuzzer when missing,
# configures build-fuzz/ with clang-14 and FENCELOCK_FUZZ=ON, builds the
# targets (only the libraries they need), and runs each for N seconds from a
# scratch copy of its committed corpus (fuzz/corpus/<target>; the repository
# is not modified). Exits 1 if any target finds a failure, printing the
# input that fails and how to replay it.
#
#   scripts/fuzz.sh                          every target, 30 s each
#   scripts/fuzz.sh --seconds 300 snapshot   one target, 5 minutes
#
# Targets: frame client_request state_machine snapshot log_recovery peer_message.
# Environment: FENCELOCK_FUZZ_DIR, where corpora, logs and failing inputs go
# (default: a new directory under ${TMPDIR:-/tmp}, kept and printed).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
all_targets=(frame client_request state_machine snapshot log_recovery peer_message)
seconds=30
targets=()
while (($#)); do
  case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --seconds=*) seconds=${1#*=}; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *)
      if [[ ! " ${all_targets[*]} " == *" $1 "* ]]; then
        echo "fuzz.sh: unknown target $1 (targets: ${all_targets[*]})" >&2
        exit 2
      fi
      targets+=("$1"); shift ;;
  esac
done
((${#targets[@]})) || targets=("${all_targets[@]}")

# libclang-rt-14-dev holds the libFuzzer runtime clang's -fsanitize=fuzzer
# links (libfuzzer-14-dev, the same library for other compilers, is not
# needed).
# shellcheck source=scripts/install-packages.sh
source "$root/scripts/install-packages.sh"
install_packages clang-14 libclang-rt-14-dev cmake ninja-build ccache \
  protobuf-compiler libprotobuf-dev libboost-dev libboost-system-dev librocksdb-dev \
  libspdlog-dev libfmt-dev nlohmann-json3-dev catch2 libcli11-dev libssl-dev libbenchmark-dev

cd "$root"
CC=clang-14 CXX=clang++-14 cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DFENCELOCK_FUZZ=ON >/dev/null
cmake --build build-fuzz -j2 --target "${targets[@]/%/_fuzz}"

work=${FENCELOCK_FUZZ_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/fencelock-fuzz.XXXXXX")}
mkdir -p "$work"
failed=0
for target in "${targets[@]}"; do
  corpus="$work/corpus/$target"
  artifacts="$work/artifacts/$target/"
  mkdir -p "$corpus" "$artifacts"
  cp -r fuzz/corpus/"$target"/. "$corpus"/
  cp -r fuzz/regressions/"$target"/. "$corpus"/ 2>/dev/null || true
  rm -f "$corpus/.gitkeep"
  log="$work/$target.log"
  echo "fuzz.sh: $target for ${seconds} s (log: $log)"
  # -malloc_limit_mb: a single allocation of more is a failure (decoders
  # must not allocate what an input merely announces).
  if build-fuzz/fuzz/"${target}_fuzz" "$corpus" -max_total_time="$seconds" \
      -artifact_prefix="$artifacts" -malloc_limit_mb=512 -rss_limit_mb=2048 \
      -print_final_stats=1 >"$log" 2>&1; then
    grep -E "^stat::(number_of_executed_units|average_exec_per_sec|new_units_added)" "$log" \
      | sed "s/^/  /" || true
    grep -E "cov: [0-9]+" "$log" | tail -1 | sed "s/^/  /" || true
  else
    failed=1
    echo "fuzz.sh: $target FAILED; the end of its log:" >&2
    tail -40 "$log" >&2
    for crash in "$artifacts"*; do
      [[ -e $crash ]] || continue
      echo "fuzz.sh: failing input: $crash" >&2
      echo "  replay:  build-fuzz/fuzz/${target}_fuzz $crash" >&2
      echo "  keep it: cp $crash fuzz/regressions/$target/ (then fix; ctest runs it)" >&2
    done
  fi
done
echo "fuzz.sh: corpora, logs and failing inputs in $work"
exit "$failed"
