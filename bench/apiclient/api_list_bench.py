#!/usr/bin/python3
"""api_list_bench: the network half of bench/apiclient. LIST 10,000 Services and 10,000
EndpointSlices (10 endpoints each) from the test API server into typed objects with
sluice-kube-watch, then 1,000 watch events; time and peak memory, next to the official Python
client and `kubectl get --raw`. A benchmark run by hand (README.md), never a test.

    bench/apiclient/api_list_bench.py [--kube-watch PATH] [--runs 3] [--services 10000] ...
"""

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SERVER = os.path.join(ROOT, "e2e", "apiserver", "server.py")
PEER = os.path.join(HERE, "python_client_peer.py")
TOKEN = "sluice-bench-token"
# Covers the generated ClusterIPs, so the server would accept writes of these Services too.
SERVICE_CIDRS = "10.96.0.0/12,fd00:10:96::/108"
PATHS = {"services": "/api/v1/services",
         "endpointslices": "/apis/discovery.k8s.io/v1/endpointslices",
         "nodes": "/api/v1/nodes"}


def log(message):
    sys.stderr.write(f"api_list_bench: {message}\n")
    sys.stderr.flush()


# ---------------------------------------------------------------------------------- workload
# The shape of workload.cc (api_parse_bench), as the server stores it (kind/apiVersion, Go field
# order). Each object comes from its own seeded RNG, so any one can be rebuilt from its index.

ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def namespace(i):
    return f"team-{i % 50}"


def service_name(i):
    return f"svc-{i:05d}"


def suffix(i):
    s = ""
    for k in range(5):
        s += ALPHABET[(i * 7 + k) % 27]
        i //= 27
    return s


def uid(i):
    return (f"{i * 2654435761 % 0xffffffff:08x}-{i % 0xffff:04x}-4{i % 0xfff:03x}-"
            f"8{(i >> 4) % 0xfff:03x}-{i * 40503 % (1 << 48):012x}")


def meta(ns, name, i, manager, api_version):
    # What the server returns unless the client strips it: one managedFields entry.
    return {"name": name, "namespace": ns, "uid": uid(i), "resourceVersion": "0",
            "creationTimestamp": f"2024-05-01T10:{10 + i % 50}:00Z",
            "managedFields": [{"manager": manager, "operation": "Update",
                               "apiVersion": api_version, "time": "2024-05-01T10:30:00Z",
                               "fieldsType": "FieldsV1",
                               "fieldsV1": {"f:metadata": {"f:labels": {
                                   ".": {}, "f:app.kubernetes.io/name": {}}},
                                   "f:spec": {"f:ports": {}, "f:selector": {}}}}]}


def service_object(i):
    rng = random.Random(20240501 + 2 * i)
    pick = rng.randrange
    ns, name = namespace(i), service_name(i)
    md = meta(ns, name, i, "kubectl-client-side-apply", "v1")
    md["labels"] = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "shop",
                    "tier": "backend" if i % 3 else "frontend"}
    if i % 5 == 0:
        md["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": (
            '{"apiVersion":"v1","kind":"Service","metadata":{"annotations":{},"name":"' + name +
            '","namespace":"' + ns + '"},"spec":{"ports":[{"name":"http","port":80,'
            '"targetPort":8080}],"selector":{"app.kubernetes.io/name":"' + name + '"}}}\n')}
    s = {"kind": "Service", "apiVersion": "v1", "metadata": md}
    # 70 ClusterIP, 15 NodePort, 10 LoadBalancer, 3 headless, 2 ExternalName
    kind = pick(100)
    dual = pick(10) == 0
    if kind >= 98:
        s["spec"] = {"type": "ExternalName", "externalName": name + ".example.com",
                     "sessionAffinity": "None"}
        s["status"] = {"loadBalancer": {}}
        return s
    external = 70 <= kind < 95
    nports = 1 + pick(3)
    ports = []
    for p, (pname, number) in enumerate((("http", 80), ("https", 443), ("metrics", 9090))[:nports]):
        port = {"name": pname} if nports > 1 else {}
        port["protocol"] = "UDP" if p == 2 and pick(4) == 0 else "TCP"
        port["port"] = number
        port["targetPort"] = ("http-web" if p == 0 else "tls") if pick(4) == 0 else 8080 + p
        if external:
            port["nodePort"] = 30000 + (i * 3 + p) % 2768
        ports.append(port)
    spec = {"ports": ports, "selector": {"app.kubernetes.io/name": name}}
    if kind >= 95:
        spec["clusterIP"], spec["clusterIPs"] = "None", ["None"]
    else:
        v4 = f"10.96.{i // 250 % 256}.{i % 250 + 1}"
        spec["clusterIP"] = v4
        spec["clusterIPs"] = [v4, f"fd00:10:96::{i + 1:x}"] if dual else [v4]
    spec["type"] = "ClusterIP" if kind < 70 or kind >= 95 else (
        "NodePort" if kind < 85 else "LoadBalancer")
    client_ip = pick(20) == 0
    spec["sessionAffinity"] = "ClientIP" if client_ip else "None"
    local = external and pick(2) == 0
    if external:
        spec["externalTrafficPolicy"] = "Local" if local else "Cluster"
    lb = 85 <= kind < 95
    if lb and local:
        spec["healthCheckNodePort"] = 32000 + i % 700
    if client_ip:
        spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": 10800}}
    spec["ipFamilies"] = ["IPv4", "IPv6"] if dual else ["IPv4"]
    spec["ipFamilyPolicy"] = "PreferDualStack" if dual else "SingleStack"
    if lb:
        spec["allocateLoadBalancerNodePorts"] = True
    spec["internalTrafficPolicy"] = "Cluster"
    s["spec"] = spec
    status = {"loadBalancer": {}}
    if lb:
        status["loadBalancer"]["ingress"] = [{"ip": f"203.0.{113 + i % 3}.{i % 250 + 1}",
                                              "ipMode": "VIP"}]
    s["status"] = status
    return s


