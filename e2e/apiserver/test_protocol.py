"""The list/watch protocol and REST semantics over raw HTTP, checked against the documented
behaviour of kube-apiserver and the Status bodies in testdata/ (copies of the shared fixtures)."""

import time
import unittest

from .apitest import RawClient, fixture, manifest, service
from .server import TestApiServer

SVC = "/api/v1/namespaces/{ns}/services"
SLICES = "/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices"
NODES = "/api/v1/nodes"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


class ProtocolTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = TestApiServer(bookmark_interval=0.3).start()
        cls.server.set_config(futureRVWait=0.2)
        cls.c = RawClient(cls.server)

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        cls.server.stop()

    def create(self, ns, obj, path=SVC):
        if ns:
            obj = dict(obj, metadata=dict(obj["metadata"], namespace=ns))
        code, _, body = self.c.post(path.format(ns=ns), obj)
        self.assertEqual(code, 201, body)
        return body

    # ------------------------------------------------------------ discovery and static paths
    def test_discovery_aggregated_and_legacy(self):
        accept = ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
                  "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,"
                  "application/json")
        code, hdrs, body = self.c.get("/api", headers={"Accept": accept})
        self.assertEqual(code, 200)
        self.assertEqual(hdrs["Content-Type"],
                         "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList")
        core = {r["resource"]: r for r in body["items"][0]["versions"][0]["resources"]}
        self.assertEqual(core["services"]["responseKind"]["kind"], "Service")
        self.assertEqual(core["services"]["shortNames"], ["svc"])
        self.assertEqual(core["nodes"]["scope"], "Cluster")
        code, hdrs, body = self.c.get("/apis", headers={
            "Accept": "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"})
        self.assertIn("v=v2beta1", hdrs["Content-Type"])
        self.assertEqual(body["items"][0]["metadata"]["name"], "discovery.k8s.io")
        code, hdrs, body = self.c.get("/api")
        self.assertEqual((body["kind"], body["versions"]), ("APIVersions", ["v1"]))
        code, _, body = self.c.get("/apis")
        self.assertEqual(body["groups"][0]["preferredVersion"]["groupVersion"],
                         "discovery.k8s.io/v1")
        code, _, body = self.c.get("/apis/discovery.k8s.io/v1")
        self.assertEqual([r["name"] for r in body["resources"]], ["endpointslices"])
        code, _, body = self.c.get("/api/v1")
        names = {r["name"]: r for r in body["resources"]}
        self.assertTrue(names["services"]["namespaced"])
        self.assertFalse(names["nodes"]["namespaced"])
        self.assertIn("services/status", names)

    def test_version_health_openapi(self):
        code, _, body = self.c.get("/version")
        self.assertEqual((body["major"], body["minor"], body["gitVersion"]), ("1", "32", "v1.32.0"))
        for path in ("/healthz", "/livez", "/readyz"):
            code, _, body = self.c.get(path)
            self.assertEqual((code, body), (200, "ok"))
        code, _, index = self.c.get("/openapi/v3")
        url = index["paths"]["api/v1"]["serverRelativeURL"]
        code, _, doc = self.c.get(url)
        patch = doc["paths"]["/api/v1/namespaces/{namespace}/services/{name}"]["patch"]
        self.assertIn("fieldValidation", [p["name"] for p in patch["parameters"]])
        self.assertEqual(patch["x-kubernetes-group-version-kind"]["kind"], "Service")
        code, _, body = self.c.get("/no/such/path")
        self.assertEqual((code, body["reason"]), (404, "NotFound"))

    # ------------------------------------------------------------ create / get / update / delete
    def test_create_sets_system_fields_and_defaults(self):
        svc = self.create("crud", service("web", ports=((80, 8080), (443, 8443))))
        meta = svc["metadata"]
        for f in ("uid", "resourceVersion", "creationTimestamp"):
            self.assertTrue(meta.get(f), f)
        self.assertNotIn("generation", meta)  # Services carry no generation
        self.assertEqual(svc["spec"]["type"], "ClusterIP")
        self.assertEqual(svc["spec"]["ports"][0]["protocol"], "TCP")
        self.assertEqual(svc["spec"]["ipFamilies"], ["IPv4"])
        self.assertEqual(svc["spec"]["clusterIPs"], [svc["spec"]["clusterIP"]])
        self.assertEqual(svc["status"], {"loadBalancer": {}})
        sl = self.create("crud", manifest(fixture("endpointslice-docs-basic.json")) | {
            "metadata": {"name": "web-1"}}, SLICES)
        self.assertEqual(sl["metadata"]["generation"], 1)
        code, _, got = self.c.get(SVC.format(ns="crud") + "/web")
        self.assertEqual(got, svc)
        # the Python client's POST carries no kind/apiVersion: defaulted from the URL
        code, _, body = self.c.post(SVC.format(ns="crud"), {"metadata": {"name": "bare"},
                                                            "spec": {"ports": [{"port": 1}]}})
        self.assertEqual((code, body["kind"], body["apiVersion"]), (201, "Service", "v1"))

    def test_error_statuses(self):
        self.create("default", service("dup"))
        code, _, body = self.c.post(SVC.format(ns="default"), service("dup", namespace="default"))
        self.assertEqual(code, 409)
        self.assertEqual(body, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                "status": "Failure", "message": 'services "dup" already exists',
                                "reason": "AlreadyExists",
                                "details": {"name": "dup", "kind": "services"}, "code": 409})
        code, _, body = self.c.get(SVC.format(ns="default") + "/nope")
        self.assertEqual((code, body["reason"], body["message"]),
                         (404, "NotFound", 'services "nope" not found'))
        code, _, body = self.c.get(SLICES.format(ns="default") + "/nope")
        self.assertEqual(body["message"], 'endpointslices.discovery.k8s.io "nope" not found')
        self.assertEqual(body["details"]["group"], "discovery.k8s.io")
        bad = service("bad")
        del bad["spec"]["ports"]
        code, _, body = self.c.post(SVC.format(ns="default"), bad)
        self.assertEqual((code, body["reason"]), (422, "Invalid"))
        self.assertEqual(body["message"], 'Service "bad" is invalid: spec.ports: Required value')
        self.assertEqual(body["details"]["causes"],
                         [{"reason": "FieldValueRequired", "message": "Required value",
                           "field": "spec.ports"}])
        code, _, body = self.c.post(SVC.format(ns="default"), service("Bad_Name"))
        self.assertEqual(code, 422)
        self.assertIn("metadata.name: Invalid value", body["message"])
        # a stored object's resourceVersion must not come back on create
        rv_set = service("rv")
        rv_set["metadata"]["resourceVersion"] = "5"
        code, _, body = self.c.post(SVC.format(ns="default"), rv_set)
        self.assertEqual((code, body["message"]),
                         (500, "resourceVersion should not be set on objects to be created"))
        # strict field validation, warning, type errors
        unknown = service("strict")
        unknown["spec"]["bogus"] = 1
        code, _, body = self.c.post(SVC.format(ns="default") + "?fieldValidation=Strict", unknown)
        self.assertEqual((code, body["message"]),
                         (400, 'strict decoding error: unknown field "spec.bogus"'))
        code, hdrs, body = self.c.post(SVC.format(ns="default") + "?fieldValidation=Warn", unknown)
        self.assertEqual(code, 201)
        self.assertEqual(hdrs["Warning"], '299 - "unknown field \\"spec.bogus\\""')
        self.assertNotIn("bogus", body["spec"])
        typed = service("typed")
        typed["spec"]["ports"][0]["port"] = "eighty"
        code, _, body = self.c.post(SVC.format(ns="default"), typed)
        self.assertEqual(code, 400)
        self.assertIn("cannot unmarshal string into Go struct field .spec.ports[0].port",
                      body["message"])
        code, _, body = self.c.post(SVC.format(ns="default"), b"{not json")
        self.assertEqual(code, 400)
        code, _, body = self.c.request("PUT", SVC.format(ns="default"), service("x"))
        self.assertEqual((code, body["reason"]), (405, "MethodNotAllowed"))

    def test_update_optimistic_concurrency(self):
        svc = self.create("upd", service("web"))
        old_rv = svc["metadata"]["resourceVersion"]
        svc["spec"]["ports"][0]["targetPort"] = 9090
        code, _, updated = self.c.put(SVC.format(ns="upd") + "/web", svc)
        self.assertEqual(code, 200, updated)
        self.assertGreater(int(updated["metadata"]["resourceVersion"]), int(old_rv))
        self.assertEqual(updated["metadata"]["uid"], svc["metadata"]["uid"])
        stale = dict(svc)
        code, _, body = self.c.put(SVC.format(ns="upd") + "/web", stale)  # carries old_rv
        self.assertEqual(code, 409)
        self.assertEqual(body["reason"], "Conflict")
        self.assertEqual(body["message"], 'Operation cannot be fulfilled on services "web": the '
                         'object has been modified; please apply your changes to the latest '
                         'version and try again')
        # an update without RV is unconditional and keeps allocated fields
        plain = service("web", namespace="upd")
        code, _, body = self.c.put(SVC.format(ns="upd") + "/web", plain)
        self.assertEqual(code, 200, body)
        self.assertEqual(body["spec"]["clusterIP"], svc["spec"]["clusterIP"])
        # a no-op update does not bump the RV
        code, _, again = self.c.put(SVC.format(ns="upd") + "/web", body)
        self.assertEqual(again["metadata"]["resourceVersion"], body["metadata"]["resourceVersion"])
        # changing the clusterIP is refused
        body["spec"]["clusterIP"] = body["spec"]["clusterIPs"][0] = "10.0.99.99"
        code, _, err = self.c.put(SVC.format(ns="upd") + "/web", body)
        self.assertEqual(code, 422)
        self.assertIn("may not change once set", err["message"])
        # name mismatch
        code, _, err = self.c.put(SVC.format(ns="upd") + "/other", service("web", namespace="upd"))
        self.assertEqual(code, 400)
        # EndpointSlice generation follows content changes
        sl = self.create("upd", manifest(fixture("endpointslice-docs-basic.json")), SLICES)
        sl["endpoints"][0]["conditions"]["ready"] = False
        code, _, sl2 = self.c.put(SLICES.format(ns="upd") + "/example-abc", sl)
        self.assertEqual(sl2["metadata"]["generation"], 2)

    def test_delete_answers(self):
        svc = self.create("del", service("web"))
        code, _, body = self.c.request("DELETE", SVC.format(ns="del") + "/web",
                                       {"propagationPolicy": "Background"})
        self.assertEqual((code, body["kind"], body["metadata"]["uid"]),
                         (200, "Service", svc["metadata"]["uid"]))
        code, _, body = self.c.delete(SVC.format(ns="del") + "/web")
        self.assertEqual(code, 404)
        sl = self.create("del", manifest(fixture("endpointslice-docs-basic.json")), SLICES)
        code, _, body = self.c.delete(SLICES.format(ns="del") + "/example-abc")
        self.assertEqual(body, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                "status": "Success", "details": {
                                    "name": "example-abc", "group": "discovery.k8s.io",
                                    "kind": "endpointslices", "uid": sl["metadata"]["uid"]},
                                "code": 200})
        self.create("del", service("pre"))
        code, _, body = self.c.request("DELETE", SVC.format(ns="del") + "/pre",
                                       {"preconditions": {"uid": "not-it"}})
        self.assertEqual(code, 409)
        self.assertIn("Precondition failed: UID in precondition: not-it", body["message"])

    def test_status_subresource(self):
        lb = manifest(fixture("service-loadbalancer-docs-status.json"))
        lb["metadata"]["namespace"] = "st"
        lb["spec"]["clusterIP"] = lb["spec"]["clusterIPs"][0] = "10.0.171.240"
        created = self.create("st", lb)
        self.assertEqual(created["status"], {"loadBalancer": {}})  # create drops status
        self.assertTrue(created["spec"]["ports"][0]["nodePort"])
        status = {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.127"}]}}}
        code, _, body = self.c.patch(SVC.format(ns="st") + "/my-service/status", status,
                                     content_type="application/merge-patch+json")
        self.assertEqual(code, 200, body)
        self.assertEqual(body["status"]["loadBalancer"]["ingress"],
                         [{"ip": "192.0.2.127", "ipMode": "VIP"}])
        # the main resource ignores status changes
        body["status"] = {"loadBalancer": {}}
        body["metadata"]["labels"] = {"x": "y"}
        code, _, after = self.c.put(SVC.format(ns="st") + "/my-service", body)
        self.assertEqual(after["status"]["loadBalancer"]["ingress"][0]["ip"], "192.0.2.127")
        self.assertEqual(after["metadata"]["labels"], {"x": "y"})
        node = manifest(fixture("node-dualstack.json"))
        node["metadata"]["name"] = "status-node"
        self.create("", node, NODES)
        code, _, body = self.c.patch(NODES + "/status-node/status",
                                     {"status": {"conditions": [{"type": "Ready",
                                                                 "status": "False"}]}})
        self.assertEqual(code, 200, body)
        self.assertEqual(body["status"]["conditions"][0]["status"], "False")
        self.assertEqual(body["status"]["conditions"][0]["reason"], "KubeletReady")

    # ------------------------------------------------------------ patch
    def test_patch_flavours(self):
        self.create("pt", service("web", ports=((80, 8080), (443, 8443)), labels={"a": "1"}))
        path = SVC.format(ns="pt") + "/web"
        code, _, body = self.c.patch(path, [{"op": "add", "path": "/metadata/labels/b",
                                             "value": "2"},
                                            {"op": "test", "path": "/metadata/labels/a",
                                             "value": "1"}],
                                     content_type="application/json-patch+json")
        self.assertEqual(body["metadata"]["labels"], {"a": "1", "b": "2"})
        code, _, body = self.c.patch(path, [{"op": "test", "path": "/metadata/labels/a",
                                             "value": "9"}],
                                     content_type="application/json-patch+json")
        self.assertEqual(code, 422)
        code, _, body = self.c.patch(path, {"metadata": {"labels": {"a": None}}},
                                     content_type="application/merge-patch+json")
        self.assertEqual(body["metadata"]["labels"], {"b": "2"})
        # what kubectl's client-side apply sends: merge by port, delete one, keep order
        smp = {"spec": {"$setElementOrder/ports": [{"port": 80}],
                        "ports": [{"$patch": "delete", "port": 443},
                                  {"port": 80, "targetPort": 9090}]}}
        code, _, body = self.c.patch(path, smp)
        self.assertEqual(code, 200, body)
        self.assertEqual([(p["port"], p["targetPort"]) for p in body["spec"]["ports"]],
                         [(80, 9090)])
        code, _, body = self.c.patch(path, {"spec": {"ports": [{"port": 53, "name": "dns",
                                                                "protocol": "UDP"}]}})
        self.assertEqual([p["port"] for p in body["spec"]["ports"]], [80, 53])
        code, _, body = self.c.patch(path, {"x": 1}, content_type="text/plain")
        self.assertEqual(code, 415)
        code, _, body = self.c.patch(SVC.format(ns="pt") + "/nope", {"metadata": {}})
        self.assertEqual(code, 404)
        # a resourceVersion in the patch is a precondition
        code, _, body = self.c.patch(path, {"metadata": {"resourceVersion": "1"}},
                                     content_type="application/merge-patch+json")
        self.assertEqual(code, 409)

    def test_server_side_apply(self):
        path = SVC.format(ns="ssa") + "/web"
        cfg = service("web", namespace="ssa", labels={"team": "a"})
        code, _, body = self.c.patch(path + "?fieldManager=alice", cfg,
                                     content_type="application/apply-patch+yaml")
        self.assertEqual(code, 201, body)
        managers = {e["manager"]: e for e in body["metadata"]["managedFields"]}
        self.assertEqual(managers["alice"]["operation"], "Apply")
        self.assertIn("f:team", managers["alice"]["fieldsV1"]["f:metadata"]["f:labels"])
        # another manager changing alice's field conflicts, with force it wins
        bob = service("web", namespace="ssa", ports=((80, 9999),))
        code, _, body = self.c.patch(path + "?fieldManager=bob", bob,
                                     content_type="application/apply-patch+yaml")
        self.assertEqual(code, 409, body)
        self.assertEqual(body["reason"], "Conflict")
        self.assertIn('conflict with "alice"', body["message"])
        self.assertEqual(body["details"]["causes"][0]["reason"], "FieldManagerConflict")
        code, _, body = self.c.patch(path + "?fieldManager=bob&force=true", bob,
                                     content_type="application/apply-patch+yaml")
        self.assertEqual((code, body["spec"]["ports"][0]["targetPort"]), (200, 9999))
        # alice drops her label (removed: nobody else owns it) and agrees on the port (co-owned)
        cfg["metadata"].pop("labels")
        cfg["spec"]["ports"][0]["targetPort"] = 9999
        code, _, body = self.c.patch(path + "?fieldManager=alice", cfg,
                                     content_type="application/apply-patch+yaml")
        self.assertEqual(code, 200, body)
        self.assertNotIn("team", body["metadata"].get("labels", {}))
        code, _, body = self.c.patch(path, cfg, content_type="application/apply-patch+yaml")
        self.assertEqual(code, 422)  # fieldManager is required for apply

    # ------------------------------------------------------------ list
    def test_pagination_consistent_snapshot(self):
        for i in range(5):
            self.create("page", service(f"s{i}"))
        code, _, p1 = self.c.get(SVC.format(ns="page") + "?limit=2")
        self.assertEqual([i["metadata"]["name"] for i in p1["items"]], ["s0", "s1"])
        self.assertEqual(p1["metadata"]["remainingItemCount"], 3)
        self.assertNotIn("kind", p1["items"][0])
        token = p1["metadata"]["continue"]
        self.create("page", service("s00"))       # after the snapshot: not listed
        self.c.delete(SVC.format(ns="page") + "/s4")  # still listed from the snapshot
        names = []
        while token:
            code, _, page = self.c.get(SVC.format(ns="page") + f"?limit=2&continue={token}")
            self.assertEqual(code, 200, page)
            self.assertEqual(page["metadata"]["resourceVersion"],
                             p1["metadata"]["resourceVersion"])
            names += [i["metadata"]["name"] for i in page["items"]]
            token = page["metadata"].get("continue")
        self.assertEqual(names, ["s2", "s3", "s4"])
        self.assertNotIn("remainingItemCount", page["metadata"])
        code, _, body = self.c.get(SVC.format(ns="page") + "?limit=2&continue=garbage")
        self.assertEqual(code, 400)
        code, _, body = self.c.get(SVC.format(ns="page") +
                                   f"?limit=2&continue={p1['metadata']['continue']}"
                                   "&resourceVersion=5")
        self.assertEqual(code, 400)

    def test_expired_continue_410(self):
        for i in range(3):
            self.create("exp", service(f"e{i}"))
        code, _, p1 = self.c.get(SVC.format(ns="exp") + "?limit=1")
        self.server.compact()
        code, _, body = self.c.get(SVC.format(ns="exp") + f"?limit=1&continue="
                                   f"{p1['metadata']['continue']}")
        want = fixture("status-410-expired-continue.json")
        self.assertEqual(code, 410)
        self.assertEqual({k: v for k, v in body.items() if k != "metadata"},
                         {k: v for k, v in want.items() if k != "metadata"})
        # the inconsistent token in the Status continues the list at the latest RV
        code, _, rest = self.c.get(SVC.format(ns="exp") + f"?limit=5&continue="
                                   f"{body['metadata']['continue']}")
        self.assertEqual([i["metadata"]["name"] for i in rest["items"]], ["e1", "e2"])

    def test_resource_version_semantics(self):
        self.create("rvs", service("a"))
        code, _, l1 = self.c.get(SVC.format(ns="rvs"))
        rv1 = l1["metadata"]["resourceVersion"]
        self.create("rvs", service("b"))
        code, _, now = self.c.get(SVC.format(ns="rvs") + "?resourceVersion=0")
        self.assertEqual(len(now["items"]), 2)
        code, _, nto = self.c.get(SVC.format(ns="rvs") + f"?resourceVersion={rv1}"
                                  "&resourceVersionMatch=NotOlderThan")
        self.assertEqual(len(nto["items"]), 2)
        code, _, exact = self.c.get(SVC.format(ns="rvs") + f"?resourceVersion={rv1}"
                                    "&resourceVersionMatch=Exact")
        self.assertEqual(([i["metadata"]["name"] for i in exact["items"]],
                          exact["metadata"]["resourceVersion"]), (["a"], rv1))
        code, hdrs, body = self.c.get(SVC.format(ns="rvs") + "?resourceVersion=99999999")
        want = fixture("status-504-too-large-resource-version.json")
        self.assertEqual((code, body["reason"], body["details"]["causes"]),
                         (504, "Timeout", want["details"]["causes"]))
        self.assertTrue(body["message"].startswith("Timeout: Too large resource version: "
                                                   "99999999, current: "))
        self.assertEqual(hdrs["Retry-After"], "1")
        code, _, body = self.c.get(SVC.format(ns="rvs") + "?resourceVersionMatch=Exact")
        self.assertEqual((code, body["details"]["kind"]), (422, "ListOptions"))
        code, _, body = self.c.get(SVC.format(ns="rvs") + "?resourceVersion=0"
                                   "&resourceVersionMatch=Exact")
        self.assertEqual(code, 422)
        self.server.compact()
        code, _, body = self.c.get(SVC.format(ns="rvs") + f"?resourceVersion={rv1}"
                                   "&resourceVersionMatch=Exact")
        self.assertEqual((code, body["reason"]), (410, "Expired"))

    def test_label_selectors(self):
        labelled = {"plain": {}, "headless": {"service.kubernetes.io/headless": ""},
                    "other-proxy": {"service.kubernetes.io/service-proxy-name": "x"},
                    "front": {"tier": "front", "env": "prod"},
                    "back": {"tier": "back", "env": "dev"}}
        for name, labels in labelled.items():
            self.create("lbl", service(name, labels=labels))

        def names(selector):
            code, _, body = self.c.get(SVC.format(ns="lbl") + "?labelSelector=" + selector)
            self.assertEqual(code, 200, body)
            return sorted(i["metadata"]["name"] for i in body["items"])
        kube_proxy = ("%21service.kubernetes.io%2Fheadless%2C"
                      "%21service.kubernetes.io%2Fservice-proxy-name")
        self.assertEqual(names(kube_proxy), ["back", "front", "plain"])
        self.assertEqual(names("tier%3Dfront"), ["front"])
        self.assertEqual(names("tier%3D%3Dback"), ["back"])
        self.assertEqual(names("tier%21%3Dfront"), ["back", "headless", "other-proxy", "plain"])
        self.assertEqual(names("env%20in%20(prod,dev)"), ["back", "front"])
        self.assertEqual(names("env%20notin%20(prod)"), ["back", "headless", "other-proxy",
                                                         "plain"])
        self.assertEqual(names("tier"), ["back", "front"])
        self.assertEqual(names("tier,env%3Ddev"), ["back"])
        code, _, body = self.c.get(SVC.format(ns="lbl") + "?labelSelector=tier%20in%20(a")
        self.assertEqual((code, body["reason"]), (400, "BadRequest"))

    def test_field_selectors(self):
        self.create("fs1", service("x"))
        self.create("fs2", service("x"))
        self.create("fs2", service("y"))
        code, _, body = self.c.get("/api/v1/services?fieldSelector=metadata.name%3Dx")
        self.assertEqual(sorted(i["metadata"]["namespace"] for i in body["items"]),
                         ["fs1", "fs2"])
        code, _, body = self.c.get("/api/v1/services?fieldSelector=metadata.namespace%3Dfs2,"
                                   "metadata.name%21%3Dx")
        self.assertEqual([i["metadata"]["name"] for i in body["items"]], ["y"])
        code, _, body = self.c.get("/api/v1/services?fieldSelector=spec.bogus%3D1")
        self.assertEqual((code, body["message"]), (400, "field label not supported: spec.bogus"))
        node = manifest(fixture("node-dualstack.json"))
        self.create("", node, NODES)
        code, _, body = self.c.get(NODES + "?fieldSelector=metadata.name%3D"
                                   "k8s-linuxpool1-34450317-0&limit=500&resourceVersion=0")
        self.assertEqual(len(body["items"]), 1)

    def test_table_output(self):
        self.create("tbl", service("web", ports=((80, 8080),)))
        code, hdrs, body = self.c.get(SVC.format(ns="tbl"), headers={"Accept": TABLE})
        self.assertEqual(hdrs["Content-Type"], "application/json;as=Table;v=v1;g=meta.k8s.io")
        self.assertEqual(body["kind"], "Table")
        self.assertEqual([c["name"] for c in body["columnDefinitions"]],
                         ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age",
                          "Selector"])
        self.assertEqual(body["rows"][0]["cells"][:5],
                         ["web", "ClusterIP", body["rows"][0]["cells"][2], "<none>", "80/TCP"])
        self.assertEqual(body["rows"][0]["object"]["kind"], "PartialObjectMetadata")
        self.assertTrue(body["metadata"]["resourceVersion"])
        code, _, body = self.c.get(SVC.format(ns="tbl") + "/web", headers={"Accept": TABLE})
        self.assertEqual(len(body["rows"]), 1)
        code, _, body = self.c.get(SVC.format(ns="tbl"), headers={
            "Accept": "application/vnd.kubernetes.protobuf"})
        self.assertEqual(code, 406)

    # ------------------------------------------------------------ watch
    def test_watch_from_resource_version(self):
        self.create("w1", service("old"))
        code, _, lst = self.c.get(SVC.format(ns="w1"))
        w = self.c.watch(SVC.format(ns="w1") + f"?resourceVersion="
                         f"{lst['metadata']['resourceVersion']}&watch=true")
        try:
            self.assertEqual(w.status, 200)
            self.assertEqual(w.headers["Transfer-Encoding"], "chunked")
            self.assertEqual(w.headers["Content-Type"], "application/json")
            created = self.create("w1", service("new"))
            created["metadata"]["labels"] = {"v": "2"}
            self.c.put(SVC.format(ns="w1") + "/new", created)
            self.c.delete(SVC.format(ns="w1") + "/new")
            events = w.events(3)
            self.assertEqual([(e["type"], e["object"]["metadata"]["name"]) for e in events],
                             [("ADDED", "new"), ("MODIFIED", "new"), ("DELETED", "new")])
            rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
            self.assertEqual(rvs, sorted(rvs))
            self.assertEqual(events[0]["object"]["kind"], "Service")
            self.assertTrue(all(line.endswith(b"\n") for line in w.lines))
        finally:
            w.close()

    def test_watch_rv0_sends_current_state_and_capital_true(self):
        self.create("w0", service("a"))
        self.create("w0", service("b"))
        w = self.c.watch(SVC.format(ns="w0") + "?resourceVersion=0&watch=True"
                         "&fieldSelector=metadata.name%3Da")
        try:
            ev = w.next()
            self.assertEqual((ev["type"], ev["object"]["metadata"]["name"]), ("ADDED", "a"))
            self.c.patch(SVC.format(ns="w0") + "/a", {"metadata": {"labels": {"x": "1"}}})
            self.c.patch(SVC.format(ns="w0") + "/b", {"metadata": {"labels": {"x": "1"}}})
            ev = w.next()
            self.assertEqual((ev["type"], ev["object"]["metadata"]["name"]), ("MODIFIED", "a"))
        finally:
            w.close()

    def test_watch_selector_transitions(self):
        self.create("wt", service("s", labels={"role": "x"}))
        code, _, lst = self.c.get(SVC.format(ns="wt"))
        w = self.c.watch(SVC.format(ns="wt") + "?watch=1&labelSelector=%21service.kubernetes.io"
                         f"%2Fheadless&resourceVersion={lst['metadata']['resourceVersion']}")
        try:
            self.c.patch(SVC.format(ns="wt") + "/s", {"metadata": {"labels": {
                "service.kubernetes.io/headless": ""}}})
            ev = w.next()
            self.assertEqual(ev["type"], "DELETED")
            # the DELETED object is the last matching state, stamped with the new RV
            self.assertNotIn("service.kubernetes.io/headless", ev["object"]["metadata"]["labels"])
            code, _, now = self.c.get(SVC.format(ns="wt") + "/s")
            self.assertEqual(ev["object"]["metadata"]["resourceVersion"],
                             now["metadata"]["resourceVersion"])
            self.c.patch(SVC.format(ns="wt") + "/s", {"metadata": {"labels": {
                "service.kubernetes.io/headless": None}}})
            self.assertEqual(w.next()["type"], "ADDED")
        finally:
            w.close()

    def test_bookmarks(self):
        self.create("bm", service("a"))
        code, _, lst = self.c.get(SVC.format(ns="bm"))
        rv = lst["metadata"]["resourceVersion"]
        w = self.c.watch(SVC.format(ns="bm") + f"?watch=true&allowWatchBookmarks=true"
                         f"&resourceVersion={rv}")
        try:
            ev = w.next(skip_bookmarks=False, timeout=3)
            self.assertEqual(ev["type"], "BOOKMARK")
            obj = ev["object"]
            self.assertEqual((obj["kind"], obj["apiVersion"]), ("Service", "v1"))
            self.assertEqual(obj["metadata"], {"resourceVersion": obj["metadata"][
                "resourceVersion"], "creationTimestamp": None})
            self.assertGreaterEqual(int(obj["metadata"]["resourceVersion"]), int(rv))
            self.assertEqual(obj["spec"], {})
            self.server.set_config(bookmarkInterval=0)
            try:
                self.assertEqual(self.server.send_bookmarks("services"), 1)
                self.assertEqual(w.next(skip_bookmarks=False)["type"], "BOOKMARK")
            finally:
                self.server.set_config(bookmarkInterval=0.3)
        finally:
            w.close()
        # no bookmarks unless asked for
        w = self.c.watch(SVC.format(ns="bm") + f"?watch=true&resourceVersion={rv}"
                         "&timeoutSeconds=1")
        try:
            self.assertIsNone(w.next(skip_bookmarks=False, timeout=3))
        finally:
            w.close()

    def test_watch_timeout_seconds_ends_cleanly(self):
        started = time.monotonic()
        w = self.c.watch(SVC.format(ns="to") + "?watch=true&timeoutSeconds=1")
        try:
            self.assertIsNone(w.next(timeout=5))
            self.assertLess(time.monotonic() - started, 3)
        finally:
            w.close()

    def test_watch_list_initial_events(self):
        node = manifest(fixture("node-dualstack.json"))
        node["metadata"]["name"] = "wl-node"
        self.create("", node, NODES)
        for f in ("endpointslice-docs-basic.json", "endpointslice-topology-hints.json"):
            self.create("wl", manifest(fixture(f)), SLICES)
        w = self.c.watch(SLICES.format(ns="wl") + "?watch=true&sendInitialEvents=true"
                         "&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan")
        try:
            e1, e2 = w.events(2)
            self.assertEqual(sorted([e1["object"]["metadata"]["name"],
                                     e2["object"]["metadata"]["name"]]),
                             ["example-abc", "example-hints"])
            self.assertEqual({e1["type"], e2["type"]}, {"ADDED"})
            bm = w.next(skip_bookmarks=False)
            self.assertEqual(bm["type"], "BOOKMARK")
            self.assertEqual(bm["object"]["metadata"]["annotations"],
                             {"k8s.io/initial-events-end": "true"})
            self.assertEqual((bm["object"]["addressType"], bm["object"]["endpoints"]), ("", None))
            self.c.delete(SLICES.format(ns="wl") + "/example-abc")
            self.assertEqual(w.next()["type"], "DELETED")
        finally:
            w.close()
        self.server.set_config(watchList=False)
        try:
            code, _, body = self.c.get(SLICES.format(ns="wl") + "?watch=true&sendInitialEvents="
                                       "true&allowWatchBookmarks=true&resourceVersionMatch="
                                       "NotOlderThan")
            self.assertEqual(code, 422)
            self.assertEqual(body, fixture("status-422-watchlist-forbidden.json"))
        finally:
            self.server.set_config(watchList=True)
        code, _, body = self.c.get(SLICES.format(ns="wl") + "?watch=true&sendInitialEvents=true")
        self.assertEqual(code, 422)
        self.assertIn("sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                      body["message"])

    def test_watch_expired_error_event_and_http_410(self):
        self.create("wx", service("a"))
        code, _, lst = self.c.get(SVC.format(ns="wx"))
        old = lst["metadata"]["resourceVersion"]
        self.create("wx", service("b"))
        compacted = self.server.compact()
        w = self.c.watch(SVC.format(ns="wx") + f"?watch=true&resourceVersion={old}")
        try:
            self.assertEqual(w.status, 200)
            ev = w.next()
            want = fixture("watch-event-error-410-expired.json")
            self.assertEqual(ev["type"], want["type"])
            self.assertEqual({k: v for k, v in ev["object"].items() if k != "message"},
                             {k: v for k, v in want["object"].items() if k != "message"})
            self.assertEqual(ev["object"]["message"],
                             f"too old resource version: {old} ({compacted})")
            self.assertIsNone(w.next())
        finally:
            w.close()
        self.server.set_config(watchExpired="http")
        try:
            code, _, body = self.c.get(SVC.format(ns="wx") + f"?watch=true&resourceVersion={old}")
            self.assertEqual((code, body["reason"], body["code"]), (410, "Expired", 410))
        finally:
            self.server.set_config(watchExpired="event")
        # an established watch survives compaction (events are pushed, not re-read)
        code, _, lst = self.c.get(SVC.format(ns="wx"))
        w = self.c.watch(SVC.format(ns="wx") + f"?watch=true&resourceVersion="
                         f"{lst['metadata']['resourceVersion']}")
        try:
            self.create("wx", service("c"))
            self.server.compact()
            self.assertEqual(w.next()["object"]["metadata"]["name"], "c")
        finally:
            w.close()

    def test_table_watch(self):
        self.create("tw", service("web"))
        code, _, lst = self.c.get(SVC.format(ns="tw"), headers={"Accept": TABLE})
        w = self.c.watch(SVC.format(ns="tw") + f"?watch=true&resourceVersion="
                         f"{lst['metadata']['resourceVersion']}", headers={"Accept": TABLE})
        try:
            self.c.patch(SVC.format(ns="tw") + "/web", {"metadata": {"labels": {"a": "b"}}})
            ev = w.next()
            self.assertEqual((ev["type"], ev["object"]["kind"]), ("MODIFIED", "Table"))
            self.assertEqual(ev["object"]["rows"][0]["cells"][0], "web")
        finally:
            w.close()


class AuthTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = TestApiServer(tls=True, token="s3cret").start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_token_and_anonymous(self):
        c = RawClient(self.server, token="s3cret")
        code, _, body = c.get("/api/v1/services")
        self.assertEqual((code, body["kind"]), (200, "ServiceList"))
        c.close()
        bad = RawClient(self.server, token="wrong")
        code, _, body = bad.get("/api/v1/services")
        self.assertEqual(code, 401)
        self.assertEqual(body, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                "status": "Failure", "message": "Unauthorized",
                                "reason": "Unauthorized", "code": 401})
        bad.close()
        anon = RawClient(self.server)
        code, _, body = anon.get("/version")
        self.assertEqual(code, 200)
        code, _, body = anon.get("/api/v1/namespaces/default/services")
        self.assertEqual((code, body["reason"]), (403, "Forbidden"))
        self.assertIn('User "system:anonymous" cannot list resource "services"', body["message"])
        anon.close()

    def test_client_certificate(self):
        c = RawClient(self.server, cert=(self.server.client_cert, self.server.client_key))
        code, _, body = c.get("/api/v1/nodes")
        self.assertEqual(code, 200, body)
        self.assertEqual(self.server.requests()[-1]["user"], "sluice-admin")
        c.close()

    def test_certificate_from_another_ca_is_refused(self):
        import ssl
        import tempfile
        from .pki import make_ca, make_cert
        with tempfile.TemporaryDirectory() as d:
            rogue_ca = make_ca(d, "rogue-ca", "rogue")
            cert = make_cert(d, "rogue", rogue_ca, "/O=system:masters/CN=mallory")
            c = RawClient(self.server, cert=cert)
            with self.assertRaises((ssl.SSLError, ConnectionResetError, BrokenPipeError,
                                    ConnectionAbortedError)):
                c.get("/api/v1/nodes")
            c.close()

    def test_plain_http_to_tls_port_fails(self):
        import http.client
        conn = http.client.HTTPConnection(self.server.host, self.server.port, timeout=5)
        try:
            conn.request("GET", "/version")
            resp = conn.getresponse()
            self.assertNotEqual(resp.status, 200)
        except (http.client.HTTPException, ConnectionError, OSError):
            pass
        finally:
            conn.close()

    def test_no_anonymous(self):
        self.server.set_config(anonymous=False)
        try:
            c = RawClient(self.server)
            code, _, body = c.get("/version")
            self.assertEqual(code, 401)
            c.close()
        finally:
            self.server.set_config(anonymous=True)

