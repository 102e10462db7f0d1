"""External addresses (ExternalIPs, LoadBalancer ingress IPs and source ranges), Services that
change (ports, type, protocols, labels, deletion), single-stack Services of either family,
UDP conntrack when a server pod is replaced, an agent restart, and kube-proxy's node-level
promises (no NodePort sockets, /healthz and /metrics). Mirrors "[sig-network] Services",
"Conntrack" and "Networking" tests of those names."""

import contextlib
import json
import os
import signal
import threading
import time

from cluster import probes
from cluster.conformance import scenario
from cluster.minicluster import FAMILIES

EXTERNAL_IP = {4: "203.0.113.250", 6: "2001:db8::cb00:71fa"}
LB_IP = {4: "198.51.100.20", 6: "2001:db8:1::20"}


@contextlib.contextmanager
def _route_outside(t, ips, node):
    """The outside client routes `ips` via `node` (as a router in front of the cluster would)
    for the duration of the block."""
    ns = t.cluster.outside.ns
    routes = [(f, f"{ip}/{32 if f == 4 else 128}") for f, ip in ips.items()]
    try:
        for f, dst in routes:
            ns.run(["ip", f"-{f}", "route", "replace", dst, "via", node.ip[f]])
        yield
    finally:
        for f, dst in routes:
            ns.run(["ip", f"-{f}", "route", "del", dst], check=False)


def _not_served(answer):
    return not answer.ok


@scenario("ExternalIP from outside and from a pod",
          mirrors="[sig-network] Services should be possible to connect to a service via "
                  "ExternalIP when the external IP is not assigned to a node")
def external_ip(t):
    web = [t.add_pod("web", n) for n in t.cluster.nodes[:2]]
    t.create_service(externalIPs=[EXTERNAL_IP[4], EXTERNAL_IP[6]])
    client = t.add_pod("client", t.cluster.nodes[-1])
    with _route_outside(t, EXTERNAL_IP, t.cluster.nodes[0]):
        for f in FAMILIES:
            t.expect_spread(t.cluster.outside, "HTTP", EXTERNAL_IP[f], 80, web)
            t.expect_reply(t.cluster.outside, "UDP", EXTERNAL_IP[f], 90, web)
            t.expect_reply(client, "HTTP", EXTERNAL_IP[f], 80, web)


def _set_lb_ingress(t, svc, ips):
    stored = t.cluster.get_service(svc["metadata"]["name"])
    stored["status"] = {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}}
    t.cluster.api.load(stored)


@scenario("LoadBalancer ingress IP from outside",
          mirrors="[sig-network] LoadBalancers should be able to create LoadBalancer Service "
                  "without NodePort and change it; Services should serve endpoints on same port "
                  "and different protocol for internal traffic on Type LoadBalancer")
def loadbalancer_ip(t):
    web = [t.add_pod("web", n) for n in t.cluster.nodes[:2]]
    svc = t.create_service(type="LoadBalancer")
    _set_lb_ingress(t, svc, [LB_IP[4], LB_IP[6]])
    with _route_outside(t, LB_IP, t.cluster.nodes[-1]):
        for f in FAMILIES:
            t.expect_spread(t.cluster.outside, "HTTP", LB_IP[f], 80, web)
            t.expect_reply(t.cluster.outside, "UDP", LB_IP[f], 90, web)
    # ClusterIP and NodePort work too (allocateLoadBalancerNodePorts defaults to true).
    client = t.add_pod("client", 1)
    for ip in t.cluster_ips(svc):
        t.expect_reply(client, "UDP", ip, 90, web)
    t.expect_reply(t.cluster.outside, "HTTP", t.cluster.nodes[0].ip[4],
                   t.node_port(svc, "http"), web)


@scenario("LoadBalancer source ranges: allowed clients only",
          mirrors="[sig-network] LoadBalancers should only allow access from service "
                  "loadbalancer source ranges")
def loadbalancer_source_ranges(t):
    web = [t.add_pod("web", 1)]
    outside = t.cluster.outside
    svc = t.create_service(type="LoadBalancer", families=("IPv4",),
                           loadBalancerSourceRanges=[f"{outside.ip[4]}/32"])
    _set_lb_ingress(t, svc, [LB_IP[4]])
    with _route_outside(t, {4: LB_IP[4]}, t.cluster.nodes[0]):
        t.expect_reply(outside, "HTTP", LB_IP[4], 80, web)
        t.cluster.patch_service(svc["metadata"]["name"],
                                {"spec": {"loadBalancerSourceRanges": ["198.51.100.0/24"]}})
        t.expect_outcome(lambda: probes.tcp_connect(outside, LB_IP[4], 80), "timeout",
                         "a drop: the client is outside loadBalancerSourceRanges")


