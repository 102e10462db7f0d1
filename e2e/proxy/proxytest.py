"""Shared machinery of the kernel proxy end-to-end suite (e2e/proxy).

A small cluster made of network namespaces, judged only by what real packets do:

          gw (.1): br0, the "lan" 192.168.50.0/24 + fd00:50::/64
        +---------------------+-------------------------+
    client (.3, .5)      node (.2, .12) = node-a       nodeb (.4) = node-b
                         br0 10.244.1.1/24             br0 10.244.2.1/24
                         pa1 pa2 pa3 pa4               pb1 pb2

- node (192.168.50.2 and a second address .12, fd00:50::2/::12) is node-a: the agent runs
  there, forwarding on, a bridge 10.244.1.1/24 + fd00:244:0:1::1/64 for its pods (hairpin on, as
  the kubelet sets it; bridge-nf-call-ip(6)tables on, as Kubernetes needs);
- nodeb (192.168.50.4) is node-b: it only routes its pods 10.244.2.0/24 + fd00:244:0:2::/64; its
  endpoints appear in slices with nodeName node-b;
- client (192.168.50.3 and .5, fd00:50::3/::5) is outside the cluster; it routes the service,
  external and load-balancer ranges via node-a and knows no pod route;
- gw (192.168.50.1) owns the lan bridge and routes the pod CIDRs to the nodes; anything else
  it answers with ICMP host unreachable, and node-a's default route points at it. So a packet
  the proxy does not handle comes back as "unreachable", one it rejects as ECONNREFUSED
  ("refused"), one it drops as silence ("timeout").

Every pod runs podserver.py (TCP, UDP and SCTP on 8080/8081, both families, answering
"<pod> <client-ip>"). Probes run in this process: sockets are created inside the namespace of
the prober (setns on the creating thread) and used from here, so a probe costs a connect, not
a process.

Kernel settings of the test namespaces, each for a reason: ICMP rate limits off or raised (a
burst of rejects must not turn "refused" into "timeout"), redirects off (node-a forwards client traffic to
node-b's pods on the interface it came in on; a redirect would teach the client a shortcut
around the proxy), DAD off (addresses usable at once), rp_filter off.

Everything created is registered before it is created and removed by the class cleanup, an
atexit hook and SIGINT/SIGTERM handlers, also after failures. Nothing touches the host
namespace. `python3 -m proxy.proxytest sweep` (from e2e/) removes what a SIGKILLed run left.
"""

import collections
import itertools
import os
import random
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import yaml

import nstest
from nstest import (  # noqa: F401 (re-exported: the suite's tests import them from here)
    NETNS_DIR, Netns, af, concurrently, delete_netns, family_of, http_get, kill_proc,
    run_parallel)
from proxy import podserver

HERE = os.path.dirname(os.path.abspath(__file__))
AGENT = os.environ.get("SLUICE_AGENT", "")
PYTHON = sys.executable or "/usr/bin/python3"

# The backend's table. The agent programs this one table and nothing else.
TABLE_FAMILY = "inet"
TABLE = "sluice-proxy"

NODE_NAME = "node-a"
REMOTE_NODE_NAME = "node-b"
CLUSTER_CIDRS = ("10.244.0.0/16", "fd00:244::/48")
SYNC_PERIOD = 2.0  # --sync-period of the agents started here
SERVER_PORTS = (8080, 8081)  # where every pod listens (TCP, UDP, SCTP)
PROTOCOLS = ("TCP", "UDP", "SCTP")

PROBE_TIMEOUT = 1.0  # a probe that hears nothing for this long is a "timeout"
POLL_TIMEOUT = 0.3   # one attempt while polling for a change to apply
APPLY_TIMEOUT = 10.0  # a manifest change must show in traffic within this

RUN_ID = os.getpid() % 100000
PREFIX = f"slpx{RUN_ID}"  # netns "slpx1234-node1"
STATE_ROOT = "/tmp/sluice-e2e-proxy"  # <STATE_ROOT>/<PREFIX>/: pid file, manifests, logs

# Addresses, per family.
LAN_PREFIXLEN = {4: 24, 6: 64}
GW_IP = {4: "192.168.50.1", 6: "fd00:50::1"}
NODE_IP = {4: "192.168.50.2", 6: "fd00:50::2"}       # the Node's InternalIPs
NODE_IP2 = {4: "192.168.50.12", 6: "fd00:50::12"}    # another local address of node-a
NODEB_IP = {4: "192.168.50.4", 6: "fd00:50::4"}
CLIENT_IP = {4: "192.168.50.3", 6: "fd00:50::3"}
CLIENT_IP2 = {4: "192.168.50.5", 6: "fd00:50::5"}   # outside loadBalancerSourceRanges
# The nodes' pod CIDRs lie inside CLUSTER_CIDRS: fd00:244:0:1::/64, not fd00:244:1::/64, which
# is outside fd00:244::/48.
POD_CIDR = {NODE_NAME: {4: "10.244.1.0/24", 6: "fd00:244:0:1::/64"},
            REMOTE_NODE_NAME: {4: "10.244.2.0/24", 6: "fd00:244:0:2::/64"}}
