#!/usr/bin/python3
"""proxy_nftables_bench: sluice-agent's nftables backend against nft -f, iptables-restore, direct.

Side by side with `nft -f` of the same ruleset and with kube-proxy's iptables layout through
iptables-restore, at 1,000, 10,000 and 30,000 ClusterIP Services of 10 endpoints each. Per size:

  1. full sync: the agent's first sync (its "nftables in N us": NodeState to kernel, every ACK
     received), against `nft -f` of the very table the agent made (listed back from its netns)
     and iptables-legacy-restore / iptables-nft-restore of kube-proxy's rules for the same
     Services, each into a fresh netns; median of --runs;
  2. one-endpoint change: one Service's manifest rewritten with one endpoint replaced; the
     agent's "nftables in N us" and the time from the write to its sync line, against `nft -f`
     of a transaction making the same change (the difference between the table listed before
     and after the agent's sync) in a netns holding the same table;
  3. connection rate: new TCP connections per second from a client netns through the node netns
     (the agent's rules) to the last Service's ClusterIP, against the same client connecting to
     one endpoint directly (sluice-connrate);
  4. the agent's peak RSS (VmHWM) after all that.

Everything runs inside network namespaces named slbn<pid>-*, removed on exit, also after an
error or Ctrl-C (`--sweep` removes those of a run that was SIGKILLed). A benchmark run by hand,
never a test; needs root. Build both tools first (README.md):

    cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
    cmake --build build --target sluice-agent sluice-connrate
    bench/proxy-nftables/proxy_nftables_bench.py [--sizes 1000] [--json out.json]
"""

import argparse
import atexit
import base64
import contextlib
import ctypes
import hashlib
import ipaddress
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "bench", "apiclient"))
import api_list_bench as alb  # noqa: E402  (process helpers: Children, LineReader, /proc readers)

NETNS_DIR = "/var/run/netns"
PREFIX_RE = re.compile(r"^slbn(\d+)-")
PREFIX = f"slbn{os.getpid()}-"

TABLE = "sluice-proxy"
NODE = "node-a"
CLUSTER_CIDR = "10.244.0.0/16"
NAMESPACE = "bench"
ENDPOINTS = 10
SERVICE_PORT, TARGET_PORT = 80, 8080
SERVICE_BASE = int(ipaddress.ip_address("10.96.0.16"))
POD_BASE = int(ipaddress.ip_address("10.244.1.0"))
POD_POOL = 253 * 256  # 10.244.1.0 - 10.244.253.255, shared by every Service but the last
# The connection-rate topology (addresses inside the cluster CIDR are pods, as far as the
# masquerade rules go):
#   client netns  c0 10.244.254.2/24, 192.168.77.2/24 (outside the cluster CIDR)
#   node netns    n-c 10.244.254.1/24, 192.168.77.1/24 (the Node's InternalIP);
#                 n-e 10.244.255.254/24
#   ep netns      e0 10.244.255.1-10/24: the last Service's endpoints, sluice-connrate server
CLIENT_IP, CLIENT_OUTSIDE_IP = "10.244.254.2", "192.168.77.2"
NODE_CLIENT_IP, NODE_IP, NODE_EP_IP = "10.244.254.1", "192.168.77.1", "10.244.255.254"
LAST_SERVICE_ENDPOINTS = [f"10.244.255.{j + 1}" for j in range(ENDPOINTS)]

SYNC_LINE = re.compile(r"\] sync (\d+) \(([^)]*)\): (\d+) services changed; NodeState in (\d+) us"
                       r"(?:, (\d+) us after the first change)?; (\S+) in (\d+) us")
SYNC_FAILED = re.compile(r"\] sync .* failed")


def log(message):
    sys.stderr.write(f"proxy_nftables_bench: {message}\n")
    sys.stderr.flush()


# ---------------------------------------------------------------------------------- safety net
# Every namespace this run creates is registered before it is created and deleted at exit
# (atexit, SIGINT, SIGTERM, errors). Nothing is done in the host namespace but creating and
# deleting slbn<pid>-* namespaces; links are created inside them.

class Namespaces:
    def __init__(self):
        self.lock = threading.Lock()
        self.names = []

    def add(self, role):
        name = PREFIX + role
        with self.lock:
            self.names.append(name)
        subprocess.run(["ip", "netns", "add", name], check=True)
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        return name

    def delete(self, *names):
        with self.lock:
            for n in names:
                if n in self.names:
                    self.names.remove(n)
        delete_netns(names)

    def delete_all(self):
        with self.lock:
            names, self.names = self.names, []
        delete_netns(names)


def delete_netns(names):
    """Kills what still runs inside (only ours: the names carry this run's prefix), then deletes
    the namespaces."""
    names = [n for n in names
             if n.startswith("slbn") and os.path.exists(os.path.join(NETNS_DIR, n))]
    if not names:
        return
    inodes = set()
    for n in names:
        with contextlib.suppress(OSError):
            inodes.add(os.stat(os.path.join(NETNS_DIR, n)).st_ino)
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{entry}/ns/net").st_ino in inodes:
                    os.kill(int(entry), signal.SIGKILL)
    subprocess.run(["ip", "-force", "-batch", "-"], capture_output=True, text=True,
                   input="".join(f"netns del {n}\n" for n in names))


def sweep():
    """Deletes the slbn<pid>-* namespaces of runs whose process is gone."""
    gone = []
    for n in sorted(os.listdir(NETNS_DIR)) if os.path.isdir(NETNS_DIR) else []:
        m = PREFIX_RE.match(n)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            gone.append(n)
    delete_netns(gone)
    return gone


