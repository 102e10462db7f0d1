"""bridge + host-local (+ loopback) against the kernel, all inside test namespaces."""

import ipaddress
import json
import os
import time
import unittest

from cnitest import (supports_version, CNITestCase, BridgeNet, PREFIX, UPLINK_NODE, UPLINK_OUTSIDE, add_uplink,
                     diff_lines, exec_plugin, have_tool, kernel_has_vlan_filtering,
                     netfilter_content, netfilter_snapshot, plugin_path, reference_gap,
                     result_iface, route_dst, skip_unless_version, store_owner, wait_listening)

class BridgeKernelTest(CNITestCase):

    # -- helpers -----------------------------------------------------------------

    def assert_result_matches_kernel(self, net, pod, gateways):
        """Result JSON vs `ip -j addr/route/link` in the pod and node namespaces."""
        res = pod.result
        self.assertEqual(res.get("cniVersion"), net.conf["cniVersion"])
        ctr = result_iface(res)
        self.assertIsNotNone(ctr, f"no interface with sandbox in {res}")
        self.assertEqual(ctr["name"], pod.ifname)
        self.assertEqual(ctr["sandbox"], pod.ns.path)
        link = pod.ns.link(pod.ifname)
        self.assertIsNotNone(link, f"{pod.ifname} missing in {pod.ns}")
        self.assertEqual(ctr.get("mac", "").lower(), link["address"].lower())
        self.assertIn("UP", link["flags"])

        node_links = net.node.links()
        hosts = {i["name"]: i for i in result_iface(res, sandbox=False)}
        self.assertIn(net.bridge, hosts, "bridge missing from result interfaces")
        self.assertIn(net.bridge, node_links)
        self.assertEqual(node_links[net.bridge]["linkinfo"]["info_kind"], "bridge")
        self.assertEqual(hosts[net.bridge].get("mac", "").lower(),
                         node_links[net.bridge]["address"].lower())
        hv = pod.host_veth
        self.assertIsNotNone(hv, f"no host veth in result {res}")
        self.assertIn(hv, node_links, f"host veth {hv} missing in node netns")
        self.assertEqual(node_links[hv].get("master"), net.bridge)
        self.assertEqual(hosts[hv].get("mac", "").lower(), node_links[hv]["address"].lower())

        kernel_cidrs = pod.ns.cidrs(pod.ifname)
        for ip in res.get("ips", []):
            self.assertIn(ip["address"], kernel_cidrs)
            idx = ip.get("interface")
            self.assertIsNotNone(idx, "ips[].interface missing")
            self.assertIs(res["interfaces"][idx].get("sandbox") is not None, True,
                          "ips[].interface must point at the container interface")
            fam = 6 if ":" in ip["address"] else 4
            self.assertEqual(ip.get("gateway"), gateways[fam])
        for r in res.get("routes", []):
            fam = 6 if ":" in r["dst"] else 4
            want_dst = ipaddress.ip_network(r["dst"])
            want_gw = r.get("gw") or gateways[fam]
            found = [k for k in pod.ns.routes(fam)
                     if route_dst(k["dst"], fam) == want_dst and k.get("gateway") == want_gw]
            self.assertTrue(found, f"route {r} (via {want_gw}) not in kernel: {pod.ns.routes(fam)}")

    def assert_pings(self, src_ns, addr, tries=10):
        self.assertTrue(src_ns.ping(addr, tries=tries),
                        f"{src_ns.name} cannot ping {addr}")

    # -- addresses, routes, connectivity --------------------------------------------

    def test_pods_get_addresses_routes_and_gateway_as_configured(self):
        net = BridgeNet(self, ranges=[[{"subnet": "10.77.0.0/24", "rangeStart": "10.77.0.10",
                                        "rangeEnd": "10.77.0.20", "gateway": "10.77.0.254"}]],
                        routes=[{"dst": "10.200.0.0/16"}, {"dst": "0.0.0.0/0"}], isGateway=True)
        a = net.attach("a")
        b = net.attach("b")
        for p in (a, b):
            self.assertEqual(len(p.ips), 1, p.result)
            addr = ipaddress.ip_interface(p.ips[0])
            self.assertEqual(addr.network, ipaddress.ip_network("10.77.0.0/24"))
            self.assertTrue(ipaddress.ip_address("10.77.0.10") <= addr.ip
                            <= ipaddress.ip_address("10.77.0.20"), addr)
            self.assert_result_matches_kernel(net, p, {4: "10.77.0.254"})
        self.assertNotEqual(a.ips, b.ips)
        self.assertIn("10.77.0.254/24", net.node.cidrs(net.bridge),
                      "isGateway: the bridge must hold the gateway address")
        store = net.store()
        self.assertEqual(sorted(store), sorted([a.ip(), b.ip()]))
        self.assertEqual(store_owner(store[a.ip()]), (a.cid, "eth0"))

    def test_pods_ping_each_other_and_the_gateway(self):
        net = BridgeNet(self, isGateway=True)
        a = net.attach("a")
        b = net.attach("b")
        self.assert_pings(a.ns, b.ip())
        self.assert_pings(b.ns, a.ip())
        self.assert_pings(a.ns, "10.77.0.1")
        self.assert_pings(net.node, a.ip())

    def test_isGateway_enables_ip_forward_in_node_netns(self):
        net = BridgeNet(self, isGateway=True)
        net.node.set_sysctl("net.ipv4.ip_forward", 0)  # a new netns may inherit the host's 1
        net.attach()
        self.assertEqual(net.node.sysctl("net.ipv4.ip_forward"), "1")

    def test_hairpin_flag_set_on_host_port(self):
        net = BridgeNet(self, isGateway=True, hairpinMode=True)
        p = net.attach()
        data = net.node.link(p.host_veth)["linkinfo"].get("info_slave_data", {})
        self.assertIs(data.get("hairpin"), True, data)
        plain = BridgeNet(self, isGateway=True, node=net.node, subnets=("10.79.0.0/24",))
        q = plain.attach()
        data = net.node.link(q.host_veth)["linkinfo"].get("info_slave_data", {})
        self.assertIs(data.get("hairpin"), False, "hairpin must stay off when not configured")

    def test_ipv6_pod_without_dad_reaches_peer_immediately(self):
        net = BridgeNet(self, subnets=("fd77::/64",), isGateway=True, enabledad=False)
        a = net.attach("a")
        b = net.attach("b")
        for p in (a, b):
            addrs = [x for x in p.ns.addresses(p.ifname, 6) if x.get("scope") == "global"]
            # The reference sets accept_dad=0 on the interface; per-address NODAD does as well.
            self.assertTrue(p.ns.sysctl(f"net.ipv6.conf.{p.ifname}.accept_dad") == "0"
                            or all(x.get("nodad") for x in addrs), "DAD not disabled")
            self.assertEqual([f"{x['local']}/{x['prefixlen']}" for x in addrs], p.ips)
            for x in addrs:
                self.assertFalse(x.get("tentative", False), f"{x} is tentative")
                self.assertFalse(x.get("dadfailed", False), f"{x} failed DAD")
        t0 = time.monotonic()
        ok = a.ns.ping(b.ip(6), count=1, wait=2, tries=1)
        took = time.monotonic() - t0
        self.assertTrue(ok, "first ping6 to the peer right after ADD was not answered")
        self.assertLess(took, 1.0, f"first ping6 took {took:.2f}s")

    def test_dual_stack_ranges_give_one_address_per_family(self):
        net = BridgeNet(self, subnets=("10.77.0.0/24", "fd77::/64"), isGateway=True)
        a = net.attach("a")
        b = net.attach("b")
        for p in (a, b):
            self.assertEqual(sorted(":" in x for x in p.ips), [False, True], p.ips)
            self.assert_result_matches_kernel(net, p, {4: "10.77.0.1", 6: "fd77::1"})
        self.assertEqual(len(net.store()), 4)
        self.assert_pings(a.ns, b.ip(4))
        self.assert_pings(a.ns, b.ip(6))

    def test_mtu_applied_to_both_veth_ends(self):
        net = BridgeNet(self, isGateway=True, mtu=1400)
        p = net.attach()
        self.assertEqual(p.ns.link(p.ifname)["mtu"], 1400)
        self.assertEqual(net.node.link(p.host_veth)["mtu"], 1400)
        self.assertEqual(net.node.link(net.bridge)["mtu"], 1400,
                         "a bridge the plugin creates gets the configured mtu")

    def test_mac_from_cni_args(self):
        net = BridgeNet(self, isGateway=True)
        ns = net.new_pod()
        mac = "0a:58:0a:4d:00:42"
        p = net.add(ns, cni_args=f"IgnoreUnknown=1;K8S_POD_NAME=x;MAC={mac}")
        self.assertEqual(p.ns.link("eth0")["address"], mac)
        self.assertEqual(result_iface(p.result)["mac"].lower(), mac)

    def test_isDefaultGateway_adds_default_route(self):
        net = BridgeNet(self, isDefaultGateway=True)
        p = net.attach()
        routes = p.result.get("routes", [])
        self.assertTrue(any(ipaddress.ip_network(r["dst"]).prefixlen == 0 for r in routes),
                        f"no default route in result: {routes}")
        defaults = [r for r in p.ns.routes(4) if r["dst"] == "default"]
        self.assertEqual([r.get("gateway") for r in defaults], ["10.77.0.1"])
        self.assertIn("10.77.0.1/24", net.node.cidrs(net.bridge))

    def test_promiscMode_sets_bridge_promiscuous(self):
        net = BridgeNet(self, isGateway=True, promiscMode=True)
        net.attach()
        br = net.node.link(net.bridge)
        self.assertTrue("PROMISC" in br["flags"] or br.get("promiscuity", 0) > 0, br["flags"])

    @unittest.skipUnless(kernel_has_vlan_filtering(),
                         "kernel lacks bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING)")
    def test_vlan_sets_host_port_pvid_untagged(self):
        net = BridgeNet(self, vlan=42)
        a = net.attach("a")
        b = net.attach("b")
        vl = self._vlans(net.node)
        self.assertIn(42, vl.get(a.host_veth, {}), vl)
        flags = vl[a.host_veth][42]
        self.assertIn("PVID", flags)
        self.assertIn("Egress Untagged", flags)
        self.assert_pings(a.ns, b.ip())

    @reference_gap("vlanTrunk")
    @unittest.skipUnless(kernel_has_vlan_filtering(),
                         "kernel lacks bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING)")
    def test_vlanTrunk_tags_host_port(self):
        net = BridgeNet(self, vlanTrunk=[{"id": 101}, {"minID": 200, "maxID": 202}])
        p = net.attach()
        vl = self._vlans(net.node).get(p.host_veth, {})
        for vid in (101, 200, 201, 202):
            self.assertIn(vid, vl, vl)
            self.assertNotIn("Egress Untagged", vl[vid])

    @staticmethod
    def _vlans(node):
        """{port: {vid: [flags]}} from `bridge -j vlan show` (ranges expanded)."""
        out = node.run(["bridge", "-j", "vlan", "show"]).stdout
        res = {}
        for port in (json.loads(out) if out.strip() else []):
            m = res.setdefault(port["ifname"], {})
            for v in port.get("vlans", []):
                for vid in range(v["vlan"], v.get("vlanEnd", v["vlan"]) + 1):
                    m[vid] = v.get("flags", [])
        return res

    @reference_gap("portIsolation")
    def test_portIsolation_isolated_pods_cannot_reach_each_other(self):
        net = BridgeNet(self, isGateway=True, portIsolation=True)
        a = net.attach("a")
        b = net.attach("b")
        data = net.node.link(a.host_veth)["linkinfo"].get("info_slave_data", {})
        self.assertIs(data.get("isolated"), True, data)
        self.assert_pings(a.ns, "10.77.0.1")  # the bridge itself is not an isolated port
        self.assert_pings(b.ns, "10.77.0.1")
        self.assertFalse(a.ns.ping(b.ip(), count=2, wait=1), "isolated pods reached each other")

    # -- CHECK ---------------------------------------------------------------------

    def test_check_succeeds_after_add(self):
        net = BridgeNet(self, isGateway=True, ipMasq=True)
        p = net.attach()
        self.assertPluginOk(p.check(), "CHECK")
        self.assertEqual(p.check().runs[0].stdout.strip(), "", "CHECK prints nothing on success")

    def test_check_fails_after_pod_address_removed(self):
        net = BridgeNet(self, isGateway=True)
        p = net.attach()
        p.ns.ip("addr", "del", p.ips[0], "dev", "eth0")
        op = p.check()
        self.assertFalse(op.ok, "CHECK passed although the pod's address is gone")
        self.assertPluginError(op.failed, what="CHECK")

    # -- DEL -----------------------------------------------------------------------

    def _need_netfilter_tools(self):
        if not (have_tool("nft") or have_tool("iptables-save")):
            self.skipTest("needs nft or iptables-save to read the node's rules")

    def test_del_removes_everything_add_made(self):
        self._need_netfilter_tools()
        net = BridgeNet(self, isGateway=True, ipMasq=True, hairpinMode=True,
                        routes=[{"dst": "0.0.0.0/0"}])
        # A first pod makes whatever shared structure the plugin keeps (chains, tables).
        warm = net.attach("warm")
        base = netfilter_snapshot(net.node)
        base_links = sorted(net.node.links())
        base_store = net.store()

        p = net.attach("p")
        self.assertNotEqual(net.store(), base_store)
        op = p.delete()
        self.assertPluginOk(op, "DEL")
        self.assertEqual(op.runs[0].stdout.strip(), "", "DEL prints nothing on success")
        self.assertEqual(sorted(p.ns.links()), ["lo"], "pod interface left behind")
        self.assertEqual(sorted(net.node.links()), base_links, "host veth left behind")
        self.assertEqual(net.store(), base_store, "IPAM reservation left behind")
        after = netfilter_snapshot(net.node)
        for k in after:
            self.assertEqual(after[k], base[k], f"{k} differs after DEL: {diff_lines(base[k], after[k])}")

        self.assertPluginOk(warm.delete(), "DEL warm")
        self.assertEqual(net.host_veths(), [])
        self.assertEqual(net.store(), {})

    def test_del_of_last_pod_leaves_no_masquerade_rules(self):
        """Stricter than the above: once no pod is left, no set element and no rule naming a
        pod may stay. Shared, inert scaffolding may (iptables-nft keeps its nat table and base
        chains; our nftables table keeps its empty maps and per-subnet chains, reachable only
        through map elements). A GC with no valid attachment, which the runtime runs with no
        ADD or DEL in flight, must then leave nothing at all."""
        self._need_netfilter_tools()
        gc = supports_version("bridge", "1.1.0")
        net = BridgeNet(self, version="1.1.0" if gc else "1.0.0", isGateway=True, ipMasq=True,
                        routes=[{"dst": "0.0.0.0/0"}])
        empty = netfilter_content(netfilter_snapshot(net.node))
        pods = [net.attach("a"), net.attach("b")]
        ips = [p.ip() for p in pods]
        for p in pods:
            self.assertPluginOk(p.delete(), "DEL")
        left = netfilter_content(netfilter_snapshot(net.node))
        leftovers = [c for c in left if c not in empty and
                     (c[2].startswith("elements") or any(ip in c[2] for ip in ips) or c[0] != "nft")]
        self.assertEqual(leftovers, [], f"pod state left after the last DEL: {diff_lines(empty, left)}")
        if gc:
            self.assertPluginOk(net.rt.gc(net.conflist, []), "GC with no valid attachment")
            left = netfilter_content(netfilter_snapshot(net.node))
            self.assertEqual(left, empty, f"rules left after GC: {diff_lines(empty, left)}")

    def test_del_twice_succeeds(self):
        net = BridgeNet(self, isGateway=True, ipMasq=True)
        p = net.attach()
        self.assertPluginOk(p.delete(), "DEL 1")
        self.assertPluginOk(p.delete(), "DEL 2")
        self.assertEqual(net.store(), {})

    def test_del_unknown_container_without_netns_succeeds(self):
        net = BridgeNet(self, isGateway=True, ipMasq=True)
        op = net.rt.delete(net.conflist, f"{PREFIX}-never-added", None, "eth0")
        self.assertPluginOk(op, "DEL of an unknown container with empty CNI_NETNS")

    def test_del_without_netns_frees_address(self):
        net = BridgeNet(self, isGateway=True)
        p = net.attach()
        self.assertPluginOk(p.delete(netns=None), "DEL with empty CNI_NETNS")
        self.assertEqual(net.store(), {}, "DEL without netns must still release the IPAM reservation")

    def test_del_after_pod_netns_deleted_frees_address(self):
        net = BridgeNet(self, isGateway=True, ipMasq=True)
        keep = net.attach("keep")
        p = net.attach("gone")
        p.ns.delete()
        op = p.delete()
        self.assertPluginOk(op, "DEL after the netns was deleted")
        self.assertEqual(sorted(net.store()), [keep.ip()], "address of the gone pod not freed")
        self.assertPluginOk(p.delete(), "second DEL after the netns was deleted")

    @reference_gap("masq-cleanup-without-netns")
    def test_del_after_pod_netns_deleted_removes_masquerade_rules(self):
        self._need_netfilter_tools()
        net = BridgeNet(self, isGateway=True, ipMasq=True)
        keep = net.attach("keep")
        base = netfilter_content(netfilter_snapshot(net.node))
        p = net.attach("gone")
        p.ns.delete()
        self.assertPluginOk(p.delete(), "DEL after the netns was deleted")
        after = netfilter_content(netfilter_snapshot(net.node))
        self.assertEqual(after, base, f"masquerade rules leaked: {diff_lines(base, after)}")
        del keep

    # -- ipMasq with real traffic ---------------------------------------------------

    def test_ipMasq_outside_sees_node_address_as_source(self):
        self.require_tool("socat", "ss")
        net = BridgeNet(self, isGateway=True, ipMasq=True, routes=[{"dst": "0.0.0.0/0"}])
        outside = self.scope.netns("out")
        add_uplink(net.node, outside)
        p = net.attach()
        self.assert_pings(p.ns, UPLINK_OUTSIDE)
        self.scope.popen(outside, ["socat", "TCP4-LISTEN:7777,reuseaddr,fork",
                                   "SYSTEM:echo PEER=$SOCAT_PEERADDR"])
        self.assertTrue(wait_listening(outside, 7777), "socat server did not start")
        r = p.ns.run(["socat", "-t", "2", "-T", "5", "-", f"TCP4:{UPLINK_OUTSIDE}:7777"],
                     check=False, input="")
        self.assertIn(f"PEER={UPLINK_NODE}", r.stdout, f"outside saw: {r.stdout!r} {r.stderr!r}")
        if have_tool("conntrack"):
            ct = net.node.run(["conntrack", "-L", "-s", p.ip(), "-p", "tcp"], check=False)
            self.assertIn(f"dst={UPLINK_NODE}", ct.stdout, f"no masqueraded entry: {ct.stdout}")

    def test_hairpin_pod_reaches_itself_through_a_dnat_address(self):
        """kube-proxy's hairpin case: with br_netfilter, a DNAT on the node turns a pod's
        connection to a service address around to the pod itself, out of the bridge port it
        came in on. Only hairpinMode lets that frame through; the control run without it
        must fail."""
        self.require_tool("socat", "ss", "nft", "sysctl")
        if not os.path.exists("/proc/sys/net/bridge/bridge-nf-call-iptables"):
            self.skipTest("kernel without br_netfilter")
        vip = "10.96.0.10"
        for hairpin in (True, False):
            with self.subTest(hairpinMode=hairpin):
                net = BridgeNet(self, isGateway=True, hairpinMode=hairpin,
                                routes=[{"dst": "0.0.0.0/0"}])
                net.node.run(["sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1"])
                p = net.attach()
                net.node.run(["nft", "-f", "-"], input=f"""
table ip {PREFIX.replace('-', '_')}_hairpin {{
  chain pre {{
    type nat hook prerouting priority dstnat;
    ip daddr {vip} tcp dport 80 dnat to {p.ip()}:8080
  }}
  chain post {{
    type nat hook postrouting priority srcnat;
    ct status dnat ip saddr {p.ip()} ip daddr {p.ip()} masquerade
  }}
}}
""")
                self.scope.popen(p.ns, ["socat", "TCP4-LISTEN:8080,reuseaddr,fork",
                                        "SYSTEM:echo HAIRPIN-OK"])
                self.assertTrue(wait_listening(p.ns, 8080), "socat server did not start")
                r = p.ns.run(["socat", "-t", "2", "-T", "3", "-",
                              f"TCP4:{vip}:80,connect-timeout=2"], check=False, input="")
                if hairpin:
                    self.assertIn("HAIRPIN-OK", r.stdout, f"no answer through the hairpin: {r.stderr!r}")
                else:
                    self.assertNotIn("HAIRPIN-OK", r.stdout, "control without hairpinMode got through")

    def test_without_ipMasq_outside_gets_no_answer_back(self):
        """Control for the test above: without masquerade the outside cannot answer."""
        net = BridgeNet(self, isGateway=True, ipMasq=False, routes=[{"dst": "0.0.0.0/0"}])
        outside = self.scope.netns("out")
        add_uplink(net.node, outside)
        p = net.attach()
        self.assertFalse(p.ns.ping(UPLINK_OUTSIDE, count=1, wait=1))

    # -- GC (spec 1.1.0) ---------------------------------------------------------------

    @skip_unless_version("1.1.0")
    def test_gc_removes_lost_attachment_reservation_and_masquerade(self):
        self._need_netfilter_tools()
        net = BridgeNet(self, version="1.1.0", isGateway=True, ipMasq=True)
        keep = net.attach("keep")
        base = netfilter_content(netfilter_snapshot(net.node))
        lost = net.attach("lost")
        lost.ns.delete()  # the runtime lost it: no DEL will ever come
        op = net.rt.gc(net.conflist, [(keep.cid, "eth0")])
        self.assertPluginOk(op, "GC")
        self.assertEqual(sorted(net.store()), [keep.ip()])
        after = netfilter_content(netfilter_snapshot(net.node))
        self.assertEqual(after, base, f"GC left the lost pod's rules: {diff_lines(base, after)}")
        self.assertPluginOk(keep.check(), "CHECK of the kept pod after GC")


