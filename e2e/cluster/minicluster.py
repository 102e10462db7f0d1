"""The mini-cluster: N Kubernetes nodes made of network namespaces, each running sluice-agent
as its proxy and pod network, a test API server, an outside client, and pods attached by
invoking the agent's CNI conflist as a container runtime does. README.md draws the topology
and lists the addresses and the API.

Everything created is registered (nstest.Run) before it is created and removed by stop(), an
atexit hook and SIGINT/SIGTERM handlers, also after failures. Nothing touches the host
namespace except the optional kubectl forwarder's listener on 127.0.0.1.
`python3 -m cluster.minicluster sweep` (from e2e/) removes what a SIGKILLed run left.
"""

import copy
import itertools
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import nstest
from apiserver import TestApiServer
from apiserver import status as st
from apiserver.pki import write_kubeconfig
from apiserver.registry import Options
from apiserver.resources import BY_PLURAL
from cluster.endpoints import EndpointSliceController, PodView

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PYTHON = sys.executable or "/usr/bin/python3"
STATE_ROOT = "/tmp/sluice-e2e-cluster"  # <STATE_ROOT>/<prefix>/: pid, kubeconfigs, node dirs, logs
REFERENCE_CNI_DIR = "/usr/lib/cni"

BACKENDS = ("nftables", "iptables-nft", "iptables-legacy", "ebpf", "userspace")
# A name on the command line that stands for several backends.
BACKEND_ALIASES = {"iptables": ("iptables-nft", "iptables-legacy")}


def backend_args(backend):
    """The agent's flags selecting `backend` ("iptables-legacy": the iptables backend writing
    with iptables-legacy)."""
    if backend.startswith("iptables-"):
        return ["--proxy-mode=iptables", f"--iptables-mode={backend.split('-', 1)[1]}"]
    return [f"--proxy-mode={backend}"]
FAMILIES = (4, 6)
ADDRESS_TYPE = {4: "IPv4", 6: "IPv6"}

# The underlay: one bridge in the underlay namespace joins the nodes and the outside client.
UNDERLAY_PREFIXLEN = {4: 24, 6: 64}
GATEWAY_IP = {4: "192.168.77.1", 6: "fd00:77::1"}
OUTSIDE_IP = {4: "192.168.77.100", 6: "fd00:77::100"}
API_PORT = 6443
CLUSTER_CIDRS = ("10.244.0.0/16", "fd00:10:244::/56")
SERVICE_CIDRS = ("10.96.0.0/16", "fd00:10:96::/108")
MAX_NODES = 9

CONFLIST = "10-sluice.conflist"  # what the agent writes into --cni-conf-dir
NETEXEC_PORTS = {"http": 8083, "udp": (8081, "UDP"), "sctp": (8082, "SCTP")}
HTTP_PORT, UDP_PORT, SCTP_PORT = 8083, 8081, 8082

START_TIMEOUT = 20.0  # agents: conflist written and first sync done
SYNC_DEADLINE = 10.0  # a change must show in traffic within this (min-sync-period is 0)


def node_ip(i):
    return {4: f"192.168.77.{10 + i}", 6: f"fd00:77::{10 + i}"}


def pod_cidr(i):
    return {4: f"10.244.{i}.0/24", 6: f"fd00:10:244:{i:x}::/64"}


def build_dir():
    d = os.environ.get("SLUICE_BUILD_DIR") or os.path.join(REPO, "build")
    return os.path.abspath(d)


def binaries(bdir=None):
    """{name: path} of what a cluster runs from a build dir."""
    bdir = bdir or build_dir()
    out = {"sluice-agent": os.path.join(bdir, "agent", "sluice-agent")}
    for p in ("bridge", "host-local", "loopback"):
        out[p] = os.path.join(bdir, "cni-bin", p)
    return out


def missing_binaries(bdir=None):
    return [p for p in binaries(bdir).values() if not os.access(p, os.X_OK)]


class BackendUnavailable(Exception):
    """The agent exited at start saying it does not implement this --proxy-mode."""


_UNIMPLEMENTED = re.compile(r"not implemented|not part of this build", re.I)
_KLOG_HEADER = re.compile(r"^[IWEF]\d{4} [\d:.]+\s+\d+ [^\]]*\] ")


def _tail(path, n=40):
    try:
        with open(path, errors="replace") as f:
            return f.read().splitlines()[-n:]
    except OSError:
        return []


# ---------------------------------------------------------------------------
# Members of the cluster

