#!/bin/bash
# End-to-end tests of the Kubernetes client (controlplane/kube) through sluice-kube-watch against
# the test API server (e2e/apiserver), on 127.0.0.1 with kernel-chosen ports.
# Exit status: 0 all passed, 1 a test failed, 77 the binary or python3-yaml is missing (CTest:
# skipped).
#   e2e/kubeclient/run_tests.sh                          # every test
#   e2e/kubeclient/run_tests.sh GoneTest                 # a class / Class.test
#   SLUICE_KUBE_WATCH=build/controlplane/kube/sluice-kube-watch e2e/kubeclient/run_tests.sh
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export SLUICE_KUBE_WATCH="${SLUICE_KUBE_WATCH:-$repo/build/controlplane/kube/sluice-kube-watch}"
export PYTHONDONTWRITEBYTECODE=1
py="${SLUICE_PYTHON:-/usr/bin/python3}"
[[ -x $py ]] || py=python3

if [[ ! -x $SLUICE_KUBE_WATCH ]]; then
  echo "e2e_kubeclient: $SLUICE_KUBE_WATCH not found; build sluice-kube-watch or set SLUICE_KUBE_WATCH" >&2
  exit 77
fi
if ! "$py" -c 'import yaml' 2>/dev/null; then
  echo "e2e_kubeclient: $py has no yaml module; install python3-yaml" >&2
  exit 77
fi
command -v openssl >/dev/null || { echo "e2e_kubeclient: openssl is needed for TLS" >&2; exit 1; }

tests=()
for t in "$@"; do tests+=("kubeclient.test_kubeclient.$t"); done
(( ${#tests[@]} )) || tests=(kubeclient.test_kubeclient)
# From e2e/ so that both packages (apiserver, kubeclient) import by name.
cd "$here/.." || exit 1
"$py" -m unittest -v "${tests[@]}"
