"""Sluice's Kubernetes client against the test API server, through sluice-kube-watch: the reflector
lists (in pages), watches, follows bookmarks, relists after 410 Gone (during a watch and during
pagination), survives restarts and bad streams, and authenticates every way kube-proxy can. After
each scenario the client's store, and the state its add/update/delete events add up to, must equal
the server's objects."""

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import unittest

import yaml

from apiserver.apitest import Kubectl, RawClient, fixture, kubectl_path, service, wait_for
from apiserver.server import TestApiServer

from .kubewatch import HERE, KubeWatch, run_once

SVC = "/api/v1/namespaces/default/services"
PLUGIN = os.path.join(HERE, "testdata", "exec-plugin.sh")


def server_state(server, resource="services", keep=lambda obj: True):
    out = {}
    for obj in server.objects(resource):
        if not keep(obj):
            continue
        md = obj["metadata"]
        key = f"{md['namespace']}/{md['name']}" if md.get("namespace") else md["name"]
        out[key] = md["resourceVersion"]
    return out


class KubeClientTest(unittest.TestCase):
    """A test API server per test (plain HTTP, no auth unless a test asks)."""

    server_args = {}

    def setUp(self):
        self.server = TestApiServer(**dict({"bookmark_interval": 0}, **self.server_args)).start()
        self.addCleanup(self.server.stop)
        self.api = RawClient(self.server, token=self.server.token)
        self.addCleanup(self.api.close)
        self.watches = []

    def tearDown(self):
        failed = any(e for _, e in (self._outcome.result.errors + self._outcome.result.failures)
                     if _ is self) if hasattr(self._outcome, "result") else False
        for w in self.watches:
            w.stop()
            if failed:
                print(f"\n--- sluice-kube-watch stderr ---\n{w.stderr}")

    def watch_requests(self, w):
        """Ends the client, then the watch requests it made."""
        w.stop()
        return wait_for(lambda: self.requests(watch=True), what="the watch to end")

    def watch(self, *args, env=None, kubeconfig=None):
        w = KubeWatch("--kubeconfig", kubeconfig or self.server.kubeconfig, *args, env=env)
        self.watches.append(w)
        return w

    def put(self, name, rv_out=None, **kw):
        """Creates or replaces default/<name>; returns its new resourceVersion."""
        obj = self.server.load(service(name, **kw))[0]
        return obj["metadata"]["resourceVersion"]

    def delete(self, name):
        code, _, body = self.api.delete(f"{SVC}/{name}")
        self.assertEqual(code, 200, body)
        return body

    def requests(self, watch=None):
        """Our client's requests the server has answered (a watch counts once it has ended)."""
        out = [r for r in self.server.requests() if r["userAgent"].startswith("sluice")]
        if watch is not None:
            out = [r for r in out if r["watch"] == watch]
        return out


