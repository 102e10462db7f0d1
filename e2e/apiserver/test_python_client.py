"""The official Python client (Debian python3-kubernetes) against the test server: list, watch,
create, patch, replace and delete for Services, EndpointSlices and Nodes, over TLS + token."""

import threading
import time
import unittest

from .apitest import fixture, manifest, python_client_available
from .server import TestApiServer

if python_client_available():
    from kubernetes import client, config, watch
    from kubernetes.client.rest import ApiException


@unittest.skipUnless(python_client_available(), "python3-kubernetes is not installed")
class PythonClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = TestApiServer(tls=True, token="py-token").start()
        cfg = client.Configuration()
        config.load_kube_config(config_file=cls.server.kubeconfig_token,
                                client_configuration=cfg)
        cls.api_client = client.ApiClient(cfg)
        cls.core = client.CoreV1Api(cls.api_client)
        cls.disc = client.DiscoveryV1Api(cls.api_client)

    @classmethod
    def tearDownClass(cls):
        cls.api_client.close()
        cls.server.stop()

    def collect(self, func, *args, count, after=None, **kwargs):
        """Events of a Watch().stream, with `after` run in a thread once the watch is open."""
        w = watch.Watch()
        events = []
        if after is not None:
            def later():
                # Wait until the server sees the watch, then cause the events.
                deadline = time.monotonic() + 5
                while self.server.watch_count() == 0 and time.monotonic() < deadline:
                    time.sleep(0.01)
                after()
            threading.Thread(target=later, daemon=True).start()
        for ev in w.stream(func, *args, timeout_seconds=5, **kwargs):
            events.append(ev)
            if len(events) == count:
                w.stop()
        return events

    def test_services(self):
        body = manifest(fixture("service-clusterip-multiport.json"))
        del body["kind"], body["apiVersion"]  # the client's models send neither
        body["metadata"]["namespace"] = "py-svc"
        body["spec"]["clusterIP"] = body["spec"]["clusterIPs"][0] = "10.0.171.1"
        created = self.core.create_namespaced_service("py-svc", body)
        self.assertEqual(created.spec.cluster_ip, "10.0.171.1")
        self.assertEqual([p.name for p in created.spec.ports], ["http", "https"])
        lst = self.core.list_namespaced_service("py-svc")
        self.assertEqual([s.metadata.name for s in lst.items], ["my-service"])
        rv = lst.metadata.resource_version
        names = [s.metadata.name for s in self.core.list_service_for_all_namespaces().items]
        self.assertIn("my-service", names)

        def changes():
            self.core.patch_namespaced_service("my-service", "py-svc",
                                               {"metadata": {"labels": {"tier": "web"}}})
            self.core.delete_namespaced_service("my-service", "py-svc")
        events = self.collect(self.core.list_namespaced_service, "py-svc", count=2,
                              resource_version=rv, after=changes)
        self.assertEqual([e["type"] for e in events], ["MODIFIED", "DELETED"])
        self.assertEqual(events[0]["object"].metadata.labels, {"tier": "web"})
        with self.assertRaises(ApiException) as ctx:
            self.core.read_namespaced_service("my-service", "py-svc")
        self.assertEqual(ctx.exception.status, 404)

    def test_service_conflict_and_status(self):
        lb = manifest(fixture("service-loadbalancer-etp-local-ingress.json"))
        lb["metadata"]["namespace"] = "py-lb"
        lb["spec"]["clusterIP"] = lb["spec"]["clusterIPs"][0] = "10.0.65.200"
        for p in lb["spec"]["ports"]:
            p.pop("nodePort")
        lb["spec"].pop("healthCheckNodePort")
        svc = self.core.create_namespaced_service("py-lb", lb)
        self.assertTrue(svc.spec.health_check_node_port)
        self.assertTrue(svc.spec.ports[0].node_port)
        patched = self.core.patch_namespaced_service_status(
            "loadbalancer", "py-lb",
            {"status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.140"}]}}})
        self.assertEqual(patched.status.load_balancer.ingress[0].ip, "203.0.113.140")
        svc.spec.session_affinity = "ClientIP"
        with self.assertRaises(ApiException) as ctx:
            self.core.replace_namespaced_service("loadbalancer", "py-lb", svc)  # stale RV
        self.assertEqual(ctx.exception.status, 409)
        fresh = self.core.read_namespaced_service("loadbalancer", "py-lb")
        fresh.spec.session_affinity = "ClientIP"
        out = self.core.replace_namespaced_service("loadbalancer", "py-lb", fresh)
        self.assertEqual(out.spec.session_affinity_config.client_ip.timeout_seconds, 10800)
        with self.assertRaises(ApiException) as ctx:
            self.core.create_namespaced_service("py-lb", {"metadata": {"name": "loadbalancer"},
                                                          "spec": {"ports": [{"port": 1}]}})
        self.assertEqual(ctx.exception.status, 409)

    def test_endpoint_slices(self):
        for f in ("endpointslice-terminating-and-ready.json", "endpointslice-topology-hints.json"):
            body = manifest(fixture(f))
            body["metadata"]["namespace"] = "py-eps"
            self.disc.create_namespaced_endpoint_slice("py-eps", body)
        lst = self.disc.list_namespaced_endpoint_slice(
            "py-eps", label_selector="kubernetes.io/service-name=nginx-service")
        self.assertEqual([s.metadata.name for s in lst.items], ["nginx-service-6tjbr"])
        eps = lst.items[0].endpoints
        self.assertEqual([(e.conditions.ready, e.conditions.terminating) for e in eps],
                         [(False, True), (True, False)])
        rv = lst.metadata.resource_version
        all_ns = self.disc.list_endpoint_slice_for_all_namespaces()
        self.assertGreaterEqual(len(all_ns.items), 2)

        def changes():
            self.disc.patch_namespaced_endpoint_slice(
                "nginx-service-6tjbr", "py-eps",
                [{"op": "remove", "path": "/endpoints/0"}])
            self.disc.delete_namespaced_endpoint_slice("example-hints", "py-eps")
        events = self.collect(self.disc.list_namespaced_endpoint_slice, "py-eps", count=2,
                              resource_version=rv, after=changes)
        self.assertEqual([(e["type"], e["object"].metadata.name) for e in events],
                         [("MODIFIED", "nginx-service-6tjbr"), ("DELETED", "example-hints")])
        self.assertEqual(len(events[0]["object"].endpoints), 1)
        self.assertEqual(events[0]["object"].metadata.generation, 2)

    def test_nodes(self):
        node = manifest(fixture("node-dualstack.json"))
        created = self.core.create_node(node)
        self.assertEqual(created.spec.pod_cid_rs, ["10.244.1.0/24", "a00:100::/24"])
        self.assertEqual(created.status.node_info.architecture, "")  # zero struct, as Go sends
        nodes = self.core.list_node(field_selector="metadata.name=k8s-linuxpool1-34450317-0")
        self.assertEqual(len(nodes.items), 1)
        rv = nodes.metadata.resource_version

        def changes():
            self.core.patch_node("k8s-linuxpool1-34450317-0",
                                 {"spec": {"unschedulable": True}})
            self.core.patch_node_status("k8s-linuxpool1-34450317-0", {"status": {
                "conditions": [{"type": "Ready", "status": "False"}]}})
            self.core.delete_node("k8s-linuxpool1-34450317-0")
        events = self.collect(self.core.list_node, count=3, resource_version=rv, after=changes)
        self.assertEqual([e["type"] for e in events], ["MODIFIED", "MODIFIED", "DELETED"])
        self.assertTrue(events[0]["object"].spec.unschedulable)
        self.assertEqual(events[1]["object"].status.conditions[0].status, "False")

    def test_watch_from_compacted_rv_raises_410(self):
        self.core.create_namespaced_service("py-410", {"metadata": {"name": "a"},
                                                       "spec": {"ports": [{"port": 80}]}})
        rv = self.core.list_namespaced_service("py-410").metadata.resource_version
        self.server.compact()
        with self.assertRaises(ApiException) as ctx:
            for _ in watch.Watch().stream(self.core.list_namespaced_service, "py-410",
                                          resource_version=rv, timeout_seconds=2):
                pass
        self.assertEqual(ctx.exception.status, 410)
        self.assertIn("Expired: too old resource version", ctx.exception.reason)
