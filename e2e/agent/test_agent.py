"""sluice-agent --dry-run end to end: the agent follows the cluster it is pointed at (the test API
server changed with kubectl, or a manifest directory changed file by file), keeps the last good
state of everything when given bad input, and serves /healthz, /livez and /metrics as kube-proxy
does. What the agent would program is read back from its dry-run output."""

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest

import yaml

from apiserver.apitest import Kubectl, kubectl_path, wait_for
from apiserver.server import TestApiServer

AGENT = os.environ.get("SLUICE_AGENT", "")
NODE = "node-a"


def node_object(name=NODE, zone="zone-1", **extra):
    obj = {"apiVersion": "v1", "kind": "Node",
           "metadata": {"name": name, "labels": {"topology.kubernetes.io/zone": zone}},
           "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]},
           "status": {"addresses": [{"type": "InternalIP", "address": "192.168.50.2"}]}}
    obj["spec"].update(extra.get("spec", {}))
    obj["metadata"].update(extra.get("metadata", {}))
    return obj


def service_object(name, cluster_ip, port=80, port_name="http", **spec):
    obj = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": name, "namespace": "default"},
           "spec": {"clusterIP": cluster_ip, "selector": {"app": name},
                    "ports": [{"name": port_name, "port": port, "targetPort": 8080}]}}
    obj["spec"].update(spec)
    return obj


def slice_object(name, service, ips, port=8080, port_name="http", node=NODE):
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": "default",
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [ip], "nodeName": node, "conditions": {"ready": True}}
                          for ip in ips],
            "ports": [{"name": port_name, "port": port, "protocol": "TCP"}]}


class Agent:
    """sluice-agent --dry-run as a child process. `programmed` is what its output says would be
    programmed now: service key -> the port lines of its last sync."""

    def __init__(self, *args, min_sync="0", sync_period="30s"):
        self.args = [AGENT, "--dry-run", "--healthz-bind-address=127.0.0.1:0",
                     "--metrics-bind-address=127.0.0.1:0", f"--min-sync-period={min_sync}",
                     f"--sync-period={sync_period}", "--hostname-override", NODE, *args]
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lock = threading.Lock()
        self.out, self.err = [], []
        self.programmed = {}
        self.syncs = 0
        self.ports = {}
        self._block = set()
        self.threads = [threading.Thread(target=self._read_out, daemon=True),
                        threading.Thread(target=self._read_err, daemon=True)]
        for t in self.threads:
            t.start()

    def _read_out(self):
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            with self.lock:
                self.out.append(line)
                if line.startswith("sync "):
                    self.syncs += 1
                    self._block = set()
                elif line[:2] in ("+ ", "~ "):
                    text = line[2:]
                    key = text.split(" ")[0].split(":")[0]
                    if key not in self._block:
                        self._block.add(key)
                        self.programmed[key] = []
                    self.programmed[key].append(text)
                elif line.startswith("- "):
                    self.programmed.pop(line[2:], None)

    def _read_err(self):
        for line in self.proc.stderr:
            line = line.rstrip("\n")
            with self.lock:
                self.err.append(line)
                m = re.search(r"\] (healthz|metrics) server: serving on .* \(port (\d+)\)", line)
                if m:
                    self.ports[m.group(1)] = int(m.group(2))

    def state(self):
        with self.lock:
            return {k: list(v) for k, v in self.programmed.items()}

    def wait(self, predicate, what, timeout=15):
        def check():
            if self.proc.poll() is not None:
                raise AssertionError(f"the agent exited ({self.proc.returncode}):\n" +
                                     "\n".join(self.err[-20:]))
            return predicate(self.state())
        try:
            return wait_for(check, timeout=timeout, what=what)
        except AssertionError as e:
            raise AssertionError(f"{e}\nstate: {json.dumps(self.state(), indent=1)}\nlog:\n" +
                                 "\n".join(self.err[-15:])) from None

    def wait_log(self, pattern, what, timeout=15):
        rx = re.compile(pattern)
        def found():
            with self.lock:
                return next((l for l in self.err if rx.search(l)), None)
        return wait_for(found, timeout=timeout, what=what)

    def log_lines(self, pattern):
        rx = re.compile(pattern)
        with self.lock:
            return [l for l in self.err if rx.search(l)]

    def get(self, server, path):
        port = wait_for(lambda: self.ports.get(server), what=f"{server} server port")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read().decode()
        finally:
            conn.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for t in self.threads:
            t.join(5)
        return self.proc.returncode


def endpoints_of(lines):
    """The internal endpoints of each port line: "default/web:http" -> ["10.0.0.1:8080", ...]."""
    out = {}
    for line in lines:
        m = re.search(r"internal \[([^\]]*)\] (\w+)", line)
        eps = [e.split("(")[0] for e in m.group(1).split()] if m and m.group(1) else []
        out[line.split(" ")[0]] = (eps, m.group(2) if m else None)
    return out


