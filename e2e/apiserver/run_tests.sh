#!/bin/bash
# Runs the test API server's suite: raw-HTTP protocol tests, fault injection and the command
# line, the official Python client, and the installed kubectl. Everything listens on 127.0.0.1
# with kernel-chosen ports and cleans up its processes and temp dirs.
# Exit status: 0 all passed (skips allowed), 1 a test failed, 77 python3-yaml is missing
# (CTest: skipped). Python-client and kubectl tests skip themselves when those are not installed.
#   e2e/apiserver/run_tests.sh                          # every module
#   e2e/apiserver/run_tests.sh test_protocol            # some modules / Class / Class.test
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export PYTHONDONTWRITEBYTECODE=1
py="${SLUICE_PYTHON:-/usr/bin/python3}"
[[ -x $py ]] || py=python3

if ! "$py" -c 'import yaml' 2>/dev/null; then
  echo "e2e_apiserver: $py has no yaml module; install python3-yaml" >&2
  exit 77
fi
"$py" -c 'import kubernetes' 2>/dev/null ||
  echo "e2e_apiserver: python3-kubernetes missing: the Python client tests will be skipped" >&2
command -v kubectl >/dev/null ||
  echo "e2e_apiserver: kubectl missing: the kubectl tests will be skipped" >&2
command -v openssl >/dev/null || { echo "e2e_apiserver: openssl is needed for TLS" >&2; exit 1; }

modules=()
for m in "$@"; do modules+=("apiserver.$m"); done
if (( ${#modules[@]} == 0 )); then
  modules=(apiserver.test_protocol apiserver.test_faults apiserver.test_python_client
           apiserver.test_kubectl)
fi
# Run from e2e/ so the package imports as `apiserver` and its modules never shadow the stdlib.
cd "$here/.." || exit 1
"$py" -m unittest -v "${modules[@]}"
