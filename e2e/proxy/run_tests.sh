#!/bin/bash
# End-to-end kernel tests of sluice-agent's nftables backend: a small cluster of network
# namespaces (node-a with the agent, node-b, pods, an outside client), Services written to a
# manifest directory, judged by what real packets do. Needs root; nothing touches the host
# namespace. HarnessTest checks the topology and probes without the agent.
# Exit status: 0 all passed (skips allowed), 1 a test failed, 77 the binary or python3-yaml is
# missing (CTest: skipped). A build whose agent has no nftables backend yet skips the agent's
# tests (SLUICE_PROXY_REQUIRE_BACKEND=1 makes that a failure).
#   e2e/proxy/run_tests.sh                                  # every test
#   e2e/proxy/run_tests.sh ClusterIPTest                    # a class / Class.test
#   SLUICE_AGENT=build-dev/agent/sluice-agent e2e/proxy/run_tests.sh
#   python3 -m proxy.proxytest sweep    # (from e2e/) what a SIGKILLed run left behind
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export SLUICE_AGENT="${SLUICE_AGENT:-$repo/build/agent/sluice-agent}"
[[ $SLUICE_AGENT = /* ]] || SLUICE_AGENT="$PWD/$SLUICE_AGENT"  # the tests run from e2e/
export PYTHONDONTWRITEBYTECODE=1
py="${SLUICE_PYTHON:-/usr/bin/python3}"
[[ -x $py ]] || py=python3

if [[ ! -x $SLUICE_AGENT ]]; then
  echo "e2e_proxy: $SLUICE_AGENT not found; build sluice-agent or set SLUICE_AGENT" >&2
  exit 77
fi
if ! "$py" -c 'import yaml' 2>/dev/null; then
  echo "e2e_proxy: $py has no yaml module; install python3-yaml" >&2
  exit 77
fi
if [[ $EUID -ne 0 ]]; then
  echo "e2e_proxy: not root: every test will be skipped" >&2
fi

cd "$here/.." || exit 1
[[ $EUID -eq 0 ]] && "$py" -m proxy.proxytest sweep >&2

tests=()
for t in "$@"; do tests+=("proxy.test_nftables.$t"); done
(( ${#tests[@]} )) || tests=(proxy.test_nftables)
echo "e2e_proxy: agent under test: $SLUICE_AGENT" >&2
"$py" -m unittest -v "${tests[@]}"