class ListAndWatchTest(KubeClientTest):
    def test_initial_list_across_pages(self):
        for i in range(1100):
            self.server.load(service(f"svc-{i:04d}"))
        w = self.watch("--no-watch-list")
        w.wait_synced()
        w.wait_for_state(server_state(self.server))
        lists = self.requests(watch=False)
        self.assertEqual(len(lists), 3, [r["path"] for r in lists])
        self.assertIn("limit=500", lists[0]["path"])
        self.assertIn("resourceVersion=0", lists[0]["path"])
        for r in lists[1:]:
            self.assertIn("continue=", r["path"])
            self.assertNotIn("resourceVersion=", r["path"])
        synced = [e for e in w.events if e["event"] == "synced"]
        self.assertEqual(synced[0]["count"], 1100)

    def test_watch_sees_every_change_in_order(self):
        self.put("a")
        w = self.watch("--no-watch-list")
        w.wait_synced()
        wait_for(lambda: self.server.watch_count() == 1, what="watch")
        expected = []
        expected.append(("add", "default/b", self.put("b")))
        expected.append(("update", "default/a", self.put("a", ports=((81, 8081),))))
        last = self.delete("b")
        expected.append(("delete", "default/b", last["metadata"]["resourceVersion"]))
        expected.append(("add", "default/c", self.put("c")))
        expected.append(("update", "default/c", self.put("c", ports=((82, 8082),))))
        w.wait(lambda: len(w.changes()) == 6, what="6 changes")
        self.assertEqual(w.changes()[1:], expected)
        w.wait_for_state(server_state(self.server))
        watch = self.watch_requests(w)[0]["path"]
        for part in ("allowWatchBookmarks=true", "watch=true", "timeoutSeconds="):
            self.assertIn(part, watch)

    def test_bookmarks_advance_the_resource_version(self):
        self.server.set_config(bookmarkInterval=0.2)
        self.put("a")
        w = self.watch("--no-watch-list")
        w.wait_synced()
        # Changes elsewhere move the server's RV; only bookmarks tell the services watch.
        for i in range(3):
            self.server.load({"apiVersion": "v1", "kind": "Node", "metadata": {"name": f"n{i}"}})
        rv = self.server.resource_version()
        w.wait(lambda: w.state()["resourceVersion"] == rv, what=f"resourceVersion {rv}")
        self.assertEqual(len(w.changes()), 1)

    def test_watch_list(self):
        self.put("a")
        self.put("b")
        w = self.watch()
        w.wait_synced()
        w.wait_for_state(server_state(self.server))
        self.put("c")
        self.delete("a")
        w.wait_for_state(server_state(self.server))
        self.assertIn("sendInitialEvents=true", self.watch_requests(w)[0]["path"])
        self.assertEqual(self.requests(watch=False), [])

    def test_watch_list_refused_falls_back_to_list_and_watch(self):
        self.server.set_config(watchList=False)
        self.put("a")
        w = self.watch()
        w.wait_synced()
        w.wait_for_state(server_state(self.server))
        self.assertIn("HTTP 422", w.stderr)
        self.assertIn("using LIST+WATCH", w.stderr)
        self.put("b")
        w.wait_for_state(server_state(self.server))

    def test_kube_proxy_label_selector(self):
        self.put("plain")
        self.put("headless", labels={"service.kubernetes.io/headless": ""})
        self.put("other-proxy", labels={"service.kubernetes.io/service-proxy-name": "x"})
        w = self.watch("--proxy-selectors")
        w.wait_synced()
        mine = lambda o: not (set(o["metadata"].get("labels") or {}) & {
            "service.kubernetes.io/headless", "service.kubernetes.io/service-proxy-name"})
        w.wait_for_state(server_state(self.server, keep=mine))
        self.assertEqual(set(w.state()["items"]), {"default/plain"})
        # Label changes move services in and out of the selection: ADDED / DELETED.
        self.put("headless")
        self.put("plain", labels={"service.kubernetes.io/service-proxy-name": "x"})
        w.wait_for_state(server_state(self.server, keep=mine))
        self.assertEqual(set(w.state()["items"]), {"default/headless"})
        self.assertIn("labelSelector=%21service.kubernetes.io%2Fheadless%2C%21service.kubernetes."
                      "io%2Fservice-proxy-name", self.watch_requests(w)[0]["path"])

    def test_own_node_by_field_selector(self):
        for name in ("node-1", "node-2"):
            self.server.load({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
        w = self.watch("--resource", "nodes", "--node-name", "node-1")
        w.wait_synced()
        w.wait_for_state(server_state(self.server, "nodes",
                                      keep=lambda o: o["metadata"]["name"] == "node-1"))
        self.server.load({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-2",
                                                                            "labels": {"x": "y"}}})
        self.server.load({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1",
                                                                            "labels": {"x": "y"}}})
        w.wait(lambda: len(w.changes()) == 2, what="node-1 update")
        self.assertEqual([c[:2] for c in w.changes()], [("add", "node-1"), ("update", "node-1")])

    def test_endpointslices(self):
        for f in ("endpointslice-docs-basic.json", "endpointslice-terminating-and-ready.json"):
            self.server.load(fixture(f))
        w = self.watch("--resource", "endpointslices", "--proxy-selectors")
        w.wait_synced()
        w.wait_for_state(server_state(self.server, "endpointslices"))