POD_GW = {NODE_NAME: {4: "10.244.1.1", 6: "fd00:244:0:1::1"},
          REMOTE_NODE_NAME: {4: "10.244.2.1", 6: "fd00:244:0:2::1"}}
POD_NET = {NODE_NAME: {4: "10.244.1.", 6: "fd00:244:0:1::"},
           REMOTE_NODE_NAME: {4: "10.244.2.", 6: "fd00:244:0:2::"}}
SERVICE_CIDR = {4: "10.96.0.0/16", 6: "fd00:96::/112"}
EXTERNAL_CIDR = {4: "203.0.113.0/24", 6: "2001:db8:e::/64"}
LB_CIDR = {4: "198.51.100.0/24", 6: "2001:db8:1b::/64"}
FAMILIES = (4, 6)
ADDRESS_TYPE = {4: "IPv4", 6: "IPv6"}


# ---------------------------------------------------------------------------
# The safety net (nstest): everything a run creates, removed at exit and on SIGINT/SIGTERM

REGISTRY = nstest.Run(STATE_ROOT, PREFIX)


def sweep(dry_run=False):
    """Removes namespaces and state of earlier runs whose process is gone (SIGKILL)."""
    return nstest.sweep(STATE_ROOT, dry_run)


_seq = itertools.count(1)


# ---------------------------------------------------------------------------
# The topology

class Pod:
    def __init__(self, name, node, index, ns):
        self.name = name
        self.node = node
        self.ns = ns
        self.ip = {f: POD_NET[node][f] + str(10 + index) for f in FAMILIES}
        self.server = None

    def __repr__(self):
        return f"Pod({self.name} on {self.node} {self.ip[4]} {self.ip[6]})"

    @property
    def local(self):
        return self.node == NODE_NAME


_ALL_NS = nstest.SYSCTL_ALL_NS
_ROUTER = nstest.SYSCTL_ROUTER
_NODE = nstest.SYSCTL_NODE


_GW_RULES = nstest.GATEWAY_REJECT_RULES