class Host:
    """A namespace with addresses on the underlay: a node or the outside client."""

    def __init__(self, name, ns, ip):
        self.name, self.ns, self.ip = name, ns, ip
        self.log_path = None  # the outside client's netexec log

    def requests(self, since=0.0, proto=None):
        """What this host's netexec served (the outside client runs one)."""
        return netexec_requests(self.log_path, since, proto) if self.log_path else []

    @property
    def label(self):
        return self.name

    def __repr__(self):
        return f"{type(self).__name__}({self.name} {self.ip[4]} {self.ip[6]})"


class Node(Host):
    def __init__(self, index, ns, state_dir):
        super().__init__(f"node-{index}", ns, node_ip(index))
        self.index = index
        self.pod_cidr = pod_cidr(index)
        self.dir = os.path.join(state_dir, self.name)
        self.conf_dir = os.path.join(self.dir, "net.d")
        self.ipam_dir = os.path.join(self.dir, "ipam")
        self.conflist_path = os.path.join(self.conf_dir, CONFLIST)
        self.agent = None

    def to_json(self):
        """The Node object."""
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": self.name,
                             "labels": {"kubernetes.io/hostname": self.name,
                                        "kubernetes.io/os": "linux"}},
                "spec": {"podCIDR": self.pod_cidr[4],
                         "podCIDRs": [self.pod_cidr[4], self.pod_cidr[6]]},
                "status": {"addresses": [{"type": "InternalIP", "address": self.ip[4]},
                                         {"type": "InternalIP", "address": self.ip[6]},
                                         {"type": "Hostname", "address": self.name}],
                           "conditions": [{"type": "Ready", "status": "True",
                                           "reason": "KubeletReady",
                                           "message": "kubelet is posting ready status",
                                           "lastHeartbeatTime": now,
                                           "lastTransitionTime": now}]}}


class Pod:
    """A pod: its namespace, the addresses CNI gave it, its netexec server."""

    def __init__(self, name, node, ns, labels, ports, ready, log_path):
        self.name, self.node, self.ns = name, node, ns
        self.namespace = "default"
        self.labels, self.ports = dict(labels or {}), dict(ports)
        self.ready, self.terminating, self.deleted = ready, False, False
        self.uid = str(uuid.uuid4())
        self.container_id = uuid.uuid4().hex
        self.ip = {}
        self.cni_result = None   # (conflist, final ADD result)
        self.cni_added = False   # ADD was tried: DEL is owed even if it failed half-way
        self.server = None
        self.log_path = log_path

    @property
    def label(self):
        return f"pod {self.name} on {self.node.name}"

    @property
    def ips(self):
        return [self.ip[f] for f in FAMILIES if f in self.ip]

    def __repr__(self):
        return f"Pod({self.name} on {self.node.name} {' '.join(self.ips)})"

    def view(self):
        return PodView(self.name, self.namespace, self.uid, self.labels, self.ip, self.node.name,
                       self.ports, self.ready, self.terminating)

    def requests(self, since=0.0, proto=None):
        """What this pod's netexec served: [(unix time, PROTO, client ip, what)]."""
        return netexec_requests(self.log_path, since, proto)


def netexec_requests(log_path, since=0.0, proto=None):
    """The requests a netexec logged: [(unix time, PROTO, client ip, what)] from `since` on."""
    out = []
    for line in _tail(log_path, 1 << 30):
        parts = line.split(" ", 3)
        if len(parts) < 4:
            continue
        try:
            t = float(parts[0])
        except ValueError:
            continue
        if t >= since and (proto is None or parts[1] == proto):
            out.append((t, parts[1], parts[2], parts[3]))
    return out


# ---------------------------------------------------------------------------
# Processes

def start_netexec(ns, name, log_path, run):
    """netexec.py --name NAME in namespace ns (nsenter: no /sys remount needed). Returns the
    Popen once it printed "ready"."""
    log = open(log_path, "w")
    try:
        p = subprocess.Popen(
            ["nsenter", f"--net={ns.path}", "--", PYTHON, os.path.join(HERE, "netexec.py"),
             "--name", name],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
            start_new_session=True)
    finally:
        log.close()
    run.add_proc(p)
    return p


def wait_netexec(p, name, log_path, timeout=15.0):
    ready, _, _ = select.select([p.stdout], [], [], timeout)
    line = p.stdout.readline().decode().strip() if ready else ""
    if line != "ready":
        raise RuntimeError(f"netexec of {name} did not start: {line!r} "
                           f"{' '.join(_tail(log_path, 5))}")


