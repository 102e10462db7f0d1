"""The pod network: pods reach pods on their own node and on others, without NAT; nodes reach
pods; traffic leaving the cluster CIDR is masqueraded to the node's address. Both families
everywhere. Mirrors "[sig-network] Networking Granular Checks: Pods" and the egress tests of
"[sig-network] Networking"."""

import time

from cluster import probes
from cluster.conformance import ScenarioFailed, scenario
from cluster.minicluster import FAMILIES, HTTP_PORT, SCTP_PORT, UDP_PORT

PORT = {"HTTP": HTTP_PORT, "UDP": UDP_PORT, "SCTP": SCTP_PORT}


def _pod_to_pod(t, proto, across):
    """A client pod on node-1 reaches a server pod on node-1 (same node) or on every other node
    (across), by its pod IP, in both families, and the server sees the client's own pod IP."""
    client = t.add_pod("client", 1)
    nodes = t.cluster.nodes[1:] if across else t.cluster.nodes[:1]
    servers = [t.add_pod("server", node) for node in nodes]
    for server in servers:
        for f in FAMILIES:
            ip = server.ip[f]
            t.expect_reply(client, proto, ip, PORT[proto], [server])
            t.expect_source(client, proto, ip, PORT[proto], client.ip[f],
                            "pod-to-pod traffic is not NATed")


@scenario("pod-to-pod same node: http",
          mirrors="[sig-network] Networking Granular Checks: Pods should function for "
                  "intra-pod communication: http [NodeConformance] [Conformance]")
def pod_to_pod_same_node_http(t):
    _pod_to_pod(t, "HTTP", across=False)


@scenario("pod-to-pod across nodes: http", min_nodes=2,
          mirrors="[sig-network] Networking Granular Checks: Pods should function for "
                  "intra-pod communication: http [NodeConformance] [Conformance]")
def pod_to_pod_across_nodes_http(t):
    _pod_to_pod(t, "HTTP", across=True)


@scenario("pod-to-pod same node: udp",
          mirrors="[sig-network] Networking Granular Checks: Pods should function for "
                  "intra-pod communication: udp [NodeConformance] [Conformance]")
def pod_to_pod_same_node_udp(t):
    _pod_to_pod(t, "UDP", across=False)


@scenario("pod-to-pod across nodes: udp", min_nodes=2,
          mirrors="[sig-network] Networking Granular Checks: Pods should function for "
                  "intra-pod communication: udp [NodeConformance] [Conformance]")
def pod_to_pod_across_nodes_udp(t):
    _pod_to_pod(t, "UDP", across=True)


@scenario("pod-to-pod same node: sctp",
          mirrors="[sig-network] Networking Granular Checks: Pods should function for "
                  "intra-pod communication: sctp [LinuxOnly] [Feature:SCTPConnectivity]")
def pod_to_pod_same_node_sctp(t):
    _pod_to_pod(t, "SCTP", across=False)


@scenario("pod-to-pod across nodes: sctp", min_nodes=2,
          mirrors="[sig-network] Networking Granular Checks: Pods should function for "
                  "intra-pod communication: sctp [LinuxOnly] [Feature:SCTPConnectivity]")
def pod_to_pod_across_nodes_sctp(t):
    _pod_to_pod(t, "SCTP", across=True)


def _node_to_pod(t, proto):
    """Every node reaches a pod on every node by its pod IP, both families."""
    servers = [t.add_pod("server", node) for node in t.cluster.nodes]
    for node in t.cluster.nodes:
        for server in servers:
            for f in FAMILIES:
                t.expect_reply(node, proto, server.ip[f], PORT[proto], [server])


@scenario("node-to-pod: http",
          mirrors="[sig-network] Networking Granular Checks: Pods should function for "
                  "node-pod communication: http [LinuxOnly] [NodeConformance] [Conformance]")
def node_to_pod_http(t):
    _node_to_pod(t, "HTTP")


@scenario("node-to-pod: udp",
          mirrors="[sig-network] Networking Granular Checks: Pods should function for "
                  "node-pod communication: udp [LinuxOnly] [NodeConformance] [Conformance]")
def node_to_pod_udp(t):
    _node_to_pod(t, "UDP")


@scenario("pod egress is masqueraded, pod-to-pod is not", min_nodes=2,
          mirrors="[sig-network] Networking should provide Internet connection for containers "
                  "[Feature:Networking-IPv4] (and [Feature:Networking-IPv6][Experimental])")
def pod_egress_masquerade(t):
    """A pod's request to the outside client (beyond the cluster CIDR, with no route back to
    pods) arrives from its node's InternalIP; the same pod's request to a pod on another node
    arrives from the pod's own IP."""
    cluster = t.cluster
    for node in cluster.nodes[:2]:
        client = t.add_pod("client", node)
        for f in FAMILIES:
            since = time.time()
            try:
                t.expect_source(client, "HTTP", cluster.outside.ip[f], HTTP_PORT, node.ip[f],
                                f"egress leaves with the address of {node.name}")
            except ScenarioFailed as e:
                # A TCP handshake from an unmasqueraded pod never completes (the answer has no
                # way back), so a datagram shows what source the outside saw.
                probes.udp(client, cluster.outside.ip[f], UDP_PORT, "clientip")
                seen = sorted({r[2] for r in cluster.outside.requests(since)})
                t.fail(f"{e}; the outside client saw this pod's packets from "
                       f"{', '.join(seen) or 'nowhere (nothing arrived)'}" +
                       (" (the pod's own address: not masqueraded, so no answer can come back)"
                        if client.ip[f] in seen else ""))
    server = t.add_pod("server", cluster.nodes[1])
    client = t.add_pod("client", cluster.nodes[0])
    for f in FAMILIES:
        t.expect_source(client, "HTTP", server.ip[f], HTTP_PORT, client.ip[f],
                        "pod-to-pod across nodes is not masqueraded")


@scenario("pod network: a runtime choosing from cniVersions (libcni >= 1.2)",
          mirrors="CNI spec 1.1 (cniVersions), as containerd 2.x runs a conflist; the pod then "
                  "works like any (Networking Granular Checks: Pods, intra-pod http)")
def pod_added_by_cni_1_1_runtime(t):
    """A runtime on libcni >= 1.2 runs every plugin of the list at the highest version of
    `cniVersions` it knows (1.1.0): the conflist must only list versions all its plugins
    speak, and the pod must come up and answer like one made from `cniVersion`."""
    try:
        pod = t.add_pod("modern", 1, cni_runtime_version="1.1.0")
    except RuntimeError as e:
        t.fail(f"a libcni 1.2 runtime (CNI 1.1.0) could not add a pod with "
               f"{t.cluster.node(1).conflist_path}: {e}")
    client = t.add_pod("client", t.cluster.nodes[-1])
    for f in FAMILIES:
        t.expect_reply(client, "HTTP", pod.ip[f], HTTP_PORT, [pod])