NETNS = Namespaces()
CHILDREN = alb.Children()


def cleanup():
    CHILDREN.end_all()
    NETNS.delete_all()


atexit.register(cleanup)

_libc = ctypes.CDLL(None, use_errno=True)
_CLONE_NEWNET = 0x40000000


def _setns(fd):
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"setns: {os.strerror(e)}")


@contextlib.contextmanager
def in_netns(name):
    """This thread in netns `name` for the block: a process started meanwhile lives there, with
    no `ip netns exec` in between (it would add some milliseconds to every timed run)."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(os.path.join(NETNS_DIR, name), os.O_RDONLY)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(home)


def timed(ns, argv, stdin_path=None, timeout=None):
    """Runs argv inside ns; (seconds from start to exit, CompletedProcess)."""
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    try:
        with in_netns(ns):
            t = time.perf_counter()
            r = subprocess.run(argv, stdin=stdin, capture_output=True, text=True, timeout=timeout)
            elapsed = time.perf_counter() - t
    finally:
        if stdin_path:
            stdin.close()
    if r.returncode != 0:
        raise RuntimeError(f"[{ns}] {' '.join(argv)}{' < ' + stdin_path if stdin_path else ''} "
                           f"-> exit {r.returncode}: {r.stderr.strip()[:2000]}")
    return elapsed, r


def ns_run(ns, argv, check=True):
    r = subprocess.run(["ip", "netns", "exec", ns] + argv, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"[{ns}] {' '.join(argv)} -> exit {r.returncode}: {r.stderr.strip()}")
    return r


def ip_batch(ns, lines):
    r = subprocess.run(["ip", "-n", ns, "-batch", "-"], capture_output=True, text=True,
                       input="".join(l + "\n" for l in lines))
    if r.returncode != 0:
        raise RuntimeError(f"ip -n {ns} -batch: {r.stderr.strip()}")


def cpu_idle_fraction(window):
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return v[3] + v[4], sum(v)
    i0, t0 = sample()
    time.sleep(window)
    i1, t1 = sample()
    return (i1 - i0) / max(1, t1 - t0)


IDLE_SAMPLES = []  # the machine's idle CPU fraction before each timed run, for the report


def settle(limit=20.0):
    """Waits until the machine is mostly idle (a deleted netns frees its tables in a kernel
    worker after `ip netns del` returns), at most `limit` seconds."""
    t = time.monotonic()
    while time.monotonic() - t < limit:
        idle = cpu_idle_fraction(0.3)
        if idle >= 0.85:
            break
    else:
        log(f"machine still busy after {limit:.0f} s ({idle:.0%} idle; other work on it?); "
            "going on")
    IDLE_SAMPLES.append(idle)


# ---------------------------------------------------------------------------------- workload
# Service i: bench/svc-NNNNN, ClusterIP 10.96.0.16 + i, port 80 (named http) -> 8080, one
# EndpointSlice with 10 ready endpoints. Endpoint addresses come from 10.244.1.0-10.244.253.255
# in order (wrapping: above 6,400 Services an address backs several Services, as a pod can);
# the last Service's endpoints are 10.244.255.1-10, the ep netns of the connection test.
# One endpoint in 50 runs on this node (node-a).

def service_name(i):
    return f"svc-{i:05d}"


def service_ip(i):
    return str(ipaddress.ip_address(SERVICE_BASE + i))


def pod_ip(k):
    return str(ipaddress.ip_address(POD_BASE + k % POD_POOL))


def endpoint_ips(i, size):
    if i == size - 1:
        return list(LAST_SERVICE_ENDPOINTS)
    return [pod_ip(i * ENDPOINTS + j) for j in range(ENDPOINTS)]


def node_name(k):
    return NODE if k % 50 == 0 else f"node-{k % 50:02d}"


def service_manifest(i, ips):
    name = service_name(i)
    svc = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": name, "namespace": NAMESPACE},
           "spec": {"type": "ClusterIP", "clusterIP": service_ip(i), "clusterIPs": [service_ip(i)],
                    "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                    "selector": {"app": name},
                    "ports": [{"name": "http", "protocol": "TCP", "port": SERVICE_PORT,
                               "targetPort": TARGET_PORT}]}}
    eps = [{"addresses": [ip], "conditions": {"ready": True, "serving": True, "terminating": False},
            "nodeName": node_name(i * ENDPOINTS + j),
            "targetRef": {"kind": "Pod", "namespace": NAMESPACE, "name": f"{name}-{j}"}}
           for j, ip in enumerate(ips)]
    eps_slice = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                 "metadata": {"name": f"{name}-x7k2p", "namespace": NAMESPACE,
                              "labels": {"kubernetes.io/service-name": name,
                                         "endpointslice.kubernetes.io/managed-by":
                                             "endpointslice-controller.k8s.io"}},
                 "addressType": "IPv4", "endpoints": eps,
                 "ports": [{"name": "http", "protocol": "TCP", "port": TARGET_PORT}]}
    return {"apiVersion": "v1", "kind": "List", "items": [svc, eps_slice]}


def write_manifest(directory, i, ips):
    """One file per Service and its slice, written to a hidden name and renamed (the source
    skips hidden files), so the agent reads it once, whole."""
    path = os.path.join(directory, service_name(i) + ".json")
    tmp = os.path.join(directory, "." + service_name(i) + ".json.tmp")
    with open(tmp, "w") as f:
        json.dump(service_manifest(i, ips), f, separators=(",", ":"))
    os.rename(tmp, path)


def write_manifests(directory, size):
    os.makedirs(directory)
    node = {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE}},
            "spec": {"podCIDR": "10.244.254.0/24", "podCIDRs": ["10.244.254.0/24"]},
            "status": {"addresses": [{"type": "InternalIP", "address": NODE_IP},
                                     {"type": "Hostname", "address": NODE}]}}
    with open(os.path.join(directory, "node-a.json"), "w") as f:
        json.dump(node, f)
    for i in range(size):
        write_manifest(directory, i, endpoint_ips(i, size))


# ---------------------------------------------------------------------------------- kube-proxy
# What kube-proxy's iptables mode (1.29+) hands to iptables-restore for these Services on a full
# sync: ClusterIP TCP Services with endpoints, --cluster-cidr as local-traffic detector. Over
# 1,000 endpoints it is in "large cluster mode" and leaves out the per-endpoint comments. The
# jumps from the built-in chains, which kube-proxy ensures with single iptables calls, are in the
# text too (the namespace is fresh).

def kube_hash(text):
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]


def kube_proxy_restore_text(size):
    large_cluster = size * ENDPOINTS > 1000
    nat_chains = ["KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"]
    nat_rules = [
        '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
        "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
        "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000",
        '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" '
        "-j MASQUERADE --random-fully",
        "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000",
    ]
    service_rules, chain_rules = [], []
    for i in range(size):
        port_name = f"{NAMESPACE}/{service_name(i)}:http"
        svc_chain = "KUBE-SVC-" + kube_hash(port_name + "tcp")
        nat_chains.append(svc_chain)
        match = (f'-m comment --comment "{port_name} cluster IP" -m tcp -p tcp '
                 f"-d {service_ip(i)}/32 --dport {SERVICE_PORT}")
        service_rules.append(f"-A KUBE-SERVICES {match} -j {svc_chain}")
        chain_rules.append(f"-A {svc_chain} {match} ! -s {CLUSTER_CIDR} -j KUBE-MARK-MASQ")
        ips = endpoint_ips(i, size)
        for j, ip in enumerate(ips):
            target = f"{ip}:{TARGET_PORT}"
            sep_chain = "KUBE-SEP-" + kube_hash(port_name + "tcp" + target)
            nat_chains.append(sep_chain)
            comment = "" if large_cluster else f'-m comment --comment "{port_name} -> {target}" '
            probability = (f"-m statistic --mode random --probability {1 / (len(ips) - j):.10f} "
                           if j < len(ips) - 1 else "")
            chain_rules.append(f"-A {svc_chain} {comment}{probability}-j {sep_chain}")
            comment = "" if large_cluster else f"-m comment --comment {port_name} "
            chain_rules.append(f"-A {sep_chain} {comment}-s {ip}/32 -j KUBE-MARK-MASQ")
            chain_rules.append(f"-A {sep_chain} {comment}-m tcp -p tcp -j DNAT "
                               f"--to-destination {target}")
    service_rules.append('-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; '
                         'NOTE: this must be the last rule in this chain" -m addrtype '
                         "--dst-type LOCAL -j KUBE-NODEPORTS")
    filter_chains = ["KUBE-NODEPORTS", "KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-FIREWALL",
                     "KUBE-FORWARD", "KUBE-PROXY-FIREWALL"]
    filter_rules = [
        '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer '
        'firewall" -j KUBE-PROXY-FIREWALL',
        '-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS',
        '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible '
        'service portals" -j KUBE-EXTERNAL-SERVICES',
        "-A INPUT -j KUBE-FIREWALL",
        '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer '
        'firewall" -j KUBE-PROXY-FIREWALL',
        '-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD',
        '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" '
        "-j KUBE-SERVICES",
        '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible '
        'service portals" -j KUBE-EXTERNAL-SERVICES',
        '-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer '
        'firewall" -j KUBE-PROXY-FIREWALL',
        '-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" '
        "-j KUBE-SERVICES",
        "-A OUTPUT -j KUBE-FIREWALL",
        '-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" '
        "-d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP",
        "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP",
        '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" '
        "-m mark --mark 0x4000/0x4000 -j ACCEPT",
        '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" '
        "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    ]
    out = ["*filter"] + [f":{c} - [0:0]" for c in filter_chains] + filter_rules + ["COMMIT"]
    out += ["*nat"] + [f":{c} - [0:0]" for c in nat_chains] + nat_rules + service_rules
    out += chain_rules + ["COMMIT"]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------- nft text
# `nft list table` output, read as data: chains (their rules), sets and maps (their elements).
# The difference between two listings, written as one `nft -f` transaction, is the peer of the
# agent's incremental sync: whatever the backend's layout, it does what the backend did.

def parse_listing(text):
    """{"chains": {name: (header lines, [rules])},
        "sets": {name: (kind, decl lines, {key: element})}}"""
    chains, sets = {}, {}
    lines = text.splitlines()
    n = 0
    while n < len(lines):
        line = lines[n].strip()
        n += 1
        m = re.match(r"^(chain|set|map) (\S+) \{$", line)
        if not m:
            continue
        kind, name = m.groups()
        body = []
        while lines[n].strip() != "}":
            body.append(lines[n].strip())
            n += 1
        n += 1
        if kind == "chain":
            header = [b for b in body if b.startswith("type ")]
            chains[name] = (header, [b for b in body if b and not b.startswith("type ")])
            continue
        decl, elements, k = [], {}, 0
        while k < len(body):
            b = body[k]
            k += 1
            if not b.startswith("elements = {"):
                if b:
                    decl.append(b)
                continue
            block = b[len("elements = {"):]
            while not block.rstrip().endswith("}"):
                block += " " + body[k]
                k += 1
            for e in block.rstrip()[:-1].split(","):
                e = e.strip()
                if e:
                    elements[e.split(" : ")[0] if kind == "map" else e] = e
        sets[name] = (kind, decl, elements)
    return {"chains": chains, "sets": sets}


def transaction(before, after):
    """nft -f text turning the table `before` into `after`, and a summary of what it touches."""
    t = f"inet {TABLE}"
    out, touched = [], {"chains": 0, "rules": 0, "elements": 0}
    for name, (kind, decl, _) in after["sets"].items():
        if name not in before["sets"]:
            out.append(f"add {kind} {t} {name} {{ {'; '.join(decl)}; }}")
    for name, (header, _) in after["chains"].items():
        if name not in before["chains"]:
            out.append(f"add chain {t} {name}" + (f" {{ {' '.join(header)} }}" if header else ""))
    for name, (kind, _, elements) in after["sets"].items():
        old = before["sets"].get(name, (kind, [], {}))[2]
        gone = [k for k, e in old.items() if elements.get(k) != e]
        new = [e for k, e in elements.items() if old.get(k) != e]
        if gone and name in before["sets"]:
            out.append(f"delete element {t} {name} {{ {', '.join(gone)} }}")
        if new:
            out.append(f"add element {t} {name} {{ {', '.join(new)} }}")
        touched["elements"] += len(set(gone) | {e.split(' : ')[0] for e in new})
    for name, (_, rules) in after["chains"].items():
        old = before["chains"].get(name)
        if old is not None and old[1] == rules:
            continue
        touched["chains"] += 1
        touched["rules"] += len(rules)
        if old is not None:
            out.append(f"flush chain {t} {name}")
        out += [f"add rule {t} {name} {r}" for r in rules]
    for name, (kind, _, elements) in before["sets"].items():
        if name not in after["sets"]:
            out.append(f"delete {kind} {t} {name}")
    for name in before["chains"]:
        if name not in after["chains"]:
            touched["chains"] += 1
            out += [f"flush chain {t} {name}", f"delete chain {t} {name}"]
    return "".join(l + "\n" for l in out), touched


def list_table(ns):
    elapsed, r = timed(ns, ["nft", "list", "table", "inet", TABLE])
    return r.stdout, elapsed


# ---------------------------------------------------------------------------------- the agent

class Agent:
    """sluice-agent in a node netns, its --v=1 sync lines read as they come."""

    def __init__(self, args, ns, manifests, log_path):
        self.ns = ns
        self.argv = ["ip", "netns", "exec", ns, args.agent, "--proxy-mode=nftables",
                     "--manifests", manifests, "--hostname-override", NODE,
                     "--cluster-cidr", CLUSTER_CIDR, "--healthz-bind-address", "127.0.0.1:0",
                     "--metrics-bind-address", "127.0.0.1:0", "--min-sync-period", "0",
                     "--sync-period", "1h", "--v=1"]
        self.log_path = log_path
        self.syncs = {}  # number -> dict
        self.failures = []
        self.cond = threading.Condition()

    def command_line(self):
        return " ".join(self.argv)

    def _on_line(self, t, line):
        m = SYNC_LINE.search(line)
        with self.cond:
            if m:
                self.syncs[int(m.group(1))] = {
                    "t": t, "trigger": m.group(2), "services": int(m.group(3)),
                    "nodestate_us": int(m.group(4)), "backend": m.group(6),
                    "backend_us": int(m.group(7)), "line": line}
                self.cond.notify_all()
            elif SYNC_FAILED.search(line) or line.startswith("E"):
                self.failures.append(line)
                self.cond.notify_all()
        return False

    def start(self):
        self.out = open(self.log_path + ".stdout", "wb")
        self.t0 = time.monotonic()
        self.proc = CHILDREN.spawn(self.argv, stdout=self.out, stderr=subprocess.PIPE)
        self.reader = alb.LineReader(self.proc.stderr, self._on_line)
        self.reader.start()
        return self

    def wait_sync(self, number, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while number not in self.syncs:
                if self.failures:
                    raise RuntimeError(self.trouble("logged an error"))
                if self.proc.poll() is not None:
                    raise RuntimeError(self.trouble(f"exited with {self.proc.returncode}"))
                if time.monotonic() > deadline:
                    raise RuntimeError(self.trouble(f"no sync {number} within {timeout:.0f} s"))
                self.cond.wait(0.05)
            return self.syncs[number]

    def last_sync(self):
        with self.cond:
            return max(self.syncs) if self.syncs else 0

    def trouble(self, what):
        time.sleep(0.2)  # the lines that follow an error
        tail = "\n".join(f"    {l}" for _, l in self.reader.lines[-15:])
        return (f"the agent {what}\n  command: {self.command_line()}\n"
                + (f"  errors: {self.failures}\n" if self.failures else "")
                + f"  last stderr lines:\n{tail}")

    def stop(self):
        CHILDREN.end(self.proc)
        self.reader.join(5)
        self.out.close()
        with open(self.log_path, "w") as f:
            f.writelines(l + "\n" for _, l in self.reader.lines)


# ---------------------------------------------------------------------------------- phases

def full_sync_runs(args, size, manifests, work):
    """--runs agents, each in a fresh node netns, until the first sync. The last one is kept
    running (with its netns) for the changes and the connection rate."""
    runs = []
    for r in range(args.runs):
        settle()
        ns = NETNS.add(f"node{r}")
        agent = Agent(args, ns, manifests, os.path.join(work, f"agent{r}.log")).start()
        first = agent.wait_sync(1, args.sync_timeout)
        hwm_first = alb.proc_status(agent.proc.pid)["VmHWM"]
        run = {"nftables_us": first["backend_us"], "nodestate_us": first["nodestate_us"],
               "start_to_sync_ms": (first["t"] - agent.t0) * 1000,
               "services_changed": first["services"], "trigger": first["trigger"],
               "vmhwm_first_sync_kb": hwm_first}
        runs.append(run)
        log(f"  full sync {r + 1}/{args.runs}: {first['backend']} in "
            f"{first['backend_us'] / 1000:.1f} ms, NodeState in {first['nodestate_us'] / 1000:.1f}"
            f" ms, start to sync line {run['start_to_sync_ms']:.0f} ms ({first['services']} "
            "services)")
        if first["backend"] != "nftables":
            raise RuntimeError(f"the agent's backend is {first['backend']!r}, not nftables")
        if r < args.runs - 1:
            agent.stop()
            NETNS.delete(ns)
    return runs, agent


def endpoint_changes(args, size, manifests, agent, listing, work):
    """--changes one-endpoint changes, one at a time: the agent's figures and, from the listings
    before and after each, the nft transaction doing the same."""
    rng = random.Random(size)
    picks = rng.sample(range(size - 1), min(args.changes, size - 1))
    state = parse_listing(listing)
    results = []
    for k, i in enumerate(picks):
        ips = endpoint_ips(i, size)
        j = rng.randrange(ENDPOINTS)
        old = ips[j]
        # The replacement pod's address: anywhere in the pool, as a new pod gets one.
        while ips[j] in ips[:j] + ips[j + 1:] or ips[j] == old:
            ips[j] = pod_ip(rng.randrange(POD_POOL))
        want = agent.last_sync() + 1
        t = time.monotonic()
        write_manifest(manifests, i, ips)
        sync = agent.wait_sync(want, 30)
        e2e_ms = (sync["t"] - t) * 1000
        time.sleep(0.05)
        if agent.last_sync() != want:
            log(f"  change {k + 1}: more than one sync followed it "
                f"({agent.last_sync() - want + 1})")
        text, list_s = list_table(agent.ns)
        after = parse_listing(text)
        tx, touched = transaction(state, after)
        state = after
        path = os.path.join(work, f"change{k:02d}.nft")
        with open(path, "w") as f:
            f.write(tx)
        results.append({"service": service_name(i), "endpoint": f"{old} -> {ips[j]}",
                        "nftables_us": sync["backend_us"], "nodestate_us": sync["nodestate_us"],
                        "write_to_sync_ms": e2e_ms, "services_changed": sync["services"],
                        "transaction": path, "touched": touched, "list_s": list_s})
        log(f"  change {k + 1}/{len(picks)} {service_name(i)} {old} -> {ips[j]}: nftables in "
            f"{sync['backend_us']} us, write to sync line {e2e_ms:.1f} ms; the same as nft: "
            f"{touched['chains']} chains, {touched['rules']} rules, {touched['elements']} "
            f"elements")
        if touched == {"chains": 0, "rules": 0, "elements": 0}:
            raise RuntimeError(f"change {k + 1} ({service_name(i)}: {old} -> {ips[j]}) left the "
                               f"table as it was: {sync['line']}")
    return results, state


def connection_rate(args, size, node_ns):
    client = NETNS.add("client")
    ep = NETNS.add("ep")
    ip_batch(node_ns, ["link add n-c type veth peer name c0 netns " + client,
                       "link add n-e type veth peer name e0 netns " + ep,
                       f"addr add {NODE_CLIENT_IP}/24 dev n-c", f"addr add {NODE_IP}/24 dev n-c",
                       f"addr add {NODE_EP_IP}/24 dev n-e",
                       "link set n-c up", "link set n-e up"])
    ip_batch(client, [f"addr add {CLIENT_IP}/24 dev c0", f"addr add {CLIENT_OUTSIDE_IP}/24 dev c0",
                      "link set c0 up", f"route add default via {NODE_CLIENT_IP}"])
    ip_batch(ep, [f"addr add {a}/24 dev e0" for a in LAST_SERVICE_ENDPOINTS]
             + ["link set e0 up", f"route add default via {NODE_EP_IP}"])
    ns_run(node_ns, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1",
                     "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0"])
    server = CHILDREN.spawn(["ip", "netns", "exec", ep, args.connrate, "server", "--port",
                             str(TARGET_PORT), "--threads", str(args.conn_server_threads)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = server.stdout.readline().decode()
    if "listening" not in line:
        raise RuntimeError(f"sluice-connrate server: {line} {server.stderr.read().decode()}")
    vip = f"{service_ip(size - 1)}:{SERVICE_PORT}"
    direct = f"{LAST_SERVICE_ENDPOINTS[0]}:{TARGET_PORT}"

    def client_run(to, seconds, source=None):
        argv = ["ip", "netns", "exec", client, args.connrate, "client", "--to", to, "--seconds",
                str(seconds), "--parallel", str(args.conn_parallel)]
        if source:
            argv += ["--from", source]
        r = subprocess.run(argv, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} -> exit {r.returncode}: {r.stderr.strip()}")
        return json.loads(r.stdout)

    def count():
        r = ns_run(node_ns, ["cat", "/proc/sys/net/netfilter/nf_conntrack_count"], check=False)
        return r.stdout.strip()

    # Warm-up (ARP, caches, the server's threads), then direct and service in turn.
    for to in (direct, vip):
        client_run(to, 1)
    rounds = {"direct": [], "service": [], "service_masqueraded": [], "direct_outside": []}
    for n in range(args.conn_rounds):
        for kind, to in (("direct", direct), ("service", vip)):
            r = client_run(to, args.conn_seconds)
            rounds[kind].append(r)
            log(f"  connections {n + 1}/{args.conn_rounds} {kind:8} {to:>18}: "
                f"{r['per_second']:8.0f}/s {r['errors'] or ''} (node conntrack entries "
                f"{count()})")
    if args.conn_masqueraded:
        for kind, to in (("direct_outside", direct), ("service_masqueraded", vip)):
            r = client_run(to, args.conn_seconds, CLIENT_OUTSIDE_IP)
            rounds[kind].append(r)
            log(f"  connections from {CLIENT_OUTSIDE_IP} {kind:20} {to:>18}: "
                f"{r['per_second']:8.0f}/s {r['errors'] or ''}")
    CHILDREN.end(server)
    return rounds, [client, ep]


def peer_nft_full(args, listing_path):
    """`nft -f` of the agent's table into fresh namespaces; the last one is kept loaded."""
    runs, ns = [], None
    for r in range(args.runs):
        if ns:
            NETNS.delete(ns)
        settle()
        ns = NETNS.add(f"nft{r}")
        s, _ = timed(ns, ["nft", "-f", listing_path], timeout=args.peer_timeout)
        runs.append(s * 1000)
        log(f"  nft -f of the same table {r + 1}/{args.runs}: {s * 1000:.1f} ms")
    return runs, ns