@scenario("multi-port Service with named target ports",
          mirrors="[sig-network] Services should serve multiport endpoints from pods "
                  "[Conformance]")
def multiport_named(t):
    ports = {"svc1": 8083, "svc2": (8081, "UDP"), "svc3": (8082, "SCTP")}
    web = [t.add_pod("web", n, ports=ports) for n in t.cluster.nodes[:2]]
    svc = t.create_service(ports=[t.port("p100", 100, "svc1"),
                                  t.port("p101", 101, "svc2", "UDP"),
                                  t.port("p102", 102, "svc3", "SCTP")])
    client = t.add_pod("client", t.cluster.nodes[-1])
    for ip in t.cluster_ips(svc):
        t.expect_spread(client, "HTTP", ip, 100, web)
        t.expect_spread(client, "UDP", ip, 101, web)
        t.expect_reply(client, "SCTP", ip, 102, web)


@scenario("Service ports added and removed",
          mirrors="[sig-network] Services should be updated after adding or deleting ports")
def ports_added_removed(t):
    web = [t.add_pod("web", 1)]
    client = t.add_pod("client", 2 if len(t.cluster.nodes) > 1 else 1)
    svc = t.create_service(ports=[t.port("http", 80, "http")])
    name = svc["metadata"]["name"]
    ip = t.cluster_ips(svc)[0]
    t.expect_reply(client, "HTTP", ip, 80, web)
    svc = t.cluster.get_service(name)
    svc["spec"]["ports"].append(t.port("http2", 81, "http"))
    t.cluster.update_service(svc)
    t.expect_reply(client, "HTTP", ip, 81, web)
    svc = t.cluster.get_service(name)
    svc["spec"]["ports"] = [p for p in svc["spec"]["ports"] if p["port"] == 80]
    t.cluster.update_service(svc)
    # kube-proxy's nftables mode rejects a ClusterIP's unknown ports, its iptables mode lets
    # them be routed on (here: unreachable); either way nothing answers on port 81 any more.
    t.eventually(lambda: probes.tcp_connect(client, ip, 81), _not_served,
                 "no connection: port 81 is gone from the Service")
    t.expect_reply(client, "HTTP", ip, 80, web)


@scenario("same port, TCP and UDP; one protocol removed",
          mirrors="[sig-network] Services should serve endpoints on same port and different "
                  "protocols [Conformance]")
def same_port_two_protocols(t):
    ports = {"tcp": 8083, "udp": (8081, "UDP")}
    web = [t.add_pod("web", n, ports=ports) for n in t.cluster.nodes[:2]]
    client = t.add_pod("client", t.cluster.nodes[-1])
    svc = t.create_service(ports=[t.port("tcp", 80, "tcp"), t.port("udp", 80, "udp", "UDP")])
    name = svc["metadata"]["name"]
    for ip in t.cluster_ips(svc):
        t.expect_reply(client, "HTTP", ip, 80, web)
        t.expect_reply(client, "UDP", ip, 80, web)
    svc = t.cluster.get_service(name)
    svc["spec"]["ports"] = [p for p in svc["spec"]["ports"] if p["protocol"] == "TCP"]
    t.cluster.update_service(svc)
    for ip in t.cluster_ips(svc):
        t.eventually(lambda: probes.udp(client, ip, 80), _not_served,
                     "no UDP answer once the UDP port is removed")
        t.expect_reply(client, "HTTP", ip, 80, web)


@scenario("type ClusterIP -> NodePort -> ClusterIP",
          mirrors="[sig-network] Services should be able to update service type to NodePort "
                  "listening on same port number but different protocols; should be able to "
                  "change the type from ExternalName to NodePort [Conformance]")
def type_changes(t):
    web = [t.add_pod("web", n) for n in t.cluster.nodes[:2]]
    svc = t.create_service()
    name = svc["metadata"]["name"]
    outside, node = t.cluster.outside, t.cluster.nodes[0]
    client = t.add_pod("client", 1)
    t.expect_reply(client, "HTTP", t.cluster_ips(svc)[0], 80, web)
    svc = t.cluster.patch_service(name, {"spec": {"type": "NodePort"}})
    port, uport = t.node_port(svc, "http"), t.node_port(svc, "udp")
    for f in FAMILIES:
        t.expect_reply(outside, "HTTP", node.ip[f], port, web)
        t.expect_reply(outside, "UDP", node.ip[f], uport, web)
    t.cluster.patch_service(name, {"spec": {"type": "ClusterIP",
                                            "ports": [{"port": 80, "nodePort": None},
                                                      {"port": 90, "nodePort": None}]}})
    for f in FAMILIES:
        t.eventually(lambda: probes.tcp_connect(outside, node.ip[f], port), _not_served,
                     f"NodePort {port} closed once the Service is ClusterIP again")
    t.expect_reply(client, "HTTP", t.cluster_ips(svc)[0], 80, web)