class Topology:
    """The namespaces above. build() makes them and starts the pod servers; destroy() removes
    everything (also after a failed build)."""

    def __init__(self, local_pods=("pa1", "pa2", "pa3", "pa4"), remote_pods=("pb1", "pb2")):
        self.local_names = tuple(local_pods)
        self.remote_names = tuple(remote_pods)
        self.namespaces = []
        self.pods = {}
        self.procs = []
        self.gw = self.node = self.nodeb = self.client = None

    def _netns(self, tag):
        ns = Netns(f"{PREFIX}-{tag}{next(_seq)}")
        with REGISTRY.lock:
            REGISTRY.netns.append(ns.name)  # registered first: a signal mid-create still cleans it
        self.namespaces.append(ns)
        return ns

    def build(self):
        REGISTRY.run_dir()
        self.gw, self.node = self._netns("gw"), self._netns("node")
        self.nodeb, self.client = self._netns("nodeb"), self._netns("client")
        for names, node in ((self.local_names, NODE_NAME), (self.remote_names, REMOTE_NODE_NAME)):
            for i, name in enumerate(names, 1):
                self.pods[name] = Pod(name, node, i, self._netns(name))
        nstest.create_netns([ns.name for ns in self.namespaces])

        # Sysctls first: links created afterwards inherit the "default" values.
        jobs = []
        for ns in self.namespaces:
            settings = dict(_ALL_NS)
            if ns in (self.gw, self.node, self.nodeb):
                settings.update(_ROUTER)
            if ns is self.node:
                settings.update(_NODE)
            jobs.append((ns.sysctl_argv(settings), None))
        run_parallel(jobs)

        # Links, each made from the namespace that owns the bridge (peers land in the other).
        run_parallel([self.gw.batch_argv(self._gw_links()),
                      self.node.batch_argv(self._bridge_links(self.node, self.local_names)),
                      self.nodeb.batch_argv(self._bridge_links(self.nodeb, self.remote_names))])
        # Addresses and routes everywhere.
        jobs = [self.gw.batch_argv(self._gw_config()),
                self.node.batch_argv(self._node_config(NODE_NAME)),
                self.nodeb.batch_argv(self._node_config(REMOTE_NODE_NAME)),
                self.client.batch_argv(self._client_config())]
        jobs += [p.ns.batch_argv(self._pod_config(p)) for p in self.pods.values()]
        jobs.append((["ip", "netns", "exec", self.gw.name, "nft", "-f", "-"], _GW_RULES))
        run_parallel(jobs)
        self._start_servers()
        self._wait_connected()
        return self

    # -- ip batches

    def _gw_links(self):
        lines = ["link set lo up", "link add br0 type bridge forward_delay 0",
                 # Where unrouted packets go to be rejected (no dummy links in this kernel).
                 "link add sink0 type veth peer name sink1"]
        for port, ns in (("to-node", self.node), ("to-nodeb", self.nodeb),
                         ("to-client", self.client)):
            lines += [f"link add {port} type veth peer name lan netns {ns.name}",
                      f"link set {port} master br0", f"link set {port} up"]
        return lines

    def _bridge_links(self, ns, pod_names):
        lines = ["link set lo up", "link add br0 type bridge forward_delay 0"]
        for name in pod_names:
            port = f"v{name}"
            lines += [f"link add {port} type veth peer name eth0 netns {self.pods[name].ns.name}",
                      f"link set {port} master br0",
                      f"link set {port} type bridge_slave hairpin on",
                      f"link set {port} up"]
        return lines + ["link set br0 up"]

    def _gw_config(self):
        lines = [f"addr add {GW_IP[f]}/{LAN_PREFIXLEN[f]} dev br0" for f in FAMILIES]
        lines.append("link set br0 up")
        for node, via in ((NODE_NAME, NODE_IP), (REMOTE_NODE_NAME, NODEB_IP)):
            lines += [f"route add {POD_CIDR[node][f]} via {via[f]}" for f in FAMILIES]
        return lines + ["link set sink1 up", "link set sink0 up",
                        "route add 0.0.0.0/0 dev sink0", "route add ::/0 dev sink0"]

    def _node_config(self, node):
        me, other = (NODE_IP, NODEB_IP) if node == NODE_NAME else (NODEB_IP, NODE_IP)
        other_node = REMOTE_NODE_NAME if node == NODE_NAME else NODE_NAME
        lines = ["link set lan up"]
        for f in FAMILIES:
            lines.append(f"addr add {me[f]}/{LAN_PREFIXLEN[f]} dev lan")
            lines.append(f"addr add {POD_GW[node][f]}/{POD_CIDR[node][f].split('/')[1]} dev br0")
        if node == NODE_NAME:
            # A second local address NodePorts may or may not answer on; deprecated for v6 so
            # the node's own traffic keeps leaving from the primary address.
            lines.append(f"addr add {NODE_IP2[4]}/24 dev lan")
            lines.append(f"addr add {NODE_IP2[6]}/64 dev lan preferred_lft 0")
        for f in FAMILIES:
            lines.append(f"route add {POD_CIDR[other_node][f]} via {other[f]}")
        lines += [f"route add 0.0.0.0/0 via {GW_IP[4]}", f"route add ::/0 via {GW_IP[6]}"]
        return lines

    def _client_config(self):
        lines = ["link set lo up", "link set lan up"]
        for f in FAMILIES:
            lines.append(f"addr add {CLIENT_IP[f]}/{LAN_PREFIXLEN[f]} dev lan")
            # The second address is only used when bound to (deprecated for v6, secondary for
            # v4), so unbound probes leave from CLIENT_IP.
            lines.append(f"addr add {CLIENT_IP2[f]}/{LAN_PREFIXLEN[f]} dev lan" +
                         (" preferred_lft 0" if f == 6 else ""))
            for cidr in (SERVICE_CIDR, EXTERNAL_CIDR, LB_CIDR):
                lines.append(f"route add {cidr[f]} via {NODE_IP[f]}")
        return lines

    def _pod_config(self, pod):
        lines = ["link set lo up", "link set eth0 up"]
        for f in FAMILIES:
            plen = POD_CIDR[pod.node][f].split("/")[1]
            lines.append(f"addr add {pod.ip[f]}/{plen} dev eth0")
        lines += [f"route add 0.0.0.0/0 via {POD_GW[pod.node][4]}",
                  f"route add ::/0 via {POD_GW[pod.node][6]}"]
        return lines

    # -- pod servers

    def _start_servers(self):
        log_dir = os.path.join(REGISTRY.run_dir(), "podservers")
        os.makedirs(log_dir, exist_ok=True)
        for pod in self.pods.values():
            log = open(os.path.join(log_dir, f"{pod.ns.name}.log"), "w")
            p = subprocess.Popen(
                ["ip", "netns", "exec", pod.ns.name, PYTHON, os.path.join(HERE, "podserver.py"),
                 "--name", pod.name, "--ports", ",".join(map(str, SERVER_PORTS))],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                start_new_session=True)
            log.close()
            REGISTRY.add_proc(p)
            self.procs.append(p)
            pod.server = p
        deadline = time.monotonic() + 15
        for pod in self.pods.values():
            p = pod.server
            ready, _, _ = select.select([p.stdout], [], [], max(0.0, deadline - time.monotonic()))
            line = p.stdout.readline().decode().strip() if ready else ""
            if line != "ready":
                log = os.path.join(log_dir, f"{pod.ns.name}.log")
                raise RuntimeError(f"pod server {pod.name} did not start: {line!r} "
                                   f"{open(log).read().strip()}")

    def _wait_connected(self):
        """Every pod answers the node in both families, and the client reaches node-a."""
        for pod in self.pods.values():
            for f in FAMILIES:
                wait_until(lambda: tcp(self.node, pod.ip[f], SERVER_PORTS[0], timeout=0.5),
                           lambda r: r.ok, f"node-a -> {pod.name} {pod.ip[f]}", timeout=10)
        for f in FAMILIES:
            # Nothing listens on port 9 of node-a: its RST proves the lan works.
            wait_until(lambda: tcp(self.client, NODE_IP[f], 9, timeout=0.5),
                       lambda r: r.error == "refused", f"client -> node-a {NODE_IP[f]}",
                       timeout=10)
            # The gateway answers what nobody routes. (A new namespace starts with no ICMP
            # credit, so its very first error may be swallowed: this spends that.)
            unrouted = {4: "10.96.255.254", 6: "fd00:96::fffe"}[f]
            wait_until(lambda: udp(self.node, unrouted, 9, timeout=0.2),
                       lambda r: r.error == "unreachable", f"gw: {unrouted} unreachable",
                       timeout=10)

    def destroy(self):
        for p in self.procs:
            kill_proc(p)
        self.procs.clear()
        names = [ns.name for ns in self.namespaces]
        delete_netns(names)
        with REGISTRY.lock:
            REGISTRY.forget_netns(names)
        self.namespaces.clear()

    # -- queries

    def local_pods(self):
        return [p for p in self.pods.values() if p.local]

    def remote_pods(self):
        return [p for p in self.pods.values() if not p.local]

    def node_addresses(self):
        """Every address of node-a: what a masqueraded packet may carry as its source."""
        return {NODE_IP[4], NODE_IP[6], NODE_IP2[4], NODE_IP2[6],
                POD_GW[NODE_NAME][4], POD_GW[NODE_NAME][6]}


