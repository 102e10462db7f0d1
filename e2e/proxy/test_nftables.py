"""sluice-agent --proxy-mode=nftables end to end: Services written to a manifest directory,
judged by what real packets do between namespaces (proxytest.py draws the topology). Each
scenario mirrors a kube-proxy e2e test ("[sig-network] Services should ..."); only
AgentLifecycleTest reads the table back, because restarts, drift and cleanup are about the
table itself.

HarnessTest runs without the agent: it checks the topology, the pod servers and the probes
(TCP, UDP and raw-socket SCTP, both families, through a hand-made DNAT too), so a failure
elsewhere is the proxy's, not the harness's."""

import json
import threading
import time
import unittest

from proxy.proxytest import (
    CLIENT_IP, CLIENT_IP2, FAMILIES, NODE_IP, NODE_IP2, PROBE_TIMEOUT, PROTOCOLS, SERVER_PORTS,
    SYNC_PERIOD, TABLE, TABLE_FAMILY, Endpoint, ProxyTestCase, TableListing, UdpFlow,
    concurrently, endpoint_slices, http_get, nft_table, probe, run_cleanup, service,
    service_ports, tcp, wait_until)

# A fresh UDP flow must reach the new endpoint this soon after its slice changed.
STALE_UDP_DEADLINE = 3.0


class HarnessTest(ProxyTestCase):
    """The topology, the pod servers and the probes, without any agent."""

    agent = None

    def test_pods_answer_directly_in_both_families(self):
        pa1 = self.pod("pa1")
        for target in self.pods.values():
            if target is pa1:
                continue
            for f in FAMILIES:
                for proto in PROTOCOLS:
                    for port in SERVER_PORTS:
                        with self.subTest(target=target.name, family=f, proto=proto, port=port):
                            r = probe(pa1, proto, target.ip[f], port)
                            self.assertTrue(r.ok, r)
                            # No NAT anywhere without the agent: the pod sees the pod.
                            self.assertEqual((r.pod, r.seen), (target.name, pa1.ip[f]))
        for target in self.pods.values():
            for f in FAMILIES:
                for proto in PROTOCOLS:
                    with self.subTest(source="node", target=target.name, family=f, proto=proto):
                        r = probe(self.topo.node, proto, target.ip[f], SERVER_PORTS[0])
                        self.assertEqual(r.pod, target.name, r)

    def test_failures_are_classified(self):
        pa1 = self.pod("pa1")
        for f in FAMILIES:
            # A closed port: RST for TCP, ICMP port unreachable for UDP, both at once.
            for proto in ("TCP", "UDP"):
                r = probe(self.topo.client, proto, NODE_IP[f], 9)
                self.assertEqual(r.error, "refused", r)
                self.assertEqual(r.via, "rst" if proto == "TCP" else None, r)
                self.assertLess(r.elapsed, 0.5)
                r = probe(pa1, proto, self.pod("pa2").ip[f], 9)
                self.assertEqual(r.error, "refused", r)
            # An address nobody routes (a ClusterIP with no agent): the gateway's ICMP.
            service_ip = {4: "10.96.0.254", 6: "fd00:96::fe"}[f]
            for proto in PROTOCOLS:
                r = probe(pa1, proto, service_ip, 80)
                self.assertEqual(r.error, "unreachable", r)
                self.assertLess(r.elapsed, 0.5)
        # Silence: an address on the pod network that nobody holds.
        silent = concurrently(*[lambda f=f: tcp(pa1, {4: "10.244.1.250",
                                                      6: "fd00:244:0:1::250"}[f], 80)
                                for f in FAMILIES])
        for r in silent:
            self.assertEqual(r.error, "timeout", r)
            self.assertGreaterEqual(r.elapsed, PROBE_TIMEOUT - 0.05)

    def test_probes_survive_dnat_and_masquerade(self):
        """A hand-written DNAT in node-a: the probes (raw-socket SCTP included, whose CRC32c
        conntrack checks) work through NAT, hairpin works with the bridge as it is, and a TCP
        connect refused by ICMP is told from one refused by RST."""
        node, pa1, pb1 = self.topo.node, self.pod("pa1"), self.pod("pb1")
        vip = {name: {4: f"10.96.255.{i}", 6: f"fd00:96::ff{i:02x}"}
               for i, name in enumerate(("pa2", "pa1", "pb1"), 1)}
        lines = []
        for name, ips in vip.items():
            target = self.pod(name)
            lines.append(f"ip daddr {ips[4]} meta l4proto {{ tcp, udp, sctp }} th dport 80 "
                         f"dnat ip to {target.ip[4]}:8080")
            lines.append(f"ip6 daddr {ips[6]} meta l4proto {{ tcp, udp, sctp }} th dport 80 "
                         f"dnat ip6 to [{target.ip[6]}]:8080")
        rules = "\n".join(lines)
        node.nft("-f", "-", input=f"""table inet sluice-e2e-selftest {{
  chain pre {{ type nat hook prerouting priority dstnat; {rules}
  }}
  chain out {{ type nat hook output priority -100; {rules}
  }}
  chain input {{ type filter hook input priority 0;
    tcp dport 7 reject with icmpx port-unreachable
  }}
  chain post {{ type nat hook postrouting priority srcnat;
    ip saddr {pa1.ip[4]} ip daddr {pa1.ip[4]} masquerade
    ip6 saddr {pa1.ip[6]} ip6 daddr {pa1.ip[6]} masquerade
    ip saddr != 10.244.0.0/16 ip daddr {pb1.ip[4]} masquerade
    ip6 saddr != fd00:244::/48 ip6 daddr {pb1.ip[6]} masquerade
  }}
}}""")
        self.addCleanup(node.nft, "delete", "table", "inet", "sluice-e2e-selftest", check=False)
        for f in FAMILIES:
            r = tcp(self.topo.client, NODE_IP[f], 7)
            self.assertEqual((r.error, r.via), ("refused", "icmp"), r)
        node_addrs = self.topo.node_addresses()
        for f in FAMILIES:
            for proto in PROTOCOLS:
                with self.subTest(family=f, proto=proto):
                    r = probe(pa1, proto, vip["pa2"][f], 80)
                    self.assertEqual((r.pod, r.seen), ("pa2", pa1.ip[f]), r)
                    r = probe(node, proto, vip["pa2"][f], 80)
                    self.assertEqual(r.pod, "pa2", r)
                    r = probe(self.topo.client, proto, vip["pa2"][f], 80)
                    self.assertEqual((r.pod, r.seen), ("pa2", CLIENT_IP[f]), r)
                    r = probe(self.topo.client, proto, vip["pb1"][f], 80)
                    self.assertEqual(r.pod, "pb1", r)
                    self.assertIn(r.seen, node_addrs, r)
                    r = probe(pa1, proto, vip["pb1"][f], 80)
                    self.assertEqual((r.pod, r.seen), ("pb1", pa1.ip[f]), r)
                    r = probe(pa1, proto, vip["pa1"][f], 80)  # hairpin
                    self.assertEqual(r.pod, "pa1", r)
                    self.assertIn(r.seen, node_addrs, r)

    def test_node_starts_clean(self):
        r = self.topo.node.nft("list", "ruleset")
        self.assertEqual(r.stdout.strip(), "")
        self.assertEqual(self.topo.node.run(["cat", "/proc/sys/net/ipv4/ip_forward"]).stdout
                         .strip(), "1")


