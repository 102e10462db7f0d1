"""Our bridge + host-local chained with the reference portmap, firewall and tuning."""

import unittest

from cnitest import CNITestCase, BridgeNet, REF_DIR, UPLINK_NODE, add_uplink, wait_listening

HOST_PORT = 18080
POD_PORT = 8080


class ChainingTest(CNITestCase):

    def setUp(self):
        super().setUp()
        self.require_ref("portmap", "firewall", "tuning")

    def chained_net(self):
        return BridgeNet(
            self, isGateway=True, ipMasq=True, hairpinMode=True, routes=[{"dst": "0.0.0.0/0"}],
            extra_plugins=[
                {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
                {"type": "firewall"},
                {"type": "tuning", "sysctl": {"net.core.somaxconn": "1234"}},
            ])

    def caps(self):
        return {"portMappings": [{"hostPort": HOST_PORT, "containerPort": POD_PORT,
                                  "protocol": "tcp"}]}

    def check_list(self, net, p):
        """CHECK every plugin of the list with the cached result, as libcni does, but go on
        past the reference portmap's own CHECK bug (v1.1.1 checks the IPv6 nat table for an
        IPv4 mapping and fails; not ours to judge) so firewall and tuning still get checked."""
        prev = net.rt.cache[(net.name, p.cid, p.ifname)]
        for plugin in net.conflist["plugins"]:
            conf = net.rt.flatten(net.conflist, plugin, prev, p.capability_args)
            r = net.rt._exec(plugin, "CHECK", conf, p.cid, p.ns, p.ifname, p.cni_args)
            if (plugin["type"] == "portmap" and not r.ok and r.argv[-1].startswith(REF_DIR)
                    and "could not check ipv6 dnat" in r.error.get("msg", "")):
                continue
            self.assertPluginOk(r, f"CHECK {plugin['type']}")

    def test_add_check_del_of_chained_list_succeed(self):
        net = self.chained_net()
        p = net.attach(capability_args=self.caps())
        self.assertEqual(len(p.op.runs), 4)
        # Every chained plugin got the bridge's result and passed it on.
        first, last = p.op.runs[0].out, p.result
        self.assertEqual([i["address"] for i in last["ips"]], [i["address"] for i in first["ips"]])
        self.assertEqual(p.ns.sysctl("net.core.somaxconn"), "1234", "tuning did not run in the pod")
        self.check_list(net, p)
        op = p.delete()
        self.assertPluginOk(op, "DEL of the chained list")
        self.assertEqual([r.argv[-1].rsplit("/", 1)[-1] for r in op.runs],
                         ["tuning", "firewall", "portmap", "bridge"], "DEL must run in reverse order")
        self.assertEqual(net.store(), {})
        self.assertEqual(net.host_veths(), [])

    def test_portmap_capability_reaches_pod_with_real_traffic(self):
        self.require_tool("socat", "ss")
        net = self.chained_net()
        outside = self.scope.netns("out")
        add_uplink(net.node, outside)
        p = net.attach(capability_args=self.caps())
        self.scope.popen(p.ns, ["socat", f"TCP4-LISTEN:{POD_PORT},reuseaddr,fork",
                                "SYSTEM:echo hello-from-pod"])
        self.assertTrue(wait_listening(p.ns, POD_PORT), "socat server in the pod did not start")
        r = outside.run(["socat", "-t", "2", "-T", "5", "-", f"TCP4:{UPLINK_NODE}:{HOST_PORT}"],
                        check=False, input="")
        self.assertIn("hello-from-pod", r.stdout,
                      f"client got {r.stdout!r} / {r.stderr!r} via {UPLINK_NODE}:{HOST_PORT}")
        self.assertPluginOk(p.delete(), "DEL")
        r = outside.run(["socat", "-T", "2", "-", f"TCP4:{UPLINK_NODE}:{HOST_PORT}"],
                        check=False, input="", timeout=15)
        self.assertNotIn("hello-from-pod", r.stdout, "host port still forwarded after DEL")


if __name__ == "__main__":
    unittest.main()
