"""Test support: a raw HTTP client for protocol tests, a watch-stream reader, fixtures, and a
kubectl runner with a fresh HOME and cache per call site."""

import copy
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TESTDATA = os.path.join(HERE, "testdata")
PYTHON = "/usr/bin/python3"


def fixture(name):
    """A fixture object (copies of shared/reference/fixtures live in testdata/)."""
    with open(os.path.join(TESTDATA, name)) as f:
        return json.load(f)


def fixture_path(name):
    return os.path.join(TESTDATA, name)


def manifest(obj):
    """obj as a user would write it: no server-set fields."""
    obj = copy.deepcopy(obj)
    meta = obj.get("metadata", {})
    for f in ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields"):
        meta.pop(f, None)
    return obj


def service(name, ports=((80, 8080),), labels=None, namespace="default", **spec):
    body = {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": {"app": name},
                     "ports": [{"name": f"p{p}", "port": p, "targetPort": t} for p, t in ports]}}
    if labels:
        body["metadata"]["labels"] = dict(labels)
    body["spec"].update(spec)
    return body


class RawClient:
    """One keep-alive connection to the server; answers (status, headers, body)."""

    def __init__(self, server, token=None, cert=None, timeout=10):
        self.server = server
        self.token = token
        self.cert = cert
        self.timeout = timeout
        self.conn = None

    def _connect(self):
        host, port = self.server.host, self.server.port
        if self.server.tls:
            ctx = ssl.create_default_context(cafile=self.server.ca_file)
            if self.cert:
                ctx.load_cert_chain(*self.cert)
            return http.client.HTTPSConnection(host, port, timeout=self.timeout, context=ctx)
        return http.client.HTTPConnection(host, port, timeout=self.timeout)

    def request(self, method, path, body=None, content_type="application/json", headers=None):
        hdrs = {"Accept": "application/json"}
        if self.token:
            hdrs["Authorization"] = f"Bearer {self.token}"
        if body is not None:
            if not isinstance(body, (bytes, str)):
                body = json.dumps(body)
            hdrs["Content-Type"] = content_type
        hdrs.update(headers or {})
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = self._connect()
            try:
                self.conn.request(method, path, body=body, headers=hdrs)
                resp = self.conn.getresponse()
                data = resp.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt == 2:
                    raise
        text = data.decode("utf-8", "replace")
        try:
            parsed = json.loads(text) if text.strip() else None
        except ValueError:
            parsed = text
        return resp.status, resp.headers, parsed

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body, **kw):
        return self.request("POST", path, body, **kw)

    def put(self, path, body, **kw):
        return self.request("PUT", path, body, **kw)

    def patch(self, path, body, content_type="application/strategic-merge-patch+json", **kw):
        return self.request("PATCH", path, body, content_type=content_type, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def watch(self, path, headers=None):
        hdrs = {"Accept": "application/json"}
        if self.token:
            hdrs["Authorization"] = f"Bearer {self.token}"
        hdrs.update(headers or {})
        return WatchStream(self._connect(), path, hdrs)

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class WatchStream:
    """A watch response read one line (event) at a time."""

    def __init__(self, conn, path, headers):
        self.conn = conn
        conn.request("GET", path, headers=headers)
        self.resp = conn.getresponse()
        self.status = self.resp.status
        self.headers = self.resp.headers
        self.lines = []  # raw lines received, for framing checks

    def next_line(self, timeout=5.0):
        """The next raw line (bytes), b'' at a clean end of stream."""
        self.conn.sock.settimeout(timeout)
        line = self.resp.readline()
        self.lines.append(line)
        return line

    def next(self, timeout=5.0, skip_bookmarks=True):
        """The next decoded event, or None at the end of the stream."""
        while True:
            line = self.next_line(timeout)
            if not line:
                return None
            event = json.loads(line)
            if skip_bookmarks and event["type"] == "BOOKMARK":
                continue
            return event

    def events(self, n, timeout=5.0, skip_bookmarks=True):
        out = []
        for _ in range(n):
            ev = self.next(timeout, skip_bookmarks)
            if ev is None:
                break
            out.append(ev)
        return out

    def body(self):
        return self.resp.read()

    def close(self):
        try:
            self.conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.conn.close()


def kubectl_path():
    return shutil.which("kubectl")


class Kubectl:
    """Runs the installed kubectl with its own HOME and --cache-dir (no stale discovery)."""

    def __init__(self, kubeconfig):
        self.kubeconfig = kubeconfig
        self.home = tempfile.mkdtemp(prefix="sluice-kubectl-")
        self.workdir = os.path.join(self.home, "work")
        os.makedirs(self.workdir)

    def env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
        env["HOME"] = self.home
        env["KUBECONFIG"] = self.kubeconfig
        return env

    def args(self, *args):
        return [kubectl_path(), "--cache-dir", os.path.join(self.home, "cache"), *args]

    def run(self, *args, check=True, timeout=30, input=None):
        proc = subprocess.run(self.args(*args), env=self.env(), capture_output=True, text=True,
                              timeout=timeout, input=input, cwd=self.workdir)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed rc={proc.returncode}\n"
                                 f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
        return proc

    def popen(self, *args):
        return subprocess.Popen(self.args(*args), env=self.env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=self.workdir)

    def write(self, name, obj):
        path = os.path.join(self.workdir, name)
        with open(path, "w") as f:
            if isinstance(obj, str):
                f.write(obj)
            else:
                json.dump(obj, f, indent=1)
        return path

    def cleanup(self):
        shutil.rmtree(self.home, ignore_errors=True)


def wait_for(predicate, timeout=5.0, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def require_kubectl(cls):
    return unittest.skipUnless(kubectl_path(), "kubectl is not installed")(cls)


def python_client_available():
    try:
        import kubernetes
        return kubernetes is not None
    except ImportError:
        return False
