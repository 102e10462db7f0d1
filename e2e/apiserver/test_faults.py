"""Fault injection (Python API and /_admin over HTTP), restarts, and the command-line entry
point."""

import http.client
import json
import os
import signal
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

from .apitest import HERE, PYTHON, RawClient, fixture_path, service, wait_for
from .server import TestApiServer

SVC = "/api/v1/namespaces/default/services"


class FaultTest(unittest.TestCase):
    def setUp(self):
        self.server = TestApiServer(bookmark_interval=0).start()
        self.addCleanup(self.server.stop)
        self.c = RawClient(self.server)
        self.addCleanup(self.c.close)

    def watch_now(self):
        code, _, lst = self.c.get(SVC)
        w = self.c.watch(SVC + f"?watch=true&resourceVersion={lst['metadata']['resourceVersion']}")
        self.addCleanup(w.close)
        wait_for(lambda: self.server.watch_count() == 1, what="watch registered")
        return w

    def test_next_requests_fail(self):
        self.server.fail_next(2, 429, retry_after=3, method="GET", path="/services$")
        for _ in range(2):
            code, hdrs, body = self.c.get(SVC)
            self.assertEqual((code, hdrs["Retry-After"], body["reason"]),
                             (429, "3", "TooManyRequests"))
            self.assertEqual(body["details"], {"retryAfterSeconds": 3})
        code, _, _ = self.c.get(SVC)
        self.assertEqual(code, 200)
        self.server.fail_next(1, 504)
        code, _, body = self.c.get("/api/v1/nodes")
        self.assertEqual((code, body["reason"]), (504, "Timeout"))
        self.server.fail_next(1, 500, method="POST")
        code, _, _ = self.c.get(SVC)
        self.assertEqual(code, 200)
        code, _, body = self.c.post(SVC, service("x"))
        self.assertEqual((code, body["reason"]), (500, "InternalError"))
        # a Status where an object was expected
        self.server.fail_next(1, 200, body={"kind": "Status", "apiVersion": "v1",
                                            "status": "Success"})
        code, _, body = self.c.get(SVC)
        self.assertEqual((code, body["kind"]), (200, "Status"))
        self.server.fail_next(1, action="close")
        conn = self.c._connect()
        self.addCleanup(conn.close)
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionResetError)):
            conn.request("GET", SVC)
            conn.getresponse()

    def test_drop_watches(self):
        w = self.watch_now()
        self.assertEqual(self.server.drop_watches("abort"), 1)
        with self.assertRaises((http.client.IncompleteRead, ConnectionError, ValueError,
                                http.client.HTTPException)):
            while w.next(timeout=3) is not None:
                pass
        w2 = self.watch_now()
        self.server.drop_watches("clean")
        self.assertIsNone(w2.next(timeout=3))

    def test_inject_bad_lines(self):
        w = self.watch_now()
        self.server.inject_watch("malformed")
        with self.assertRaises(ValueError):
            w.next()
        self.server.inject_watch("unknown-type")
        self.assertEqual(w.next()["type"], "FROBNICATED")
        self.server.inject_watch("unknown-kind")
        self.assertEqual(w.next()["object"]["kind"], "Frobnicator")
        self.server.inject_watch("status-object")
        ev = w.next()
        self.assertEqual((ev["type"], ev["object"]["kind"]), ("MODIFIED", "Status"))
        self.server.inject_watch("raw", data='{"type":"BOOKMARK","object":{}}\n')
        self.assertEqual(w.next(skip_bookmarks=False)["object"], {})
        self.server.inject_watch("truncated")
        with self.assertRaises((ValueError, http.client.HTTPException, ConnectionError)):
            w.next()
        w2 = self.watch_now()
        self.server.inject_watch("error", code=500, message="boom")
        ev = w2.next()
        self.assertEqual((ev["type"], ev["object"]["code"], ev["object"]["message"]),
                         ("ERROR", 500, "boom"))
        self.assertIsNone(w2.next())

    def test_pause_and_resume(self):
        w = self.watch_now()
        self.server.pause()
        results = []
        other = RawClient(self.server)
        self.addCleanup(other.close)
        t = threading.Thread(target=lambda: results.append(other.get(SVC)))
        t.start()
        self.server.load(service("held"))   # event held back from the watch while paused
        time.sleep(0.3)
        self.assertEqual(results, [])
        self.server.resume()
        t.join(5)
        self.assertEqual(results[0][0], 200)
        self.assertEqual(w.next()["object"]["metadata"]["name"], "held")

    def test_restart_keeping_and_losing_state(self):
        created = self.server.load(service("keep"))[0]
        port = self.server.port
        w = self.watch_now()
        self.server.restart(keep_state=True)
        self.assertEqual(self.server.port, port)
        with self.assertRaises((http.client.HTTPException, ConnectionError, ValueError)):
            while w.next(timeout=3) is not None:
                pass
        c = RawClient(self.server)
        self.addCleanup(c.close)
        code, _, body = c.get(SVC + "/keep")
        self.assertEqual((code, body["metadata"]["uid"]), (200, created["metadata"]["uid"]))
        old_rv = body["metadata"]["resourceVersion"]
        self.server.restart(keep_state=False, down_seconds=0.2)
        code, _, body = c.get(SVC + "/keep")
        self.assertEqual(code, 404)
        code, _, body = c.get(SVC + f"?watch=true&resourceVersion={old_rv}")
        self.assertEqual((body["type"], body["object"]["code"]), ("ERROR", 410))

    def test_admin_http_api(self):
        code, _, state = self.c.get("/_admin/state")
        self.assertEqual(code, 200)
        self.assertIn("services", state["objects"])
        code, _, out = self.c.post("/_admin/faults", {"count": 1, "code": 503, "path": "nodes"})
        self.assertEqual(out["faults"][0]["code"], 503)
        self.assertEqual(self.c.get("/api/v1/nodes")[0], 503)
        with open(fixture_path("service-headless.json")) as f:
            code, _, out = self.c.post("/_admin/objects", f.read())
        self.assertEqual(out["loaded"][0]["metadata"]["name"], "my-service")
        code, _, out = self.c.post("/_admin/compact", {})
        self.assertEqual(code, 200)
        self.assertEqual(state["resourceVersion"] < out["resourceVersion"], True)
        code, _, out = self.c.post("/_admin/config", {"watchList": False})
        self.assertFalse(out["watchList"])
        code, _, out = self.c.get("/_admin/requests")
        self.assertIn("/api/v1/nodes", [r["path"] for r in out["requests"]])
        self.assertEqual(self.c.post("/_admin/nope", {})[0], 404)