class TypedTest(KubeClientTest):
    """--typed: objects go through controlplane/api's parsers; a rejected one stays out, logged
    with its identity, and is removed when it turns bad later."""

    def test_services(self):
        for f in ("service-clusterip-multiport.json", "service-nodeport-etp-local.json",
                  "service-dualstack-preferdualstack.json"):
            self.server.load(fixture(f))
        bad = service("bad")
        bad["spec"]["clusterIP"] = "10.0.0.300"
        self.server.load(bad)
        w = self.watch("--typed", "--no-watch-list")
        w.wait_synced()
        good = lambda o: o["metadata"]["name"] != "bad"
        w.wait_for_state(server_state(self.server, keep=good))
        # stderr is read by its own thread: the line may arrive after the synced event.
        w.wait(lambda: "Service default/bad" in w.stderr, what="the rejection logged")
        self.assertIn("rejected", w.stderr)
        self.put("good")
        w.wait_for_state(server_state(self.server, keep=good))
        worse = service("good")
        worse["spec"]["ports"] = [{"port": 70000, "targetPort": 1}]
        self.server.load(worse)
        good = lambda o: o["metadata"]["name"] not in ("bad", "good")
        w.wait_for_state(server_state(self.server, keep=good))

    def test_endpointslices_and_nodes(self):
        for f in ("endpointslice-docs-basic.json", "endpointslice-topology-hints.json"):
            self.server.load(fixture(f))
        w = self.watch("--typed", "--resource", "endpointslices")
        w.wait_synced()
        w.wait_for_state(server_state(self.server, "endpointslices"))
        self.server.load(fixture("node-dualstack.json"))
        name = fixture("node-dualstack.json")["metadata"]["name"]
        n = self.watch("--typed", "--resource", "nodes", "--node-name", name)
        n.wait_synced()
        n.wait_for_state(server_state(self.server, "nodes"))


class GoneTest(KubeClientTest):
    """410 Gone: the watch fell behind a compaction, or a continue token expired."""

    def miss_changes_then_compact(self, w):
        """The client's next watch request waits 1.5 s while objects change and history is
        compacted, so it asks for an RV the server no longer has."""
        self.server.fail_next(1, method="GET", watch=True, action="delay", delay=1.5)
        self.server.drop_watches("abort")
        time.sleep(0.5)
        self.put("b", ports=((81, 81),))
        self.delete("c")
        self.put("e")
        self.server.compact()

    def relist_after_gone(self, expired):
        self.server.set_config(watchExpired=expired)
        for n in "abcd":
            self.put(n)
        w = self.watch("--no-watch-list")
        w.wait_synced()
        wait_for(lambda: self.server.watch_count() == 1, what="watch")
        before = len(w.changes())
        self.miss_changes_then_compact(w)
        w.wait_for_state(server_state(self.server))
        self.assertEqual([c[:2] for c in w.changes()[before:]],
                         [("update", "default/b"), ("delete", "default/c"), ("add", "default/e")])
        self.assertIn("410", w.stderr)
        self.put("f")
        w.wait_for_state(server_state(self.server))

    def test_410_error_event_during_watch(self):
        self.relist_after_gone("event")

    def test_410_http_status_during_watch(self):
        self.relist_after_gone("http")

    def test_410_during_pagination(self):
        for i in range(1100):
            self.server.load(service(f"svc-{i:04d}"))
        # The first page goes through; the second waits while the snapshot is compacted away.
        self.server.fail_next(1, method="GET", watch=False, action="delay", delay=0.0)
        self.server.fail_next(1, method="GET", watch=False, action="delay", delay=2.0)
        w = self.watch("--no-watch-list")
        wait_for(lambda: len(self.requests(watch=False)) == 1, timeout=10, what="first page")
        self.put("svc-0003", ports=((99, 99),))
        self.delete("svc-0700")
        self.put("late")
        self.server.compact()
        w.wait_synced(timeout=20)
        w.wait_for_state(server_state(self.server))
        lists = self.requests(watch=False)
        self.assertEqual(lists[1]["code"], 410)
        self.assertIn("continue=", lists[1]["path"])
        self.assertNotIn("limit=", lists[2]["path"])  # the whole list in one request
        self.assertIn("continue token expired", w.stderr)
        synced = [e for e in w.events if e["event"] == "synced"]
        self.assertEqual(synced[0]["count"], 1100)  # 1100 - 1 deleted + 1 added

    def test_server_restart_keeping_state(self):
        self.put("a")
        w = self.watch("--no-watch-list")
        w.wait_synced()
        self.server.restart(keep_state=True, down_seconds=1.0)
        self.put("b")
        w.wait_for_state(server_state(self.server), timeout=20)

    def test_server_restart_losing_state(self):
        self.put("a")
        w = self.watch("--no-watch-list")
        w.wait_synced()
        self.server.restart(keep_state=False, down_seconds=0.5)
        self.put("z")
        w.wait_for_state(server_state(self.server), timeout=20)
        self.assertEqual(set(w.state()["items"]), {"default/z"})


