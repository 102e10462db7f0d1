#!/bin/bash
# End-to-end tests of sluice-agent --dry-run: against the test API server (changes made with
# kubectl), against a manifest directory (files written, changed, removed, broken), bad input, and
# the healthz/metrics servers. Loopback only, kernel-chosen ports; no kernel state is touched.
# Exit status: 0 all passed, 1 a test failed, 77 the binary or python3-yaml is missing (skipped).
#   e2e/agent/run_tests.sh                    # every test
#   e2e/agent/run_tests.sh ManifestDirTest    # a class / Class.test
#   SLUICE_AGENT=build/agent/sluice-agent e2e/agent/run_tests.sh
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export SLUICE_AGENT="${SLUICE_AGENT:-$repo/build/agent/sluice-agent}"
export PYTHONDONTWRITEBYTECODE=1
py="${SLUICE_PYTHON:-/usr/bin/python3}"
[[ -x $py ]] || py=python3

if [[ ! -x $SLUICE_AGENT ]]; then
  echo "e2e_agent: $SLUICE_AGENT not found; build sluice-agent or set SLUICE_AGENT" >&2
  exit 77
fi
if ! "$py" -c 'import yaml' 2>/dev/null; then
  echo "e2e_agent: $py has no yaml module; install python3-yaml" >&2
  exit 77
fi

tests=()
for t in "$@"; do tests+=("agent.test_agent.$t"); done
(( ${#tests[@]} )) || tests=(agent.test_agent)
cd "$here/.." || exit 1
"$py" -m unittest -v "${tests[@]}"
