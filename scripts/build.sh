#!/usr/bin/env bash
# build.sh [release|sanitize]: configures and builds into build/ or build-sanitize/.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-release}
jobs=$(nproc)
case "$kind" in
  release)
    cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build build -j"$jobs"
    ;;
  sanitize)
    # clang so that the libFuzzer targets build in the same tree as the ASan+UBSan tests.
    CC=clang CXX=clang++ cmake -S . -B build-sanitize -DCMAKE_BUILD_TYPE=Debug \
      -DSLUICE_SANITIZE=ON -DSLUICE_FUZZ=ON >/dev/null
    cmake --build build-sanitize -j"$jobs"
    ;;
  *) echo "usage: $0 [release|sanitize]" >&2; exit 2 ;;
esac