class BadInputTest(KubeClientTest):
    """Whatever a stream or an answer does wrong, the client logs one line, recovers, and ends
    with the server's state: nothing lost, nothing stale, nothing delivered twice."""

    def recover_from(self, inject, log_part, **extra):
        for n in "abc":
            self.put(n)
        w = self.watch("--no-watch-list")
        w.wait_synced()
        wait_for(lambda: self.server.watch_count() == 1, what="watch")
        self.put("a", ports=((81, 81),))
        inject(**extra)
        self.delete("b")
        self.put("d")
        w.wait_for_state(server_state(self.server))
        self.assertIn(log_part, w.stderr)
        self.put("e")
        w.wait_for_state(server_state(self.server))
        return w

    def test_truncated_event(self):
        self.recover_from(lambda: self.server.inject_watch("truncated"), "stream broke")

    def test_malformed_json(self):
        self.recover_from(lambda: self.server.inject_watch("malformed"), "malformed JSON")

    def test_unknown_event_type(self):
        self.recover_from(lambda: self.server.inject_watch("unknown-type"),
                          'unknown event type "FROBNICATED"')

    def test_unknown_kind(self):
        self.recover_from(lambda: self.server.inject_watch("unknown-kind"),
                          'unexpected kind "Frobnicator"')

    def test_status_instead_of_object(self):
        self.recover_from(lambda: self.server.inject_watch("status-object"),
                          "carries a Status where a Service was expected")

    def test_error_event_500(self):
        self.recover_from(lambda: self.server.inject_watch("error", code=500), "ERROR event 500")

    def test_connection_cut_mid_stream(self):
        self.recover_from(lambda: self.server.drop_watches("abort"), "stream broke")

    def test_clean_end_of_stream(self):
        self.recover_from(lambda: self.server.drop_watches("clean"), "")

    def test_http_errors_on_list_and_watch(self):
        self.server.fail_next(2, 500, method="GET", watch=False)
        self.server.fail_next(1, 429, retry_after=1, method="GET", watch=True)
        self.server.fail_next(1, 503, method="GET", watch=True)
        self.put("a")
        w = self.watch("--no-watch-list")
        w.wait_synced()
        w.wait(lambda: self.server.watch_count() == 1, what="watch after errors")
        self.put("b")
        w.wait_for_state(server_state(self.server))
        self.assertIn("500", w.stderr)
        self.assertIn("HTTP 429", w.stderr)
        self.assertIn("HTTP 503", w.stderr)

    def test_status_body_with_200_on_list(self):
        self.server.fail_next(1, 200, method="GET", watch=False,
                              body={"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                    "code": 500, "reason": "InternalError", "message": "odd"})
        self.put("a")
        w = self.watch("--no-watch-list")
        w.wait_synced()
        w.wait_for_state(server_state(self.server))
        self.assertIn("with a Status instead of a ServiceList", w.stderr)


class TlsAndAuthTest(KubeClientTest):
    server_args = {"tls": True, "token": "e2e-token", "anonymous": False}

    def kubeconfig(self, user, ca=None, name="kubeconfig-test"):
        doc = {"apiVersion": "v1", "kind": "Config",
               "clusters": [{"name": "c", "cluster": {"server": self.server.url,
                                                       "certificate-authority": ca or self.server.ca_file}}],
               "users": [{"name": "u", "user": user}],
               "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
               "current-context": "x"}
        path = os.path.join(self.server.state_dir, name)
        with open(path, "w") as f:
            yaml.safe_dump(doc, f)
        return path

    def users(self, want):
        """The users our client's requests were made as, once `want` is among them (a watch is
        logged when it ends, shortly after the client does)."""
        wait_for(lambda: want in {r["user"] for r in self.requests()}, what=f"a request as {want}")
        return {r["user"] for r in self.requests()}

    def test_bearer_token(self):
        self.put("a")
        rc, events, err = run_once("--kubeconfig", self.server.kubeconfig_token, "--no-watch-list")
        self.assertEqual(rc, 0, err)
        self.assertEqual(events[-1]["items"], server_state(self.server))
        self.assertEqual(self.users("token-user-0"), {"token-user-0"})

    def test_wrong_token_is_refused(self):
        path = self.kubeconfig({"token": "not-the-token"})
        rc, _, err = run_once("--kubeconfig", path, "--sync-timeout", "3")
        self.assertEqual(rc, 1)
        self.assertIn("401", err)

    def test_client_certificate(self):
        self.put("a")
        rc, events, err = run_once("--kubeconfig", self.server.kubeconfig_cert)
        self.assertEqual(rc, 0, err)
        self.assertEqual(events[-1]["items"], server_state(self.server))
        self.assertEqual(self.users("sluice-admin"), {"sluice-admin"})

    def test_client_certificate_files(self):
        path = self.kubeconfig({"client-certificate": self.server.client_cert,
                                "client-key": self.server.client_key})
        rc, _, err = run_once("--kubeconfig", path)
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.users("sluice-admin"), {"sluice-admin"})

    def test_wrong_ca_is_refused(self):
        other = tempfile.mkdtemp(prefix="sluice-other-ca-")
        self.addCleanup(shutil.rmtree, other)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                        "/CN=not-the-cluster-ca", "-keyout", os.path.join(other, "ca.key"),
                        "-out", os.path.join(other, "ca.crt")], check=True, capture_output=True)
        ca = os.path.join(other, "ca.crt")
        path = self.kubeconfig({"token": "e2e-token"}, ca=ca)
        rc, _, err = run_once("--kubeconfig", path, "--sync-timeout", "3")
        self.assertEqual(rc, 1)
        self.assertIn(f"the server's certificate is not trusted by CA file {ca}", err)
        self.assertEqual(self.requests(), [])  # nothing reached the API

    def test_insecure_skip_verify(self):
        path = self.kubeconfig({"token": "e2e-token"})
        with open(path) as f:
            doc = yaml.safe_load(f)
        doc["clusters"][0]["cluster"] = {"server": self.server.url,
                                         "insecure-skip-tls-verify": True}
        with open(path, "w") as f:
            yaml.safe_dump(doc, f)
        rc, _, err = run_once("--kubeconfig", path)
        self.assertEqual(rc, 0, err)

    def test_exec_credential_plugin(self):
        log = os.path.join(self.server.state_dir, "plugin.log")
        for version in ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"):
            path = self.kubeconfig({"exec": {
                "apiVersion": version, "command": PLUGIN, "interactiveMode": "Never",
                "provideClusterInfo": True,
                "env": [{"name": "PLUGIN_TOKEN", "value": "e2e-token"},
                        {"name": "PLUGIN_LOG", "value": log}]}})
            rc, _, err = run_once("--kubeconfig", path)
            self.assertEqual(rc, 0, err)
        with open(log) as f:
            infos = [json.loads(l) for l in f]
        self.assertEqual([i["apiVersion"] for i in infos],
                         ["client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"])
        self.assertEqual(infos[0]["spec"]["cluster"]["server"], self.server.url)
        self.assertIn("certificate-authority-data", infos[0]["spec"]["cluster"])
        self.assertFalse(infos[0]["spec"]["interactive"])

    def test_exec_plugin_rerun_after_401(self):
        # The plugin's token stops working; the next request's 401 makes the client ask again.
        token_file = os.path.join(self.server.state_dir, "plugin-token")
        script = os.path.join(self.server.state_dir, "rotating-plugin.sh")
        with open(script, "w") as f:
            f.write("#!/bin/sh\necho run >> \"$0.runs\"\n"
                    "printf '{\"apiVersion\":\"client.authentication.k8s.io/v1\","
                    "\"kind\":\"ExecCredential\",\"status\":{\"token\":\"%s\"}}' "
                    f"\"$(cat {token_file})\"\n")
        os.chmod(script, 0o755)
        with open(token_file, "w") as f:
            f.write("e2e-token")
        path = self.kubeconfig({"exec": {"apiVersion": "client.authentication.k8s.io/v1",
                                         "command": script, "interactiveMode": "Never"}})
        self.put("a")
        w = self.watch("--no-watch-list", kubeconfig=path)
        w.wait_synced()
        self.server.config.tokens = {"rotated": "rotated-user"}
        with open(token_file, "w") as f:
            f.write("rotated")
        self.server.drop_watches("abort")
        self.put("b")
        w.wait_for_state(server_state(self.server))
        with open(script + ".runs") as f:
            self.assertEqual(len(f.readlines()), 2)
        w.stop()
        self.assertIn("", self.users("rotated-user"))  # the 401 (no user) came first

    def test_in_cluster(self):
        token = os.path.join(self.server.state_dir, "sa-token")
        with open(token, "w") as f:
            f.write("e2e-token\n")
        env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1",
               "KUBERNETES_SERVICE_PORT": str(self.server.port)}
        self.put("a")
        w = KubeWatch("--in-cluster-token", token, "--in-cluster-ca", self.server.ca_file,
                      "--no-watch-list", env=env)
        self.watches.append(w)
        w.wait_synced()
        self.assertIn("in-cluster", w.stderr)
        # The kubelet rotates the projected token; the old one stops working at once here, so the
        # 401 makes the client re-read the file instead of waiting for its one-minute refresh.
        self.server.config.tokens = {"rotated-sa": "rotated-sa-user"}
        with open(token, "w") as f:
            f.write("rotated-sa\n")
        self.server.drop_watches("abort")
        self.put("b")
        w.wait_for_state(server_state(self.server))
        w.stop()
        self.assertIn("", self.users("rotated-sa-user"))

    def test_in_cluster_needs_the_environment(self):
        rc, _, err = run_once("--sync-timeout", "2")
        self.assertEqual(rc, 1)
        self.assertIn("KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined", err)