class AgentProcess:
    """sluice-agent in a node's namespace, entered with nsenter (not `ip netns exec`, which
    remounts /sys: the ebpf backend needs the real cgroup and bpffs mounts). Its stdout and
    stderr go to <node dir>/agent.log."""

    def __init__(self, node, argv, run):
        self.node = node
        self.argv = list(argv)
        self.log_path = os.path.join(node.dir, "agent.log")
        self.run = run
        self.proc = None
        self.started_at = 0.0  # wall time of the last start

    def start(self):
        # Appended: a restarted agent's log follows the previous one's.
        log = open(self.log_path, "a")
        if log.tell():
            log.write(f"----- {time.strftime('%H:%M:%S')} the harness starts the agent again\n")
            log.flush()
        self.started_at = time.time()
        try:
            self.proc = subprocess.Popen(["nsenter", f"--net={self.node.ns.path}", "--"] +
                                         self.argv, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()
        self.run.add_proc(self.proc)
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n=40):
        return _tail(self.log_path, n)

    def exit_reason(self):
        """The agent's last error line (or its last line) once it exited, without the klog
        header."""
        tail = self.log_tail(20)
        errors = [l for l in tail if l.startswith(("E", "F"))]
        return _KLOG_HEADER.sub("", (errors or tail or ["(no output)"])[-1])

    def metrics(self, timeout=1.0):
        """{(name, ip_family label or ""): value} from its /metrics (127.0.0.1:10249 in the
        node), or None when it does not answer."""
        status, body = nstest.http_get(self.node, "127.0.0.1", 10249, "/metrics",
                                       timeout=timeout)
        if status != 200:
            return None
        out = {}
        for line in body.splitlines():
            if not line or line.startswith("#"):
                continue
            m = re.match(r'^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)', line)
            if not m:
                continue
            fam = re.search(r'ip_family="([^"]*)"', m.group(2) or "")
            try:
                out[(m.group(1), fam.group(1) if fam else "")] = float(m.group(3))
            except ValueError:
                pass
        return out

    def stop(self, grace=3.0):
        if self.running():
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                nstest.kill_proc(self.proc)
        elif self.proc is not None:
            self.proc.poll()
        return None if self.proc is None else self.proc.returncode


def _version_tuple(v):
    return tuple(int(x) for x in re.findall(r"\d+", v)[:3])


class CniRuntime:
    """Runs a node's conflist as a container runtime does (libcni's AddNetworkList and
    DelNetworkList): each plugin found in CNI_PATH by its type, executed in the node's namespace
    with CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS and CNI_PATH set, its
    config the plugin's entry plus the list's name and cniVersion, the previous plugin's result
    as prevResult (ADD) or the cached final result (DEL, from 0.4.0), and runtimeConfig for the
    capabilities it declares (portMappings: the pod has none). DEL runs in reverse order.

    The list's version: a runtime on libcni >= 1.2 (containerd 2.x) takes the highest entry of
    `cniVersions` it supports (runtime_version, spec 1.1); older ones (containerd 1.7, libcni
    1.1) read `cniVersion` only (runtime_version None).

    Plugins run under `ip netns exec <node>` so their view of /sys is the node's."""

    def __init__(self, node, path_dirs, runtime_version=None):
        self.node = node
        self.path_dirs = list(path_dirs)
        self.runtime_version = runtime_version

    @property
    def cni_path(self):
        return ":".join(self.path_dirs)

    def conflist(self):
        with open(self.node.conflist_path) as f:
            conflist = json.load(f)
        if self.runtime_version and conflist.get("cniVersions"):
            mine = _version_tuple(self.runtime_version)
            # libcni's ConfListFromBytes: cniVersion and cniVersions together, the highest
            # not above the runtime's own.
            usable = [v for v in conflist["cniVersions"] + [conflist.get("cniVersion") or "0"]
                      if _version_tuple(v) <= mine]
            if usable:
                conflist["cniVersion"] = max(usable, key=_version_tuple)
        return conflist

    def find(self, ptype):
        for d in self.path_dirs:
            p = os.path.join(d, ptype)
            if os.path.isfile(p) and os.access(p, os.X_OK):
                return p
        raise RuntimeError(f"CNI plugin {ptype!r} (in {self.node.conflist_path}) not found in "
                           f"CNI_PATH {self.cni_path}")

    @staticmethod
    def flatten(conflist, plugin, prev_result, capability_args):
        conf = copy.deepcopy(plugin)
        conf["name"] = conflist["name"]
        conf["cniVersion"] = conflist.get("cniVersion", "")
        if prev_result is not None:
            conf["prevResult"] = prev_result
        rc = {cap: capability_args[cap] for cap, on in (plugin.get("capabilities") or {}).items()
              if on and cap in capability_args}
        if rc:
            conf["runtimeConfig"] = rc
        return conf

    def _exec(self, command, plugin, conf, pod):
        path = self.find(plugin["type"])
        env = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")}
        env.update({"CNI_COMMAND": command, "CNI_CONTAINERID": pod.container_id,
                    "CNI_NETNS": os.path.realpath(pod.ns.path), "CNI_IFNAME": "eth0",
                    "CNI_PATH": self.cni_path,
                    "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE={pod.namespace};"
                                f"K8S_POD_NAME={pod.name};"
                                f"K8S_POD_INFRA_CONTAINER_ID={pod.container_id};"
                                f"K8S_POD_UID={pod.uid}"})
        r = subprocess.run(["ip", "netns", "exec", self.node.ns.name, path],
                           input=json.dumps(conf), env=env, capture_output=True, text=True,
                           timeout=60)
        if r.returncode != 0:
            try:
                err = json.loads(r.stdout)
                said = f"{err.get('msg')}" + (f" ({err['details']})" if err.get("details")
                                              else "") + f" [code {err.get('code')}]"
            except (ValueError, AttributeError):
                said = r.stdout.strip()
            raise RuntimeError(f"CNI {command} of pod {pod.name} on {self.node.name} "
                               f"(cniVersion {conf.get('cniVersion')}): {plugin['type']} exited "
                               f"{r.returncode}: {said} {r.stderr.strip()}".strip())
        try:
            return json.loads(r.stdout) if r.stdout.strip() else None
        except ValueError:
            raise RuntimeError(f"CNI {command} of pod {pod.name}: {plugin['type']} printed "
                               f"no JSON: {r.stdout[:500]!r}") from None

    def add(self, pod, capability_args):
        conflist = self.conflist()
        prev = None
        for plugin in conflist["plugins"]:
            prev = self._exec("ADD", plugin, self.flatten(conflist, plugin, prev,
                                                           capability_args), pod)
        pod.cni_result = (conflist, prev)
        return prev

    def delete(self, pod, capability_args):
        conflist, cached = pod.cni_result or (self.conflist(), None)
        errors = []
        for plugin in reversed(conflist["plugins"]):
            try:
                self._exec("DEL", plugin, self.flatten(conflist, plugin, cached,
                                                       capability_args), pod)
            except RuntimeError as e:
                errors.append(str(e))
        if errors:
            raise RuntimeError("; ".join(errors))