# ---------------------------------------------------------------------------
# Probes: one exchange with whatever answers at ip:port, from inside a namespace

class Reply:
    """What one probe got: the pod that answered and the source address it saw, or the kind
    of failure: "refused" (RST or ICMP port unreachable), "unreachable" (ICMP host/net/protocol
    unreachable), "timeout" (silence: a drop), "eperm" (dropped by the local output path), or
    "error: ..."."""

    __slots__ = ("pod", "seen", "error", "elapsed", "via")

    def __init__(self, pod=None, seen=None, error=None, elapsed=0.0, via=None):
        self.pod, self.seen, self.error, self.elapsed = pod, seen, error, elapsed
        self.via = via  # a refused TCP connect: "rst" or "icmp"

    @property
    def ok(self):
        return self.error is None

    def __repr__(self):
        if self.ok:
            return f"<{self.pod} saw {self.seen}>"
        via = f" ({self.via})" if self.via else ""
        return f"<{self.error}{via} after {self.elapsed:.2f}s>"

    @classmethod
    def parse(cls, text, elapsed):
        parts = text.strip().split()
        if len(parts) != 2:
            return cls(error=f"error: unexpected answer {text!r}", elapsed=elapsed)
        return cls(parts[0], parts[1], None, elapsed)


def _failure(e, start):
    return Reply(error=nstest.failure_kind(e), elapsed=time.monotonic() - start)


_probe_socket = nstest.probe_socket
_icmp_queued = nstest.icmp_queued
_bind = nstest.bind_to


def _send(sock, data, start, timeout):
    """send(); None or the failure as a Reply (nstest.send_or_failure)."""
    kind = nstest.send_or_failure(sock, data, timeout)
    return Reply(error=kind, elapsed=time.monotonic() - start) if kind else None


