#!/usr/bin/env bash
# Valgrind memcheck over the on-disk adapters: builds the mmap tests and the fuzz corpus
# driver in a build directory of their own (no sanitizers: valgrind and ASan do not mix)
# and runs each under memcheck. Reads of uninitialised bytes (e.g. a header slot written
# by hand with padding left unset), invalid reads and leaks fail the run. Not part of
# .ci/run (time budget); see docs/testing.md.
#
# Usage: scripts/run-valgrind.sh            (from anywhere)
# Environment: BUILD_DIR (build/valgrind), BUILD_TYPE (RelWithDebInfo; Debug for clearer
# stacks), CXX (g++), JOBS (2).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build/valgrind}
type=${BUILD_TYPE:-RelWithDebInfo}
command -v valgrind > /dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 2; }

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE="$type" -DCMAKE_CXX_COMPILER="${CXX:-g++}" \
      -DVFOLDER_BUILD_TESTS=ON -DVFOLDER_BUILD_BENCHMARKS=OFF -DVFOLDER_BUILD_EXAMPLES=OFF \
      -DVFOLDER_INSTALL=OFF -DVFOLDER_WERROR=ON > "$build.configure.log" 2>&1 ||
  { cat "$build.configure.log"; exit 1; }
targets=(mmap_mailbox_test mmap_store_test mmap_concurrency_test fuzz_corpus_driver)
cmake --build "$build" -j "${JOBS:-2}" --target "${targets[@]}"

# Forked children (the crash and concurrency tests) are checked too: memcheck follows
# fork, and a child with errors exits 1, which its parent test reports as a failure.
vg=(valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect,possible
    --track-origins=yes --num-callers=30 --quiet)
failed=0
rm -f "$build"/valgrind-*.log*
run() {
  local name=$1; shift
  local log="$build/valgrind-$name.log"
  local start=$SECONDS
  if "${vg[@]}" --log-file="$log.%p" "$@" > "$log" 2>&1; then
    echo "valgrind: $name: ok ($((SECONDS - start)) s)"
  else
    echo "valgrind: $name: FAILED ($((SECONDS - start)) s); output in $log*" >&2
    failed=1
  fi
}
t="$build/tests"
run mmap_mailbox_test "$t/mmap_mailbox_test"
run mmap_store_test "$t/mmap_store_test"
run mmap_concurrency_test "$t/mmap_concurrency_test"
run fuzz_corpus.mmap_index "$t/fuzz_corpus_driver" index tests/fuzz/corpus/mmap_index
run fuzz_corpus.mmap_store "$t/fuzz_corpus_driver" store tests/fuzz/corpus/mmap_store
# Any memcheck report (also from a child whose exit status was not looked at) fails.
for f in "$build"/valgrind-*.log.*; do
  if [ -s "$f" ]; then
    echo "valgrind: report in $f:" >&2
    head -40 "$f" >&2
    failed=1
  fi
done
exit $failed
