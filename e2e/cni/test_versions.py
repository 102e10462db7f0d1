"""Spec versions: ADD result shapes, VERSION output, prevResult passthrough, STATUS."""

import unittest

from cnitest import (CNITestCase, BridgeNet, PREFIX, REF_DIR, SPEC_VERSIONS, Runtime, as_conflist,
                     exec_plugin, host_local_conf, plugin_dir, plugin_path, reference_gap,
                     semantic_result, skip_unless_version, supports_version, vtuple)

REQUIRED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0")  # what a drop-in must accept


class VersionTest(CNITestCase):
    required_plugins = ("bridge", "host-local", "loopback")

    def skip_if_unsupported(self, version, *ptypes):
        for p in ptypes or ("bridge", "host-local"):
            if not supports_version(p, version):
                self.skipTest(f"{p} in {plugin_dir()} does not list {version}")

    def assert_ips_shape(self, result, version):
        self.assertEqual(result.get("cniVersion"), version)
        ips = result.get("ips", [])
        self.assertTrue(ips, result)
        for ip in ips:
            if vtuple(version) < (1, 0, 0):
                self.assertEqual(ip.get("version"), "6" if ":" in ip["address"] else "4",
                                 f"ips[].version required before 1.0.0: {ip}")
            else:
                self.assertNotIn("version", ip, f"ips[].version removed in 1.0.0: {ip}")

    # -- VERSION --------------------------------------------------------------------

    def test_version_output_lists_the_spec_versions(self):
        for p in self.required_plugins:
            with self.subTest(plugin=p):
                r = exec_plugin(plugin_path(p), "VERSION", {"cniVersion": "1.0.0"})
                self.assertPluginOk(r, f"{p} VERSION")
                self.assertIsInstance(r.out, dict, r.stdout)
                self.assertIsInstance(r.out.get("cniVersion"), str)
                sv = r.out.get("supportedVersions", [])
                for v in REQUIRED_VERSIONS:
                    self.assertIn(v, sv, f"{p} must support {v}")

    def test_version_works_without_stdin(self):
        r = exec_plugin(plugin_path("bridge"), "VERSION", None)
        self.assertPluginOk(r, "VERSION with empty stdin")
        self.assertIn("1.0.0", r.out.get("supportedVersions", []))

    @reference_gap("version-echo")
    def test_version_echoes_the_requested_cniVersion(self):
        for v in ("0.4.0", "1.0.0"):
            r = exec_plugin(plugin_path("bridge"), "VERSION", {"cniVersion": v})
            self.assertPluginOk(r)
            self.assertEqual(r.out.get("cniVersion"), v)

    # -- ADD result shape per version --------------------------------------------------

    def test_bridge_add_result_shape_per_version(self):
        for v in SPEC_VERSIONS:
            with self.subTest(cniVersion=v):
                self.skip_if_unsupported(v)
                net = BridgeNet(self, version=v, subnets=("10.77.0.0/24", "fd77::/64"),
                                isGateway=True, routes=[{"dst": "0.0.0.0/0"}])
                p = net.attach()
                res = p.result
                self.assert_ips_shape(res, v)
                self.assertEqual(len(res["ips"]), 2)
                ifs = res.get("interfaces", [])
                for ip in res["ips"]:
                    self.assertEqual(ifs[ip["interface"]].get("sandbox"), p.ns.path)
                for i in ifs:
                    self.assertIsInstance(i.get("mac"), str, i)
                self.assertEqual(sorted(p.ns.cidrs("eth0")), sorted(x["address"] for x in res["ips"]))
                self.assertIn({"dst": "0.0.0.0/0"}, [{"dst": r["dst"]} for r in res.get("routes", [])])
                if vtuple(v) >= (0, 4, 0):
                    self.assertPluginOk(p.check(), f"CHECK at {v}")
                op = p.delete()  # libcni sends prevResult on DEL only from 0.4.0
                self.assertPluginOk(op, f"DEL at {v}")
                self.assertEqual(net.store(), {})

    def test_host_local_add_result_shape_per_version(self):
        pod = self.scope.netns("pod")
        for v in SPEC_VERSIONS:
            with self.subTest(cniVersion=v):
                self.skip_if_unsupported(v, "host-local")
                data = self.scope.tmpdir()
                conf = host_local_conf(f"{PREFIX}-hl", data, subnets=("10.78.0.0/24", "fd78::/64"),
                                       version=v, routes=[{"dst": "0.0.0.0/0"}])
                r = exec_plugin(plugin_path("host-local"), "ADD", conf, cid="c1", netns=pod,
                                ifname="eth0", cni_path=plugin_dir())
                self.assertPluginOk(r, f"host-local ADD at {v}")
                self.assert_ips_shape(r.out, v)
                self.assertEqual([ip.get("gateway") for ip in r.out["ips"]], ["10.78.0.1", "fd78::1"])
                self.assertNotIn("interfaces", r.out, "IPAM plugins omit interfaces")
                for ip in r.out["ips"]:
                    self.assertNotIn("interface", ip, "IPAM results carry no interface index")
                self.assertEqual(r.out.get("routes"), [{"dst": "0.0.0.0/0"}])
                d = exec_plugin(plugin_path("host-local"), "DEL", conf, cid="c1", netns=pod,
                                ifname="eth0", cni_path=plugin_dir())
                self.assertPluginOk(d, f"host-local DEL at {v}")

    def test_loopback_add_result_per_version(self):
        node = self.scope.netns("node")
        for v in SPEC_VERSIONS:
            with self.subTest(cniVersion=v):
                self.skip_if_unsupported(v, "loopback")
                pod = self.scope.netns("pod")
                conf = {"cniVersion": v, "name": f"{PREFIX}-lo", "type": "loopback"}
                r = exec_plugin(plugin_path("loopback"), "ADD", conf, cid="c1", netns=pod,
                                ifname="lo", cni_path=plugin_dir(), node=node)
                self.assertPluginOk(r, f"loopback ADD at {v}")
                self.assertEqual(r.out.get("cniVersion"), v)
                self.assertIn("UP", pod.link("lo")["flags"])

    # -- prevResult passthrough --------------------------------------------------------

    def test_loopback_passes_prevResult_through_unchanged(self):
        node = self.scope.netns("node")
        pod = self.scope.netns("pod")
        for v in SPEC_VERSIONS:
            with self.subTest(cniVersion=v):
                self.skip_if_unsupported(v, "loopback")
                prev = {"cniVersion": v,
                        "interfaces": [{"name": "eth0", "mac": "0a:58:0a:4d:00:02",
                                        "sandbox": pod.path}],
                        "ips": [{"address": "10.77.0.2/24", "gateway": "10.77.0.1", "interface": 0}],
                        "routes": [{"dst": "0.0.0.0/0", "gw": "10.77.0.1"}],
                        "dns": {"nameservers": ["10.96.0.10"], "search": ["svc.cluster.local"]}}
                if vtuple(v) < (1, 0, 0):
                    prev["ips"][0]["version"] = "4"
                conf = {"cniVersion": v, "name": f"{PREFIX}-lo", "type": "loopback",
                        "prevResult": prev}
                r = exec_plugin(plugin_path("loopback"), "ADD", conf, cid="c1", netns=pod,
                                ifname="lo", cni_path=plugin_dir(), node=node)
                self.assertPluginOk(r, f"loopback ADD with prevResult at {v}")
                self.assertEqual(semantic_result(r.out), semantic_result(prev))

    def test_our_result_chains_into_reference_plugins_per_version(self):
        self.require_ref("tuning")
        for v in SPEC_VERSIONS:
            with self.subTest(cniVersion=v):
                self.skip_if_unsupported(v)
                if not supports_version("tuning", v, REF_DIR):
                    self.skipTest(f"reference tuning does not take {v}")
                net = BridgeNet(self, version=v, isGateway=True, extra_plugins=[
                    {"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.arp_ignore": "1"}}])
                p = net.attach()
                first = p.op.runs[0].out
                self.assertEqual(semantic_result(p.result), semantic_result(first),
                                 "tuning must hand our result on unchanged")
                self.assertEqual(p.ns.sysctl("net.ipv4.conf.eth0.arp_ignore"), "1")
                if vtuple(v) >= (0, 4, 0):
                    self.assertPluginOk(p.check(), f"CHECK of the chain at {v}")
                self.assertPluginOk(p.delete(), f"DEL of the chain at {v}")

    # -- STATUS and GC need 1.1.0 -------------------------------------------------------

    @skip_unless_version("1.1.0")
    def test_status_succeeds_for_a_ready_network(self):
        net = BridgeNet(self, version="1.1.0", isGateway=True)
        self.assertPluginOk(net.rt.status(net.conflist), "bridge STATUS")
        conf = host_local_conf(f"{PREFIX}-hl", self.scope.tmpdir(), version="1.1.0")
        self.assertPluginOk(Runtime([plugin_dir()]).status(as_conflist(conf)), "host-local STATUS")

    @skip_unless_version("1.1.0")
    def test_status_and_gc_need_config_1_1_0(self):
        net = BridgeNet(self, version="1.0.0", isGateway=True)
        for cmd in ("STATUS", "GC"):
            with self.subTest(command=cmd):
                r = exec_plugin(plugin_path("bridge"), cmd, dict(net.conf), cni_path=net.rt.cni_path,
                                node=net.node)
                self.assertPluginError(r, 1, f"{cmd} with cniVersion 1.0.0")

    @skip_unless_version("1.1.0")
    def test_add_at_1_1_0_and_gc_keeps_valid_attachment(self):
        net = BridgeNet(self, version="1.1.0", isGateway=True, ipMasq=True)
        a = net.attach("a")
        self.assertEqual(a.result.get("cniVersion"), "1.1.0")
        self.assertPluginOk(net.rt.gc(net.conflist, [(a.cid, "eth0")]), "GC")
        self.assertEqual(sorted(net.store()), [a.ip()])
        self.assertPluginOk(a.check(), "CHECK after GC")


if __name__ == "__main__":
    unittest.main()