def peer_iptables(args, tool, text_path):
    runs = []
    for r in range(args.runs):
        settle()
        ns = NETNS.add(f"ipt{r}")
        t = time.perf_counter()
        try:
            s, _ = timed(ns, [tool, "-w", "5", "--noflush", "--counters"], text_path,
                         timeout=args.peer_timeout)
        except subprocess.TimeoutExpired:
            log(f"  {tool}: no exit within {args.peer_timeout:.0f} s; stopped")
            return runs, f"stopped after {args.peer_timeout:.0f} s"
        except RuntimeError as e:  # a peer's failure is a figure too; the bench goes on
            log(f"  {tool} failed: {e}")
            m = re.search(r"exit (-?\d+)", str(e))
            code = int(m.group(1)) if m else None
            why = (f"killed by signal {-code}" if code is not None and code < 0
                   else f"exit {code}" if code is not None else str(e)[-200:])
            return runs, f"failed after {time.perf_counter() - t:.0f} s: {why}"
        finally:
            NETNS.delete(ns)
        runs.append(s * 1000)
        log(f"  {tool} of kube-proxy's rules {r + 1}/{args.runs}: {s * 1000:.0f} ms")
        if s > args.slow_once:
            return runs, f"measured once: over {args.slow_once:.0f} s"
    return runs, None