class ClusterIPTest(ProxyTestCase):
    """ClusterIP Services, from pods and from the node."""

    def publish(self, name, svc, endpoints, **kw):
        self.apply(name, svc, *endpoint_slices(svc, endpoints, **kw))

    def _from_pod(self, f):
        """should serve a basic endpoint from pods (one family): every protocol reaches the
        local and the remote endpoint, which see the client pod's own address (traffic from
        inside --cluster-cidr is not masqueraded)."""
        a = self.allocate()
        pa1, pa2, pb1 = self.pod("pa1"), self.pod("pa2"), self.pod("pb1")
        ip = a["cluster"][f]
        self.publish(f"web{f}", service(f"web{f}", [ip]), [pa2, pb1])
        for proto in PROTOCOLS:
            with self.subTest(proto=proto):
                self.reach(pa1, proto, ip, 80)
                replies = self.assertReachesAll(pa1, proto, ip, 80, [pa2, pb1], n=30,
                                                what=f"{proto} from pa1")
                self.assertEqual({r.seen for r in replies}, {pa1.ip[f]},
                                 "the endpoints must see pa1's own address (no masquerade)")

    def test_ipv4_from_pod(self):
        self._from_pod(4)

    def test_ipv6_from_pod(self):
        self._from_pod(6)

    def test_from_the_node_itself(self):
        a = self.allocate()
        eps = [self.pod("pa2"), self.pod("pb1")]
        svc = service("fromnode", [a["cluster"][4], a["cluster"][6]])
        self.publish("fromnode", svc, eps)
        for f in FAMILIES:
            for proto in PROTOCOLS:
                with self.subTest(family=f, proto=proto):
                    self.reach(self.topo.node, proto, a["cluster"][f], 80)
                    self.assertReachesAll(self.topo.node, proto, a["cluster"][f], 80, eps, n=30,
                                          what=f"{proto} from node-a")

    def test_spread_reaches_every_endpoint(self):
        a = self.allocate()
        eps = [self.pod(n) for n in ("pa2", "pa3", "pb1", "pb2")]
        self.publish("spread", service("spread", [a["cluster"][4], a["cluster"][6]]), eps)
        pa1 = self.pod("pa1")
        for f in FAMILIES:
            for proto in PROTOCOLS:
                with self.subTest(family=f, proto=proto):
                    self.reach(pa1, proto, a["cluster"][f], 80)
                    self.assertReachesAll(pa1, proto, a["cluster"][f], 80, eps, n=60)

    def test_dual_stack_service(self):
        """A RequireDualStack Service: each family follows its own slice."""
        a = self.allocate()
        svc = service("dual", [a["cluster"][4], a["cluster"][6]])
        self.assertEqual(svc["spec"]["ipFamilyPolicy"], "RequireDualStack")
        pa1, pa2, pa3 = self.pod("pa1"), self.pod("pa2"), self.pod("pa3")
        self.apply("dual", svc, *endpoint_slices(svc, [pa2], families=[4]),
                   *endpoint_slices(svc, [pa3], families=[6]))
        for f, only in ((4, pa2), (6, pa3)):
            for proto in PROTOCOLS:
                with self.subTest(family=f, proto=proto):
                    self.reach(pa1, proto, a["cluster"][f], 80)
                    self.assertAllFrom(self.sample(pa1, proto, a["cluster"][f], 80, 20), [only],
                                       f"IPv{f} {proto}")

    def test_no_endpoints_is_rejected_at_once(self):
        """should be rejected when no endpoints exist: TCP RST / ICMP port unreachable, not a
        timeout."""
        a = self.allocate()
        self.apply("empty", service("empty", [a["cluster"][4], a["cluster"][6]]))
        pa1 = self.pod("pa1")
        for f in FAMILIES:
            for proto in PROTOCOLS:
                with self.subTest(family=f, proto=proto):
                    # Until the agent programs it, the gateway says "unreachable".
                    self.wait_failure(pa1, proto, a["cluster"][f], 80, "refused")
                    for r in self.sample(pa1, proto, a["cluster"][f], 80, 5):
                        self.assertEqual(r.error, "refused", r)
                        self.assertLess(r.elapsed, 0.5, r)
                        if proto == "TCP":
                            self.assertEqual(r.via, "rst", r)
                    r = probe(self.topo.node, proto, a["cluster"][f], 80)
                    self.assertEqual(r.error, "refused", f"from node-a: {r!r}")

    def test_removed_endpoint_gets_no_more_traffic(self):
        a = self.allocate()
        svc = service("shrink", [a["cluster"][4], a["cluster"][6]])
        pa1, pa2, pa3 = self.pod("pa1"), self.pod("pa2"), self.pod("pa3")
        self.publish("shrink", svc, [pa2, pa3])
        for f in FAMILIES:
            self.reach(pa1, "TCP", a["cluster"][f], 80)
            self.assertReachesAll(pa1, "TCP", a["cluster"][f], 80, [pa2, pa3], n=30)
        self.publish("shrink", svc, [pa2])
        for f in FAMILIES:
            wait_until(lambda: self.sample(pa1, "TCP", a["cluster"][f], 80, 10),
                       lambda rs: all(r.pod == "pa2" for r in rs), f"IPv{f}: pa3 gone")
        for f in FAMILIES:
            for proto in PROTOCOLS:
                with self.subTest(family=f, proto=proto):
                    self.assertAllFrom(self.sample(pa1, proto, a["cluster"][f], 80, 30), [pa2],
                                       f"IPv{f} {proto} after pa3 left")
        # The last one gone: rejected, as a Service without endpoints.
        self.publish("shrink", svc, [])
        for f in FAMILIES:
            self.wait_failure(pa1, "TCP", a["cluster"][f], 80, "refused")

    def test_hairpin(self):
        """should allow pods to hairpin back to themselves through services: the pod answers
        itself, seeing a node address (masqueraded), not its own."""
        a = self.allocate()
        pa1 = self.pod("pa1")
        self.publish("hairpin", service("hairpin", [a["cluster"][4], a["cluster"][6]]), [pa1])
        for f in FAMILIES:
            for proto in PROTOCOLS:
                with self.subTest(family=f, proto=proto):
                    r = self.reach(pa1, proto, a["cluster"][f], 80)
                    self.assertEqual(r.pod, "pa1")
                    self.assertNotEqual(r.seen, pa1.ip[f], "hairpin traffic not masqueraded")
                    self.assertIn(r.seen, self.topo.node_addresses())

    def test_internal_traffic_policy_local(self):
        """should respect internalTrafficPolicy=Local: only this node's endpoints, and a drop
        when it has none."""
        a = self.allocate()
        pa1, pa2, pb1 = self.pod("pa1"), self.pod("pa2"), self.pod("pb1")
        svc = service("itp", [a["cluster"][4], a["cluster"][6]], internalTrafficPolicy="Local")
        self.publish("itp", svc, [pa2, pb1])
        for f in FAMILIES:
            for where in (pa1, self.topo.node):
                with self.subTest(family=f, source=getattr(where, "name", "node")):
                    self.reach(where, "TCP", a["cluster"][f], 80)
                    self.assertAllFrom(self.sample(where, "TCP", a["cluster"][f], 80, 30), [pa2],
                                       f"IPv{f}")
                    self.assertAllFrom(self.sample(where, "UDP", a["cluster"][f], 80, 10), [pa2],
                                       f"IPv{f} UDP")
        self.publish("itp", svc, [pb1])
        self.wait_failure(pa1, "TCP", a["cluster"][4], 80, "timeout")
        for r in concurrently(*[lambda f=f, p=p: probe(pa1, p, a["cluster"][f], 80)
                                for f in FAMILIES for p in PROTOCOLS]):
            self.assertEqual(r.error, "timeout", r)

    def test_terminating_endpoints_only_when_no_ready_one(self):
        """should fall back to serving terminating endpoints only when no endpoint is ready,
        and never use a terminating endpoint that stopped serving."""
        a = self.allocate()
        pa1, pa2, pa3, pb1 = self.pod("pa1"), self.pod("pa2"), self.pod("pa3"), self.pod("pb1")
        svc = service("term", [a["cluster"][4], a["cluster"][6]])
        terminating = Endpoint(pa3, ready=False, serving=True, terminating=True)
        self.publish("term", svc, [pa2, terminating])
        for f in FAMILIES:
            self.reach(pa1, "TCP", a["cluster"][f], 80)
            self.assertAllFrom(self.sample(pa1, "TCP", a["cluster"][f], 80, 30), [pa2],
                               f"IPv{f}, pa2 ready")
        # pa2 terminating and no longer serving, pb1 not ready: only pa3 still serves.
        self.publish("term", svc, [Endpoint(pa2, ready=False, serving=False, terminating=True),
                                   terminating,
                                   Endpoint(pb1, ready=False, serving=False)])
        for f in FAMILIES:
            self.reach(pa1, "TCP", a["cluster"][f], 80, pods=[pa3])
            for proto in PROTOCOLS:
                self.assertAllFrom(self.sample(pa1, proto, a["cluster"][f], 80, 20), [pa3],
                                   f"IPv{f} {proto}, only pa3 serving")
        # Nothing serves any more: rejected.
        self.publish("term", svc, [Endpoint(pa3, ready=False, serving=False, terminating=True)])
        for f in FAMILIES:
            self.wait_failure(pa1, "TCP", a["cluster"][f], 80, "refused")

    def test_session_affinity_client_ip_with_timeout(self):
        """should have session affinity timeout work for service with type clusterIP."""
        a = self.allocate()
        eps = [self.pod(n) for n in ("pa2", "pa3", "pb1", "pb2")]
        timeout = 2
        svc = service("affinity", [a["cluster"][4], a["cluster"][6]], sessionAffinity="ClientIP",
                      sessionAffinityConfig={"clientIP": {"timeoutSeconds": timeout}})
        self.publish("affinity", svc, eps)
        pa1 = self.pod("pa1")
        for f in FAMILIES:
            for proto in PROTOCOLS:
                with self.subTest(family=f, proto=proto):
                    first = self.reach(pa1, proto, a["cluster"][f], 80)
                    self.assertAllFrom(self.sample(pa1, proto, a["cluster"][f], 80, 20),
                                       [first.pod], f"IPv{f} {proto} within the affinity timeout")
        # Idle past the timeout: a new pick. With four endpoints, eight idle periods all picking
        # the same pod would happen once in 16384 runs.
        ip = a["cluster"][4]
        current = tcp(pa1, ip, 80)
        picks = [current.pod]
        for _ in range(8):
            time.sleep(timeout + 0.6)
            r = tcp(pa1, ip, 80)
            self.assertTrue(r.ok, r)
            picks.append(r.pod)
            if r.pod != current.pod:
                break
        self.assertGreater(len(set(picks)), 1,
                           f"the same endpoint after every idle period of {timeout + 0.6}s: "
                           f"{picks}")
        # And the new pick sticks in turn.
        self.assertAllFrom(self.sample(pa1, "TCP", ip, 80, 10), [picks[-1]], "the new pick")

    def test_udp_flow_follows_a_replaced_endpoint(self):
        """should be able to preserve UDP traffic when server pod cycles for a ClusterIP
        service: a client that keeps its source port reaches the new pod (stale conntrack
        entries of the old endpoint are removed)."""
        a = self.allocate()
        pa1, pa2, pa3 = self.pod("pa1"), self.pod("pa2"), self.pod("pa3")
        svc = service("udpflow", [a["cluster"][4], a["cluster"][6]],
                      ports=service_ports(("UDP",)))
        self.publish("udpflow", svc, [pa2])
        flows = {}
        for f in FAMILIES:
            flows[f] = UdpFlow(pa1, a["cluster"][f], 80, sport=a["sport"])
            self.addCleanup(flows[f].close)
            wait_until(flows[f].exchange, lambda r: r.pod == "pa2", f"IPv{f} flow to pa2")
            for _ in range(5):
                self.assertEqual(flows[f].exchange().pod, "pa2")
        self.publish("udpflow", svc, [pa3])
        changed = time.monotonic()
        switched = {}
        while len(switched) < len(flows) and time.monotonic() - changed < STALE_UDP_DEADLINE + 5:
            for f, flow in flows.items():
                if f not in switched and flow.exchange(timeout=0.1).pod == "pa3":
                    switched[f] = time.monotonic() - changed
            time.sleep(0.05)
        for f in FAMILIES:
            self.assertIn(f, switched, f"IPv{f}: the flow never reached pa3")
            self.assertLess(switched[f], STALE_UDP_DEADLINE,
                            f"IPv{f}: the flow reached pa3 only after {switched[f]:.1f}s")

    def test_service_proxy_name_and_headless_labels(self):
        """should implement service.kubernetes.io/service-proxy-name and
        service.kubernetes.io/headless: such Services are not proxied at all (their traffic
        goes where routing sends it: here the gateway's ICMP unreachable)."""
        a, b, c = self.allocate(), self.allocate(), self.allocate()
        pa1, pa2 = self.pod("pa1"), self.pod("pa2")
        plain = service("plain", [a["cluster"][4], a["cluster"][6]])
        other = service("other", [b["cluster"][4], b["cluster"][6]],
                        labels={"service.kubernetes.io/service-proxy-name": "other"})
        headless = service("headless", [c["cluster"][4], c["cluster"][6]],
                           labels={"service.kubernetes.io/headless": ""})
        objs = []
        for svc in (plain, other, headless):
            objs += [svc] + endpoint_slices(svc, [pa2])
        self.apply("labels", *objs)
        for f in FAMILIES:
            self.reach(pa1, "TCP", a["cluster"][f], 80)  # the agent has read the file
        for alloc in (b, c):
            for f in FAMILIES:
                for proto in ("TCP", "UDP"):
                    r = probe(pa1, proto, alloc["cluster"][f], 80)
                    self.assertFailsWith(r, ("unreachable", "timeout"),
                                         f"IPv{f} {proto} to an unproxied Service")