class AgentTestCase(unittest.TestCase):
    def start_agent(self, *args, **kw):
        agent = Agent(*args, **kw)
        self.addCleanup(self._stop_agent, agent)
        return agent

    def _stop_agent(self, agent):
        rc = agent.stop()
        failed = self._outcome.result and any(
            t is self for t, _ in self._outcome.result.errors + self._outcome.result.failures)
        if failed:
            print("\n--- sluice-agent stderr ---\n" + "\n".join(agent.err[-40:]))
            print("--- sluice-agent stdout ---\n" + "\n".join(agent.out[-40:]))
        self.assertEqual(rc, 0, "the agent did not exit cleanly on SIGTERM")


@unittest.skipUnless(kubectl_path(), "kubectl is not installed")
class ApiServerTest(AgentTestCase):
    """The agent against the test API server, the cluster changed with kubectl."""

    def setUp(self):
        self.server = TestApiServer(tls=True, token="e2e-agent-token").start()
        self.addCleanup(self.server.stop)
        self.server.load(node_object())
        self.kubectl = Kubectl(self.server.kubeconfig_token)
        self.addCleanup(self.kubectl.cleanup)

    def apply(self, verb, name, obj):
        path = self.kubectl.write(name, obj)
        self.kubectl.run(verb, "-f", path)

    def test_follows_kubectl_create_replace_delete(self):
        agent = self.start_agent("--kubeconfig", self.server.kubeconfig_token)
        agent.wait(lambda s: agent.syncs >= 1, "the first sync")
        self.assertEqual(agent.state(), {})
        first = [l for l in agent.out if l.startswith("sync 1 ")][0]
        self.assertIn(f"node {NODE} zone zone-1 192.168.50.2", first)

        # A Service without endpoints: programmed to REJECT.
        self.apply("create", "svc.json", service_object("web", "10.0.0.50"))
        agent.wait(lambda s: "default/web" in s, "the Service")
        self.assertEqual(endpoints_of(agent.state()["default/web"]),
                         {"default/web:http": ([], "reject")})

        # Its EndpointSlice created, then replaced with one more endpoint.
        self.apply("create", "eps.json", slice_object("web-1", "web", ["10.244.1.5"]))
        agent.wait(lambda s: endpoints_of(s.get("default/web", [])).get("default/web:http") ==
                   (["10.244.1.5:8080"], "forward"), "the first endpoint")
        self.apply("replace", "eps.json",
                   slice_object("web-1", "web", ["10.244.1.5", "10.244.2.6"]))
        agent.wait(lambda s: endpoints_of(s.get("default/web", [])).get("default/web:http") ==
                   (["10.244.1.5:8080", "10.244.2.6:8080"], "forward"), "the replaced slice")

        # A NodePort Service next to it, then the first Service deleted.
        self.apply("create", "np.json", service_object("np", "10.0.0.51", type="NodePort"))
        agent.wait(lambda s: "default/np" in s, "the NodePort Service")
        self.assertRegex(agent.state()["default/np"][0], r"nodePort 3\d{4}")
        self.kubectl.run("delete", "service", "web")
        agent.wait(lambda s: "default/web" not in s and "default/np" in s, "the deletion")
        self.assertTrue(any(l == "- default/web" for l in agent.out))

    def test_invalid_object_is_skipped_and_others_kept(self):
        agent = self.start_agent("--kubeconfig", self.server.kubeconfig_token)
        self.apply("create", "a.json", service_object("a", "10.0.0.60"))
        self.apply("create", "b.json", service_object("b", "10.0.0.61"))
        agent.wait(lambda s: {"default/a", "default/b"} <= set(s), "both Services")
        # The API server would refuse these, so they are stored behind its back (as a buggy
        # webhook or an old etcd object could): a port out of range, an unknown protocol.
        bad = service_object("b", "10.0.0.61", port=70000)
        bad["metadata"]["resourceVersion"] = ""
        self.server.load(bad)
        agent.wait(lambda s: "default/b" not in s and "default/a" in s, "b dropped, a kept")
        line = agent.wait_log(r"Service default/b .*spec\.ports\[0\]\.port: 70000 out of range",
                              "a log line naming the object and field")
        self.assertIn("rejected", line)
        quic = service_object("c", "10.0.0.62")
        quic["spec"]["ports"][0]["protocol"] = "QUIC"
        self.server.load(quic)
        agent.wait_log(r"Service default/c .*spec\.ports\[0\]\.protocol", "the protocol error")
        # Mended, b comes back.
        self.server.load(service_object("b", "10.0.0.61"))
        agent.wait(lambda s: {"default/a", "default/b"} <= set(s), "b back")
        self.assertNotIn("default/c", agent.state())

    def test_healthz_livez_and_metrics(self):
        agent = self.start_agent("--kubeconfig", self.server.kubeconfig_token)
        self.apply("create", "svc.json", service_object("web", "10.0.0.50"))
        self.apply("create", "eps.json", slice_object("web-1", "web", ["10.244.1.5"]))
        agent.wait(lambda s: endpoints_of(s.get("default/web", [])).get("default/web:http") ==
                   (["10.244.1.5:8080"], "forward"), "the endpoint")

        status, headers, body = agent.get("healthz", "/healthz")
        self.assertEqual(status, 200, body)
        self.assertEqual(headers.get("Content-Type"), "application/json")
        self.assertEqual(headers.get("X-Content-Type-Options"), "nosniff")
        doc = json.loads(body)
        self.assertTrue(doc["nodeEligible"])
        for key in ("lastUpdated", "currentTime"):
            self.assertRegex(doc[key], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
        status, _, body = agent.get("healthz", "/livez")
        self.assertEqual(status, 200, body)
        self.assertNotIn("nodeEligible", json.loads(body))
        self.assertEqual(agent.get("healthz", "/nope")[0], 404)

        status, headers, text = agent.get("metrics", "/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(headers.get("Content-Type", "").startswith("text/plain; version=0.0.4"))
        metrics = parse_prometheus(text)
        for name in ("kubeproxy_sync_proxy_rules_duration_seconds_bucket",
                     "kubeproxy_sync_proxy_rules_duration_seconds_count",
                     "kubeproxy_sync_full_proxy_rules_duration_seconds_count",
                     "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
                     "kubeproxy_sync_proxy_rules_endpoint_changes_total",
                     "kubeproxy_sync_proxy_rules_service_changes_total",
                     "kubeproxy_sync_proxy_rules_endpoint_changes_pending",
                     "kubeproxy_sync_proxy_rules_service_changes_pending",
                     "kubeproxy_proxy_healthz_total", "process_resident_memory_bytes",
                     "process_start_time_seconds"):
            self.assertIn(name, metrics, name)
        last = metrics["kubeproxy_sync_proxy_rules_last_timestamp_seconds"]
        self.assertTrue(all(abs(v - time.time()) < 120 for v in last.values()), last)
        self.assertGreaterEqual(sum(metrics["kubeproxy_sync_proxy_rules_endpoint_changes_total"]
                                    .values()), 1)
        self.assertGreaterEqual(sum(metrics["kubeproxy_sync_proxy_rules_service_changes_total"]
                                    .values()), 1)
        healthz = metrics["kubeproxy_proxy_healthz_total"]
        self.assertGreaterEqual(healthz.get((("code", "200"),), 0), 1, healthz)
        self.assertEqual(agent.get("metrics", "/healthz")[2], "ok")
        self.assertEqual(agent.get("metrics", "/proxyMode")[2], "dry-run")

        # The node tainted for deletion by the cluster autoscaler: /healthz says 503 so load
        # balancers drain it, /livez stays 200.
        node = node_object(spec={"taints": [{"key": "ToBeDeletedByClusterAutoscaler",
                                              "value": "1700000000", "effect": "NoSchedule"}]})
        self.apply("replace", "node.json", node)
        def drained():
            s, _, b = agent.get("healthz", "/healthz")
            return s == 503 and json.loads(b)["nodeEligible"] is False
        wait_for(drained, timeout=15, what="/healthz 503 for a node being deleted")
        self.assertEqual(agent.get("healthz", "/livez")[0], 200)


def parse_prometheus(text):
    """name -> {labels tuple: value} from the text format; checks every line parses."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? ([^ ]+)$', line)
        assert m, f"unparsable metrics line: {line!r}"
        labels = tuple(sorted(re.findall(r'([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"', m.group(3) or "")))
        out.setdefault(m.group(1), {})[labels] = float(m.group(4))
    return out


class ManifestDirTest(AgentTestCase):
    """The agent in standalone mode: a manifest directory."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="sluice-e2e-manifests-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def write(self, name, text):
        tmp = os.path.join(self.dir, "." + name + ".tmp")
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, os.path.join(self.dir, name))

    def test_follows_files_written_changed_and_removed(self):
        self.write("node.yaml", json.dumps(node_object()))
        agent = self.start_agent("--manifests", self.dir)
        agent.wait(lambda s: agent.syncs >= 1, "the first sync")
        self.write("web.yaml", """
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: 10.96.0.10
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
endpoints:
- addresses: ["10.244.1.5"]
  nodeName: node-a
ports: [{name: http, port: 8080, protocol: TCP}]
""")
        agent.wait(lambda s: endpoints_of(s.get("default/web", [])).get("default/web:http") ==
                   (["10.244.1.5:8080"], "forward"), "web from the new file")
        # Changed in place (not renamed): a second endpoint, terminating.
        with open(os.path.join(self.dir, "web.yaml"), "a") as f:
            f.write("""---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-2
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
endpoints:
- addresses: ["10.244.2.6"]
  conditions: {ready: true}
ports: [{name: http, port: 8080, protocol: TCP}]
""")
        agent.wait(lambda s: endpoints_of(s.get("default/web", [])).get("default/web:http") ==
                   (["10.244.1.5:8080", "10.244.2.6:8080"], "forward"), "the second slice")
        # A JSON file next to it.
        self.write("db.json", json.dumps(service_object("db", "10.96.0.11", port=5432)))
        agent.wait(lambda s: "default/db" in s, "db from a JSON file")
        os.remove(os.path.join(self.dir, "web.yaml"))
        agent.wait(lambda s: "default/web" not in s and "default/db" in s, "web removed")

    def test_broken_yaml_keeps_the_last_good_state(self):
        self.write("web.yaml", json.dumps(service_object("web", "10.96.0.10")))
        self.write("db.yaml", json.dumps(service_object("db", "10.96.0.11")))
        agent = self.start_agent("--manifests", self.dir)
        agent.wait(lambda s: {"default/web", "default/db"} <= set(s), "both Services")
        self.write("web.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: web\n  spec: [\n")
        agent.wait_log(r"web\.yaml.*line \d+", "the YAML error with its line")
        time.sleep(0.5)  # give a wrong removal the chance to show
        self.assertEqual(set(agent.state()), {"default/web", "default/db"})
        # Fixed: the new content applies.
        self.write("web.yaml", json.dumps(service_object("web", "10.96.0.10", port=8443)))
        agent.wait(lambda s: "clusterIP 10.96.0.10:8443" in " ".join(s.get("default/web", [])),
                   "the fixed file")

    def test_invalid_object_and_duplicates(self):
        self.write("a.yaml", yaml.safe_dump(service_object("a", "10.96.0.20")) + "---\n" +
                   yaml.safe_dump(service_object("bad", "10.96.0.21", port=0)))
        self.write("b.yaml", json.dumps(service_object("a", "10.96.0.99")))
        agent = self.start_agent("--manifests", self.dir)
        agent.wait(lambda s: "default/a" in s, "a")
        # The first copy (a.yaml) wins; the duplicate is logged naming both files.
        self.assertIn("clusterIP 10.96.0.20:80", agent.state()["default/a"][0])
        agent.wait_log(r"default/a.*a\.yaml.*b\.yaml|default/a.*b\.yaml.*a\.yaml",
                       "the duplicate named with both files")
        agent.wait_log(r"Service default/bad.*spec\.ports\[0\]\.port", "the invalid object")
        self.assertNotIn("default/bad", agent.state())
        # The winner's file goes away: the other copy takes over.
        os.remove(os.path.join(self.dir, "a.yaml"))
        agent.wait(lambda s: "clusterIP 10.96.0.99:80" in " ".join(s.get("default/a", [])),
                   "b.yaml's copy taking over")

    def test_missing_directory_is_a_clear_error(self):
        missing = os.path.join(self.dir, "nope")
        p = subprocess.run([AGENT, "--dry-run", "--manifests", missing,
                            "--healthz-bind-address=", "--metrics-bind-address="],
                           capture_output=True, text=True, timeout=20)
        self.assertEqual(p.returncode, 1)
        self.assertIn(missing, p.stderr)


class CommandLineTest(unittest.TestCase):
    def test_help_documents_every_flag(self):
        p = subprocess.run([AGENT, "--help"], capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 0)
        for flag in ("--kubeconfig", "--master", "--hostname-override", "--proxy-mode",
                     "--cluster-cidr", "--masquerade-all", "--nodeport-addresses",
                     "--healthz-bind-address", "--metrics-bind-address", "--config",
                     "--manifests", "--dry-run", "--min-sync-period", "--sync-period"):
            self.assertIn(flag, p.stdout)

    def test_bad_flag_names_it(self):
        p = subprocess.run([AGENT, "--proxy-mode=ipvs"], capture_output=True, text=True,
                           timeout=10)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--proxy-mode", p.stderr)

    def test_port_in_use_names_the_address(self):
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen()
        self.addCleanup(s.close)
        d = tempfile.mkdtemp(prefix="sluice-e2e-manifests-")
        self.addCleanup(shutil.rmtree, d, True)
        addr = f"127.0.0.1:{s.getsockname()[1]}"
        p = subprocess.run([AGENT, "--dry-run", "--manifests", d, "--metrics-bind-address=",
                            f"--healthz-bind-address={addr}"], capture_output=True, text=True,
                           timeout=20)
        self.assertEqual(p.returncode, 1)
        self.assertIn(f"healthz server: bind {addr}: Address already in use", p.stderr)


if __name__ == "__main__":
    unittest.main()
