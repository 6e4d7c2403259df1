#!/usr/bin/env bash
# Builds vfolder (g++, RelWithDebInfo: tests, examples, benchmarks) and runs every test,
# including a brief smoke run of every benchmark. Installs missing packages first.
# Usage: scripts/run-tests.sh   (from anywhere; safe to run again)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# libdovecot.so (a benchmark peer) is unpacked into the build tree, never installed.
scripts/fetch-dovecot.sh build/default/_deps/dovecot || true
cmake --preset default
cmake --build --preset default
ctest --preset default