class ExternalTest(ProxyTestCase):
    """NodePorts, external IPs and load balancers, from the outside client."""

    def publish(self, name, svc, endpoints, **kw):
        self.apply(name, svc, *endpoint_slices(svc, endpoints, **kw))

    def lb_service(self, name, a, **spec):
        return service(name, [a["cluster"][4], a["cluster"][6]], type_="LoadBalancer",
                       ports=service_ports(node_port=a["node_port"]),
                       lb_ips=[a["lb"][4], a["lb"][6]], **spec)

    def test_nodeport_from_outside_is_masqueraded(self):
        """should be able to create a functioning NodePort service: answered from local and
        remote endpoints, which see node-a's address, not the client's (ETP Cluster)."""
        a = self.allocate()
        eps = [self.pod("pa2"), self.pod("pb1")]
        svc = service("np", [a["cluster"][4], a["cluster"][6]], type_="NodePort",
                      ports=service_ports(node_port=a["node_port"]))
        self.publish("np", svc, eps)
        client, node_addrs = self.topo.client, self.topo.node_addresses()
        for f in FAMILIES:
            for proto in PROTOCOLS:
                with self.subTest(family=f, proto=proto):
                    self.reach(client, proto, NODE_IP[f], a["node_port"])
                    replies = self.assertReachesAll(client, proto, NODE_IP[f], a["node_port"],
                                                    eps, n=30)
                    self.assertLessEqual({r.seen for r in replies}, node_addrs)

    def test_clusterip_from_outside_is_masqueraded(self):
        a = self.allocate()
        self.publish("outside", service("outside", [a["cluster"][4], a["cluster"][6]]),
                     [self.pod("pa2"), self.pod("pb1")])
        for f in FAMILIES:
            for proto in PROTOCOLS:
                with self.subTest(family=f, proto=proto):
                    r = self.reach(self.topo.client, proto, a["cluster"][f], 80)
                    replies = self.sample(self.topo.client, proto, a["cluster"][f], 80, 20)
                    self.assertAllFrom(replies, ["pa2", "pb1"])
                    self.assertLessEqual({x.seen for x in replies + [r]},
                                         self.topo.node_addresses())

    def test_nodeport_without_endpoints_is_rejected(self):
        a = self.allocate()
        self.apply("npempty", service("npempty", [a["cluster"][4], a["cluster"][6]],
                                      type_="NodePort",
                                      ports=service_ports(node_port=a["node_port"])))
        for f in FAMILIES:
            for proto in ("TCP", "UDP"):
                with self.subTest(family=f, proto=proto):
                    # Before the agent knows the port, node-a's own stack refuses as well; so
                    # first wait for the ClusterIP to be rejected.
                    self.wait_failure(self.pod("pa1"), proto, a["cluster"][f], 80, "refused")
                    r = probe(self.topo.client, proto, NODE_IP[f], a["node_port"])
                    self.assertEqual(r.error, "refused", r)
                    self.assertLess(r.elapsed, 0.5, r)
                    if proto == "TCP":
                        self.assertEqual(r.via, "rst", r)

    def test_external_ips(self):
        """should be able to create a functioning external IP service: from the client and from
        a pod."""
        a = self.allocate()
        svc = service("extip", [a["cluster"][4], a["cluster"][6]],
                      externalIPs=[a["external"][4], a["external"][6]])
        self.publish("extip", svc, [self.pod("pa2"), self.pod("pb1")])
        for f in FAMILIES:
            for proto in PROTOCOLS:
                with self.subTest(family=f, proto=proto):
                    ip = a["external"][f]
                    self.reach(self.topo.client, proto, ip, 80)
                    replies = self.sample(self.topo.client, proto, ip, 80, 20)
                    self.assertAllFrom(replies, ["pa2", "pb1"], "from the client")
                    self.assertLessEqual({r.seen for r in replies}, self.topo.node_addresses())
                    self.assertAllFrom(self.sample(self.pod("pa1"), proto, ip, 80, 10),
                                       ["pa2", "pb1"], "from pa1")

    def test_load_balancer_source_ranges(self):
        """should only allow access from service loadbalancer source ranges: the allowed
        client is answered, the other one dropped. As in kube-proxy, the ranges guard the
        load-balancer IPs, not the NodePort."""
        a = self.allocate()
        svc = self.lb_service("lbsr", a, loadBalancerSourceRanges=[f"{CLIENT_IP[4]}/32",
                                                                    f"{CLIENT_IP[6]}/128"])
        self.publish("lbsr", svc, [self.pod("pa2"), self.pod("pb1")])
        client = self.topo.client
        for f in FAMILIES:
            for proto in PROTOCOLS:
                self.reach(client, proto, a["lb"][f], 80, src=CLIENT_IP[f],
                           what=f"IPv{f} {proto} from the allowed client")
        denied = concurrently(*[lambda f=f, p=p: probe(client, p, a["lb"][f], 80,
                                                       src=CLIENT_IP2[f])
                                for f in FAMILIES for p in PROTOCOLS])
        for r in denied:
            self.assertEqual(r.error, "timeout", f"from {CLIENT_IP2}: {r!r}")
        for f in FAMILIES:
            r = tcp(client, NODE_IP[f], a["node_port"], src=CLIENT_IP2[f])
            self.assertIn(r.pod, ("pa2", "pb1"), f"NodePort from {CLIENT_IP2[f]}: {r!r}")

    def test_external_traffic_policy_local(self):
        """should only target nodes with endpoints / should preserve source IP: the client's
        address reaches the pod, only local endpoints answer, and with none the traffic is
        dropped."""
        a = self.allocate()
        pa2, pb1 = self.pod("pa2"), self.pod("pb1")
        svc = self.lb_service("etp", a, externalTrafficPolicy="Local",
                              healthCheckNodePort=a["health_port"])
        self.publish("etp", svc, [pa2, pb1])
        client = self.topo.client
        for f in FAMILIES:
            for ip, port in ((NODE_IP[f], a["node_port"]), (a["lb"][f], 80)):
                for proto in PROTOCOLS:
                    with self.subTest(dst=ip, proto=proto):
                        self.reach(client, proto, ip, port)
                        replies = self.sample(client, proto, ip, port, 20)
                        self.assertAllFrom(replies, [pa2], "only the local endpoint")
                        self.assertEqual({r.seen for r in replies}, {CLIENT_IP[f]},
                                         "the client's address preserved")
        self.publish("etp", svc, [pb1])
        self.wait_failure(client, "TCP", NODE_IP[4], a["node_port"], "timeout")
        dropped = concurrently(*[lambda ip=ip, port=port, p=p: probe(client, p, ip, port)
                                 for f in FAMILIES
                                 for ip, port in ((NODE_IP[f], a["node_port"]), (a["lb"][f], 80))
                                 for p in PROTOCOLS])
        for r in dropped:
            self.assertEqual(r.error, "timeout", f"no local endpoint: {r!r}")

    def test_health_check_node_port(self):
        """healthCheckNodePort: 200 with the number of local endpoints while there are some,
        503 when there are none."""
        a = self.allocate()
        pa2, pa3, pb1 = self.pod("pa2"), self.pod("pa3"), self.pod("pb1")
        svc = self.lb_service("hc", a, externalTrafficPolicy="Local",
                              healthCheckNodePort=a["health_port"])
        client, port = self.topo.client, a["health_port"]

        def check(status, local):
            def get():
                code, body = http_get(client, NODE_IP[4], port)
                try:
                    doc = json.loads(body) if code else {}
                except ValueError:
                    doc = {"unparsable": body}
                return code, doc
            wait_until(get, lambda r: r[0] == status and r[1].get("localEndpoints") == local,
                       f"GET :{port} -> {status} with localEndpoints {local}")

        self.publish("hc", svc, [pa2, pb1])
        check(200, 1)
        self.publish("hc", svc, [pa2, pa3, pb1])
        check(200, 2)
        self.publish("hc", svc, [pb1])
        check(503, 0)


