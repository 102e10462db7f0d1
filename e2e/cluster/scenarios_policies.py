"""Session affinity, traffic policies (externalTrafficPolicy / internalTrafficPolicy Local, the
health check node port) and terminating endpoints. Mirrors "[sig-network] Services" tests of
those names; every check is what the packets did."""

import json
import time

from cluster import probes
from cluster.conformance import scenario
from cluster.minicluster import FAMILIES


def _sticky(t, where, proto, ip, port, pods, n=15):
    """The first answer's pod answers the next n too; returns it."""
    first = t.expect_reply(where, proto, ip, port, pods)
    seen = t.expect_only(where, proto, ip, port, [first.text], n=n)
    return first.text, seen


def _three_backends(t):
    nodes = t.cluster.nodes
    return [t.add_pod("web", nodes[i % len(nodes)]) for i in range(3)]


@scenario("session affinity ClientIP: http",
          mirrors="[sig-network] Services should have session affinity work for service with "
                  "type clusterIP [LinuxOnly] [Conformance]; Networking Granular Checks: "
                  "Services should function for client IP based session affinity: http")
def affinity_clusterip_http(t):
    client = t.add_pod("client", 1)
    web = _three_backends(t)
    svc = t.create_service(sessionAffinity="ClientIP")
    for ip in t.cluster_ips(svc):
        _sticky(t, client, "HTTP", ip, 80, web)


@scenario("session affinity ClientIP: udp",
          mirrors="[sig-network] Networking Granular Checks: Services should function for "
                  "client IP based session affinity: udp [LinuxOnly]")
def affinity_clusterip_udp(t):
    client = t.add_pod("client", 1)
    web = _three_backends(t)
    svc = t.create_service(sessionAffinity="ClientIP")
    for ip in t.cluster_ips(svc):
        _sticky(t, client, "UDP", ip, 90, web)


@scenario("session affinity switched off and on: ClusterIP",
          mirrors="[sig-network] Services should be able to switch session affinity for "
                  "service with type clusterIP [LinuxOnly] [Conformance]")
def affinity_switch_clusterip(t):
    client = t.add_pod("client", 1)
    web = _three_backends(t)
    svc = t.create_service(sessionAffinity="ClientIP")
    name = svc["metadata"]["name"]
    ip = t.cluster_ips(svc)[0]
    _sticky(t, client, "HTTP", ip, 80, web)
    t.cluster.patch_service(name, {"spec": {"sessionAffinity": "None"}})
    t.expect_spread(client, "HTTP", ip, 80, web)
    t.cluster.patch_service(name, {"spec": {"sessionAffinity": "ClientIP"}})

    # Sticky again once the change is in: 15 answers in a row from one pod.
    streak = {"pod": None, "n": 0}

    def accept(a):
        if not a.ok:
            streak["n"] = 0
            return False
        streak["n"] = streak["n"] + 1 if a.text == streak["pod"] else 1
        streak["pod"] = a.text
        return streak["n"] >= 15
    t.eventually(lambda: probes.hostname(client, "HTTP", ip, 80), accept,
                 "15 answers in a row from one pod (affinity back on)", interval=0)


@scenario("session affinity timeout: ClusterIP",
          mirrors="[sig-network] Services should have session affinity timeout work for "
                  "service with type clusterIP [LinuxOnly]")
def affinity_timeout_clusterip(t):
    """timeoutSeconds 2 (the e2e test uses 125 s): sticky within it, and once the client was idle
    longer than that a new choice is made (with 3 endpoints some try picks another pod)."""
    client = t.add_pod("client", 1)
    web = _three_backends(t)
    svc = t.create_service(sessionAffinity="ClientIP",
                           sessionAffinityConfig={"clientIP": {"timeoutSeconds": 2}})
    ip = t.cluster_ips(svc)[0]
    pod, _ = _sticky(t, client, "HTTP", ip, 80, web, n=5)
    for _ in range(10):
        time.sleep(3)
        a = probes.hostname(client, "HTTP", ip, 80)
        t.check(a.ok, f"{a}; expected an answer")
        if a.text != pod:
            return
    t.fail(f"every request after 3 s idle still went to {pod}; expected the 2 s affinity "
           f"timeout to let another of [{', '.join(p.name for p in web)}] be chosen")


@scenario("session affinity ClientIP: NodePort from outside",
          mirrors="[sig-network] Services should have session affinity work for NodePort "
                  "service [LinuxOnly] [Conformance]")
def affinity_nodeport(t):
    web = _three_backends(t)
    svc = t.create_service(type="NodePort", sessionAffinity="ClientIP")
    port = t.node_port(svc, "http")
    for node in t.cluster.nodes:
        for f in FAMILIES:
            _sticky(t, t.cluster.outside, "HTTP", node.ip[f], port, web, n=10)


def _local_setup(t, policy_field, type_="NodePort"):
    """One backend, on node 2; the Service's policy field set to Local."""
    web = t.add_pod("web", 2)
    svc = t.create_service(type=type_, **{policy_field: "Local"})
    return web, svc


@scenario("externalTrafficPolicy Local: client source kept, no local endpoint drops",
          min_nodes=2,
          mirrors="[sig-network] Services should fallback to local terminating endpoints ... "
                  "externalTrafficPolicy=Local; LoadBalancers ESIPP should preserve source ip "
                  "/ only target nodes with endpoints")
