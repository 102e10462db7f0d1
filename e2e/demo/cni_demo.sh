#!/usr/bin/env bash
# Two pods on one node, wired by Sluice's bridge + host-local + loopback exactly as a container
# runtime would call them; they ping each other and the gateway, then everything is removed.
# Usage: cni_demo.sh CNI_BIN_DIR
set -euo pipefail
BIN=$(realpath "${1:?usage: $0 CNI_BIN_DIR}")
P="sldemo$$"
NODE="$P-node"
STORE=$(mktemp -d)

cleanup() {
  for ns in "$P-pod1" "$P-pod2" "$NODE"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$STORE"
}
trap cleanup EXIT INT TERM

ip netns add "$NODE"
ip netns add "$P-pod1"
ip netns add "$P-pod2"
ip -n "$NODE" link set lo up

CONF=$(cat <<JSON
{"cniVersion":"1.1.0","name":"demo","type":"bridge","bridge":"sl-demo0","isGateway":true,
 "ipMasq":true,"hairpinMode":true,
 "ipam":{"type":"host-local","ranges":[[{"subnet":"10.88.7.0/24"}]],
         "routes":[{"dst":"0.0.0.0/0"}],"dataDir":"$STORE"}}
JSON
)

cni() {  # cni COMMAND POD PLUGIN [CONFIG]
  local conf=${4:-$CONF}
  echo "$conf" | ip netns exec "$NODE" env CNI_COMMAND="$1" CNI_CONTAINERID="$2" \
    CNI_NETNS="/var/run/netns/$P-$2" CNI_IFNAME="${IFNAME:-eth0}" CNI_PATH="$BIN" \
    CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=$2" "$BIN/$3"
}

echo "Sluice CNI demo: node namespace $NODE, bridge sl-demo0, pods on 10.88.7.0/24"
for pod in pod1 pod2; do
  IFNAME=lo cni ADD "$pod" loopback '{"cniVersion":"1.1.0","name":"lo","type":"loopback"}' >/dev/null
  result=$(cni ADD "$pod" bridge)
  ip=$(echo "$result" | jq -r '.ips[0].address')
  echo "  $pod: eth0 $ip  gateway $(echo "$result" | jq -r '.ips[0].gateway')  (host port $(echo "$result" | jq -r '.interfaces[1].name'))"
  eval "IP_$pod=${ip%/*}"
done

probe() {  # probe FROM TO LABEL
  if ip netns exec "$P-$1" ping -c 2 -i 0.2 -W 1 "$2" >/dev/null; then
    echo "  ok   $3"
  else
    echo "  FAIL $3"; exit 1
  fi
}
echo "Traffic:"
probe pod1 "$IP_pod2" "pod1 -> pod2 ($IP_pod2)"
probe pod2 "$IP_pod1" "pod2 -> pod1 ($IP_pod1)"
probe pod1 10.88.7.1 "pod1 -> gateway (10.88.7.1)"
probe pod2 10.88.7.1 "pod2 -> gateway (10.88.7.1)"

echo "Node view: $(ip netns exec "$NODE" ip -br link show master sl-demo0 | wc -l) ports on sl-demo0;" \
  "masquerade elements: $(ip netns exec "$NODE" nft list map inet sluice_cni_masq pods4 | grep -o 'jump' | wc -l)"
for pod in pod1 pod2; do
  cni DEL "$pod" bridge >/dev/null
  IFNAME=lo cni DEL "$pod" loopback '{"cniVersion":"1.1.0","name":"lo","type":"loopback"}' >/dev/null
done
echo "Deleted both pods: $(ls "$STORE/demo" | grep -c '^10\.' || true) addresses still reserved," \
  "$(ip netns exec "$NODE" ip -br link show master sl-demo0 | wc -l) bridge ports left."
echo "Done; namespaces removed."