class NodePortAddressesTest(ProxyTestCase):
    """--nodeport-addresses: NodePorts answer on the selected local addresses only."""

    agent_args = ("--nodeport-addresses", f"{NODE_IP2[4]}/32,{NODE_IP2[6]}/128")

    def test_nodeport_only_on_selected_addresses(self):
        a = self.allocate()
        svc = service("npa", [a["cluster"][4], a["cluster"][6]], type_="NodePort",
                      ports=service_ports(node_port=a["node_port"]))
        self.apply("npa", svc, *endpoint_slices(svc, [self.pod("pa2")]))
        client = self.topo.client
        for f in FAMILIES:
            for proto in PROTOCOLS:
                with self.subTest(family=f, proto=proto):
                    self.reach(client, proto, NODE_IP2[f], a["node_port"], pods=["pa2"])
                    # The Node's InternalIP is not selected: no pod behind it.
                    r = probe(client, proto, NODE_IP[f], a["node_port"])
                    self.assertFalse(r.ok, f"{NODE_IP[f]} answered: {r!r}")


class AgentLifecycleTest(ProxyTestCase):
    """The agent's life around its table: restart, drift, foreign tables, --cleanup. These
    tests read the table back: they are about the table itself."""

    agent = "test"

    def setUp(self):
        # Registered first so it runs last: after the failure report and the agents' end.
        self.addCleanup(self._reset_node)
        super().setUp()

    def _reset_node(self):
        node = self.topo.node
        for table in (TABLE, "foreign"):
            node.nft("delete", "table", TABLE_FAMILY, table, check=False)
        node.run(["conntrack", "-F"], check=False)

    def web(self, name, endpoints):
        a = self.allocate()
        svc = service(name, [a["cluster"][4]], ports=service_ports(("TCP",)))
        self.apply(name, svc, *endpoint_slices(svc, endpoints))
        return a["cluster"][4]

    def listing(self):
        text = nft_table(self.topo.node)
        self.assertIsNotNone(text, f"no table {TABLE_FAMILY} {TABLE}")
        return TableListing(text)

    def service_chain(self, listing, name):
        """The chain of Service default/<name>'s port (not an endpoint chain)."""
        chains = [c for c in listing.chains() if f"default/{name}/" in c and "__" not in c]
        self.assertTrue(chains, f"no chain of default/{name} among {listing.chains()}")
        chains.sort(key=lambda c: (not c.startswith("svc"), c))
        return chains[0]

    def test_restart_keeps_rules_and_connections(self):
        """SIGKILL and a new agent: not one request of a steady client fails, and the new agent
        adopts the table (same chain and rule handles: nothing flushed and re-added)."""
        pa1 = self.pod("pa1")
        self.start_test_agent()
        ip = self.web("restart", [self.pod("pa2"), self.pod("pb1")])
        self.reach(pa1, "TCP", ip, 80)
        before = self.listing()

        results, stop = [], threading.Event()

        def client():
            while not stop.is_set():
                results.append(tcp(pa1, ip, 80, timeout=1.0))
                time.sleep(0.02)
        t = threading.Thread(target=client, daemon=True)
        t.start()
        try:
            time.sleep(0.5)
            self.test_agents[-1].kill()
            time.sleep(0.5)
            agent = self.start_test_agent()
            # Past the first sync and one periodic full resync of the new agent.
            agent.wait_sync(agent.syncs, timeout=SYNC_PERIOD * 2 + 5)
            time.sleep(0.3)
        finally:
            stop.set()
            t.join(5)
        failed = [r for r in results if not r.ok]
        self.assertGreater(len(results), 50)
        self.assertFalse(failed, f"{len(failed)} of {len(results)} requests failed: {failed[:5]}")
        after = self.listing()
        self.assertEqual(after.handles, before.handles, "chains/sets/maps re-created")
        self.assertEqual(after.rule_handles(), before.rule_handles(), "rules re-added")

    def test_periodic_sync_repairs_a_deleted_rule(self):
        pa1 = self.pod("pa1")
        self.start_test_agent()
        ip = self.web("drift", [self.pod("pa2")])
        self.reach(pa1, "TCP", ip, 80)
        listing = self.listing()
        chain = self.service_chain(listing, "drift")
        rules = listing.rule_texts(chain)
        self.assertTrue(rules, f"chain {chain} has no rules")
        _, handle = listing.rules[chain][-1]
        self.topo.node.nft("delete", "rule", TABLE_FAMILY, TABLE, chain, "handle", str(handle))
        self.assertEqual(len(self.listing().rule_texts(chain)), len(rules) - 1)
        wait_until(lambda: self.listing().rule_texts(chain), lambda now: now == rules,
                   f"the rule of {chain} restored by a periodic sync",
                   timeout=2 * SYNC_PERIOD + 3)
        self.reach(pa1, "TCP", ip, 80)

    def test_foreign_table_untouched_and_cleanup(self):
        node, pa1 = self.topo.node, self.pod("pa1")
        node.nft("-f", "-", input="""table inet foreign {
  set allowed { type ipv4_addr; elements = { 10.1.2.3 } }
  chain keep {
    tcp dport 9999 counter accept
  }
}""")
        foreign = nft_table(node, table="foreign")
        agent = self.start_test_agent()
        ip = self.web("cleanup", [self.pod("pa2")])
        self.reach(pa1, "TCP", ip, 80)
        self.assertEqual(nft_table(node, table="foreign"), foreign)
        # One table of the agent's, next to the foreign one.
        tables = {t.strip() for t in node.nft("list", "tables").stdout.splitlines() if t.strip()}
        self.assertEqual(tables, {f"table {TABLE_FAMILY} {TABLE}", "table inet foreign"})
        self.assertEqual(agent.stop(), 0, "the agent did not exit cleanly on SIGTERM")

        r = run_cleanup(node)
        self.assertEqual(r.returncode, 0, f"--cleanup: {r.stderr}")
        self.assertIsNone(nft_table(node), "--cleanup left the table")
        self.assertEqual(nft_table(node, table="foreign"), foreign)
        self.assertEqual(node.nft("list", "tables").stdout.strip(), "table inet foreign")
        r = probe(pa1, "TCP", ip, 80)
        self.assertFalse(r.ok, f"still proxied after --cleanup: {r!r}")
        r = run_cleanup(node)
        self.assertEqual(r.returncode, 0, f"--cleanup with nothing to remove: {r.stderr}")


if __name__ == "__main__":
    unittest.main()
