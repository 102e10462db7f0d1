"""Services: ClusterIPs and NodePorts from pods, nodes and the outside, spreading over pods on
other nodes; no endpoints means a REJECT; traffic follows endpoints as they come and go.
Both families everywhere (dual-stack Services). Mirrors "[sig-network] Services" and
"[sig-network] Networking Granular Checks: Services"."""

import time

from cluster import probes
from cluster.conformance import scenario
from cluster.minicluster import FAMILIES

SVC_PORT = {"HTTP": 80, "UDP": 90}
PORT_NAME = {"HTTP": "http", "UDP": "udp"}


def _backends(t, n=2, base="web"):
    """n pods spread over the nodes other than node-1 (all nodes when there are too few)."""
    others = t.cluster.nodes[1:] or t.cluster.nodes
    return [t.add_pod(base, others[i % len(others)]) for i in range(n)]


def _clusterip_from(t, proto, where_fn):
    web = _backends(t)
    svc = t.create_service()
    for where in where_fn():
        for ip in t.cluster_ips(svc):
            t.expect_spread(where, proto, ip, SVC_PORT[proto], web)
    return web, svc


@scenario("ClusterIP from a pod: http",
          mirrors="[sig-network] Networking Granular Checks: Services should function for "
                  "pod-Service: http; [sig-network] Services should preserve source pod IP for "
                  "traffic thru service cluster IP [LinuxOnly]")
def clusterip_from_pod_http(t):
    client = t.add_pod("client", 1)
    web, svc = _clusterip_from(t, "HTTP", lambda: [client])
    for f, ip in zip(FAMILIES, t.cluster_ips(svc)):
        t.expect_source(client, "HTTP", ip, 80, client.ip[f],
                        "a pod's ClusterIP traffic keeps its source")


@scenario("ClusterIP from a pod: udp",
          mirrors="[sig-network] Networking Granular Checks: Services should function for "
                  "pod-Service: udp")
def clusterip_from_pod_udp(t):
    client = t.add_pod("client", 1)
    _clusterip_from(t, "UDP", lambda: [client])


@scenario("ClusterIP from a node: http",
          mirrors="[sig-network] Networking Granular Checks: Services should function for "
                  "node-Service: http")
def clusterip_from_node_http(t):
    _clusterip_from(t, "HTTP", lambda: t.cluster.nodes)


@scenario("ClusterIP from a node: udp",
          mirrors="[sig-network] Networking Granular Checks: Services should function for "
                  "node-Service: udp")
def clusterip_from_node_udp(t):
    _clusterip_from(t, "UDP", lambda: t.cluster.nodes)


@scenario("ClusterIP from an endpoint pod (hairpin): http",
          mirrors="[sig-network] Networking Granular Checks: Services should function for "
                  "endpoint-Service: http; [sig-network] Services should allow pods to hairpin "
                  "back to themselves through services")
def clusterip_hairpin_http(t):
    web = [t.add_pod("web", 1), t.add_pod("web", t.cluster.nodes[-1])]
    svc = t.create_service()
    for ip in t.cluster_ips(svc):
        t.expect_spread(web[0], "HTTP", ip, 80, web)


def _nodeport(t, proto, where_fn):
    web = _backends(t)
    svc = t.create_service(type="NodePort")
    port = t.node_port(svc, PORT_NAME[proto])
    for where in where_fn():
        for node in t.cluster.nodes:
            for f in FAMILIES:
                t.expect_reply(where, proto, node.ip[f], port, web)
    # And it spreads: every backend answers through one node.
    t.expect_spread(where_fn()[0], proto, t.cluster.nodes[0].ip[4], port, web)


@scenario("NodePort from outside: http",
          mirrors="[sig-network] Services should be able to create a functioning NodePort "
                  "service [Conformance]")
def nodeport_from_outside_http(t):
    _nodeport(t, "HTTP", lambda: [t.cluster.outside])


@scenario("NodePort from outside: udp",
          mirrors="[sig-network] Networking Granular Checks: Services should support basic "
                  "nodePort: udp functionality")
def nodeport_from_outside_udp(t):
    _nodeport(t, "UDP", lambda: [t.cluster.outside])


@scenario("NodePort from a node: http",
          mirrors="[sig-network] Networking Granular Checks: Services should function for "
                  "node-Service: http")
def nodeport_from_node_http(t):
    _nodeport(t, "HTTP", lambda: [t.cluster.nodes[0]])


@scenario("NodePort on localhost from a node (iptables only)",
          mirrors="kube-proxy --iptables-localhost-nodeports (default true): "
                  "[sig-network] Services should be able to create a functioning NodePort "
                  "service, reached at 127.0.0.1 on the node")
def nodeport_on_localhost(t):
    """kube-proxy's iptables mode answers IPv4 NodePorts on 127.0.0.1 too (it sets
    route_localnet; the DNATed packet leaves masqueraded); its nftables mode never does, and
    nothing listens there: the connection is refused."""
    web = _backends(t)
    svc = t.create_service(type="NodePort")
    port = t.node_port(svc, PORT_NAME["HTTP"])
    node = t.cluster.nodes[0]
    if t.cluster.backend.startswith("iptables"):
        t.expect_spread(node, "HTTP", "127.0.0.1", port, web)
    else:
        t.expect_reply(node, "HTTP", node.ip[4], port, web)  # the rules are in
        t.expect_outcome(lambda: probes.tcp_connect(node, "127.0.0.1", port), "refused",
                         "connection refused: no localhost NodePorts in this mode")