def bench_size(args, size, work, res):
    """Fills res as it goes (the JSON keeps what was measured before an error)."""
    log(f"{size} Services x {ENDPOINTS} endpoints")
    manifests = os.path.join(work, "manifests")
    t = time.monotonic()
    write_manifests(manifests, size)
    log(f"  {size} manifest files written in {time.monotonic() - t:.1f} s")
    res.update({"services": size, "endpoints_per_service": ENDPOINTS})
    global IDLE_SAMPLES
    IDLE_SAMPLES = res["idle_before_runs"] = []

    # 1a. Our full sync.
    res["full_sync"], agent = full_sync_runs(args, size, manifests, work)
    alb.wait_until_idle(agent.proc.pid, at_least=0.5, quiet=0.3)
    listing, list_s = list_table(agent.ns)
    listing_path = os.path.join(work, "table.nft")
    with open(listing_path, "w") as f:
        f.write(listing)
    res["table"] = {"bytes": len(listing), "lines": listing.count("\n"), "list_ms": list_s * 1000,
                    "chains": listing.count("\tchain ")}
    log(f"  the agent's table: {res['table']['lines']} lines, {len(listing) / 1e6:.1f} MB, "
        f"`nft list table` {list_s * 1000:.0f} ms")

    # 2a. Our one-endpoint changes.
    res["changes"], final_state = endpoint_changes(args, size, manifests, agent, listing, work)

    # 3. Connection rate, through this agent's rules.
    extra_ns = []
    if args.conn_rounds:
        res["connections"], extra_ns = connection_rate(args, size, agent.ns)

    # 4. Peak memory, after all of the above.
    status = alb.proc_status(agent.proc.pid)
    res["agent_memory_kb"] = {"VmHWM": status["VmHWM"], "VmRSS": status["VmRSS"]}
    res["agent_cpu_s"] = alb.proc_cpu_seconds(agent.proc.pid)
    agent.stop()
    NETNS.delete(agent.ns, *extra_ns)

    # 1b + 2b. nft -f of the same table, then the same changes as nft transactions.
    res["nft_full_ms"], peer = peer_nft_full(args, listing_path)
    settle()
    res["nft_change_ms"] = []
    for c in res["changes"]:
        s, _ = timed(peer, ["nft", "-f", c["transaction"]])
        res["nft_change_ms"].append(s * 1000)
    text, _ = list_table(peer)
    res["nft_changes_same_table"] = parse_listing(text) == final_state
    if not res["nft_changes_same_table"]:
        log("  warning: after the nft transactions the peer's table differs from the agent's")
    log(f"  nft -f of the same changes: median {statistics.median(res['nft_change_ms']):.1f} ms")
    NETNS.delete(peer)

    # 1c. kube-proxy's iptables rules for the same Services.
    ipt_path = os.path.join(work, "kube-proxy.iptables")
    text = kube_proxy_restore_text(size)
    with open(ipt_path, "w") as f:
        f.write(text)
    res["iptables_rules"] = text.count("\n-A ")
    for key, tool in (("iptables_legacy_ms", "iptables-legacy-restore"),
                      ("iptables_nft_ms", "iptables-nft-restore")):
        if key == "iptables_nft_ms" and args.no_iptables_nft:
            continue
        res[key], note = peer_iptables(args, tool, ipt_path)
        if note:
            res[key + "_note"] = note
    shutil.rmtree(manifests, ignore_errors=True)
    return res


