#!/usr/bin/python3
"""Sluice's test Kubernetes API server: Services, EndpointSlices and Nodes over HTTP(S).

Run:    python3 e2e/apiserver/server.py --port 0 --tls --token T --state-dir DIR [--load F ...]
Import: from apiserver import TestApiServer   (with e2e/ on sys.path)

The first stdout line is one JSON object describing the running server (see README.md).
"""

if __name__ == "__main__" and not __package__:
    # Run as a script: import ourselves as the package so relative imports work.
    import os as _os
    import sys as _sys
    _sys.path.insert(0, _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__))))
    from apiserver.server import main as _main
    _sys.exit(_main())

import argparse
import datetime
import http.server
import json
import os
import shutil
import signal
import socket
import ssl
import sys
import tempfile
import threading
import time

import yaml

from . import status as st
from .faults import WATCH_INJECTIONS, FaultRule, Faults
from .handler import Handler, RequestLog
from .pki import make_server_pki, write_kubeconfig
from .registry import Registry
from .resources import BY_PLURAL
from .store import Store


class Config:
    """Settings the admin API may change at run time."""

    def __init__(self, tokens=(), auth_required=False, anonymous=True, admin_token=None,
                 bookmark_interval=1.0, watch_list=True, watch_expired="event",
                 min_request_timeout=1800.0, k8s_version="1.32.0", future_rv_wait=3.0):
        # token -> user name
        self.tokens = {t: f"token-user-{i}" for i, t in enumerate(tokens)}
        self.auth_required = auth_required
        self.anonymous = anonymous
        self.admin_token = admin_token
        self.bookmark_interval = float(bookmark_interval)
        self.watch_list = bool(watch_list)
        self.watch_expired = watch_expired
        self.min_request_timeout = float(min_request_timeout)
        self.k8s_version = k8s_version
        self.future_rv_wait = float(future_rv_wait)

    def to_json(self):
        return {"bookmarkInterval": self.bookmark_interval, "watchList": self.watch_list,
                "watchExpired": self.watch_expired, "anonymous": self.anonymous,
                "minRequestTimeout": self.min_request_timeout, "version": self.k8s_version,
                "futureRVWait": self.future_rv_wait}


def read_manifests(path_or_text, is_text=False):
    """Objects from a YAML/JSON file (multi-document, List kinds flattened)."""
    if is_text:
        text = path_or_text
    else:
        with open(path_or_text) as f:
            text = f.read()
    out = []
    for doc in yaml.safe_load_all(text):
        if doc is None:
            continue
        if isinstance(doc, list):
            out.extend(doc)
        elif isinstance(doc, dict) and doc.get("kind", "").endswith("List") and "items" in doc:
            kind = doc["kind"][:-4]
            for item in doc["items"]:
                item = dict(item)
                item.setdefault("kind", kind)
                item.setdefault("apiVersion", doc.get("apiVersion"))
                out.append(item)
        else:
            out.append(doc)
    return out