@scenario("no endpoints: connections are refused",
          mirrors="[sig-network] Services should be rejected when no endpoints exist; "
                  "should be rejected for evicted pods (no endpoints exist)")
def no_endpoints_rejected(t):
    """A Service without endpoints REJECTs (TCP: refused at once, UDP: port unreachable),
    never drops: both for a Service that never had any and one scaled to zero."""
    client = t.add_pod("client", 1)
    empty = t.create_service("empty")
    web = _backends(t)
    svc = t.create_service()
    for ip in t.cluster_ips(svc):
        t.expect_reply(client, "HTTP", ip, 80, web)
    for pod in web:  # scale to zero
        t.delete_pod(pod)
    for s in (empty, svc):
        for ip in t.cluster_ips(s):
            for where in (client, t.cluster.nodes[-1]):
                t.expect_outcome(lambda: probes.tcp_connect(where, ip, 80), "refused",
                                 "connection refused (a REJECT, not a drop)")
                t.expect_outcome(lambda: probes.udp(where, ip, 90), "refused",
                                 "ICMP port unreachable (a REJECT, not a drop)")


def _follow(t, proto):
    """Endpoints come and go; traffic follows, and a pod taken out gets nothing more."""
    client = t.add_pod("client", 1)
    nodes = t.cluster.nodes[1:] or t.cluster.nodes
    web0 = t.add_pod("web", nodes[0])
    svc = t.create_service()
    ips = t.cluster_ips(svc)
    port = SVC_PORT[proto]
    for ip in ips:
        t.expect_reply(client, proto, ip, port, [web0])
    web1 = t.add_pod("web", nodes[-1])
    for ip in ips:
        t.expect_spread(client, proto, ip, port, [web0, web1])
    # web0 leaves the endpoints (unready) but keeps running: it must get nothing once the
    # change is in.
    t.cluster.set_pod_ready(web0, False)
    for ip in ips:
        _converge(t, client, proto, ip, port, web1)
    # The change is in once the agents' syncs are done, the cleanup of web0's UDP conntrack
    # entries included: until then a new datagram whose source port happens to be that of an
    # earlier one to web0 still reaches web0 (as with kube-proxy). The iptables agents restore
    # IPv6 after IPv4, so with them the rules alone come in a few tens of ms before the cleanup.
    t.cluster.wait_synced()
    since = time.time()
    for ip in ips:
        t.expect_only(client, proto, ip, port, [web1], n=20)
    late = [r for r in web0.requests(since) if r[2] == client.ip[4] or r[2] == client.ip[6]]
    t.check(not late, f"{web0.name} is out of the endpoints yet served {len(late)} request(s) "
                      f"from {client.name} after the change was in: {late[:3]}")
    # Gone entirely, a new one comes.
    t.delete_pod(web0)
    web2 = t.add_pod("web", nodes[0])
    for ip in ips:
        t.expect_spread(client, proto, ip, port, [web1, web2])


def _converge(t, client, proto, ip, port, only, run=20):
    """Polls until `run` answers in a row come from `only` (a Service that still had the old
    endpoint would show it within a few answers)."""
    streak = [0]

    def accept(a):
        streak[0] = streak[0] + 1 if a.ok and a.text == only.name else 0
        return streak[0] >= run
    t.eventually(lambda: probes.hostname(client, proto, ip, port), accept,
                 f"{run} answers in a row from {only.name} alone", interval=0)


@scenario("endpoints added and removed: http", min_nodes=2,
          mirrors="[sig-network] Networking Granular Checks: Services should update endpoints: "
                  "http; [sig-network] Services should serve a basic endpoint from pods "
                  "[Conformance]")
def endpoints_follow_http(t):
    _follow(t, "HTTP")


@scenario("endpoints added and removed: udp", min_nodes=2,
          mirrors="[sig-network] Networking Granular Checks: Services should update endpoints: "
                  "udp")
def endpoints_follow_udp(t):
    _follow(t, "UDP")


@scenario("ClusterIP: large requests (http, udp)",
          mirrors="[sig-network] Networking Granular Checks: Services should be able to handle "
                  "large requests: http; ... large requests: udp")
def clusterip_large_requests(t):
    """A 2000-byte HTTP echo and a 2000-byte UDP datagram (fragmented on a 1500 MTU) through
    the ClusterIP come back whole."""
    client = t.add_pod("client", 1)
    _backends(t)
    svc = t.create_service()
    msg = "n" + "o" * 1999
    for ip in t.cluster_ips(svc):
        t.eventually(lambda: probes.http_get(client, ip, 80, f"/echo?msg={msg}"),
                     lambda a: a.ok and a.status == 200 and a.text == msg,
                     "the 2000-byte message echoed")
        t.eventually(lambda: probes.udp(client, ip, 90, f"echo {msg}"),
                     lambda a: a.ok and a.text == msg, "the 2000-byte datagram echoed")