def slice_object(i, endpoints_per_slice):
    rng = random.Random(20240501 + 2 * i + 1)
    ns, svc = namespace(i), service_name(i)
    v6 = i % 10 == 7
    md = meta(ns, f"{svc}-{suffix(i)}", i + 1000000, "kube-controller-manager",
              "discovery.k8s.io/v1")
    md = {"name": md.pop("name"), "generateName": svc + "-", **md, "generation": 1}
    md["labels"] = {"app.kubernetes.io/name": svc,
                    "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                    "kubernetes.io/service-name": svc}
    md["annotations"] = {"endpoints.kubernetes.io/last-change-trigger-time":
                         "2024-05-01T10:31:07Z"}
    md["ownerReferences"] = [{"apiVersion": "v1", "kind": "Service", "name": svc,
                              "uid": uid(i * 7 + 1), "controller": True,
                              "blockOwnerDeletion": True}]
    endpoints = []
    for e in range(endpoints_per_slice):
        pod = i * endpoints_per_slice + e
        if v6:
            address = f"fd00:10:244:{pod // 200 % 4096:x}::{pod % 200 + 2:x}"
        else:
            address = f"10.{244 + pod // 65000 % 8}.{pod // 250 % 256}.{pod % 250 + 2}"
        terminating = rng.randrange(20) == 0
        zone = "zone-" + "abc"[pod % 3]
        ep = {"addresses": [address],
              "conditions": {"ready": not terminating, "serving": True,
                             "terminating": terminating},
              "targetRef": {"kind": "Pod", "namespace": ns,
                            "name": f"{svc}-7768647bf9-{suffix(pod)}", "uid": uid(pod * 13 + 5)},
              "nodeName": f"node-{pod % 97}", "zone": zone}
        if i % 3 == 0:
            ep["hints"] = {"forZones": [{"name": zone}]}
        endpoints.append(ep)
    ports = [{"name": "http", "protocol": "TCP", "port": 8080}]
    if i % 2:
        ports.append({"name": "metrics", "protocol": "TCP", "port": 9090})
    return {"kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1", "metadata": md,
            "addressType": "IPv6" if v6 else "IPv4", "endpoints": endpoints, "ports": ports}


def changed_slice(i, endpoints_per_slice, serial):
    """Endpoint churn as the EndpointSlice controller writes it: one endpoint starts or stops
    terminating, and the trigger time moves on (unique per serial, so no write is a no-op)."""
    s = slice_object(i, endpoints_per_slice)
    s["metadata"].pop("resourceVersion")  # an unconditional update
    minute, second = divmod(serial, 60)
    s["metadata"]["annotations"]["endpoints.kubernetes.io/last-change-trigger-time"] = \
        f"2024-05-{2 + minute // 1440:02d}T{minute // 60 % 24:02d}:{minute % 60:02d}:{second:02d}Z"
    if s["endpoints"]:
        c = s["endpoints"][serial % len(s["endpoints"])]["conditions"]
        c["ready"], c["terminating"] = c["terminating"], c["ready"]
    return s


def write_store(path, services, slices, endpoints_per_slice, first_rv=1000):
    """The server's store.json (loaded with --restore): the admin API would take minutes here
    (PyYAML's pure-Python loader parses ~0.1 MB/s, and each Service load rescans all Services)."""
    rv = first_rv
    with open(path, "w") as f:
        f.write('{"objects": {"nodes": [], "services": [')
        for i in range(services):
            rv += 1
            obj = service_object(i)
            obj["metadata"]["resourceVersion"] = str(rv)
            f.write(("," if i else "") + json.dumps(obj, separators=(",", ":")))
        f.write('], "endpointslices": [')
        for i in range(slices):
            rv += 1
            obj = slice_object(i, endpoints_per_slice)
            obj["metadata"]["resourceVersion"] = str(rv)
            f.write(("," if i else "") + json.dumps(obj, separators=(",", ":")))
        f.write(f']}}, "resourceVersion": {rv}}}')


# ---------------------------------------------------------------------------------- processes

class Children:
    """Every process this driver starts; whatever is still running is ended on exit."""

    def __init__(self):
        self.procs = []

    def spawn(self, args, **kw):
        p = subprocess.Popen(args, stdin=subprocess.DEVNULL, **kw)
        self.procs.append(p)
        return p

    def end(self, p, grace=10.0):
        if p.returncode is None and p.poll() is None:
            p.terminate()
            try:
                p.wait(grace)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def end_all(self):
        for p in reversed(self.procs):
            try:
                self.end(p)
            except OSError:
                pass
        self.procs.clear()


def reap(proc, timeout):
    """Wait for proc with os.wait4: (exit code, its rusage: ru_maxrss in KiB, CPU seconds).
    A process still running after timeout is killed."""
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        killer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage


class LineReader(threading.Thread):
    """Reads a child's pipe line by line, stamping each line with time.monotonic()."""

    def __init__(self, stream, on_line=None):
        super().__init__(daemon=True)
        self.stream, self.on_line = stream, on_line
        self.lines = []

    def run(self):
        for raw in iter(self.stream.readline, b""):
            t = time.monotonic()
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if self.on_line is None or not self.on_line(t, line):
                self.lines.append((t, line))

    def first(self, needle):
        return next(((t, line) for t, line in self.lines if needle in line), (None, None))


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


def proc_cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until_idle(pid, at_least=1.5, quiet=0.5, limit=30.0):
    """Waits until pid's CPU time has not moved for `quiet` seconds, and at least `at_least`
    seconds (past the server's first periodic BOOKMARK). Returns the CPU ms used meanwhile.
    A client that just synced may still be freeing its list (sluice: glibc consolidates the
    freed JSON DOM's chunks on the first larger allocation); the changes are timed after that."""
    t0 = time.monotonic()
    first = cpu = proc_cpu_seconds(pid)
    moved = t0
    while True:
        time.sleep(0.1)
        now, c = time.monotonic(), proc_cpu_seconds(pid)
        if c != cpu:
            cpu, moved = c, now
        if (now - t0 >= at_least and now - moved >= quiet) or now - t0 > limit:
            return (cpu - first) * 1000


def reset_peak_rss(pid):
    """Sets VmHWM back to the current RSS (clear_refs "5"), so VmHWM later is this phase's peak."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# ---------------------------------------------------------------------------------- server

class ApiServer:
    """server.py in its own process (TLS, one bearer token), restored from a written store."""

    def __init__(self, children, python, state_dir, log_path):
        self.children, self.python, self.state_dir = children, python, state_dir
        self.log_path = log_path
        self.proc = None

    def start(self):
        with open(self.log_path, "wb") as stderr:
            self.proc = self.children.spawn(
                [self.python, SERVER, "--host", "127.0.0.1", "--port", "0", "--tls",
                 "--no-client-certs", "--token", TOKEN, "--state-dir", self.state_dir,
                 "--restore", "--service-cidr", SERVICE_CIDRS],
                stdout=subprocess.PIPE, stderr=stderr)
        first = self.proc.stdout.readline()
        if not first:
            with open(self.log_path, errors="replace") as f:
                tail = f.read()[-2000:]
            raise RuntimeError(f"the test API server did not start:\n{tail}")
        self.info = json.loads(first)
        self.kubeconfig = self.info["kubeconfig"]
        self.ssl = ssl.create_default_context(cafile=self.info["ca"])
        return self

    def connection(self):
        return http.client.HTTPSConnection(self.info["host"], self.info["port"], context=self.ssl,
                                           timeout=60)

    def request(self, conn, method, path, body=None):
        headers = {"Authorization": f"Bearer {TOKEN}", "User-Agent": "api-list-bench",
                   "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=body, headers=headers)
        # The server writes headers and body separately: without a quick ACK, Nagle on its side
        # and delayed ACK on ours hold every answer for 40 ms.
        if conn.sock is not None:
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        resp = conn.getresponse()
        data = resp.read()
        if resp.status >= 300:
            raise RuntimeError(f"{method} {path}: HTTP {resp.status}: {data[:300]!r}")
        return json.loads(data)

    def admin(self, op):
        conn = self.connection()
        try:
            return self.request(conn, "GET", "/_admin/" + op)
        finally:
            conn.close()

    def stop(self):
        if self.proc is not None:
            self.children.end(self.proc, grace=30)


# ---------------------------------------------------------------------------------- clients

class Bench:
    def __init__(self, args, server, children, tmp):
        self.args, self.server, self.children, self.tmp = args, server, children, tmp
        self.serial = 0  # one per write, across every run, so no write is a no-op

    # -- one LIST, each client. Each returns a dict of figures for one run.
    def sluice_list(self, resource, mode):
        flags = {"watch-list": [], "list-pages": ["--no-watch-list"],
                 "list-one": ["--no-watch-list", "--page-size", "0"]}[mode]
        t0 = time.monotonic()
        p = self.children.spawn(
            [self.args.kube_watch, "--kubeconfig", self.server.kubeconfig, "--resource", resource,
             "--typed", "--exit-after-sync", "--sync-timeout", "600"] + flags,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = LineReader(p.stdout), LineReader(p.stderr)
        out.start()
        err.start()
        rc, usage = reap(p, 900)
        t_end = time.monotonic()
        out.join()
        err.join()
        # The log line just before the informer starts marks the start of the LIST.
        t_start, _ = err.first("] watching ")
        t_synced, synced = out.first('"event":"synced"')
        if rc != 0 or synced is None or t_start is None:
            tail = "\n".join(line for _, line in err.lines[-5:])
            raise RuntimeError(f"sluice-kube-watch {resource} {mode}: exit {rc}\n{tail}")
        return {"list_ms": (t_synced - t_start) * 1000, "process_ms": (t_end - t0) * 1000,
                "rss_kb": usage.ru_maxrss, "cpu_ms": (usage.ru_utime + usage.ru_stime) * 1000,
                "count": json.loads(synced)["count"]}

    def python_list(self, resource, page_size):
        t0 = time.monotonic()
        p = self.children.spawn(
            [self.args.python, PEER, "list", "--kubeconfig", self.server.kubeconfig,
             "--resource", resource, "--page-size", str(page_size)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = LineReader(p.stdout), LineReader(p.stderr)
        out.start()
        err.start()
        rc, usage = reap(p, 1800)
        t_end = time.monotonic()
        out.join()
        err.join()
        _, synced = out.first('"event": "synced"')
        if rc != 0 or synced is None:
            tail = "\n".join(line for _, line in err.lines[-5:])
            raise RuntimeError(f"python client {resource}: exit {rc}\n{tail}")
        synced = json.loads(synced)
        return {"list_ms": synced["listMs"], "process_ms": (t_end - t0) * 1000,
                "rss_kb": usage.ru_maxrss, "cpu_ms": (usage.ru_utime + usage.ru_stime) * 1000,
                "count": synced["count"]}

    def kubectl_raw(self, resource):
        cache = tempfile.mkdtemp(prefix="kubectl-cache-", dir=self.tmp)  # fresh: no discovery
        t0 = time.monotonic()
        p = self.children.spawn(
            [self.args.kubectl, "--kubeconfig", self.server.kubeconfig, "--cache-dir", cache,
             "get", "--raw", PATHS[resource]], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        got = [0]
        err = LineReader(p.stderr)
        err.start()

        def count():
            for chunk in iter(lambda: p.stdout.read(1 << 20), b""):
                got[0] += len(chunk)

        reader = threading.Thread(target=count, daemon=True)
        reader.start()
        rc, usage = reap(p, 900)
        t_end = time.monotonic()
        reader.join()
        err.join()
        shutil.rmtree(cache, ignore_errors=True)
        if rc != 0:
            tail = "\n".join(line for _, line in err.lines[-5:])
            raise RuntimeError(f"kubectl get --raw {PATHS[resource]}: exit {rc}\n{tail}")
        # kubectl has no in-process clock: its "list" is the whole process.
        return {"list_ms": (t_end - t0) * 1000, "process_ms": (t_end - t0) * 1000,
                "rss_kb": usage.ru_maxrss, "cpu_ms": (usage.ru_utime + usage.ru_stime) * 1000,
                "bytes": got[0]}

    # -- watch events
    def watch_run(self, who, run):
        """Start a watcher of EndpointSlices, wait for its sync, make the changes with PUTs
        one after another, and time until the watcher has printed every one of them."""
        a = self.args
        if who == "sluice":
            cmd = [a.kube_watch, "--kubeconfig", self.server.kubeconfig, "--resource",
                   "endpointslices", "--typed", "--sync-timeout", "600"]
        else:
            cmd = [a.python, PEER, "watch", "--kubeconfig", self.server.kubeconfig,
                   "--resource", "endpointslices"]
        synced, all_seen = threading.Event(), threading.Event()
        seen = {}  # resourceVersion -> time printed

        def on_line(t, line):
            if not line.startswith("{"):
                return False
            ev = json.loads(line)
            if ev["event"] == "synced":
                synced.set()
            elif synced.is_set() and ev["event"] != "state":  # not the initial adds
                seen[ev["resourceVersion"]] = t
                if len(seen) >= a.events:
                    all_seen.set()
            return True

        deadline = time.monotonic() + 30  # the last run's watch is gone within 0.25 s
        while self.server.admin("state")["watches"] > 0:
            if time.monotonic() > deadline:
                raise RuntimeError("a watch from an earlier run is still open")
            time.sleep(0.05)
        p = self.children.spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = LineReader(p.stdout, on_line), LineReader(p.stderr)
        out.start()
        err.start()
        try:
            if not synced.wait(900):
                raise RuntimeError(f"{who} watcher did not sync")
            # The Python client opens its watch after the LIST; writes start once it is open.
            deadline = time.monotonic() + 30
            while self.server.admin("state")["watches"] == 0:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{who} watcher opened no watch")
                time.sleep(0.05)
            settle_cpu = wait_until_idle(p.pid)
            after_sync = proc_status(p.pid)["VmRSS"]
            peak_reset = reset_peak_rss(p.pid)
            cpu0 = proc_cpu_seconds(p.pid)

            rng = random.Random(1000 + run)
            n = a.slices
            picks = rng.sample(range(n), a.events) if a.events <= n else \
                [rng.randrange(n) for _ in range(a.events)]
            sent = {}  # resourceVersion -> time its PUT was sent
            conn = self.server.connection()
            t_first = time.monotonic()
            for i in picks:
                self.serial += 1
                body = json.dumps(changed_slice(i, a.endpoints, self.serial),
                                  separators=(",", ":"))
                path = (f"/apis/discovery.k8s.io/v1/namespaces/{namespace(i)}/endpointslices/"
                        f"{service_name(i)}-{suffix(i)}")
                t_sent = time.monotonic()
                rv = self.server.request(conn, "PUT", path, body)["metadata"]["resourceVersion"]
                sent[rv] = t_sent
            t_last_ack = time.monotonic()
            conn.close()
            if not all_seen.wait(300):
                raise RuntimeError(f"{who} watcher saw {len(seen)} of {a.events} events")
            t_all = max(seen.values())
            cpu1 = proc_cpu_seconds(p.pid)
            status = proc_status(p.pid)
        finally:
            self.children.end(p)
        out.join()
        err.join()
        missing = set(sent) - set(seen)
        if missing:
            raise RuntimeError(f"{who}: {len(missing)} writes never seen")
        # From the write's request: a watch event may be out before the PUT's answer.
        lags = sorted((seen[rv] - sent[rv]) * 1000 for rv in sent)
        return {"all_ms": (t_all - t_first) * 1000, "writes_ms": (t_last_ack - t_first) * 1000,
                "tail_ms": (t_all - t_last_ack) * 1000,
                "lag50_ms": lags[len(lags) // 2], "lag99_ms": lags[int(len(lags) * 0.99)],
                "cpu_ms": (cpu1 - cpu0) * 1000, "rss_sync_kb": after_sync,
                "peak_kb": status["VmHWM"] if peak_reset else None, "settle_cpu_ms": settle_cpu}


# ---------------------------------------------------------------------------------- report

def median(runs, key):
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def fmt(v, unit="", width=9, digits=0):
    if v is None:
        return f"{'-':>{width}}"
    return f"{v:>{width - len(unit)},.{digits}f}{unit}"


def ratio(a, b):
    if a is None or not b:
        return "     -"
    r = a / b
    return f"{r:6.3f}x" if abs(r) < 0.1 else f"{r:6.2f}x"


def print_list_table(title, rows, baseline):
    print(title)
    print(f"  {'client':<46}{'list ms':>9}{'process ms':>12}{'peak RSS MB':>13}"
          f"{'above empty':>13}{'CPU ms':>9}{'objects':>9}")
    for label, runs, base_key in rows:
        if not runs:
            continue
        rss = median(runs, "rss_kb") / 1024
        base = baseline.get(base_key)
        above = rss - median(base, "rss_kb") / 1024 if base else None
        count = median(runs, "count")
        print(f"  {label:<46}{fmt(median(runs, 'list_ms'))}"
              f"{fmt(median(runs, 'process_ms'), width=12)}{fmt(rss, width=13, digits=1)}"
              f"{fmt(above, width=13, digits=1)}"
              f"{fmt(median(runs, 'cpu_ms'))}{fmt(count)}")


def build_type(build_dir):
    """CMAKE_BUILD_TYPE of a build tree, "+sanitizers" when SLUICE_SANITIZE is on."""
    kind, sanitize = "unknown", False
    try:
        with open(os.path.join(build_dir, "CMakeCache.txt")) as f:
            for line in f:
                if line.startswith("CMAKE_BUILD_TYPE:"):
                    kind = line.split("=", 1)[1].strip() or "unknown"
                elif line.startswith("SLUICE_SANITIZE:"):
                    sanitize = line.split("=", 1)[1].strip().upper() in ("ON", "1", "TRUE")
    except OSError:
        pass
    return kind + ("+sanitizers" if sanitize else "")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kube-watch", default=os.path.join(ROOT, "build", "controlplane", "kube",
                                                       "sluice-kube-watch"),
                   help="sluice-kube-watch, from a release build (default: build/ in the tree)")
    p.add_argument("--parse-bench", help="api_parse_bench, run at the end if found (default: "
                   "next to sluice-kube-watch's build)")
    p.add_argument("--no-parse-bench", action="store_true")
    p.add_argument("--python", default="/usr/bin/python3" if os.path.exists("/usr/bin/python3")
                   else sys.executable, help="Python with python3-yaml (server) and "
                   "python3-kubernetes (peer)")
    p.add_argument("--kubectl", default=shutil.which("kubectl"))
    p.add_argument("--no-python-client", action="store_true")
    p.add_argument("--services", type=int, default=10000)
    p.add_argument("--slices", type=int, default=10000)
    p.add_argument("--endpoints", type=int, default=10)
    p.add_argument("--events", type=int, default=1000)
    p.add_argument("--runs", type=int, default=3, help="runs of every LIST and of the watch "
                   "phase, per client; medians are printed")
    args = p.parse_args()
    if min(args.runs, args.events, args.services, args.slices, args.endpoints) < 1:
        p.error("--runs, --events, --services, --slices and --endpoints must be at least 1")

    if not os.access(args.kube_watch, os.X_OK):
        p.error(f"no {args.kube_watch}: build the sluice-kube-watch target or pass --kube-watch")
    build = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(args.kube_watch))))
    if args.parse_bench is None:
        args.parse_bench = os.path.join(build, "bench", "apiclient", "api_parse_bench")
    args.build_type = build_type(build)
    if args.build_type not in ("Release", "RelWithDebInfo"):
        log(f"warning: {args.kube_watch} is a {args.build_type} build: its figures mean little")
    peer_ok = not args.no_python_client and subprocess.run(
        [args.python, "-c", "import kubernetes"], capture_output=True).returncode == 0
    if not peer_ok and not args.no_python_client:
        log(f"{args.python} has no kubernetes module (python3-kubernetes): no Python client rows")

    children = Children()
    tmp = tempfile.mkdtemp(prefix="sluice-api-list-bench-")

    def on_term(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    # Also SIGINT: started in the background by a script, it would be ignored by default.
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    try:
        return run(args, children, tmp, peer_ok)
    except KeyboardInterrupt:
        log("interrupted; stopping")
        return 130
    except RuntimeError as e:
        log(f"error: {e}")
        return 1
    finally:
        children.end_all()
        shutil.rmtree(tmp, ignore_errors=True)


def run(args, children, tmp, peer_ok):
    state = os.path.join(tmp, "state")
    os.makedirs(state)
    t = time.monotonic()
    write_store(os.path.join(state, "store.json"), args.services, args.slices, args.endpoints)
    server = ApiServer(children, args.python, state, os.path.join(tmp, "apiserver.log")).start()
    counts = server.admin("state")["objects"]
    log(f"server {server.info['url']} with {counts['services']} Services and "
        f"{counts['endpointslices']} EndpointSlices, set up in {time.monotonic() - t:.1f} s; "
        f"sluice-kube-watch: {args.kube_watch} ({args.build_type})")
    bench = Bench(args, server, children, tmp)

    # Every client and mode once per run, interleaved, so drift in the machine hits all alike.
    jobs = []  # (table key, label for progress, function)
    for resource in ("nodes", "services", "endpointslices"):
        modes = ["list-one"] if resource == "nodes" else ["watch-list", "list-pages", "list-one"]
        for mode in modes:
            jobs.append(((resource, "sluice", mode), f"sluice {mode} {resource}",
                         lambda r=resource, m=mode: bench.sluice_list(r, m)))
        if peer_ok:
            for size in ([0] if resource == "nodes" else [500, 0]):
                jobs.append(((resource, "python", size), f"python client page {size} {resource}",
                             lambda r=resource, s=size: bench.python_list(r, s)))
        if args.kubectl:
            jobs.append(((resource, "kubectl", 0), f"kubectl raw {resource}",
                         lambda r=resource: bench.kubectl_raw(r)))
    results = {key: [] for key, _, _ in jobs}
    watch = {"sluice": [], "python": []}
    for run_index in range(args.runs):
        for key, label, fn in jobs:
            r = fn()
            results[key].append(r)
            log(f"run {run_index + 1}/{args.runs} {label}: list {r['list_ms']:.0f} ms, "
                f"peak RSS {r['rss_kb'] / 1024:.1f} MB")
        for who in (["sluice", "python"] if peer_ok else ["sluice"]):
            r = bench.watch_run(who, run_index)
            watch[who].append(r)
            log(f"run {run_index + 1}/{args.runs} {who} watch: {args.events} events seen "
                f"{r['all_ms']:.0f} ms after the first write (writes {r['writes_ms']:.0f} ms), "
                f"lag p50 {r['lag50_ms']:.1f} ms")

    report(args, results, watch, peer_ok)
    server.stop()
    if not args.no_parse_bench and os.access(args.parse_bench, os.X_OK):
        print(f"\nparse only, no network ({args.parse_bench}):", flush=True)
        subprocess.run([args.parse_bench, "--services", str(args.services), "--slices",
                        str(args.slices), "--endpoints", str(args.endpoints), "--events",
                        str(args.events), "--runs", str(max(args.runs, 3))], check=False)
    return 0


def report(args, results, watch, peer_ok):
    r = results
    baseline = {"sluice": r.get(("nodes", "sluice", "list-one")),
                "python": r.get(("nodes", "python", 0)),
                "kubectl": r.get(("nodes", "kubectl", 0))}
    print(f"\nLIST -> typed objects, over HTTPS from e2e/apiserver (TLS + token, 127.0.0.1); "
          f"median of {args.runs} runs")
    print("  'list ms': sluice from its start log line to the synced line; Python client around "
          "its list call;\n  kubectl the whole process. 'above empty': peak RSS minus the same "
          "client's peak on an empty list.")
    sizes = {res: median(r.get((res, "kubectl", 0)) or [], "bytes") for res in PATHS}
    for res, title in (("services", f"{args.services} Services"),
                       ("endpointslices", f"{args.slices} EndpointSlices x {args.endpoints} "
                                          f"endpoints")):
        size = f" ({sizes[res] / 1e6:.1f} MB JSON)" if sizes[res] else ""
        print()
        print_list_table(f"{title}{size}", [
            ("sluice-kube-watch --typed, watch-list", r[(res, "sluice", "watch-list")], "sluice"),
            ("sluice-kube-watch --typed, LIST 500/page", r[(res, "sluice", "list-pages")],
             "sluice"),
            ("sluice-kube-watch --typed, LIST 1 request", r[(res, "sluice", "list-one")],
             "sluice"),
            ("python client, list 500/page", r.get((res, "python", 500)), "python"),
            ("python client, list 1 request", r.get((res, "python", 0)), "python"),
            ("kubectl get --raw (bytes only, 1 request)", r.get((res, "kubectl", 0)), "kubectl"),
        ], baseline)
    print()
    print_list_table("empty list (Nodes): start-up and baseline", [
        ("sluice-kube-watch --typed, LIST 1 request", r[("nodes", "sluice", "list-one")], "-"),
        ("python client, list 1 request", r.get(("nodes", "python", 0)), "-"),
        ("kubectl get --raw", r.get(("nodes", "kubectl", 0)), "-"),
    ], {})

    print("\nratios, ours / peer (below 1: ours is faster or smaller)")
    print(f"  {'':<62}{'list time':>10}{'peak RSS':>10}{'above empty':>12}{'CPU':>8}")
    pairs = []
    for res in ("services", "endpointslices"):
        if peer_ok:
            pairs += [(f"{res}: watch-list / python 1 request", (res, "sluice", "watch-list"),
                       (res, "python", 0)),
                      (f"{res}: LIST 500/page / python 500/page", (res, "sluice", "list-pages"),
                       (res, "python", 500)),
                      (f"{res}: LIST 1 request / python 1 request", (res, "sluice", "list-one"),
                       (res, "python", 0))]
        if args.kubectl:
            pairs.append((f"{res}: LIST 1 request / kubectl raw (process time)",
                          (res, "sluice", "list-one"), (res, "kubectl", 0)))
    for label, ours, peer in pairs:
        a, b = r[ours], r[peer]
        time_key = "process_ms" if peer[1] == "kubectl" else "list_ms"
        above = [None, None]
        if peer[1] != "kubectl":  # kubectl streams the bytes out and holds nothing
            for n, (runs, who) in enumerate(((a, ours[1]), (b, peer[1]))):
                base = baseline.get(who)
                above[n] = median(runs, "rss_kb") - median(base, "rss_kb") if base else None
        print(f"  {label:<62}{ratio(median(a, time_key), median(b, time_key)):>10}"
              f"{ratio(median(a, 'rss_kb'), median(b, 'rss_kb')):>10}"
              f"{ratio(above[0], above[1]):>12}"
              f"{ratio(median(a, 'cpu_ms'), median(b, 'cpu_ms')):>8}")

    print(f"\n{args.events} EndpointSlice changes (one PUT after another) while watching "
          f"{args.slices} slices; median of {args.runs} runs")
    print("  Writes start once the watcher is idle after its sync ('settle CPU': what it used "
          "meanwhile).\n  'all seen': first write sent -> last event printed; 'tail': last write "
          "answered -> last event\n  printed; lag: write sent -> its event printed; CPU and peak "
          "RSS: the watcher's, during the changes.")
    print(f"  {'client':<38}{'settle CPU':>11}{'all seen ms':>12}{'writes ms':>10}{'tail ms':>9}"
          f"{'lag p50':>9}{'lag p99':>9}{'CPU ms':>8}{'RSS idle':>11}{'peak':>11}")
    labels = {"sluice": "sluice-kube-watch --typed (watch-list)",
              "python": "python client list + watch"}
    for who, runs in watch.items():
        if not runs:
            continue
        peak = median(runs, "peak_kb")
        print(f"  {labels[who]:<38}{fmt(median(runs, 'settle_cpu_ms'), width=11)}"
              f"{fmt(median(runs, 'all_ms'), width=12)}"
              f"{fmt(median(runs, 'writes_ms'), width=10)}{fmt(median(runs, 'tail_ms'))}"
              f"{fmt(median(runs, 'lag50_ms'), digits=1)}{fmt(median(runs, 'lag99_ms'), digits=1)}"
              f"{fmt(median(runs, 'cpu_ms'), width=8)}"
              f"{fmt(median(runs, 'rss_sync_kb') / 1024, ' MB', width=11, digits=1)}"
              f"{fmt(peak / 1024 if peak else None, ' MB', width=11, digits=1)}")
    if watch["sluice"] and watch["python"]:
        s, q = watch["sluice"], watch["python"]
        print(f"  ratios ours / python: all seen {ratio(median(s, 'all_ms'), median(q, 'all_ms'))}"
              f", lag p50 {ratio(median(s, 'lag50_ms'), median(q, 'lag50_ms'))}, CPU "
              f"{ratio(median(s, 'cpu_ms'), median(q, 'cpu_ms'))}, RSS idle "
              f"{ratio(median(s, 'rss_sync_kb'), median(q, 'rss_sync_kb'))}")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