class LoopbackTest(CNITestCase):
    required_plugins = ("loopback",)

    def test_loopback_brings_lo_up(self):
        node = self.scope.netns("node")
        pod = self.scope.netns("pod")
        self.assertNotIn("UP", pod.link("lo")["flags"])
        conf = {"cniVersion": "1.0.0", "name": f"{PREFIX}-lo", "type": "loopback"}
        r = exec_plugin(plugin_path("loopback"), "ADD", conf, cid=f"{PREFIX}-lo1", netns=pod,
                        ifname="lo", cni_path=os.path.dirname(plugin_path("loopback")), node=node)
        self.assertPluginOk(r, "loopback ADD")
        self.assertIn("UP", pod.link("lo")["flags"])
        self.assertIn("127.0.0.1/8", pod.cidrs("lo", scope_global=False))
        self.assertTrue(pod.ping("127.0.0.1"))
        self.assertEqual(r.out.get("cniVersion"), "1.0.0")
        ips = [i["address"] for i in r.out.get("ips", [])]
        self.assertIn("127.0.0.1/8", ips)
        r = exec_plugin(plugin_path("loopback"), "DEL", conf, cid=f"{PREFIX}-lo1", netns=pod,
                        ifname="lo", cni_path=os.path.dirname(plugin_path("loopback")), node=node)
        self.assertPluginOk(r, "loopback DEL")
        self.assertEqual(sorted(node.links()), ["lo"], "loopback touched the node netns")


if __name__ == "__main__":
    unittest.main()