def tcp(where, ip, port, src=None, timeout=PROBE_TIMEOUT):
    """Connects from `where` (a Netns or a Pod), reads the answer line."""
    start = time.monotonic()
    s = _probe_socket(where, family_of(ip), socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        _bind(s, src)
        try:
            s.connect((ip, port))
        except ConnectionRefusedError as e:
            refused = _failure(e, start)
            refused.via = "icmp" if _icmp_queued(s) else "rst"
            return refused
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(256)
            if not chunk:
                break
            data += chunk
        return Reply.parse(data.decode(errors="replace"), time.monotonic() - start)
    except OSError as e:
        return _failure(e, start)
    finally:
        s.close()


def udp(where, ip, port, src=None, sport=0, timeout=PROBE_TIMEOUT):
    """One datagram from a fresh socket (a new conntrack entry each time unless sport is set)."""
    start = time.monotonic()
    s = _probe_socket(where, family_of(ip), socket.SOCK_DGRAM)
    try:
        s.settimeout(timeout)
        if sport:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        _bind(s, src, sport)
        s.connect((ip, port))
        failed = _send(s, b"ping\n", start, timeout)
        if failed:
            return failed
        return Reply.parse(s.recv(512).decode(errors="replace"), time.monotonic() - start)
    except OSError as e:
        return _failure(e, start)
    finally:
        s.close()


def sctp(where, ip, port, src=None, timeout=PROBE_TIMEOUT):
    """An SCTP INIT from a random source port; the INIT-ACK's cookie names the pod. Raw
    sockets (see podserver.py): ICMP errors reach the connected socket through IP_RECVERR."""
    start = time.monotonic()
    family = family_of(ip)
    s = _probe_socket(where, family, socket.SOCK_RAW, socket.IPPROTO_SCTP)
    try:
        _bind(s, src)
        s.connect((ip, 0))
        sport = random.randint(32768, 60999)
        tag = random.randint(1, 0xFFFFFFFF)
        failed = _send(s, podserver.sctp_init(sport, port, tag, random.randint(0, 0xFFFFFFFF)),
                       start, timeout)
        if failed:
            return failed
        deadline = start + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return Reply(error="timeout", elapsed=time.monotonic() - start)
            s.settimeout(left)
            data = s.recv(65535)
            if family == 4:
                data, _ = podserver.strip_ip_header(data)
            parsed = podserver.sctp_parse(data)
            if not parsed:
                continue
            psport, pdport, vtag, ctype, value = parsed
            if (psport, pdport, vtag) != (port, sport, tag):
                continue
            if ctype == podserver.SCTP_ABORT:
                return Reply(error="refused", elapsed=time.monotonic() - start)
            if ctype == podserver.SCTP_INIT_ACK:
                cookie = podserver.init_ack_cookie(value) or b""
                return Reply.parse(cookie.decode(errors="replace"), time.monotonic() - start)
    except OSError as e:
        return _failure(e, start)
    finally:
        s.close()


_PROBES = {"TCP": tcp, "UDP": udp, "SCTP": sctp}


def probe(where, proto, ip, port, **kw):
    return _PROBES[proto](where, ip, port, **kw)


class UdpFlow:
    """One UDP 'connection' with a fixed source port: every datagram hits the same conntrack
    entry for as long as it lives."""

    def __init__(self, where, ip, port, sport):
        self.sock = _probe_socket(where, family_of(ip), socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        _bind(self.sock, None, sport)
        self.sock.connect((ip, port))

    def exchange(self, timeout=POLL_TIMEOUT):
        """One datagram and its answer (answers that came too late for earlier exchanges are
        dropped first)."""
        start = time.monotonic()
        try:
            self.sock.setblocking(False)
            while True:
                try:
                    self.sock.recv(512)
                except (BlockingIOError, ConnectionRefusedError):
                    break
            failed = _send(self.sock, b"ping\n", start, timeout)
            if failed:
                return failed
            self.sock.settimeout(timeout)
            return Reply.parse(self.sock.recv(512).decode(errors="replace"),
                               time.monotonic() - start)
        except OSError as e:
            return _failure(e, start)

    def close(self):
        self.sock.close()


def wait_until(fn, accept, what, timeout=APPLY_TIMEOUT, interval=0.05):
    """Calls fn() until accept(value); returns that value (nstest.wait_until)."""
    return nstest.wait_until(fn, accept, what, timeout=timeout, interval=interval)


# ---------------------------------------------------------------------------
# Manifests

def node_object(name=NODE_NAME):
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "spec": {"podCIDR": POD_CIDR[name][4], "podCIDRs": [POD_CIDR[name][4],
                                                                 POD_CIDR[name][6]]},
            "status": {"addresses": [{"type": "InternalIP", "address": NODE_IP[4]},
                                     {"type": "InternalIP", "address": NODE_IP[6]},
                                     {"type": "Hostname", "address": name}]}}


def service_ports(protocols=PROTOCOLS, port=80, target=SERVER_PORTS[0], node_port=None):
    """One service port per protocol, named after it ("tcp", "udp", "sctp")."""
    out = []
    for proto in protocols:
        p = {"name": proto.lower(), "protocol": proto, "port": port, "targetPort": target}
        if node_port:
            p["nodePort"] = node_port
        out.append(p)
    return out


def service(name, cluster_ips, ports=None, type_="ClusterIP", labels=None, namespace="default",
            lb_ips=(), **spec):
    """A Service with the given ClusterIPs (their families give ipFamilies). lb_ips go to
    status.loadBalancer.ingress."""
    families = [ADDRESS_TYPE[family_of(ip)] for ip in cluster_ips]
    body = {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"type": type_, "selector": {"app": name},
                     "clusterIP": cluster_ips[0], "clusterIPs": list(cluster_ips),
                     "ipFamilies": families,
                     "ipFamilyPolicy": "RequireDualStack" if len(families) > 1 else "SingleStack",
                     "ports": ports if ports is not None else service_ports()}}
    if labels:
        body["metadata"]["labels"] = dict(labels)
    body["spec"].update(spec)
    if lb_ips:
        body["status"] = {"loadBalancer": {"ingress": [{"ip": ip} for ip in lb_ips]}}
    return body


