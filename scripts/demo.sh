#!/usr/bin/env bash
# The demo: builds Sluice, then runs e2e/demo/cni_demo.sh (two pods wired by our CNI plugins).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "demo.sh: run as root (it creates network namespaces)" >&2; exit 2; }
./scripts/install-deps.sh
./scripts/build.sh release >/dev/null
exec ./e2e/demo/cni_demo.sh build/cni-bin
