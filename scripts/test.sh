#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs dependencies, builds, then runs unit, kernel and
# end-to-end tests on the release build, then all of them again plus a short fuzz run on the
# ASan+UBSan build. Needs root (tests create network namespaces; nothing touches the host's).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "test.sh: run as root (network namespaces, netfilter)" >&2; exit 2; }
./scripts/install-deps.sh

echo "== release build"
./scripts/build.sh release
echo "== release tests"
ctest --test-dir build --output-on-failure --timeout 900
echo "== conformance suite (every backend, the mini-cluster in network namespaces)"
SLUICE_BUILD_DIR="$PWD/build" ./e2e/conformance --keep-going --report=build/conformance.jsonl

echo "== sanitizer build (ASan+UBSan, clang)"
./scripts/build.sh sanitize
echo "== sanitizer tests"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-sanitize --output-on-failure --timeout 900
echo "== fuzzing (45 s per target)"
for f in build-sanitize/fuzz/*_fuzzer; do
  [ -x "$f" ] || continue
  corpus=$(mktemp -d)
  cp fuzz/corpus/"$(basename "$f")"/* "$corpus"/ 2>/dev/null || true
  "$f" -max_total_time=45 -rss_limit_mb=2048 "$corpus" 2>&1 | tail -3
  rm -rf "$corpus"
done
echo "== all tests passed"