class Endpoint:
    """An endpoint of a slice: a pod and its conditions (serving defaults to ready)."""

    def __init__(self, pod, ready=True, serving=None, terminating=False):
        self.pod = pod
        self.ready = ready
        self.serving = ready if serving is None else serving
        self.terminating = terminating

    def to_json(self, family):
        return {"addresses": [self.pod.ip[family]], "nodeName": self.pod.node,
                "conditions": {"ready": self.ready, "serving": self.serving,
                               "terminating": self.terminating},
                "targetRef": {"kind": "Pod", "namespace": "default", "name": self.pod.name}}


def endpoint_slices(svc, endpoints, families=None, suffix=""):
    """One EndpointSlice per family of the Service, its ports those of the Service (by name
    and protocol, numbered with the target port). endpoints: Pods or Endpoints."""
    name = svc["metadata"]["name"]
    eps = [e if isinstance(e, Endpoint) else Endpoint(e) for e in endpoints]
    ports = [{"name": p["name"], "protocol": p["protocol"], "port": p["targetPort"]}
             for p in svc["spec"]["ports"]]
    if families is None:
        families = [4 if t == "IPv4" else 6 for t in svc["spec"]["ipFamilies"]]
    out = []
    for f in families:
        out.append({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                    "metadata": {"name": f"{name}-ipv{f}{suffix}",
                                 "namespace": svc["metadata"]["namespace"],
                                 "labels": {"kubernetes.io/service-name": name,
                                            "endpointslice.kubernetes.io/managed-by": "e2e"}},
                    "addressType": ADDRESS_TYPE[f],
                    "endpoints": [e.to_json(f) for e in eps],
                    "ports": ports})
    return out


class ManifestDir:
    """The agent's --manifests directory. Writes are atomic (a hidden temp file renamed)."""

    def __init__(self, path):
        self.path = path
        os.makedirs(path, exist_ok=True)

    def write(self, name, *objs):
        tmp = os.path.join(self.path, f".{name}.yaml.tmp")
        with open(tmp, "w") as f:
            yaml.safe_dump_all(list(objs), f, sort_keys=False)
        os.rename(tmp, os.path.join(self.path, f"{name}.yaml"))

    def remove(self, name):
        try:
            os.remove(os.path.join(self.path, f"{name}.yaml"))
        except FileNotFoundError:
            pass


# ---------------------------------------------------------------------------
# The agent

class BackendMissing(Exception):
    """The agent exited saying this backend is not part of the build."""


class Agent:
    """sluice-agent --proxy-mode=nftables inside node-a's namespace."""

    SYNC = re.compile(r"\] sync (\d+) \(")

    def __init__(self, node, manifests, *extra, log_name="agent"):
        self.node = node
        self.args = [AGENT, "--proxy-mode=nftables", "--manifests", manifests,
                     "--hostname-override", NODE_NAME, "--cluster-cidr", ",".join(CLUSTER_CIDRS),
                     "--healthz-bind-address", "127.0.0.1:0",
                     "--metrics-bind-address", "127.0.0.1:0",
                     "--min-sync-period", "0", "--sync-period", f"{SYNC_PERIOD:g}s", "--v=1",
                     *extra]
        self.lock = threading.Lock()
        self.err = []
        self.syncs = 0  # the number of the last "sync N (" line
        self.proc = None
        self.threads = []

    def start(self):
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.node.name] + self.args,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True)
        REGISTRY.add_proc(self.proc)
        self.threads = [threading.Thread(target=self._read_err, daemon=True),
                        threading.Thread(target=self._drain_out, daemon=True)]
        for t in self.threads:
            t.start()
        return self

    def _read_err(self):
        for line in self.proc.stderr:
            line = line.rstrip("\n")
            with self.lock:
                self.err.append(line)
                m = self.SYNC.search(line)
                if m:
                    self.syncs = int(m.group(1))

    def _drain_out(self):
        for line in self.proc.stdout:
            with self.lock:
                self.err.append("stdout: " + line.rstrip("\n"))

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_sync(self, after=0, timeout=20):
        """Waits for a sync line numbered above `after`; raises BackendMissing or a failure
        with the log when the agent exits instead."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.syncs > after:
                    return self.syncs
            if self.proc.poll() is not None:
                for t in self.threads:
                    t.join(2)
                log = "\n".join(self.err[-20:])
                if "not part of this build" in log:
                    raise BackendMissing(log)
                raise AssertionError(f"sluice-agent exited ({self.proc.returncode}):\n{log}")
            time.sleep(0.02)
        raise AssertionError(f"no sync after #{after} within {timeout}s; log:\n"
                             + "\n".join(self.log_tail()))

    def log_tail(self, n=40):
        with self.lock:
            return list(self.err[-n:])

    def kill(self):
        """SIGKILL: the agent gets no chance to tidy up."""
        if self.running():
            self.proc.kill()
        self.proc.wait(10)
        for t in self.threads:
            t.join(5)

    def stop(self):
        """SIGTERM; the exit status."""
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for t in self.threads:
            t.join(5)
        return self.proc.returncode


def run_cleanup(node):
    """`sluice-agent --cleanup --proxy-mode=nftables` in node-a's namespace."""
    return node.run([AGENT, "--cleanup", "--proxy-mode=nftables"], check=False, timeout=30)


