"""The installed kubectl (GKE dispatcher; the server's /version selects its built-in v1.32 client)
against the test server over TLS with a bearer token and with a client certificate."""

import json
import os
import queue
import threading
import unittest

import yaml

from .apitest import Kubectl, fixture, manifest, require_kubectl, service, wait_for
from .pki import write_kubeconfig
from .server import TestApiServer


class LineReader:
    """Lines of a running process's stdout, readable with a timeout."""

    def __init__(self, proc):
        self.proc = proc
        self.lines = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def next(self, timeout=10):
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("kubectl printed nothing in time") from None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)
        self.proc.stdout.close()
        self.proc.stderr.close()


@require_kubectl
class KubectlTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = TestApiServer(tls=True, token="kubectl-token").start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def kubectl(self, kubeconfig=None):
        k = Kubectl(kubeconfig or self.server.kubeconfig_token)
        self.addCleanup(k.cleanup)
        return k

    def test_get_tables_json_yaml(self):
        ns = "get"
        for f in ("service-nodeport-etp-local.json", "service-externalname.json"):
            obj = fixture(f)
            obj["metadata"]["namespace"] = ns
            self.server.load(obj)
        self.server.load(fixture("node-dualstack.json"))
        slice_ = fixture("endpointslice-docs-basic.json")
        slice_["metadata"]["namespace"] = ns
        self.server.load(slice_)
        k = self.kubectl()
        out = k.run("get", "svc", "-n", ns).stdout.splitlines()
        self.assertEqual(out[0].split(), ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)",
                                          "AGE"])
        rows = {line.split()[0]: line.split() for line in out[1:]}
        self.assertEqual(rows["nodeport"][1:5], ["NodePort", "10.0.162.149", "<none>",
                                                 "80:30596/TCP"])
        self.assertEqual(rows["my-service"][1:4], ["ExternalName", "<none>",
                                                   "my.database.example.com"])
        wide = k.run("get", "svc", "nodeport", "-n", ns, "-o", "wide").stdout.splitlines()
        self.assertEqual(wide[0].split()[-1], "SELECTOR")
        self.assertEqual(wide[1].split()[-1], "app=source-ip-app")
        all_ns = k.run("get", "svc", "-A", "--show-labels").stdout.splitlines()
        self.assertEqual(all_ns[0].split()[0], "NAMESPACE")
        self.assertIn(f"{ns} nodeport", " ".join(" ".join(line.split()) for line in all_ns))
        self.assertIn("app=source-ip-app", "\n".join(all_ns))
        nodes = k.run("get", "no", "-o", "wide").stdout.splitlines()
        self.assertEqual(nodes[1].split()[:2], ["k8s-linuxpool1-34450317-0", "Ready"])
        self.assertIn("10.240.0.5", nodes[1].split())
        slices = k.run("get", "endpointslices", "-n", ns).stdout.splitlines()
        self.assertEqual(slices[1].split()[:4], ["example-abc", "IPv4", "80", "10.1.2.3"])
        doc = json.loads(k.run("get", "svc", "-n", ns, "-o", "json").stdout)
        self.assertEqual(doc["kind"], "List")
        self.assertEqual({i["kind"] for i in doc["items"]}, {"Service"})
        one = yaml.safe_load(k.run("get", "svc", "nodeport", "-n", ns, "-o", "yaml").stdout)
        self.assertEqual((one["kind"], one["spec"]["ports"][0]["nodePort"]), ("Service", 30596))
        missing = k.run("get", "svc", "nope", "-n", ns, check=False)
        self.assertEqual(missing.returncode, 1)
        self.assertIn('services "nope" not found', missing.stderr)

    def test_create_replace_delete_with_client_cert(self):
        k = self.kubectl(self.server.kubeconfig_cert)
        svc = fixture("service-nodeport-etp-local.json")
        svc["metadata"]["namespace"] = "crd"
        path = k.write("svc.json", svc)
        self.assertEqual(k.run("create", "-f", path).stdout.strip(), "service/nodeport created")
        again = k.run("create", "-f", path, check=False)
        self.assertEqual(again.returncode, 1)
        self.assertIn("Error from server (AlreadyExists)", again.stderr)
        changed = manifest(svc)
        changed["spec"]["ports"][0]["targetPort"] = 9376
        for f in ("clusterIP", "clusterIPs"):
            del changed["spec"][f]  # replace must keep the allocated IP
        path2 = k.write("svc2.json", changed)
        self.assertEqual(k.run("replace", "-f", path2).stdout.strip(), "service/nodeport replaced")
        stored = self.server.get("services", "nodeport", "crd")
        self.assertEqual(stored["spec"]["ports"][0]["targetPort"], 9376)
        self.assertEqual(stored["spec"]["clusterIP"], "10.0.162.149")
        node = k.write("node.json", fixture("node-dualstack.json"))
        sl = fixture("endpointslice-ipv6-nil-conditions-SYNTHETIC.json")
        sl["metadata"]["namespace"] = "crd"
        slice_path = k.write("slice.json", sl)
        k.run("create", "-f", node, "-f", slice_path)
        self.assertIsNotNone(self.server.get("endpointslices", "my-service-x7k2p", "crd"))
        self.assertEqual(k.run("delete", "svc", "nodeport", "-n", "crd").stdout.strip(),
                         'service "nodeport" deleted')
        gone = k.run("delete", "svc", "nodeport", "-n", "crd", check=False)
        self.assertEqual(gone.returncode, 1)
        self.assertIn('Error from server (NotFound): services "nodeport" not found', gone.stderr)
        self.assertEqual(k.run("delete", "svc", "nodeport", "-n", "crd",
                               "--ignore-not-found").returncode, 0)
        out = k.run("delete", "-f", node, "-f", slice_path).stdout
        self.assertIn('node "k8s-linuxpool1-34450317-0" deleted', out)
        self.assertIsNone(self.server.get("nodes", "k8s-linuxpool1-34450317-0"))

    def test_apply_client_side(self):
        k = self.kubectl()
        web = service("web", ports=((80, 8080), (443, 8443)), labels={"tier": "front"},
                      namespace="csa")
        path = k.write("web.json", web)
        self.assertEqual(k.run("apply", "-f", path).stdout.strip(), "service/web created")
        self.assertEqual(k.run("apply", "-f", path).stdout.strip(), "service/web unchanged")
        web2 = service("web", ports=((80, 9090),), namespace="csa")
        path2 = k.write("web2.json", web2)
        self.assertEqual(k.run("apply", "-f", path2).stdout.strip(), "service/web configured")
        stored = self.server.get("services", "web", "csa")
        self.assertEqual([(p["port"], p["targetPort"]) for p in stored["spec"]["ports"]],
                         [(80, 9090)])
        self.assertNotIn("tier", stored["metadata"].get("labels") or {})
        last = stored["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
        self.assertEqual(json.loads(last)["spec"]["ports"][0]["targetPort"], 9090)

    def test_apply_server_side(self):
        k = self.kubectl(self.server.kubeconfig_cert)
        web = service("web", ports=((80, 8080),), labels={"tier": "front"}, namespace="ssa")
        path = k.write("web.json", web)
        self.assertEqual(k.run("apply", "--server-side", "-f", path).stdout.strip(),
                         "service/web serverside-applied")
        web["spec"]["ports"].append({"name": "p443", "port": 443, "targetPort": 8443})
        k.write("web.json", web)
        k.run("apply", "--server-side", "-f", path)
        stored = self.server.get("services", "web", "ssa")
        self.assertEqual([p["port"] for p in stored["spec"]["ports"]], [80, 443])
        apply_managers = [e["manager"] for e in stored["metadata"]["managedFields"]
                          if e["operation"] == "Apply"]
        self.assertEqual(apply_managers, ["kubectl"])
        k.run("label", "svc", "web", "-n", "ssa", "tier=back", "--overwrite")
        conflict = k.run("apply", "--server-side", "-f", path, check=False)
        self.assertEqual(conflict.returncode, 1)
        self.assertIn('Apply failed with 1 conflict: conflict with "kubectl-label"',
                      conflict.stderr)
        k.run("apply", "--server-side", "--force-conflicts", "-f", path)
        self.assertEqual(self.server.get("services", "web", "ssa")["metadata"]["labels"],
                         {"tier": "front"})

    def test_describe_service(self):
        k = self.kubectl()
        k.run("create", "-f", k.write("web.json", service("web", ports=((80, 8080),),
                                                          namespace="desc")))
        slice_ = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                  "metadata": {"name": "web-abc", "namespace": "desc",
                               "labels": {"kubernetes.io/service-name": "web"}},
                  "addressType": "IPv4", "ports": [{"name": "p80", "port": 8080}],
                  "endpoints": [{"addresses": ["10.0.0.5"], "conditions": {"ready": True}}]}
        k.run("create", "-f", k.write("slice.json", slice_))
        out = k.run("describe", "service", "web", "-n", "desc").stdout
        fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        self.assertEqual(fields["Name"].strip(), "web")
        self.assertEqual(fields["Selector"].strip(), "app=web")
        self.assertEqual(fields["Endpoints"].strip(), "10.0.0.5:8080")
        self.assertEqual(fields["Events"].strip(), "<none>")

    def test_strict_validation(self):
        k = self.kubectl()
        bad = service("strict", namespace="val")
        bad["spec"]["bogus"] = True
        path = k.write("bad.json", bad)
        proc = k.run("create", "-f", path, check=False)
        self.assertEqual(proc.returncode, 1)
        self.assertIn('strict decoding error: unknown field "spec.bogus"', proc.stderr)
        self.assertEqual(k.run("create", "--validate=false", "-f", path).stdout.strip(),
                         "service/strict created")

    def test_get_watch_list(self):
        k = self.kubectl()
        k.run("create", "-f", k.write("a.json", service("a", namespace="watch")))
        r = LineReader(k.popen("get", "svc", "-n", "watch", "-w", "--output-watch-events"))
        try:
            header = r.next().split()
            self.assertEqual(header[:2], ["EVENT", "NAME"])
            self.assertEqual(r.next().split()[:2], ["ADDED", "a"])
            k.run("create", "-f", k.write("b.json", service("b", namespace="watch")))
            self.assertEqual(r.next().split()[:2], ["ADDED", "b"])
            k.run("label", "svc", "a", "-n", "watch", "x=y")
            self.assertEqual(r.next().split()[:2], ["MODIFIED", "a"])
            k.run("delete", "svc", "b", "-n", "watch")
            self.assertEqual(r.next().split()[:2], ["DELETED", "b"])
            # an ERROR event ends kubectl's watch with exit status 0
            wait_for(lambda: self.server.watch_count() > 0, what="kubectl watch")
            self.server.inject_watch("error", "services")
            lines = []
            while (line := r.next()) is not None:
                lines.append(line)
            self.assertEqual(r.proc.wait(10), 0)
            self.assertIn("Expired", "\n".join(lines))
        finally:
            r.stop()

    def test_get_watch_single_object(self):
        k = self.kubectl(self.server.kubeconfig_cert)
        k.run("create", "-f", k.write("a.json", service("web", namespace="watch1")))
        r = LineReader(k.popen("get", "svc", "web", "-n", "watch1", "-w"))
        try:
            self.assertEqual(r.next().split()[0], "NAME")
            self.assertEqual(r.next().split()[0], "web")
            wait_for(lambda: self.server.watch_count() > 0, what="kubectl watch")
            k.run("patch", "svc", "web", "-n", "watch1", "-p",
                  '{"spec":{"ports":[{"port":80,"targetPort":1234}]}}')
            self.assertEqual(r.next().split()[:2], ["web", "ClusterIP"])
        finally:
            r.stop()

    def test_wrong_token_is_unauthorized(self):
        bad = write_kubeconfig(os.path.join(self.server.state_dir, "kubeconfig-bad"),
                               self.server.url, self.server.ca_file, token="wrong")
        k = self.kubectl(bad)
        proc = k.run("get", "svc", check=False)
        self.assertEqual(proc.returncode, 1)
        self.assertIn("error: You must be logged in to the server", proc.stderr)