# ---------------------------------------------------------------------------------- report

def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))] if s else None


def med(values):
    return statistics.median(values) if values else None


def ms(v):
    if v is None:
        return "-"
    if v >= 10000:
        return f"{v / 1000:,.1f} s"
    return f"{v:,.0f} ms" if v >= 100 else f"{v:.2f} ms" if v < 10 else f"{v:.1f} ms"


def ratio(a, b):
    if a is None or not b:
        return "-"
    r = a / b
    return (f"{r:.2g}" if r < 0.01 else f"{r:.3f}" if r < 10 else f"{r:,.0f}") + "x"


def report(res, args):
    n = res["services"]
    full = res["full_sync"]
    ours_full = med([r["nftables_us"] / 1000 for r in full])
    ch = res["changes"]
    ours_ch = [c["nftables_us"] / 1000 for c in ch]
    e2e = [c["write_to_sync_ms"] for c in ch]
    peer_ch = res["nft_change_ms"]
    runs = f"median of {len(full)}"
    rows = []  # (figure, ours, peer, peer value, ratio)
    rows.append(("full sync", f"{ms(ours_full)}", f"nft -f, same table ({runs})",
                 ms(med(res["nft_full_ms"])), ratio(ours_full, med(res["nft_full_ms"]))))
    for key, tool in (("iptables_legacy_ms", "iptables-legacy-restore"),
                      ("iptables_nft_ms", "iptables-nft-restore")):
        if key in res:
            note = res.get(key + "_note")
            value = med(res[key])
            label = f"{tool}, kube-proxy rules" + (f" ({note})" if note else
                                                   f" (median of {len(res[key])})")
            if value is None and note and note.startswith("failed"):
                rows.append(("", "", f"{tool}, kube-proxy rules: {note[:60]}", "-", "-"))
            elif value is None and note:  # stopped: what it took at least
                value = args.peer_timeout * 1000
                rows.append(("", "", label, "> " + ms(value), "< " + ratio(ours_full, value)))
            else:
                rows.append(("", "", label, ms(value), ratio(ours_full, value)))
    rows.append(("  agent start to first sync line", ms(med([r['start_to_sync_ms'] for r in full])),
                 "", "", ""))
    rows.append(("  agent NodeState", ms(med([r['nodestate_us'] / 1000 for r in full])),
                 "", "", ""))
    rows.append((f"one-endpoint change, p50 ({len(ch)})", ms(med(ours_ch)),
                 "nft -f, same change, p50", ms(med(peer_ch)), ratio(med(ours_ch), med(peer_ch))))
    rows.append(("one-endpoint change, p90", ms(pct(ours_ch, 90)), "nft -f, same change, p90",
                 ms(pct(peer_ch, 90)), ratio(pct(ours_ch, 90), pct(peer_ch, 90))))
    rows.append(("  file write to sync line, p50 / p90",
                 f"{ms(med(e2e))} / {ms(pct(e2e, 90))}", "", "", ""))
    conn = res.get("connections")
    if conn:
        d = med([r["per_second"] for r in conn["direct"]])
        s = med([r["per_second"] for r in conn["service"]])
        k = len(conn["service"])
        rows.append((f"connections/s via ClusterIP (median of {k})", f"{s:,.0f}",
                     f"direct to one endpoint (median of {k})", f"{d:,.0f}", ratio(s, d)))
        if k > 1:
            span = lambda runs: "-".join(f"{f(r['per_second'] for r in runs):,.0f}"
                                         for f in (min, max))
            pairs = [a["per_second"] / b["per_second"]
                     for a, b in zip(conn["service"], conn["direct"])]
            rows.append(("  range of the runs", span(conn["service"]), "", span(conn["direct"]),
                         f"{min(pairs):.2f}-{max(pairs):.2f}x"))
        if conn["service_masqueraded"]:
            sm = conn["service_masqueraded"][0]["per_second"]
            do = conn["direct_outside"][0]["per_second"]
            rows.append(("  client outside the CIDR, masqueraded (1 run)", f"{sm:,.0f}",
                         "direct, same client (1 run)", f"{do:,.0f}", ratio(sm, do)))
    mem = res["agent_memory_kb"]
    rows.append(("agent peak RSS (VmHWM)", f"{mem['VmHWM'] / 1024:.1f} MB", "", "", ""))

    widths = [max(len(r[c]) for r in rows + [("", "sluice", "peer", "", "sluice/peer")])
              for c in range(5)]
    t = res["table"]
    print(f"\n{n:,} Services x {ENDPOINTS} endpoints (ruleset: {t['chains']:,} chains, "
          f"{t['lines']:,} lines listed; kube-proxy: {res['iptables_rules']:,} iptables rules)")
    print(f"  {'':{widths[0]}}  {'sluice':>{widths[1]}}  {'peer':{widths[2]}}  "
          f"{'':>{widths[3]}}  {'sluice/peer':>{widths[4]}}")
    for r in rows:
        print(f"  {r[0]:{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:{widths[2]}}  "
              f"{r[3]:>{widths[3]}}  {r[4]:>{widths[4]}}")
    idle = res["idle_before_runs"]
    if idle:
        print(f"  CPU idle before the timed runs: median {med(idle):.0%}, lowest {min(idle):.0%}"
              " (below 85%: something else ran on the machine)")
    if not res["nft_changes_same_table"]:
        print("  note: after the nft transactions the peer's table differed from the agent's")
    touched = {tuple(c["touched"].values()) for c in ch}
    if touched:
        print("  a one-endpoint change touched (chains, rules, elements): "
              + ", ".join(str(t) for t in sorted(touched)))
    sys.stdout.flush()


