#!/usr/bin/env bash
# install_packages, the one way the scripts install Debian packages.
# Sourced by scripts/setup.sh (the build's packages) and scripts/fuzz.sh (clang-14
# and libFuzzer, installed only when fuzzing is asked for).
#
# install_packages PACKAGE...: installs with apt-get those of the Debian 12
# packages named that are missing (nothing when all are present), with sudo
# when not root. Fails with the command to run by hand when it cannot.
install_packages() {
  local missing=() p
  for p in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
  ((${#missing[@]})) || return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "$(basename "$0"): apt-get not found; fencelock builds on Debian 12. Install these packages by hand: ${missing[*]}" >&2
    return 1
  fi
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
      echo "$(basename "$0"): not root and no sudo; install as root: apt-get install ${missing[*]}" >&2
      return 1
    fi
    sudo=(sudo)
  fi
  echo "$(basename "$0"): installing ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
}
