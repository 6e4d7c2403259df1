#!/usr/bin/env bash
# Builds and runs the vfolder demo. Installs missing packages first; safe to run again.
# Usage: scripts/run-demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build/demo -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DVFOLDER_BUILD_TESTS=OFF -DVFOLDER_BUILD_BENCHMARKS=OFF -DVFOLDER_BUILD_EXAMPLES=ON
cmake --build build/demo -j2 --target demo demo_disk
./build/demo/examples/demo
echo
echo "--- the same folder on disk (mmap_mailbox backends, mmap_store), across a restart"
./build/demo/examples/demo_disk