def etp_local(t):
    web, svc = _local_setup(t, "externalTrafficPolicy")
    outside = t.cluster.outside
    with_ep, without = t.cluster.node(2), t.cluster.node(1)
    port = t.node_port(svc, "http")
    for f in FAMILIES:
        t.expect_source(outside, "HTTP", with_ep.ip[f], port, outside.ip[f],
                        "externalTrafficPolicy Local keeps the client's address")
        t.expect_source(outside, "UDP", with_ep.ip[f], t.node_port(svc, "udp"), outside.ip[f],
                        "externalTrafficPolicy Local keeps the client's address")
        t.expect_outcome(lambda: probes.tcp_connect(outside, without.ip[f], port), "timeout",
                         f"a drop: {without.name} has no local endpoint")
    # The ClusterIP still reaches the endpoint from anywhere (the policy is external only).
    client = t.add_pod("client", 1)
    for ip in t.cluster_ips(svc):
        t.expect_reply(client, "HTTP", ip, 80, [web])


@scenario("externalTrafficPolicy Local: health check node port 200 / 503",
          min_nodes=2,
          mirrors="[sig-network] Services should fail health check node port if there are "
                  "only terminating endpoints; LoadBalancers ESIPP should work for type=LoadBalancer")
def etp_local_health_check(t):
    web, svc = _local_setup(t, "externalTrafficPolicy", type_="LoadBalancer")
    hc = svc["spec"].get("healthCheckNodePort")
    t.check(hc, f"the API server allocated no healthCheckNodePort: {svc['spec']}")
    outside = t.cluster.outside

    def local_endpoints(a):
        try:
            return json.loads(a.text).get("localEndpoints")
        except (ValueError, AttributeError):
            return None

    def expect(node, status, local):
        t.eventually(lambda: probes.http_get(outside, node.ip[4], hc, "/"),
                     lambda a: a.ok and a.status == status and local_endpoints(a) == local,
                     f"HTTP {status} with localEndpoints {local} from {node.name}'s health "
                     f"check node port {hc}")
    expect(t.cluster.node(2), 200, 1)
    for node in t.cluster.nodes:
        if node.name != t.cluster.node(2).name:
            expect(node, 503, 0)
    # Only terminating endpoints: 503, while the NodePort still serves the terminating pod.
    t.cluster.terminate_pod(web)
    expect(t.cluster.node(2), 503, 0)
    t.expect_reply(outside, "HTTP", t.cluster.node(2).ip[4], t.node_port(svc, "http"), [web])


@scenario("internalTrafficPolicy Local: only clients on the endpoint's node",
          min_nodes=2,
          mirrors="[sig-network] Services should respect internalTrafficPolicy=Local Pod to Pod; "
                  "Pod and Node, to Pod")
def itp_local(t):
    web, svc = _local_setup(t, "internalTrafficPolicy", type_="ClusterIP")
    near, far = t.add_pod("client", 2), t.add_pod("client", 1)
    for ip in t.cluster_ips(svc):
        for where in (near, t.cluster.node(2)):
            t.expect_reply(where, "HTTP", ip, 80, [web])
            t.expect_reply(where, "UDP", ip, 90, [web])
        for where in (far, t.cluster.node(1)):
            t.expect_outcome(lambda: probes.tcp_connect(where, ip, 80), "timeout",
                             "a drop: no endpoint on this node under internalTrafficPolicy Local")


@scenario("terminating endpoints: fallback when no endpoint is ready", min_nodes=2,
          mirrors="[sig-network] Services should fallback to terminating endpoints when there "
                  "are no ready endpoints with internalTrafficPolicy=Cluster; ... with "
                  "externallTrafficPolicy=Cluster")
def terminating_fallback(t):
    web = t.add_pod("web", 2)
    svc = t.create_service(type="NodePort")
    t.cluster.terminate_pod(web)
    clients = [t.add_pod("client", 1), t.add_pod("client", 2)]
    for ip in t.cluster_ips(svc):
        for c in clients:
            t.expect_reply(c, "HTTP", ip, 80, [web])
    port = t.node_port(svc, "http")
    for node in t.cluster.nodes:
        t.expect_reply(t.cluster.outside, "HTTP", node.ip[4], port, [web])


@scenario("terminating endpoints: ready ones are preferred", min_nodes=2,
          mirrors="[sig-network] Services should not be able to connect to terminating and "
                  "unready endpoints if PublishNotReadyAddresses is false")
def terminating_not_used_while_ready(t):
    client = t.add_pod("client", 1)
    old, new = t.add_pod("web", 2), t.add_pod("web", 1)
    svc = t.create_service()
    ips = t.cluster_ips(svc)
    for ip in ips:
        t.expect_spread(client, "HTTP", ip, 80, [old, new])
    t.cluster.terminate_pod(old)
    streak = [0]

    def accept(a):
        streak[0] = streak[0] + 1 if a.ok and a.text == new.name else 0
        return streak[0] >= 20
    for ip in ips:
        streak[0] = 0
        t.eventually(lambda: probes.hostname(client, "HTTP", ip, 80), accept,
                     f"20 answers in a row from {new.name} (the ready one)", interval=0)


@scenario("terminating endpoints: local fallback under internalTrafficPolicy Local",
          min_nodes=2,
          mirrors="[sig-network] Services should fallback to local terminating endpoints when "
                  "there are no ready endpoints with internalTrafficPolicy=Local")
def terminating_local_fallback(t):
    web, svc = _local_setup(t, "internalTrafficPolicy", type_="ClusterIP")
    t.cluster.terminate_pod(web)
    near, far = t.add_pod("client", 2), t.add_pod("client", 1)
    for ip in t.cluster_ips(svc):
        t.expect_reply(near, "HTTP", ip, 80, [web])
        t.expect_outcome(lambda: probes.tcp_connect(far, ip, 80), "timeout",
                         "a drop: the only endpoint is on another node")