# ---------------------------------------------------------------------------
# Reading the table back (only where a test is about the table itself)

_COUNTER = re.compile(r"\s*counter packets \d+ bytes \d+")
_BLOCK = re.compile(
    r"^\s*(table|chain|set|map|flowtable)\s+(.+?)\s*\{\s*(?:#\s*handle\s+(\d+))?\s*$")
_RULE_HANDLE = re.compile(r"^(.*?)\s*#\s*handle\s+(\d+)\s*$")


def nft_table(node, family=TABLE_FAMILY, table=TABLE, handles=True):
    """`nft [-a] list table`, counters removed; None when there is no such table."""
    args = ["-a"] if handles else []
    r = node.nft(*args, "list", "table", family, table, check=False)
    if r.returncode != 0:
        return None
    return "\n".join(_COUNTER.sub("", l) for l in r.stdout.splitlines())


class TableListing:
    """An `nft -a list table` parsed: objects (chains, sets, maps) with their handles and,
    for chains, their rules as (text, handle)."""

    def __init__(self, text):
        self.handles = {}  # ("chain", name) -> handle
        self.rules = {}    # chain name -> [(text, handle)]
        stack = []
        for line in (text or "").splitlines():
            m = _BLOCK.match(line)
            if m:
                kind, name = m.group(1), m.group(2).strip().strip('"')
                stack.append((kind, name))
                if kind != "table":
                    self.handles[(kind, name)] = int(m.group(3)) if m.group(3) else None
                if kind == "chain":
                    self.rules[name] = []
                continue
            if line.strip() == "}":
                if stack:
                    stack.pop()
                continue
            if stack and stack[-1][0] == "chain":
                m = _RULE_HANDLE.match(line)
                if m:
                    self.rules[stack[-1][1]].append((m.group(1).strip(), int(m.group(2))))

    def chains(self):
        return sorted(self.rules)

    def rule_handles(self):
        return {c: [h for _, h in rules] for c, rules in self.rules.items()}

    def rule_texts(self, chain):
        return [t for t, _ in self.rules.get(chain, [])]


# ---------------------------------------------------------------------------
# Base test case

def _require_environment():
    if os.geteuid() != 0:
        raise unittest.SkipTest("needs root (network namespaces, nftables)")
    for tool in ("ip", "nft"):
        if not shutil.which(tool):
            raise unittest.SkipTest(f"needs {tool!r} in PATH")