class Runtime:
    """State shared by all request threads: store, faults, config, logs, open connections."""

    def __init__(self, config, store, verbosity=0, on_restart=None):
        self.config = config
        self.store = store
        self.registry = Registry(store, config)
        self.faults = Faults()
        self.requests = RequestLog()
        self.verbosity = verbosity
        self.stopping = False
        self.epoch = 0
        self.on_restart = on_restart
        self._conns = set()
        self._conns_lock = threading.Lock()

    def log(self, level, message):
        if level != "I" or self.verbosity > 0:
            now = datetime.datetime.now()
            sys.stderr.write(f"{level}{now:%m%d %H:%M:%S.%f} {os.getpid():>7} apiserver] "
                             f"{message}\n")
            sys.stderr.flush()

    def track(self, conn, opened):
        with self._conns_lock:
            (self._conns.add if opened else self._conns.discard)(conn)

    def close_connections(self):
        with self._conns_lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def record(self, method, path, code, headers, user, watch, seconds):
        self.requests.add(method=method, path=path, code=code, user=user, watch=watch,
                          userAgent=headers.get("User-Agent", "") if headers else "",
                          accept=headers.get("Accept", "") if headers else "",
                          contentType=headers.get("Content-Type", "") if headers else "",
                          seconds=round(seconds, 4))
        if self.verbosity > 1:
            self.log("I", f"{method} {path} {code} user={user!r} {seconds * 1000:.1f}ms")

    # ---------------------------------------------------------------- admin operations
    def compact(self, resource=None):
        return self.store.compact(resource)

    def drop_watches(self, mode="abort", resource=None):
        return self.store.control({"op": "drop", "mode": mode}, resource)

    def inject_watch(self, what, resource=None, **extra):
        if what not in WATCH_INJECTIONS:
            raise ValueError(f"unknown watch injection {what!r}; one of {WATCH_INJECTIONS}")
        return self.store.control(dict(extra, op="inject", what=what), resource)

    def send_bookmarks(self, resource=None):
        return self.store.control({"op": "bookmark"}, resource)

    def load_objects(self, objects):
        return [self.registry.load(o) for o in objects]

    def state(self):
        with self.store.cond:
            return {"resourceVersion": str(self.store.rv),
                    "compactedResourceVersions": {p: str(s.compacted_rv)
                                                  for p, s in self.store.resources.items()},
                    "objects": {p: len(s.objects) for p, s in self.store.resources.items()},
                    "watches": len(self.store.watchers), "paused": self.faults.paused,
                    "faults": self.faults.rules(), "config": self.config.to_json()}

    def set_config(self, **kw):
        c = self.config
        if "watchList" in kw:
            c.watch_list = bool(kw["watchList"])
        if "watchExpired" in kw:
            if kw["watchExpired"] not in ("event", "http"):
                raise ValueError("watchExpired must be 'event' or 'http'")
            c.watch_expired = kw["watchExpired"]
        if "bookmarkInterval" in kw:
            c.bookmark_interval = float(kw["bookmarkInterval"])
        if "anonymous" in kw:
            c.anonymous = bool(kw["anonymous"])
        if "futureRVWait" in kw:
            c.future_rv_wait = float(kw["futureRVWait"])
        if "minRequestTimeout" in kw:
            c.min_request_timeout = float(kw["minRequestTimeout"])
        return c.to_json()

    def admin(self, op, method, args, raw):
        """The /_admin/<op> endpoints. Returns a JSON-able result, None for unknown ops."""
        try:
            if op == "state" and method == "GET":
                return self.state()
            if op == "compact" and method == "POST":
                return {"resourceVersion": str(self.compact(args.get("resource")))}
            if op == "watches/drop" and method == "POST":
                return {"watches": self.drop_watches(args.get("mode", "abort"),
                                                     args.get("resource"))}
            if op == "watches/inject" and method == "POST":
                extra = {k: v for k, v in args.items() if k not in ("what", "resource")}
                return {"watches": self.inject_watch(args.get("what"), args.get("resource"),
                                                     **extra)}
            if op == "watches/bookmark" and method == "POST":
                return {"watches": self.send_bookmarks(args.get("resource"))}
            if op == "faults" and method == "POST":
                rule = FaultRule(count=args.get("count", 1), code=args.get("code", 500),
                                 retry_after=args.get("retryAfter"), method=args.get("method"),
                                 path=args.get("path"), watch=args.get("watch"),
                                 message=args.get("message"), body=args.get("body"),
                                 action=args.get("action", "status"),
                                 delay=args.get("delay", 0.0))
                self.faults.add(rule)
                return {"faults": self.faults.rules()}
            if op == "faults" and method == "DELETE":
                self.faults.clear()
                return {"faults": []}
            if op == "faults" and method == "GET":
                return {"faults": self.faults.rules()}
            if op == "pause" and method == "POST":
                self.faults.pause()
                return {"paused": True}
            if op == "resume" and method == "POST":
                self.faults.resume()
                return {"paused": False}
            if op == "config" and method == "POST":
                return self.set_config(**args)
            if op == "config" and method == "GET":
                return self.config.to_json()
            if op == "requests" and method == "GET":
                return {"requests": list(self.requests.entries)}
            if op == "requests" and method == "DELETE":
                self.requests.entries.clear()
                return {"requests": []}
            if op == "objects" and method == "POST":
                objs = read_manifests(raw.decode("utf-8"), is_text=True)
                return {"loaded": self.load_objects(objs)}
            if op == "restart" and method == "POST" and self.on_restart:
                keep = args.get("keepState", True)
                keep = keep if isinstance(keep, bool) else str(keep).lower() in ("1", "true")
                down = float(args.get("downSeconds", 0.0))
                threading.Thread(target=self.on_restart, args=(keep, down), daemon=True).start()
                return {"restarting": True, "keepState": keep, "downSeconds": down}
        except (ValueError, TypeError) as e:
            raise st.bad_request(str(e)) from None
        return None


class HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, address, runtime, ssl_context):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.runtime = runtime
        self.ssl_context = ssl_context
        super().__init__(address, Handler)

    def finish_request(self, request, client_address):
        # The TLS handshake runs in the request thread so a stalled client blocks nobody else.
        if self.ssl_context is not None:
            try:
                request.settimeout(10)
                request = self.ssl_context.wrap_socket(request, server_side=True)
                request.settimeout(None)
            except (ssl.SSLError, OSError) as e:
                self.runtime.log("I", f"TLS handshake from {client_address[0]} failed: {e}")
                try:
                    request.close()
                except OSError:
                    pass
                return
            try:
                self.RequestHandlerClass(request, client_address, self)
            finally:
                request.close()
            return
        self.RequestHandlerClass(request, client_address, self)


class TestApiServer:
    """A test API server in this process. Use as a context manager or start()/stop().

    Fault and state helpers mirror the /_admin HTTP API (see README.md)."""

    def __init__(self, tls=False, token=None, tokens=(), client_certs=None, anonymous=True,
                 state_dir=None, host="127.0.0.1", port=0, load=(), bookmark_interval=1.0,
                 history_size=1000, initial_rv=1000, watch_list=True, watch_expired="event",
                 min_request_timeout=1800.0,
                 service_cidrs=("10.0.0.0/16", "2001:db8:fd00::/108"), k8s_version="1.32.0",
                 admin_token=None, verbosity=0, restore=False):
        self.tls = tls
        self.tokens = ([token] if token else []) + list(tokens)
        self.token = self.tokens[0] if self.tokens else None
        self.client_certs = tls if client_certs is None else client_certs
        if self.client_certs and not tls:
            raise ValueError("client certificates need tls=True")
        self.host, self.port = host, port
        self._own_state_dir = state_dir is None
        self.state_dir = state_dir or tempfile.mkdtemp(prefix="sluice-apiserver-")
        os.makedirs(self.state_dir, exist_ok=True)
        self.load_files = list(load)
        self._store_args = dict(service_cidrs=service_cidrs, history_size=history_size,
                                initial_rv=initial_rv)
        self.config = Config(self.tokens, auth_required=bool(self.tokens or self.client_certs),
                             anonymous=anonymous, admin_token=admin_token,
                             bookmark_interval=bookmark_interval, watch_list=watch_list,
                             watch_expired=watch_expired,
                             min_request_timeout=min_request_timeout, k8s_version=k8s_version)
        self.runtime = Runtime(self.config, Store(**self._store_args), verbosity,
                               on_restart=self.restart)
        self.restore = restore
        self.pki = {}
        self._httpd = None
        self._thread = None
        self._lifecycle = threading.Lock()

    # ---------------------------------------------------------------- lifecycle
    @property
    def store(self):
        return self.runtime.store

    @property
    def registry(self):
        return self.runtime.registry

    @property
    def url(self):
        scheme = "https" if self.tls else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    @property
    def ca_file(self):
        return self.pki.get("ca")

    @property
    def client_cert(self):
        return self.pki.get("client_cert")

    @property
    def client_key(self):
        return self.pki.get("client_key")

    @property
    def snapshot_path(self):
        return os.path.join(self.state_dir, "store.json")

    def _ssl_context(self):
        if not self.tls:
            return None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.pki["server_cert"], self.pki["server_key"])
        if self.client_certs:
            ctx.load_verify_locations(self.pki["client_ca"])
            ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    def start(self):
        if self.tls and not self.pki:
            self.pki = make_server_pki(os.path.join(self.state_dir, "pki"), self.client_certs)
        if self.restore and os.path.exists(self.snapshot_path):
            self._restore_snapshot()
        else:
            for path in self.load_files:
                self.runtime.load_objects(read_manifests(path))
        self._serve()
        self._write_kubeconfigs()
        self.runtime.log("I", f"serving on {self.url}")
        return self

    def _serve(self):
        self._httpd = HTTPServer((self.host, self.port), self.runtime, self._ssl_context())
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.1}, daemon=True,
                                        name=f"apiserver-{self.port}")
        self._thread.start()

    def _write_kubeconfigs(self):
        self.kubeconfigs = {}
        ca = self.pki.get("ca")
        if self.token:
            self.kubeconfigs["token"] = write_kubeconfig(
                os.path.join(self.state_dir, "kubeconfig-token"), self.url, ca, token=self.token)
        if self.client_certs:
            self.kubeconfigs["cert"] = write_kubeconfig(
                os.path.join(self.state_dir, "kubeconfig-cert"), self.url, ca,
                client_cert=self.client_cert, client_key=self.client_key)
        if not self.kubeconfigs:
            self.kubeconfigs["anonymous"] = write_kubeconfig(
                os.path.join(self.state_dir, "kubeconfig-anonymous"), self.url, ca)
        default = next(iter(self.kubeconfigs.values()))
        self.kubeconfig = os.path.join(self.state_dir, "kubeconfig")
        shutil.copyfile(default, self.kubeconfig)
        os.chmod(self.kubeconfig, 0o600)

    @property
    def kubeconfig_token(self):
        return self.kubeconfigs.get("token")

    @property
    def kubeconfig_cert(self):
        return self.kubeconfigs.get("cert")

    def _stop_http(self):
        rt = self.runtime
        rt.stopping = True
        rt.epoch += 1
        with rt.store.cond:
            rt.store.cond.notify_all()
            # Open watches cut themselves mid-chunk (abort_stream) before the sockets are shut
            # down: a bare shutdown can fall on a chunk boundary, which Python's http.client
            # reads as a clean end of the stream.
            deadline = time.monotonic() + 2.0
            while rt.store.watchers and time.monotonic() < deadline:
                rt.store.cond.wait(0.02)
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        rt.close_connections()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def stop(self, remove_state_dir=None):
        with self._lifecycle:
            if self._httpd is None and self.runtime.stopping:
                return
            self._stop_http()
            self.runtime.faults.resume()
            if not self._own_state_dir:
                self.save_snapshot()
            if remove_state_dir if remove_state_dir is not None else self._own_state_dir:
                shutil.rmtree(self.state_dir, ignore_errors=True)

    def restart(self, keep_state=True, down_seconds=0.0):
        """Stop serving (every connection is cut), optionally lose all objects, serve again on
        the same port. Losing state keeps the RV counter growing, reloads the --load files as
        new objects and compacts history, so every old resourceVersion answers 410."""
        with self._lifecycle:
            self._stop_http()
            if not keep_state:
                old = self.runtime.store
                store = Store(**dict(self._store_args, initial_rv=old.rv + 1))
                self.runtime.store = store
                self.runtime.registry = Registry(store, self.config)
                for path in self.load_files:
                    self.runtime.load_objects(read_manifests(path))
                store.compact()
            if down_seconds > 0:
                time.sleep(down_seconds)
            self.runtime.stopping = False
            for attempt in range(50):
                try:
                    self._serve()
                    break
                except OSError:
                    if attempt == 49:
                        raise
                    time.sleep(0.1)
            self.runtime.log("I", f"restarted on {self.url} (keep_state={keep_state})")

    def save_snapshot(self):
        with open(self.snapshot_path, "w") as f:
            json.dump(self.runtime.store.dump(), f)

    def _restore_snapshot(self):
        with open(self.snapshot_path) as f:
            data = json.load(f)
        store = self.runtime.store
        with store.cond:
            for plural, objs in data.get("objects", {}).items():
                for obj in objs:
                    key = ((obj.get("metadata") or {}).get("namespace") or "",
                           obj["metadata"]["name"])
                    store.resources[plural].objects[key] = obj
            store.rv = max(store.rv, int(data.get("resourceVersion", store.rv)))
        store.compact()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def describe(self):
        """The machine-readable first stdout line of the CLI."""
        return {"url": self.url, "host": self.host, "port": self.port, "tls": self.tls,
                "kubeconfig": self.kubeconfig, "kubeconfigs": self.kubeconfigs,
                "ca": self.ca_file, "clientCert": self.client_cert, "clientKey": self.client_key,
                "token": self.token, "admin": self.url + "/_admin", "stateDir": self.state_dir,
                "pid": os.getpid()}

    # ---------------------------------------------------------------- state and faults
    def resource_version(self):
        return str(self.runtime.store.rv)

    def load(self, *objects):
        """Upsert objects as an administrator (no validation); returns the stored copies."""
        return self.runtime.load_objects(objects)

    def load_file(self, path):
        return self.runtime.load_objects(read_manifests(path))

    def get(self, resource, name, namespace="default"):
        rtype = BY_PLURAL[resource]
        with self.store.cond:
            return self.store.get(resource, namespace if rtype.namespaced else "", name)

    def objects(self, resource):
        with self.store.cond:
            return list(self.store.state(resource).objects.values())

    def compact(self, resource=None):
        return self.runtime.compact(resource)

    def drop_watches(self, mode="abort", resource=None):
        return self.runtime.drop_watches(mode, resource)

    def inject_watch(self, what, resource=None, **extra):
        return self.runtime.inject_watch(what, resource, **extra)

    def send_bookmarks(self, resource=None):
        return self.runtime.send_bookmarks(resource)

    def fail_next(self, count=1, code=500, retry_after=None, method=None, path=None, watch=None,
                  message=None, body=None, action="status", delay=0.0):
        self.runtime.faults.add(FaultRule(count, code, retry_after, method, path, watch, message,
                                          body, action, delay))

    def clear_faults(self):
        self.runtime.faults.clear()

    def pause(self):
        self.runtime.faults.pause()

    def resume(self):
        self.runtime.faults.resume()

    def set_config(self, **kw):
        return self.runtime.set_config(**kw)

    def watch_count(self):
        with self.store.cond:
            return len(self.store.watchers)

    def requests(self, clear=False):
        out = list(self.runtime.requests.entries)
        if clear:
            self.runtime.requests.entries.clear()
        return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 lets the kernel choose")
    p.add_argument("--tls", action="store_true", help="serve HTTPS with a generated CA")
    p.add_argument("--token", action="append", default=[], help="accepted bearer token "
                   "(repeatable)")
    p.add_argument("--no-client-certs", action="store_true",
                   help="with --tls: do not generate or accept client certificates")
    p.add_argument("--no-anonymous", action="store_true",
                   help="answer 401 to requests without credentials (when auth is on)")
    p.add_argument("--state-dir", help="certificates, kubeconfigs and store.json go here "
                   "(default: a temp dir removed on exit)")
    p.add_argument("--restore", action="store_true",
                   help="load STATE_DIR/store.json (written on exit) instead of --load files")
    p.add_argument("--load", nargs="+", action="extend", default=[],
                   help="YAML/JSON manifests to preload")
    p.add_argument("--bookmark-interval", type=float, default=1.0,
                   help="seconds between BOOKMARK events (0 = only on demand)")
    p.add_argument("--history-size", type=int, default=1000,
                   help="events kept per resource before the oldest are compacted")
    p.add_argument("--initial-rv", type=int, default=1000)
    p.add_argument("--no-watch-list", action="store_true",
                   help="refuse sendInitialEvents with 422 like a server without WatchList")
    p.add_argument("--watch-expired", choices=("event", "http"), default="event",
                   help="too-old watch RV: ERROR event on a 200 stream, or HTTP 410")
    p.add_argument("--min-request-timeout", type=float, default=1800.0,
                   help="watches without timeoutSeconds last [t, 2t) seconds")
    p.add_argument("--service-cidr", default="10.0.0.0/16,2001:db8:fd00::/108")
    p.add_argument("--k8s-version", default="1.32.0")
    p.add_argument("--admin-token", help="require this bearer token on /_admin")
    p.add_argument("-v", "--verbosity", type=int, default=0)
    args = p.parse_args(argv)

    server = TestApiServer(
        tls=args.tls, tokens=args.token, client_certs=args.tls and not args.no_client_certs,
        anonymous=not args.no_anonymous, state_dir=args.state_dir, host=args.host,
        port=args.port, load=args.load, bookmark_interval=args.bookmark_interval,
        history_size=args.history_size, initial_rv=args.initial_rv,
        watch_list=not args.no_watch_list, watch_expired=args.watch_expired,
        min_request_timeout=args.min_request_timeout,
        service_cidrs=tuple(c.strip() for c in args.service_cidr.split(",") if c.strip()),
        k8s_version=args.k8s_version, admin_token=args.admin_token, verbosity=args.verbosity,
        restore=args.restore)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    try:
        server.start()
    except Exception as e:
        sys.stderr.write(f"E apiserver] start failed: {e}\n")
        server.stop()
        return 1
    sys.stdout.write(json.dumps(server.describe()) + "\n")
    sys.stdout.flush()
    try:
        while not done.wait(0.5):
            pass
    finally:
        server.stop()
    return 0