def _label_hides(t, label, value):
    client = t.add_pod("client", 1)
    web = [t.add_pod("web", n) for n in t.cluster.nodes[:2]]
    svc = t.create_service(selector={"app": t.app("web")})
    name = svc["metadata"]["name"]
    ip = t.cluster_ips(svc)[0]
    t.expect_reply(client, "HTTP", ip, 80, web)
    t.cluster.patch_service(name, {"metadata": {"labels": {label: value}}})
    t.eventually(lambda: probes.tcp_connect(client, ip, 80), _not_served,
                 f"no answer: a Service labelled {label} is not ours to proxy")
    t.cluster.patch_service(name, {"metadata": {"labels": {label: None}}})
    t.expect_reply(client, "HTTP", ip, 80, web)


@scenario("service.kubernetes.io/service-proxy-name: not proxied",
          mirrors="[sig-network] Services should implement service.kubernetes.io/"
                  "service-proxy-name")
def service_proxy_name(t):
    _label_hides(t, "service.kubernetes.io/service-proxy-name", "foo-bar")


@scenario("service.kubernetes.io/headless: not proxied",
          mirrors="[sig-network] Services should implement service.kubernetes.io/headless")
def headless_label(t):
    _label_hides(t, "service.kubernetes.io/headless", "")


@scenario("Service deleted and recreated",
          mirrors="[sig-network] Services should be able to up and down services; should work "
                  "after the service has been recreated")
def deleted_and_recreated(t):
    web = [t.add_pod("web", n) for n in t.cluster.nodes[:2]]
    client = t.add_pod("client", t.cluster.nodes[-1])
    svc = t.create_service(families=("IPv4",))
    ip = t.cluster_ips(svc)[0]
    t.expect_spread(client, "HTTP", ip, 80, web)
    t.delete_service(svc)
    t.eventually(lambda: probes.tcp_connect(client, ip, 80), _not_served,
                 "no answer from a deleted Service's ClusterIP")
    svc2 = t.create_service("web2", selector={"app": t.app("web")}, families=("IPv4",))
    t.expect_spread(client, "HTTP", t.cluster_ips(svc2)[0], 80, web)


@scenario("single-stack IPv6 and IPv4 Services",
          mirrors="[sig-network] [Feature:IPv6DualStack] should create service with ipv6 "
                  "cluster ip / ipv4 cluster ip; Granular Checks: Services Secondary IP Family")
def single_stack(t):
    web = [t.add_pod("web", n) for n in t.cluster.nodes[:2]]
    client = t.add_pod("client", t.cluster.nodes[-1])
    for fam, base in (("IPv6", "v6"), ("IPv4", "v4")):
        svc = t.create_service(base, selector={"app": t.app("web")}, type="NodePort",
                               families=(fam,))
        ips = t.cluster_ips(svc)
        t.check(len(ips) == 1 and (":" in ips[0]) == (fam == "IPv6"),
                f"a single {fam} ClusterIP, got {ips}")
        t.expect_spread(client, "HTTP", ips[0], 80, web)
        t.expect_reply(client, "UDP", ips[0], 90, web)
        f = 6 if fam == "IPv6" else 4
        t.expect_reply(t.cluster.outside, "HTTP", t.cluster.nodes[0].ip[f],
                       t.node_port(svc, "http"), web)


def _udp_server_replaced(t, target):
    """A client sends from a fixed source port; its server pod is replaced by another; the
    client reaches the new one (the stale conntrack entry was cleared). The old pod keeps
    running (unready), so without the cleanup the flow would stay on it."""
    old = t.add_pod("web", 2)
    svc = t.create_service(type="NodePort", families=("IPv4",))
    client = t.add_pod("client", 1)
    ip, port = target(svc)
    sport = 40000 + (hash(t.tag) % 20000)
    t.eventually(lambda: probes.udp(client, ip, port, sport=sport),
                 lambda a: a.ok and a.text == old.name, f"an answer from {old.name}")
    new = t.add_pod("web", t.cluster.nodes[-1])
    t.cluster.set_pod_ready(old, False)
    t.eventually(lambda: probes.udp(client, ip, port, sport=sport),
                 lambda a: a.ok and a.text == new.name,
                 f"the same UDP flow (source port {sport}) answered by {new.name}, the "
                 f"replacement of {old.name}", interval=0.5)


@scenario("UDP server pod replaced: ClusterIP flow follows", min_nodes=2,
          mirrors="[sig-network] Conntrack should be able to preserve UDP traffic when server "
                  "pod cycles for a ClusterIP service")
def conntrack_clusterip(t):
    _udp_server_replaced(t, lambda svc: (t.cluster_ips(svc)[0], 90))


