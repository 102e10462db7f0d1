#!/usr/bin/env bash
# The demo: installs what it needs, builds Sluice, then starts a 3-node mini-cluster in network
# namespaces (sluice-agent with the nftables backend and the pod network on every node, pods
# made through the agents' CNI conflists) and shows requests spread over pods on different nodes
# through a ClusterIP and a NodePort. It stays up for kubectl and a shell in a pod until Ctrl-C,
# then removes everything. `scripts/demo.sh --no-wait` tears down right after the show.
# `e2e/demo/cni_demo.sh build/cni-bin` is the older, plugins-only demo.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "demo.sh: run as root (it creates network namespaces)" >&2; exit 2; }
./scripts/install-deps.sh
echo "Building (the first build takes a few minutes)..."
./scripts/build.sh release >/dev/null
exec env SLUICE_BUILD_DIR="$PWD/build" /usr/bin/python3 e2e/demo/cluster_demo.py "$@"