class ProxyTestCase(unittest.TestCase):
    """One topology per class. agent = "class": one agent for the whole class, started in
    setUpClass; "test": each test starts its own (start_test_agent); None: no agent (the
    harness's own checks). Tests write their Services into the manifest directory and watch
    packets."""

    agent = "class"
    agent_args = ()
    local_pods = ("pa1", "pa2", "pa3", "pa4")
    remote_pods = ("pb1", "pb2")
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        _require_environment()
        if cls.agent and not (AGENT and os.access(AGENT, os.X_OK)):
            raise unittest.SkipTest(f"sluice-agent not found (SLUICE_AGENT={AGENT!r})")
        cls.topo = Topology(cls.local_pods, cls.remote_pods)
        cls.addClassCleanup(cls.topo.destroy)
        cls.topo.build()
        cls.manifests = ManifestDir(tempfile.mkdtemp(prefix="manifests-", dir=REGISTRY.run_dir()))
        cls.addClassCleanup(shutil.rmtree, cls.manifests.path, True)
        cls.manifests.write("node", node_object())
        cls._alloc = itertools.count(1)
        cls.class_agent = None
        if cls.agent == "class":
            cls.class_agent = cls.launch_agent(*cls.agent_args)
            cls.addClassCleanup(cls.class_agent.stop)

    @classmethod
    def launch_agent(cls, *args):
        """Starts an agent and waits for its first sync. A build without the backend skips
        (SLUICE_PROXY_REQUIRE_BACKEND=1 makes that a failure)."""
        agent = Agent(cls.topo.node, cls.manifests.path, *args).start()
        try:
            agent.wait_sync(0)
        except BackendMissing as e:
            agent.stop()
            if os.environ.get("SLUICE_PROXY_REQUIRE_BACKEND") == "1":
                raise AssertionError(f"the nftables backend is missing:\n{e}") from None
            raise unittest.SkipTest("sluice-agent has no nftables backend in this build "
                                    "(SLUICE_PROXY_REQUIRE_BACKEND=1 fails instead)") from None
        except BaseException:
            agent.stop()
            raise
        return agent

    def start_test_agent(self, *args):
        """An agent of this test only (agent = "test"); killed after the test."""
        agent = self.launch_agent(*(args or self.agent_args))
        self.test_agents.append(agent)
        return agent

    def current_agent(self):
        return self.test_agents[-1] if self.test_agents else self.class_agent

    def setUp(self):
        super().setUp()
        self.written = []
        self.test_agents = []
        # Cleanups run last-in first-out: the report sees the node as the test left it.
        self.addCleanup(self._stop_test_agents)
        self.addCleanup(self._remove_manifests)
        self.addCleanup(self._report_on_failure)

    def _stop_test_agents(self):
        for agent in self.test_agents:
            agent.kill()

    def _remove_manifests(self):
        for name in self.written:
            self.manifests.remove(name)

    def _failed(self):
        result = getattr(self._outcome, "result", None)
        return bool(result) and any(t is self or getattr(t, "test_case", None) is self
                                    for t, _ in result.errors + result.failures)

    def _report_on_failure(self):
        if not self._failed():
            return
        agent = self.current_agent()
        out = [f"\n--- {self.id()}: what the node held when it failed ---"]
        if agent is not None:
            out.append("--- sluice-agent log (last lines) ---")
            out += agent.log_tail(30)
        table = nft_table(self.topo.node)
        out.append(f"--- nft list table {TABLE_FAMILY} {TABLE} ---")
        lines = (table or "(no table)").splitlines()
        out += lines[:250] + ([f"... {len(lines) - 250} more lines"] if len(lines) > 250 else [])
        r = self.topo.node.run(["conntrack", "-L"], check=False) if shutil.which("conntrack") \
            else None
        if r is not None:
            ct = r.stdout.splitlines()
            out.append(f"--- conntrack -L ({len(ct)} entries, first 30) ---")
            out += ct[:30]
        print("\n".join(out), file=sys.stderr)

    # -- the cluster

    @property
    def pods(self):
        return self.topo.pods

    def pod(self, name):
        return self.topo.pods[name]

    def allocate(self):
        """Addresses and ports no other test of the class uses."""
        n = next(self._alloc)
        assert n < 250
        return {"cluster": {4: f"10.96.0.{n}", 6: f"fd00:96::{n:x}"},
                "external": {4: f"203.0.113.{n}", 6: f"2001:db8:e::{n:x}"},
                "lb": {4: f"198.51.100.{n}", 6: f"2001:db8:1b::{n:x}"},
                "node_port": 30000 + n, "health_port": 32000 + n, "sport": 40000 + n}

    def apply(self, name, *objs):
        """Writes (or rewrites) one manifest file; it is removed after the test."""
        self.manifests.write(name, *objs)
        if name not in self.written:
            self.written.append(name)

    def delete(self, name):
        self.manifests.remove(name)

    # -- traffic

    def reach(self, where, proto, ip, port, pods=None, src=None, what=None,
              timeout=APPLY_TIMEOUT):
        """Polls until a probe is answered (by one of `pods` when given); returns the Reply."""
        names = {p if isinstance(p, str) else p.name for p in pods} if pods else None
        return wait_until(
            lambda: probe(where, proto, ip, port, src=src, timeout=POLL_TIMEOUT),
            lambda r: r.ok and (names is None or r.pod in names),
            what or f"{proto} {ip}:{port} answered" + (f" by {sorted(names)}" if names else ""),
            timeout=timeout)

    def wait_failure(self, where, proto, ip, port, kind, src=None, what=None,
                     timeout=APPLY_TIMEOUT, attempt_timeout=PROBE_TIMEOUT):
        return wait_until(
            lambda: probe(where, proto, ip, port, src=src, timeout=attempt_timeout),
            lambda r: r.error == kind,
            what or f"{proto} {ip}:{port} -> {kind}", timeout=timeout, interval=0.05)

    def sample(self, where, proto, ip, port, n, src=None, timeout=PROBE_TIMEOUT):
        return [probe(where, proto, ip, port, src=src, timeout=timeout) for _ in range(n)]

    def assertAllFrom(self, replies, pods, what=""):
        names = {p if isinstance(p, str) else p.name for p in pods}
        bad = [r for r in replies if not r.ok or r.pod not in names]
        self.assertFalse(bad, f"{what}: expected every answer from {sorted(names)}, got "
                              f"{collections.Counter(map(repr, replies)).most_common(8)}")

    def assertReachesAll(self, where, proto, ip, port, pods, n=60, src=None, what=""):
        """n probes all answered, together by every one of `pods` and nobody else."""
        replies = self.sample(where, proto, ip, port, n, src=src)
        self.assertAllFrom(replies, pods, what)
        names = {p if isinstance(p, str) else p.name for p in pods}
        seen = {r.pod for r in replies}
        self.assertEqual(seen, names, f"{what}: {n} {proto} probes to {ip}:{port} reached "
                                      f"{sorted(seen)}, not every endpoint")
        return replies

    def assertFailsWith(self, reply, kinds, what=""):
        kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
        self.assertIn(reply.error, kinds, f"{what}: expected {'/'.join(kinds)}, got {reply!r}")


if __name__ == "__main__":
    if sys.argv[1:] == ["sweep"]:
        gone = sweep()
        print(f"e2e_proxy: removed {len(gone)} stale namespace(s) {' '.join(gone)}".rstrip())
    else:
        print(__doc__)