@scenario("UDP server pod replaced: NodePort flow follows", min_nodes=2,
          mirrors="[sig-network] Conntrack should be able to preserve UDP traffic when server "
                  "pod cycles for a NodePort service")
def conntrack_nodeport(t):
    _udp_server_replaced(t, lambda svc: (t.cluster.nodes[-1].ip[4], t.node_port(svc, "udp")))


@scenario("agent restart: Services keep working",
          mirrors="[sig-network] Services should work after restarting kube-proxy [Disruptive]")
def agent_restart(t):
    web = [t.add_pod("web", n) for n in t.cluster.nodes[:2]]
    client = t.add_pod("client", 1)
    svc = t.create_service(families=("IPv4",))
    ip = t.cluster_ips(svc)[0]
    t.expect_spread(client, "HTTP", ip, 80, web)
    agent = t.cluster.node(1).agent
    agent.stop()
    # The rules stay while the agent is away (kube-proxy's too), and after it is back.
    t.expect_only(client, "HTTP", ip, 80, web, n=5)
    agent.start()
    t.cluster.wait_synced()
    t.expect_spread(client, "HTTP", ip, 80, web)
    web.append(t.add_pod("web", 1))
    t.expect_spread(client, "HTTP", ip, 80, web)


@scenario("NodePorts hold no listening socket",
          mirrors="[sig-network] Services should release NodePorts on delete")
def no_nodeport_sockets(t):
    web = t.add_pod("web", 1)
    svc = t.create_service(type="NodePort", families=("IPv4",))
    port = t.node_port(svc, "http")
    t.expect_reply(t.cluster.outside, "HTTP", t.cluster.nodes[0].ip[4], port, [web])
    for node in t.cluster.nodes:
        out = node.ns.run(["ss", "-Hltnu", f"sport = :{port}"]).stdout.strip()
        t.check(not out, f"{node.name} has a socket on NodePort {port}: {out}")


@scenario("kube-proxy URLs: /healthz and /metrics on every node",
          mirrors="[sig-network] Networking should check kube-proxy urls")
def proxy_urls(t):
    for node in t.cluster.nodes:
        a = probes.http_get(node, node.ip[4], 10256, "/healthz")
        t.check(a.ok and a.status == 200, f"{a}; expected HTTP 200 from {node.name}'s /healthz")
        try:
            body = json.loads(a.text)
        except ValueError:
            body = {}
        t.check("lastUpdated" in body, f"{node.name} /healthz: no lastUpdated in {a.text!r}")
        m = probes.http_get(node, "127.0.0.1", 10249, "/metrics")
        t.check(m.ok and m.status == 200, f"{m}; expected HTTP 200 from {node.name}'s /metrics")
        for name in ("kubeproxy_sync_proxy_rules_duration_seconds",
                     "kubeproxy_sync_proxy_rules_last_timestamp_seconds"):
            t.check(name in (m.text or ""), f"{node.name} /metrics lacks {name}")


@scenario("agent killed and restarted: no request lost",
          mirrors="[sig-network] Services should work after restarting kube-proxy [Disruptive] "
                  "(with traffic flowing throughout)")
def agent_killed_no_request_lost(t):
    """Requests every ~20 ms through a ClusterIP while the client node's agent is SIGKILLed and
    started again: the rules stay in the kernel while it is away, and its restart (a full sync
    over rules already there) must not drop a single one."""
    web = [t.add_pod("web", n) for n in t.cluster.nodes[:2]]
    client = t.add_pod("client", 1)
    svc = t.create_service(families=("IPv4",))
    ip = t.cluster_ips(svc)[0]
    t.expect_spread(client, "HTTP", ip, 80, web)
    node = t.cluster.node(1)
    done = threading.Event()

    def cycle():
        try:
            time.sleep(0.3)
            os.killpg(node.agent.proc.pid, signal.SIGKILL)
            node.agent.proc.wait(10)
            time.sleep(0.3)
            node.agent.start()
            t.cluster.wait_synced()
            time.sleep(0.5)
        finally:
            done.set()
    threading.Thread(target=cycle, daemon=True).start()
    answered, failures = 0, []
    while not done.is_set():
        a = probes.hostname(client, "HTTP", ip, 80)
        if a.ok and a.text in {p.name for p in web}:
            answered += 1
        else:
            failures.append(str(a))
        time.sleep(0.02)
    t.check(node.agent.running(), f"{node.name}'s agent did not come back: "
                                  f"{node.agent.exit_reason()}")
    t.check(not failures, f"{len(failures)} of {answered + len(failures)} requests failed while "
                          f"the agent restarted; first: {failures[:2]}")
    t.check(answered >= 10, f"only {answered} requests were made during the restart")