class LoopbackForwarder:
    """127.0.0.1:<port> in the host namespace, each connection relayed to `target` through a
    socket made inside the underlay namespace: kubectl on the host reaches the API server with
    no host link or route."""

    def __init__(self, target_ns, target):
        self.target_ns, self.target = target_ns, target
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.stopped = False
        self.conns = set()
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, name="apiserver-forwarder", daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = self.target_ns.socket(socket.AF_INET, socket.SOCK_STREAM)
                upstream.settimeout(5)
                upstream.connect(self.target)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def stop(self):
        self.stopped = True
        try:
            self.listener.close()
        except OSError:
            pass
        with self.lock:
            for s in self.conns:
                try:
                    s.close()
                except OSError:
                    pass
            self.conns.clear()


# The underlay's own packets to nowhere (the harness resolving the API server's address, which
# http.server does when it binds) are refused at once instead of vanishing into the sink.
_UNDERLAY_OUTPUT_RULES = """table inet underlay-output {
  chain output {
    type filter hook output priority 0; policy accept;
    oifname "sink0" reject with icmpx type host-unreachable
  }
}
"""


# ---------------------------------------------------------------------------
# The cluster

_cluster_seq = itertools.count(1)


class MiniCluster:
    """nodes: 1..9; backend: the agents' --proxy-mode; prefix: what every namespace name and the
    state dir start with (default smc<pid>, unique per cluster of this process)."""

    def __init__(self, nodes=3, backend="nftables", prefix=None, build=None, verbosity=1,
                 agent_args=(), cni_runtime_version=None):
        if not 1 <= nodes <= MAX_NODES:
            raise ValueError(f"nodes must be 1..{MAX_NODES}")
        n = next(_cluster_seq)
        self.prefix = prefix or f"smc{os.getpid() % 100000}" + (f"x{n}" if n > 1 else "")
        self.backend = backend
        self.node_count = nodes
        self.build = os.path.abspath(build or build_dir())
        self.agent_path = binaries(self.build)["sluice-agent"]
        self.cni_dirs = [os.path.join(self.build, "cni-bin"), REFERENCE_CNI_DIR]
        self.verbosity = verbosity
        self.extra_agent_args = list(agent_args)
        # The runtime's libcni version (CniRuntime): None reads cniVersion like containerd 1.7.
        self.cni_runtime_version = cni_runtime_version or \
            os.environ.get("SLUICE_CNI_RUNTIME_VERSION") or None
        self.run = nstest.Run(STATE_ROOT, self.prefix)
        self.dir = None
        self.underlay = None
        self.outside = None
        self.nodes = []
        self.pods = {}
        self.api = None
        self.kubeconfig = None
        self.controller = None
        self.forwarder = None
        self._host_kubeconfig = None
        self._namespaces = []
        self._procs = []
        self._lock = threading.RLock()
        self._last_write = None  # wall time just before the latest API write of the harness
        self.started = False
        self.startup_seconds = None

    def __repr__(self):
        return f"MiniCluster({self.prefix}, {self.backend}, {len(self.nodes)} nodes)"

    # -- lifecycle

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()

    def _netns(self, tag):
        ns = nstest.Netns(f"{self.prefix}-{tag}")
        self.run.add_netns(ns.name)  # registered first: a signal mid-create still cleans it
        self._namespaces.append(ns)
        return ns

    def start(self):
        """Builds the namespaces, starts the API server, the agents and the outside netexec;
        returns once every agent wrote its conflist and synced. Raises BackendUnavailable when
        the agent does not implement the backend."""
        t0 = time.monotonic()
        self.dir = self.run.run_dir()
        self.underlay = self._netns("underlay")
        self.outside = Host("outside", self._netns("outside"), dict(OUTSIDE_IP))
        for i in range(1, self.node_count + 1):
            self.nodes.append(Node(i, self._netns(f"node-{i}"), self.dir))
        nstest.create_netns([ns.name for ns in self._namespaces])
        self._configure_network()
        self._start_api_server()
        self.outside.log_path = os.path.join(self.dir, "outside.log")
        outside = start_netexec(self.outside.ns, "outside", self.outside.log_path, self.run)
        self._procs.append(outside)
        for node in self.nodes:
            os.makedirs(node.conf_dir, exist_ok=True)
            os.makedirs(node.ipam_dir, exist_ok=True)
            node.agent = AgentProcess(node, self.agent_argv(node), self.run).start()
            self._procs.append(node.agent.proc)
        self.controller = EndpointSliceController(self.api, self._pod_views,
                                                  before_write=self._note_write).start()
        wait_netexec(outside, "outside", self.outside.log_path)
        self._wait_agents()
        self.started = True
        self.startup_seconds = time.monotonic() - t0
        return self

    def agent_argv(self, node):
        return [self.agent_path, "--kubeconfig", self.kubeconfig,
                "--hostname-override", node.name, *backend_args(self.backend),
                "--cluster-cidr", ",".join(CLUSTER_CIDRS),
                "--pod-network", "--cni-conf-dir", node.conf_dir,
                "--cni-bin-dir", ":".join(self.cni_dirs),
                "--cni-ipam-data-dir", node.ipam_dir,
                "--min-sync-period=0s",
                "--healthz-bind-address", "0.0.0.0:10256",
                "--metrics-bind-address", "127.0.0.1:10249",
                f"--v={self.verbosity}", *self.extra_agent_args]

    def stop(self):
        """Removes everything: agents (SIGTERM, then SIGKILL), servers, namespaces, state."""
        if self.controller:
            self.controller.stop()
            self.controller = None
        if self.forwarder:
            self.forwarder.stop()
            self.forwarder = None
        for node in self.nodes:  # SIGTERM to all first: they wind down together
            if node.agent and node.agent.running():
                try:
                    os.killpg(node.agent.proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for node in self.nodes:
            if node.agent:
                node.agent.stop()
        if self.api:
            self.api.stop()
            self.api = None
        for p in self._procs:
            nstest.kill_proc(p)
        self._procs.clear()
        names = [ns.name for ns in self._namespaces]
        nstest.delete_netns(names)
        self.run.forget_netns(names)
        self._namespaces.clear()
        self.run.cleanup()
        self.started = False

    def _configure_network(self):
        jobs = []
        for ns in self._namespaces:
            settings = dict(nstest.SYSCTL_ALL_NS)
            if ns is self.underlay or any(ns is n.ns for n in self.nodes):
                settings.update(nstest.SYSCTL_ROUTER)
            if any(ns is n.ns for n in self.nodes):
                settings.update(nstest.SYSCTL_NODE)
            jobs.append((ns.sysctl_argv(settings), None))
        nstest.run_parallel(jobs)

        # Links, made from the underlay (the peers land in the other namespaces as eth0).
        lines = ["link set lo up", "link add br0 type bridge forward_delay 0",
                 "link add sink0 type veth peer name sink1"]
        members = [(f"n{n.index}", n) for n in self.nodes] + [("outside", self.outside)]
        for port, host in members:
            lines += [f"link add {port} type veth peer name eth0 netns {host.ns.name}",
                      f"link set {port} master br0", f"link set {port} up"]
        lines.append("link set br0 up")
        self.underlay.ip_batch(lines)

        jobs = [self.underlay.batch_argv(
            [f"addr add {GATEWAY_IP[f]}/{UNDERLAY_PREFIXLEN[f]} dev br0" for f in FAMILIES] +
            ["link set sink1 up", "link set sink0 up",
             "route add 0.0.0.0/0 dev sink0", "route add ::/0 dev sink0"])]
        for host in self.nodes + [self.outside]:
            lines = ["link set lo up", "link set eth0 up"]
            lines += [f"addr add {host.ip[f]}/{UNDERLAY_PREFIXLEN[f]} dev eth0" for f in FAMILIES]
            lines += [f"route add default via {GATEWAY_IP[4]}",
                      f"route add default via {GATEWAY_IP[6]}"]
            jobs.append(host.ns.batch_argv(lines))
        jobs.append((["ip", "netns", "exec", self.underlay.name, "nft", "-f", "-"],
                     nstest.GATEWAY_REJECT_RULES + _UNDERLAY_OUTPUT_RULES))
        nstest.run_parallel(jobs)

    def _start_api_server(self):
        self.api = TestApiServer(host=GATEWAY_IP[4], port=API_PORT,
                                 state_dir=os.path.join(self.dir, "apiserver"),
                                 service_cidrs=SERVICE_CIDRS, bookmark_interval=1.0)
        # The listener is made on a thread inside the underlay: the nodes reach it there.
        self.underlay.call(self.api.start)
        self.kubeconfig = self.api.kubeconfig
        self.api.load(*[n.to_json() for n in self.nodes])

    def _wait_agents(self, nodes=None):
        """Each agent: its conflist written and a first sync done. An agent that exits first
        says why: a backend it lacks becomes BackendUnavailable."""
        deadline = time.monotonic() + START_TIMEOUT
        waiting = list(nodes or self.nodes)
        while waiting:
            for node in list(waiting):
                agent = node.agent
                if not agent.running():
                    reason = agent.exit_reason()
                    if _UNIMPLEMENTED.search(reason):
                        raise BackendUnavailable(reason)
                    raise RuntimeError(f"sluice-agent on {node.name} exited "
                                       f"({agent.proc.returncode}) at start: {reason}\n"
                                       f"{agent.log_path} (last lines):\n  " +
                                       "\n  ".join(agent.log_tail(15)))
                if os.path.exists(node.conflist_path):
                    m = agent.metrics(timeout=0.5)
                    if m and m.get(("kubeproxy_sync_proxy_rules_last_timestamp_seconds",
                                    "IPv4"), 0) >= agent.started_at:
                        waiting.remove(node)
            if not waiting:
                break
            if time.monotonic() > deadline:
                node = waiting[0]
                what = (f"{node.conflist_path} (the agent's CNI config) did not appear"
                        if not os.path.exists(node.conflist_path) else
                        "no first sync in its metrics (127.0.0.1:10249)")
                raise RuntimeError(f"sluice-agent on {node.name}: {what} within "
                                   f"{START_TIMEOUT:.0f}s; {node.agent.log_path} (last lines):"
                                   "\n  " + "\n  ".join(node.agent.log_tail(15)))
            time.sleep(0.05)

    def restart_agent(self, node, wait=True):
        """SIGTERM the node's agent, start it again with the same flags and (wait) return once
        it synced again."""
        node = node if isinstance(node, Node) else self.node(node)
        node.agent.stop()
        node.agent.start()
        if wait:
            self._wait_agents([node])

    def restart_api_server(self, keep_state=True, down_seconds=0.0):
        """Every connection cut, the same address served again (TestApiServer.restart), from
        inside the underlay. keep_state=False loses every object but the Nodes, which come
        back."""
        self.underlay.call(self.api.restart, keep_state, down_seconds)
        if not keep_state:
            self.api.load(*[n.to_json() for n in self.nodes])
        self.sync_endpoints()

    # -- lookups

    def node(self, which):
        """node-i by index or name."""
        name = which if isinstance(which, str) else f"node-{which}"
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"no node {which!r} (nodes: {[n.name for n in self.nodes]})")

    def pod(self, name):
        return self.pods[name]

    def host_kubeconfig(self):
        """A kubeconfig for kubectl in the host namespace: a loopback forwarder to the API
        server is started on first use."""
        with self._lock:
            if self.forwarder is None:
                self.forwarder = LoopbackForwarder(self.underlay, (GATEWAY_IP[4], API_PORT))
                self._host_kubeconfig = write_kubeconfig(
                    os.path.join(self.dir, "kubeconfig-host"),
                    f"http://127.0.0.1:{self.forwarder.port}")
            return self._host_kubeconfig

    def agent_log_tails(self, n=40):
        return {node.name: node.agent.log_tail(n) if node.agent else [] for node in self.nodes}

    # -- pods

    def _pod_views(self):
        with self._lock:
            return [p.view() for p in self.pods.values() if not p.deleted and p.ip]

    def add_pod(self, name, node, labels=None, ports=None, ready=True, cni_runtime_version=None):
        """A pod on `node` (index, name or Node): a namespace, the node's conflist ADDed as a
        runtime does, netexec started; then the endpoint controller runs.
        cni_runtime_version: the CNI version of the runtime's libcni ("1.1.0": containerd 2.x,
        which picks from the conflist's cniVersions); default: the cluster's."""
        node = node if isinstance(node, Node) else self.node(node)
        with self._lock:
            if name in self.pods:
                raise ValueError(f"pod {name} exists")
            os.makedirs(os.path.join(self.dir, "pods"), exist_ok=True)
            ns = self._netns(f"pod-{name}")
            pod = Pod(name, node, ns, labels, NETEXEC_PORTS if ports is None else ports, ready,
                      os.path.join(self.dir, "pods", f"{name}.log"))
            self.pods[name] = pod
        try:
            nstest.create_netns([ns.name])
            ns.run(["sysctl", "-q", "-w"] +
                   [f"{k}={v}" for k, v in nstest.SYSCTL_ALL_NS.items()])
            pod.cni_added = True
            runtime = CniRuntime(node, self.cni_dirs,
                                 cni_runtime_version or self.cni_runtime_version)
            result = runtime.add(pod, {"portMappings": []})
            for ip in (result or {}).get("ips") or []:
                addr = ip["address"].split("/")[0]
                pod.ip.setdefault(nstest.family_of(addr), addr)
            if not pod.ip:
                raise RuntimeError(f"CNI ADD of pod {name} on {node.name} gave no IP: {result}")
            pod.server = start_netexec(ns, name, pod.log_path, self.run)
            self._procs.append(pod.server)
            wait_netexec(pod.server, name, pod.log_path)
        except BaseException:
            try:
                self.delete_pod(pod)
            except Exception:
                pass  # the first failure is the one to report
            raise
        self.sync_endpoints()
        return pod

    def set_pod_ready(self, pod, ready):
        pod = self._pod(pod)
        pod.ready = bool(ready)
        self.sync_endpoints()

    def terminate_pod(self, pod):
        """The pod is being deleted but still runs: its endpoints stay, ready=false,
        serving=its readiness, terminating=true."""
        pod = self._pod(pod)
        pod.terminating = True
        self.sync_endpoints()

    def delete_pod(self, pod):
        """Out of the endpoints first (as the API's deletion does), then the server stops, CNI
        DEL runs in reverse order and the namespace goes."""
        pod = self._pod(pod)
        with self._lock:
            pod.deleted = True
        self.sync_endpoints()
        if pod.server:
            nstest.kill_proc(pod.server)
            if pod.server in self._procs:
                self._procs.remove(pod.server)
        try:
            if pod.cni_added:
                CniRuntime(pod.node, self.cni_dirs, self.cni_runtime_version).delete(
                    pod, {"portMappings": []})
        finally:
            nstest.delete_netns([pod.ns.name])
            self.run.forget_netns([pod.ns.name])
            with self._lock:
                if pod.ns in self._namespaces:
                    self._namespaces.remove(pod.ns)
                self.pods.pop(pod.name, None)

    def _pod(self, pod):
        return self.pods[pod] if isinstance(pod, str) else pod

    # -- Services and endpoints

    def _note_write(self):
        """Before each API write of the harness or its controller: what wait_synced waits
        for. (Before, not after: an agent may see the change before this thread runs again.)"""
        self._last_write = time.time()

    def sync_endpoints(self):
        """Runs the endpoint controller now."""
        return self.controller.sync()

    def _registry_call(self, what, fn):
        before, rv = self._last_write, self.api.store.rv
        self._note_write()
        try:
            return copy.deepcopy(fn())
        except st.ApiError as e:
            raise RuntimeError(f"{what}: {e.code} {e}") from None
        finally:
            if self.api.store.rv == rv:  # nothing written (a no-op, an error): nothing to wait for
                self._last_write = before

    @staticmethod
    def _service_body(obj):
        obj = copy.deepcopy(obj)
        obj.setdefault("apiVersion", "v1")
        obj.setdefault("kind", "Service")
        obj.setdefault("metadata", {}).setdefault("namespace", "default")
        return obj

    def create_service(self, obj):
        """POSTs a Service (ClusterIPs and nodePorts allocated by the API server); the stored
        object."""
        rtype, opts = BY_PLURAL["services"], Options(field_manager="e2e-cluster")
        obj = self._service_body(obj)
        ns = obj["metadata"]["namespace"]
        stored = self._registry_call(
            f"create Service {ns}/{obj['metadata'].get('name')}",
            lambda: self.api.registry.create(
                rtype, ns, self.api.registry.check_object(rtype, obj, opts, []), opts))
        self.sync_endpoints()
        return stored

    def update_service(self, obj):
        """PUT (unconditional unless metadata.resourceVersion is set); the stored object."""
        rtype, opts = BY_PLURAL["services"], Options(field_manager="e2e-cluster")
        obj = self._service_body(obj)
        meta = obj["metadata"]
        stored, _ = self._registry_call(
            f"update Service {meta['namespace']}/{meta['name']}",
            lambda: self.api.registry.update(
                rtype, meta["namespace"], meta["name"],
                self.api.registry.check_object(rtype, obj, opts, []), opts))
        self.sync_endpoints()
        return stored

    def patch_service(self, name, patch, namespace="default",
                      content_type="application/strategic-merge-patch+json"):
        rtype, opts = BY_PLURAL["services"], Options(field_manager="e2e-cluster")
        stored, _, _ = self._registry_call(
            f"patch Service {namespace}/{name}",
            lambda: self.api.registry.patch(rtype, namespace, name, json.dumps(patch).encode(),
                                            content_type, opts))
        self.sync_endpoints()
        return stored

    def delete_service(self, name, namespace="default"):
        rtype, opts = BY_PLURAL["services"], Options(field_manager="e2e-cluster")
        self._registry_call(f"delete Service {namespace}/{name}",
                            lambda: self.api.registry.delete(rtype, namespace, name, {}, opts))
        self.sync_endpoints()

    def get_service(self, name, namespace="default"):
        return copy.deepcopy(self.api.get("services", name, namespace))

    def endpoint_slices(self, service, namespace="default"):
        out = []
        for s in self.api.objects("endpointslices"):
            meta = s["metadata"]
            if meta.get("namespace") == namespace and \
                    (meta.get("labels") or {}).get("kubernetes.io/service-name") == service:
                out.append(copy.deepcopy(s))
        return sorted(out, key=lambda s: (s.get("addressType"), s["metadata"]["name"]))

    def wait_synced(self, timeout=SYNC_DEADLINE):
        """Waits until every agent applied everything the harness wrote so far: the API server
        delivered every watch event, and each agent's metrics show a change queued after the
        last write, a successful sync after that, nothing pending. (Changes an agent does not
        watch, e.g. of a Service it filters out, never show: poll traffic instead.)"""
        deadline = time.monotonic() + timeout
        since = self._last_write
        last = {}
        while True:
            with self.api.store.cond:
                delivered = all(not w.queue for w in self.api.store.watchers)
            lagging = []
            for node in self.nodes:
                m = node.agent.metrics(timeout=0.5) or {}
                last[node.name] = m
                for fam in ("IPv4", "IPv6"):
                    queued = m.get(("kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds",
                                    fam), 0)
                    synced = m.get(("kubeproxy_sync_proxy_rules_last_timestamp_seconds", fam), 0)
                    pending = m.get(("kubeproxy_sync_proxy_rules_endpoint_changes_pending", ""),
                                    1) + m.get(
                        ("kubeproxy_sync_proxy_rules_service_changes_pending", ""), 1)
                    if (since is not None and queued < since) or synced < queued or pending or \
                            not synced:
                        lagging.append(f"{node.name} {fam}: queued {queued:.3f} synced "
                                       f"{synced:.3f} pending {pending:g}")
            if delivered and not lagging:
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"agents not synced {timeout:.0f}s after the last change "
                    f"(at {since or 0:.3f}): " + "; ".join(lagging or ["watch events queued"]))
            time.sleep(0.05)


def main(argv):
    if argv[1:2] == ["sweep"]:
        gone = nstest.sweep(STATE_ROOT)
        print(f"e2e_cluster: removed {len(gone)} stale namespace(s) {' '.join(gone)}".rstrip())
        return 0
    print(__doc__)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
