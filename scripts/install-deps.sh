#!/usr/bin/env bash
# Installs the Debian 12 packages vfolder's build, tests and benchmarks need, if missing.
# Safe to run again: it installs nothing when everything is present.
# Never installs dovecot-core (an IMAP server that starts a daemon); the benchmarks get
# libdovecot.so with scripts/fetch-dovecot.sh instead.
set -euo pipefail

packages=(cmake make g++ clang git ca-certificates
          librange-v3-dev libboost-dev doctest-dev libbenchmark-dev
          libroaring-dev dovecot-dev libunwind8 ccache)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  echo "install-deps: need root or sudo to install: ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# A fresh machine may have no package lists yet; refresh them only when needed.
if ! "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"; then
  "${sudo[@]}" apt-get update
  "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
fi
