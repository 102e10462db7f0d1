#!/bin/bash
# Runs the CNI end-to-end suite against the plugin dir $SLUICE_CNI_BIN
# (default: <repo>/build/cni-bin). Exit status: 0 all passed (skips allowed),
# 1 a test failed, 77 the plugin dir is missing or incomplete (CTest: skipped).
#   e2e/cni/run_tests.sh                         # every module
#   e2e/cni/run_tests.sh test_versions           # some modules / Class / Class.test
#   SLUICE_CNI_BIN=/usr/lib/cni e2e/cni/run_tests.sh   # validate against the reference
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export SLUICE_CNI_BIN="${SLUICE_CNI_BIN:-$repo/build/cni-bin}"
export PYTHONDONTWRITEBYTECODE=1
py="${SLUICE_PYTHON:-/usr/bin/python3}"
[[ -x $py ]] || py=python3

missing=()
for p in bridge host-local loopback; do
  [[ -x $SLUICE_CNI_BIN/$p ]] || missing+=("$p")
done
if (( ${#missing[@]} )); then
  echo "e2e_cni: ${missing[*]} not found in $SLUICE_CNI_BIN; build the plugins or set SLUICE_CNI_BIN" >&2
  exit 77
fi
if [[ $EUID -ne 0 ]]; then
  echo "e2e_cni: not root: the namespace tests will be skipped" >&2
fi

cd "$here" || exit 1
"$py" cnitest.py sweep >&2   # namespaces of earlier runs that were SIGKILLed

modules=("$@")
if (( ${#modules[@]} == 0 )); then
  modules=(test_bridge_kernel test_chaining test_ipam_interop test_concurrency test_bad_input
           test_versions)
fi
echo "e2e_cni: plugins under test: $SLUICE_CNI_BIN" >&2
"$py" -m unittest -v "${modules[@]}"