@unittest.skipUnless(kubectl_path(), "kubectl is not installed")
class KubectlTest(KubeClientTest):
    """A watch opened by our client sees every change kubectl makes, in order."""

    server_args = {"tls": True, "token": "kubectl-token"}

    def test_create_replace_delete(self):
        kubectl = Kubectl(self.server.kubeconfig_token)
        self.addCleanup(kubectl.cleanup)
        w = self.watch("--kubeconfig", self.server.kubeconfig_token)
        w.wait_synced()
        rvs = []
        web = service("web")
        kubectl.run("create", "-f", kubectl.write("web.json", web))
        rvs.append(("add", self.server.get("services", "web")["metadata"]["resourceVersion"]))
        web["spec"]["ports"] = [{"name": "p81", "port": 81, "targetPort": 8081}]
        kubectl.run("replace", "-f", kubectl.write("web.json", web))
        rvs.append(("update", self.server.get("services", "web")["metadata"]["resourceVersion"]))
        kubectl.run("create", "-f", kubectl.write("db.json", service("db")))
        rvs.append(("add", self.server.get("services", "db")["metadata"]["resourceVersion"]))
        kubectl.run("delete", "service", "web")
        kubectl.run("delete", "-f", kubectl.write("db.json", service("db")))
        w.wait(lambda: len(w.changes()) == 5, what="5 changes")
        got = w.changes()
        self.assertEqual([(e, k) for e, k, _ in got],
                         [("add", "default/web"), ("update", "default/web"), ("add", "default/db"),
                          ("delete", "default/web"), ("delete", "default/db")])
        self.assertEqual([(e, rv) for e, _, rv in got[:3]], rvs)
        w.wait_for_state({})


if __name__ == "__main__":
    unittest.main()
