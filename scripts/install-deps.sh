#!/usr/bin/env bash
# Installs every Debian 12 package Sluice needs to build, test and run its demo.
# Idempotent and quick when everything is already there.
set -euo pipefail

PACKAGES=(
  # build
  build-essential cmake pkg-config g++ clang libclang-rt-14-dev clang-format
  libnl-3-dev libnl-route-3-dev libmnl-dev libnftnl-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev
  libcurl4-openssl-dev libyaml-cpp-dev libsimdjson-dev libmicrohttpd-dev libcxxopts-dev
  libnetfilter-conntrack-dev
  # tests, e2e and the demo
  python3 iproute2 iputils-ping nftables iptables conntrack socat jq procps util-linux curl
  # the test API server and the real clients that judge it (kubectl comes with the machine)
  python3-yaml python3-kubernetes openssl
  # the reference CNI plugins: peers for chaining (portmap, firewall, tuning), interop and benchmarks
  containernetworking-plugins
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