class CommandLineTest(unittest.TestCase):
    def start(self, *args):
        proc = subprocess.Popen([PYTHON, os.path.join(HERE, "server.py"), *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(self.stop, proc)
        info = json.loads(proc.stdout.readline())
        return proc, info

    @staticmethod
    def stop(proc):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.stdout.close()
        proc.stderr.close()

    def https(self, info, method, path, body=None, token=None):
        ctx = ssl.create_default_context(cafile=info["ca"])
        conn = http.client.HTTPSConnection("127.0.0.1", info["port"], context=ctx, timeout=10)
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers=headers)
        resp = conn.getresponse()
        data = json.loads(resp.read() or b"null")
        conn.close()
        return resp.status, data

    def test_start_contract_admin_and_restore(self):
        with tempfile.TemporaryDirectory() as state:
            proc, info = self.start("--port", "0", "--tls", "--token", "T", "--state-dir", state,
                                    "--load", fixture_path("service-nodeport-etp-local.json"),
                                    fixture_path("node-dualstack.json"))
            self.assertEqual(info["url"], f"https://127.0.0.1:{info['port']}")
            self.assertEqual(info["token"], "T")
            self.assertTrue(os.path.exists(info["kubeconfig"]))
            self.assertEqual(set(info["kubeconfigs"]), {"token", "cert"})
            code, body = self.https(info, "GET", "/api/v1/namespaces/default/services", token="T")
            self.assertEqual([i["metadata"]["name"] for i in body["items"]], ["nodeport"])
            code, out = self.https(info, "POST", "/_admin/compact", {})
            self.assertEqual(code, 200)
            code, _ = self.https(info, "GET", "/api/v1/nodes", token="wrong")
            self.assertEqual(code, 401)
            self.stop(proc)
            self.assertEqual(proc.returncode, 0)
            self.assertTrue(os.path.exists(os.path.join(state, "store.json")))
            proc2, info2 = self.start("--port", "0", "--tls", "--token", "T", "--state-dir",
                                      state, "--restore")
            code, body = self.https(info2, "GET", "/api/v1/nodes", token="T")
            self.assertEqual([i["metadata"]["name"] for i in body["items"]],
                             ["k8s-linuxpool1-34450317-0"])

    def test_plain_http_mode(self):
        proc, info = self.start("--port", "0", "--no-watch-list", "--watch-expired", "http")
        self.assertTrue(info["url"].startswith("http://"))
        self.assertIsNone(info["ca"])
        conn = http.client.HTTPConnection("127.0.0.1", info["port"], timeout=5)
        conn.request("GET", "/api/v1/services?watch=true&sendInitialEvents=true"
                            "&resourceVersionMatch=NotOlderThan")
        resp = conn.getresponse()
        self.assertEqual(resp.status, 422)
        resp.read()
        conn.close()
        self.assertFalse(os.path.exists(info["stateDir"] + "/nothing"))

