#!/usr/bin/env bash
# The test command: checks the layering (scripts/check-layering.sh), installs
# what is missing, builds, and runs every test (unit, simulation and
# integration) with ctest. Exits non-zero on any failure.
#
#   scripts/test.sh                 everything
#   scripts/test.sh -LE slow        skip the slow label
#   FENCELOCK_SANITIZE=address,undefined FENCELOCK_BUILD_DIR=build-asan scripts/test.sh
#
# Extra arguments go to ctest.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# First: it needs no build, and a module including one above it fails the run.
"$root/scripts/check-layering.sh"
"$root/scripts/setup.sh"
build_dir=${FENCELOCK_BUILD_DIR:-build}
cd "$root"
ctest --test-dir "$build_dir" --output-on-failure --timeout 600 -j "$(nproc)" "$@"