def write_json(args, meta, results):
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "sizes": results}, f, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_agent = os.environ.get("SLUICE_AGENT",
                                   os.path.join(ROOT, "build", "agent", "sluice-agent"))
    ap.add_argument("--agent", default=default_agent,
                    help="sluice-agent, a Release build (default: $SLUICE_AGENT or %(default)s)")
    ap.add_argument("--connrate", default=os.environ.get("SLUICE_CONNRATE"),
                    help="sluice-connrate (default: $SLUICE_CONNRATE or "
                    "<the agent's build dir>/bench/proxy-nftables/sluice-connrate)")
    ap.add_argument("--sizes", default="1000,10000,30000",
                    help="Service counts, comma-separated (default %(default)s)")
    ap.add_argument("--runs", type=int, default=3, help="full syncs per size and tool (median)")
    ap.add_argument("--changes", type=int, default=20)
    ap.add_argument("--conn-rounds", type=int, default=3, help="direct/service pairs (0: none)")
    ap.add_argument("--conn-seconds", type=int, default=3)
    ap.add_argument("--conn-parallel", type=int, default=2, help="client threads")
    ap.add_argument("--conn-server-threads", type=int, default=2)
    ap.add_argument("--no-conn-masqueraded", dest="conn_masqueraded", action="store_false",
                    help="skip the run with the client outside the cluster CIDR")
    ap.add_argument("--no-iptables-nft", action="store_true", help="skip iptables-nft-restore")
    ap.add_argument("--slow-once", type=float, default=60.0,
                    help="a peer run longer than this many seconds is not repeated")
    ap.add_argument("--peer-timeout", type=float, default=300.0,
                    help="seconds a peer tool may take before it is stopped (iptables-nft-restore "
                    "of 10,000 Services takes longer: its figure is then \"> this\")")
    ap.add_argument("--sync-timeout", type=float, default=300.0)
    ap.add_argument("--json", help="write the raw figures here")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (listings, "
                    "transactions, kube-proxy's rules, agent logs) and print where it is")
    ap.add_argument("--sweep", action="store_true",
                    help="only delete namespaces left by earlier runs that were SIGKILLed")
    args = ap.parse_args()
    if os.geteuid() != 0:
        ap.error("needs root (network namespaces)")
    if args.sweep:
        gone = sweep()
        log(f"deleted {len(gone)} namespaces: {' '.join(gone)}" if gone else "nothing to delete")
        return 0
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if min(sizes) < 2 or args.runs < 1:
        ap.error("each size must be at least 2, --runs at least 1")
    build = os.path.dirname(os.path.dirname(os.path.abspath(args.agent)))
    if args.connrate is None:
        args.connrate = os.path.join(build, "bench", "proxy-nftables", "sluice-connrate")
    for path, target in ((args.agent, "sluice-agent"), (args.connrate, "sluice-connrate")):
        if not os.access(path, os.X_OK):
            ap.error(f"no {path}: build it with `cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "
                     f"&& cmake --build build --target {target}` or pass its path")
    build_type = alb.build_type(build)
    if build_type not in ("Release", "RelWithDebInfo"):
        log(f"warning: {args.agent} is a {build_type} build: its figures mean little")
    for tool in ("nft", "iptables-legacy-restore", "iptables-nft-restore"):
        if not shutil.which(tool):
            ap.error(f"{tool} is not installed")

    def on_term(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    work = tempfile.mkdtemp(prefix="sluice-proxy-nft-bench-")
    meta = {"agent": args.agent, "build_type": build_type, "cpus": os.cpu_count(),
            "kernel": os.uname().release, "loadavg_at_start": os.getloadavg(),
            "nft": subprocess.run(["nft", "--version"], capture_output=True,
                                  text=True).stdout.strip(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"), "args": vars(args)}
    log(f"agent {args.agent} ({build_type}); {os.cpu_count()} CPUs, load {meta['loadavg_at_start']}"
        f"; work dir {work}")
    results = []
    try:
        for size in sizes:
            d = os.path.join(work, str(size))
            os.makedirs(d)
            t = time.monotonic()
            results.append({})
            bench_size(args, size, d, results[-1])
            results[-1]["bench_seconds"] = time.monotonic() - t
            report(results[-1], args)
            write_json(args, meta, results)
        return 0
    except KeyboardInterrupt as e:
        log(f"interrupted ({e or 'Ctrl-C'}); cleaning up")
        if results:
            results[-1]["error"] = f"interrupted ({e or 'Ctrl-C'})"
        return 130
    except RuntimeError as e:
        log(f"error: {e}")
        if results:
            results[-1]["error"] = str(e)
        return 1
    finally:
        cleanup()
        write_json(args, meta, results)
        if args.keep:
            log(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
