"""host-local interop: ours and the reference share one store and honour each other.

host-local alone touches only files under dataDir, so it runs straight from the
test process; CNI_NETNS points at a namespace the test made (ADD requires it).
"""

import ipaddress
import os
import unittest

from cnitest import (CNITestCase, PREFIX, REF_DIR, exec_plugin, host_local_conf, plugin_dir,
                     plugin_path, result_ips, store_dir, store_entries, unique)

DIRECTIONS = (("ref", "ours"), ("ours", "ref"))


class IpamInteropTest(CNITestCase):
    required_plugins = ("host-local",)

    def setUp(self):
        super().setUp()
        self.require_ref("host-local")
        self.pod = self.scope.netns("pod")
        self.data = self.scope.tmpdir("ipam")

    def conf(self, subnets=("10.78.0.0/24",), ranges=None, version="1.0.0"):
        return host_local_conf(f"{PREFIX}-{unique('hl')}", self.data, subnets=subnets,
                               ranges=ranges, version=version)

    def hl(self, who, command, conf, cid, ifname="eth0", cni_args="", prev=None):
        d = REF_DIR if who == "ref" else plugin_dir()
        c = dict(conf)
        if prev is not None:
            c["prevResult"] = prev
        return exec_plugin(plugin_path("host-local", d), command, c, cid=cid, netns=self.pod,
                           ifname=ifname, cni_args=cni_args, cni_path=d)

    def add(self, who, conf, cid, **kw):
        r = self.hl(who, "ADD", conf, cid, **kw)
        self.assertPluginOk(r, f"{who} host-local ADD {cid}")
        return r.out

    def store(self, conf):
        return store_entries(self.data, conf["name"])

    # ---------------------------------------------------------------------------

    def test_allocations_of_each_are_honoured_and_freed_by_the_other(self):
        for a, b in DIRECTIONS:
            with self.subTest(first=a, second=b):
                conf = self.conf()
                ip1 = result_ips(self.add(a, conf, "c1"))
                ip2 = result_ips(self.add(b, conf, "c2"))
                self.assertEqual(len(ip1), 1)
                self.assertNotEqual(ip1, ip2, f"{b} handed out an address {a} holds")
                st = self.store(conf)
                self.assertEqual(st[ip1[0].split("/")[0]], "c1\r\neth0")
                self.assertEqual(st[ip2[0].split("/")[0]], "c2\r\neth0")
                self.assertPluginOk(self.hl(b, "DEL", conf, "c1"), f"{b} DEL of {a}'s c1")
                self.assertEqual(sorted(self.store(conf)), [ip2[0].split("/")[0]])
                self.assertPluginOk(self.hl(a, "DEL", conf, "c2"), f"{a} DEL of {b}'s c2")
                self.assertEqual(self.store(conf), {})

    def test_store_file_format(self):
        for who in ("ours", "ref"):
            with self.subTest(impl=who):
                conf = self.conf(subnets=("10.78.0.0/24", "fd78::/64"))
                res = self.add(who, conf, "c1")
                ips = [ipaddress.ip_interface(x).ip for x in result_ips(res)]
                d = store_dir(self.data, conf["name"])
                names = sorted(os.listdir(d))
                for ip in ips:
                    self.assertIn(str(ip), names, f"no file named {ip} (canonical form)")
                    with open(os.path.join(d, str(ip)), "rb") as f:
                        self.assertEqual(f.read(), b"c1\r\neth0")
                for i, ip in enumerate(ips):
                    with open(os.path.join(d, f"last_reserved_ip.{i}"), "rb") as f:
                        self.assertEqual(f.read(), str(ip).encode(), "last_reserved_ip.N: bare IP")
                self.assertIn("lock", names)
                self.assertPluginOk(self.hl(who, "DEL", conf, "c1"))
                self.assertEqual(self.store(conf), {})

    def test_round_robin_continues_from_the_others_last_reserved_ip(self):
        for a, b in DIRECTIONS:
            with self.subTest(first=a, second=b):
                conf = self.conf()
                first = ipaddress.ip_interface(result_ips(self.add(a, conf, "c1"))[0]).ip
                self.assertPluginOk(self.hl(a, "DEL", conf, "c1"))
                nxt = ipaddress.ip_interface(result_ips(self.add(b, conf, "c2"))[0]).ip
                self.assertEqual(nxt, first + 1, "allocation must go on after last_reserved_ip.0")
                self.assertPluginOk(self.hl(b, "DEL", conf, "c2"))

    def test_duplicate_allocation_for_same_attachment_is_refused(self):
        for a, b in DIRECTIONS:
            with self.subTest(first=a, second=b):
                conf = self.conf()
                self.add(a, conf, "c1")
                r = self.hl(b, "ADD", conf, "c1")
                self.assertPluginError(r, what=f"{b} ADD of an attachment {a} already holds")
                self.assertEqual(len(self.store(conf)), 1)
                self.assertPluginOk(self.hl(b, "DEL", conf, "c1"))

    def test_requested_ip_held_by_the_other_is_refused(self):
        for a, b in DIRECTIONS:
            with self.subTest(first=a, second=b):
                conf = self.conf()
                res = self.add(a, conf, "c1", cni_args="IgnoreUnknown=1;IP=10.78.0.5")
                self.assertEqual(result_ips(res), ["10.78.0.5/24"])
                r = self.hl(b, "ADD", conf, "c2", cni_args="IgnoreUnknown=1;IP=10.78.0.5")
                self.assertPluginError(r, what="ADD of an IP already reserved")
                self.assertEqual(self.store(conf), {"10.78.0.5": "c1\r\neth0"})
                res = self.add(b, conf, "c3", cni_args="IgnoreUnknown=1;IP=10.78.0.6")
                self.assertEqual(result_ips(res), ["10.78.0.6/24"])
                for c in ("c1", "c3"):
                    self.assertPluginOk(self.hl(b, "DEL", conf, c))

    def test_check_finds_the_others_allocation(self):
        for a, b in DIRECTIONS:
            with self.subTest(first=a, second=b):
                conf = self.conf()
                res = self.add(a, conf, "c1")
                self.assertPluginOk(self.hl(b, "CHECK", conf, "c1", prev=res), f"{b} CHECK")
                r = self.hl(b, "CHECK", conf, "c-unknown", prev=res)
                self.assertPluginError(r, what="CHECK of an attachment without reservation")
                self.assertPluginOk(self.hl(a, "DEL", conf, "c1"))

    def test_del_matches_legacy_files_holding_only_the_container_id(self):
        for who in ("ours", "ref"):
            with self.subTest(impl=who):
                conf = self.conf()
                self.add(who, conf, "c0")  # creates the store dir
                with open(os.path.join(store_dir(self.data, conf["name"]), "10.78.0.77"), "w") as f:
                    f.write("legacy-c7")
                self.assertPluginOk(self.hl(who, "DEL", conf, "legacy-c7"))
                self.assertNotIn("10.78.0.77", self.store(conf))
                self.assertPluginOk(self.hl(who, "DEL", conf, "c0"))
                self.assertEqual(self.store(conf), {})

    def test_dual_stack_allocations_interoperate(self):
        for a, b in DIRECTIONS:
            with self.subTest(first=a, second=b):
                conf = self.conf(subnets=("10.78.0.0/24", "fd78::/64"))
                ip1 = result_ips(self.add(a, conf, "c1"))
                ip2 = result_ips(self.add(b, conf, "c2"))
                self.assertEqual(len(ip1), 2)
                self.assertEqual(len(ip2), 2)
                self.assertFalse(set(ip1) & set(ip2))
                self.assertPluginOk(self.hl(b, "DEL", conf, "c1"))
                self.assertEqual(sorted(self.store(conf)),
                                 sorted(x.split("/")[0] for x in ip2))
                self.assertPluginOk(self.hl(a, "DEL", conf, "c2"))
                self.assertEqual(self.store(conf), {})

    def test_range_filled_by_both_is_exhausted_for_both(self):
        ranges = [[{"subnet": "10.78.0.0/24", "rangeStart": "10.78.0.2", "rangeEnd": "10.78.0.3"}]]
        for a, b in DIRECTIONS:
            with self.subTest(first=a, second=b):
                conf = self.conf(ranges=ranges)
                self.add(a, conf, "c1")
                self.add(b, conf, "c2")
                for who in (a, b):
                    r = self.hl(who, "ADD", conf, "c3")
                    err = self.assertPluginError(r, what=f"{who} ADD on a full range")
                    self.assertTrue("10.78.0.2" in err["msg"] and "10.78.0.3" in err["msg"]
                                    or "10.78.0.0/24" in err["msg"], err)
                self.assertEqual(len(self.store(conf)), 2)
                for c in ("c1", "c2", "c3"):
                    self.assertPluginOk(self.hl(b, "DEL", conf, c))


if __name__ == "__main__":
    unittest.main()
