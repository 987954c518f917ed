#!/usr/bin/env bash
# Installs the Debian 12 packages fencelock needs (only those missing), then
# configures and builds into build/ (or $FENCELOCK_BUILD_DIR).
# Idempotent: re-running with everything present installs nothing and only
# rebuilds what changed.
#
# Environment:
#   FENCELOCK_BUILD_DIR   build directory (default: build)
#   FENCELOCK_BUILD_TYPE  CMake build type (default: RelWithDebInfo)
#   FENCELOCK_SANITIZE    e.g. address,undefined (default: none)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${FENCELOCK_BUILD_DIR:-build}
build_type=${FENCELOCK_BUILD_TYPE:-RelWithDebInfo}
sanitize=${FENCELOCK_SANITIZE:-}

packages=(
  g++ cmake ninja-build ccache pkg-config
  protobuf-compiler libprotobuf-dev
  libboost-dev libboost-system-dev
  librocksdb-dev
  libspdlog-dev libfmt-dev nlohmann-json3-dev
  catch2 libcli11-dev libssl-dev libbenchmark-dev
  prometheus-cpp-dev  # /metrics (server/metrics.h)
  prometheus  # tests: promtool check metrics and rules (metrics_test, packaging_grafana_test)
  chromium  # tests: the operator page in headless Chromium (tests/cluster/operator_page_test.cc)
  dpkg-dev  # dpkg-shlibdeps, for cpack -G DEB (docs/operations.md, "Installing")
)

# shellcheck source=scripts/install-packages.sh
source "$root/scripts/install-packages.sh"
install_packages "${packages[@]}"

cd "$root"
cmake -S . -B "$build_dir" -G Ninja \
  -DCMAKE_BUILD_TYPE="$build_type" \
  -DFENCELOCK_SANITIZE="$sanitize" >/dev/null
# FENCELOCK_BUILD_TARGET builds one target instead of everything (CI's
# sanitizer pass: fencelock_fast_tests, what `ctest -L "unit|sim"` runs).
cmake --build "$build_dir" ${FENCELOCK_BUILD_TARGET:+--target "$FENCELOCK_BUILD_TARGET"}
