"""Shared machinery of the CNI end-to-end suite.

Everything a test creates (network namespaces, temp dirs, helper processes) is
registered here before it is created and removed by the test's cleanup, by an
atexit hook and by SIGINT/SIGTERM handlers, also after failures. Plugins run
inside a "node" namespace the test made (`ip netns exec <node> <plugin>`), so
bridges, host veths, sysctls and netfilter rules never reach the host.

The plugin dir under test comes from $SLUICE_CNI_BIN (default
<repo>/build/cni-bin); /usr/lib/cni holds the reference plugins used for
chaining and interop. Run `python3 cnitest.py sweep` to remove what a run that
was killed with SIGKILL left behind.
"""

import atexit
import functools
import ipaddress
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
REF_DIR = "/usr/lib/cni"
NETNS_DIR = "/var/run/netns"
RUN_ID = os.getpid() % 10000
PREFIX = f"slc{RUN_ID}"  # netns "slc1234-node3", links "slc1234b7" (<= 15 chars)
STATE_ROOT = "/tmp/sluice-e2e"  # <STATE_ROOT>/<PREFIX>/: the run's pid file and temp dirs
SPEC_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")

# Behaviour the Debian reference build (plugins v1.1.1, libcni v1.0.1) lacks.
# Tests that need it are skipped when the dir under test is the reference.
# GC, STATUS and spec 1.1.0 are not listed: those are feature-detected from
# the plugin's VERSION output instead.
REFERENCE_GAPS = {
    "portIsolation": "bridge key portIsolation exists only from plugins v1.7.0; v1.1.1 ignores it",
    "vlanTrunk": "bridge key vlanTrunk exists only from plugins v1.3.0; v1.1.1 ignores it",
    "spec-error-codes": "the reference answers 999 (libcni ErrInternal) where the spec defines a code",
    "error-cniVersion": "the reference's error JSON has no cniVersion key (spec: it must)",
    "error-msg-names-var": "the reference's messages for an invalid CNI_CONTAINERID/CNI_IFNAME "
                           "do not name the variable (spec: they must)",
    "missing-CNI_COMMAND": "with CNI_COMMAND unset the reference prints its 'about' text and exits 0",
    "version-echo": "the reference's VERSION ignores stdin and always reports cniVersion 1.0.0",
    "masq-cleanup-without-netns": "the reference removes masquerade rules only when it can read the "
                                  "addresses off the live pod interface (plugins#810, PR #1078)",
    "rollback-on-failed-add": "the reference leaves the veth pair after a failed ADD until the "
                              "runtime's DEL",
}


# ---------------------------------------------------------------------------
# Plugin dirs and feature detection

def plugin_dir():
    d = os.environ.get("SLUICE_CNI_BIN") or os.path.join(REPO_ROOT, "build", "cni-bin")
    return os.path.abspath(d)


def is_reference(d=None):
    """True when the dir under test is the reference build: the dir, or its bridge and
    host-local, resolve into REF_DIR; SLUICE_CNI_IS_REFERENCE=1 forces it."""
    if os.environ.get("SLUICE_CNI_IS_REFERENCE") == "1":
        return True
    d = d or plugin_dir()
    ref = os.path.realpath(REF_DIR)
    if os.path.realpath(d) == ref:
        return True
    files = [os.path.join(d, p) for p in ("bridge", "host-local")]
    return all(os.path.exists(f) and os.path.dirname(os.path.realpath(f)) == ref for f in files)


def plugin_path(ptype, d=None):
    return os.path.join(d or plugin_dir(), ptype)


def have_plugin(ptype, d=None):
    p = plugin_path(ptype, d)
    return os.path.isfile(p) and os.access(p, os.X_OK)


def reference_gap(key):
    """Skip the test when the dir under test is the reference and lacks `key`."""
    reason = REFERENCE_GAPS[key]
    # SLUICE_CNI_IGNORE_GAPS=1 runs them anyway, to see that they fail on the reference.
    skip = is_reference() and os.environ.get("SLUICE_CNI_IGNORE_GAPS") != "1"
    return unittest.skipIf(skip, f"REFERENCE_GAPS[{key!r}]: {reason}")


@functools.lru_cache(maxsize=None)
def version_info(path):
    """The plugin's VERSION answer as a dict, or {} if it gave none."""
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        return {}
    r = exec_plugin(path, "VERSION", {"cniVersion": "1.0.0"})
    return r.out if isinstance(r.out, dict) else {}


def supports_version(ptype, version, d=None):
    return version in version_info(plugin_path(ptype, d)).get("supportedVersions", [])


def skip_unless_version(version, *ptypes):
    """Skip unless every named plugin of the dir under test lists `version` in VERSION."""
    ptypes = ptypes or ("bridge", "host-local")
    missing = [p for p in ptypes if not supports_version(p, version)]
    return unittest.skipIf(
        bool(missing),
        f"{', '.join(missing)} in {plugin_dir()} do(es) not list spec {version} in VERSION "
        f"(GC/STATUS/{version} absent; the Debian reference stops at 1.0.0)")


def have_tool(name):
    return shutil.which(name) is not None


def is_root():
    return os.geteuid() == 0


@functools.lru_cache(maxsize=None)
def kernel_has_vlan_filtering():
    """The bridge VLAN keys need CONFIG_BRIDGE_VLAN_FILTERING; probe it in a scratch netns."""
    if not (is_root() and have_tool("ip")):
        return False
    ns = Netns.create("vlanprobe")
    try:
        r = ns.run(["ip", "link", "add", "probebr", "type", "bridge", "vlan_filtering", "1"],
                   check=False)
        return r.returncode == 0
    finally:
        ns.delete()


# ---------------------------------------------------------------------------
# Global registry: the safety net behind every test's own cleanup

class _Registry:
    def __init__(self):
        self.lock = threading.RLock()
        self.netns = []
        self.dirs = []
        self.procs = []
        self.state_dir = None

    def mark_run(self):
        with self.lock:
            if self.state_dir:
                return
            self.state_dir = os.path.join(STATE_ROOT, PREFIX)
            os.makedirs(self.state_dir, exist_ok=True)
            with open(os.path.join(self.state_dir, "pid"), "w") as f:
                f.write(str(os.getpid()))

    def cleanup(self):
        with self.lock:
            for p in reversed(self.procs):
                _kill_proc(p)
            self.procs.clear()
            for name in reversed(self.netns):
                _delete_netns(name)
            self.netns.clear()
            for d in reversed(self.dirs):
                shutil.rmtree(d, ignore_errors=True)
            self.dirs.clear()
            if self.state_dir:
                shutil.rmtree(self.state_dir, ignore_errors=True)
                self.state_dir = None


REGISTRY = _Registry()
atexit.register(REGISTRY.cleanup)


def _on_signal(signum, _frame):
    REGISTRY.cleanup()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


if threading.current_thread() is threading.main_thread():
    for _sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(_sig, _on_signal)


def _kill_proc(p):
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            try:
                p.kill()
            except ProcessLookupError:
                pass
    try:
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def _delete_netns(name):
    # Processes left inside keep the namespace (and its veths) alive: end them first.
    r = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True)
    for pid in r.stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    subprocess.run(["ip", "netns", "del", name], capture_output=True)


def sweep(dry_run=False):
    """Remove namespaces and temp dirs of earlier runs whose process is gone (SIGKILL)."""
    removed = []
    if not os.path.isdir(STATE_ROOT):
        return removed
    live = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    names = [line.split()[0] for line in live.splitlines() if line.strip()]
    for prefix in os.listdir(STATE_ROOT):
        d = os.path.join(STATE_ROOT, prefix)
        try:
            pid = int(open(os.path.join(d, "pid")).read().strip())
        except (OSError, ValueError):
            pid = 0
        if pid and os.path.exists(f"/proc/{pid}"):
            continue
        for n in names:
            if n.startswith(prefix + "-"):
                removed.append(n)
                if not dry_run:
                    _delete_netns(n)
        if not dry_run:
            shutil.rmtree(d, ignore_errors=True)
    return removed


_seq = itertools.count(1)


def unique(tag):
    return f"{tag}{next(_seq)}"


def link_name(tag="b"):
    """A link name unique in this run, at most 15 bytes."""
    n = f"{PREFIX}{tag}{next(_seq)}"
    assert len(n) <= 15, n
    return n


# ---------------------------------------------------------------------------
# Namespaces

class Netns:
    def __init__(self, name):
        self.name = name
        self.path = os.path.join(NETNS_DIR, name)

    def __repr__(self):
        return f"Netns({self.name})"

    @classmethod
    def create(cls, tag):
        REGISTRY.mark_run()
        name = f"{PREFIX}-{unique(tag)}"
        with REGISTRY.lock:
            REGISTRY.netns.append(name)  # registered first: a signal mid-create still cleans it
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
        return cls(name)

    def delete(self):
        _delete_netns(self.name)
        with REGISTRY.lock:
            if self.name in REGISTRY.netns:
                REGISTRY.netns.remove(self.name)

    def exists(self):
        return os.path.exists(self.path)

    def run(self, argv, check=True, input=None, timeout=30):
        """Run argv inside this namespace."""
        r = subprocess.run(["ip", "netns", "exec", self.name] + list(argv), input=input,
                           capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"[{self.name}] {' '.join(argv)} -> {r.returncode}: "
                               f"{r.stderr.strip()} {r.stdout.strip()}")
        return r

    def ip(self, *args, check=True):
        r = subprocess.run(["ip", "-n", self.name] + list(args), capture_output=True, text=True)
        if check and r.returncode != 0:
            raise RuntimeError(f"ip -n {self.name} {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    def ip_json(self, *args):
        out = self.ip("-j", *args)
        return json.loads(out) if out.strip() else []

    def links(self):
        """name -> `ip -d -j link` entry."""
        return {l["ifname"]: l for l in self.ip_json("-d", "link", "show")}

    def link(self, name):
        return self.links().get(name)

    def addresses(self, ifname, family=None):
        """['10.1.2.3/24', ...] on ifname (family 4 or 6 or both)."""
        args = ["addr", "show", "dev", ifname]
        if family:
            args = [f"-{family}"] + args
        out = []
        for l in self.ip_json(*args):
            for a in l.get("addr_info", []):
                out.append(a)
        return out

    def cidrs(self, ifname, family=None, scope_global=True):
        return [f"{a['local']}/{a['prefixlen']}" for a in self.addresses(ifname, family)
                if not scope_global or a.get("scope") == "global"]

    def routes(self, family=4, table="main"):
        return self.ip_json(f"-{family}", "route", "show", "table", table)

    def sysctl(self, key):
        r = self.run(["cat", "/proc/sys/" + key.replace(".", "/")], check=False)
        return r.stdout.strip() if r.returncode == 0 else None

    def set_sysctl(self, key, value):
        self.run(["sh", "-c", f"echo {value} > /proc/sys/{key.replace('.', '/')}"])

    def ping(self, addr, count=1, wait=1, tries=1, interval=0.2):
        """True once a ping gets an answer within `tries` attempts."""
        fam = "-6" if ":" in addr else "-4"
        for i in range(tries):
            r = self.run(["ping", fam, "-n", "-q", "-c", str(count), "-W", str(wait), addr],
                         check=False, timeout=wait * count + 10)
            if r.returncode == 0:
                return True
            if i + 1 < tries:
                time.sleep(interval)
        return False

    def veth_names(self):
        return sorted(n for n, l in self.links().items()
                      if l.get("linkinfo", {}).get("info_kind") == "veth")


# ---------------------------------------------------------------------------
# One test's resources

class Scope:
    """What one test made; cleanup() removes it in reverse order (also after failures)."""

    def __init__(self):
        self._undo = []

    def netns(self, tag="ns"):
        ns = Netns.create(tag)
        self._undo.append(ns.delete)
        return ns

    def tmpdir(self, tag="tmp"):
        REGISTRY.mark_run()  # temp dirs live in the run's state dir, so sweep() finds them
        d = tempfile.mkdtemp(prefix=f"{tag}-", dir=REGISTRY.state_dir)
        with REGISTRY.lock:
            REGISTRY.dirs.append(d)
        self._undo.append(lambda: shutil.rmtree(d, ignore_errors=True))
        return d

    def popen(self, ns, argv, **kw):
        """Start a helper (a socat server, ...) in ns; it is killed at cleanup."""
        p = subprocess.Popen(["ip", "netns", "exec", ns.name] + list(argv),
                             stdout=kw.pop("stdout", subprocess.DEVNULL),
                             stderr=kw.pop("stderr", subprocess.DEVNULL),
                             start_new_session=True, **kw)
        with REGISTRY.lock:
            REGISTRY.procs.append(p)
        self._undo.append(lambda: _kill_proc(p))
        return p

    def defer(self, fn):
        self._undo.append(fn)

    def cleanup(self):
        errors = []
        while self._undo:
            fn = self._undo.pop()
            try:
                fn()
            except Exception as e:  # keep cleaning
                errors.append(e)
        if errors:
            sys.stderr.write(f"cleanup errors: {errors}\n")


# ---------------------------------------------------------------------------
# Running a plugin

class PluginRun:
    def __init__(self, argv, command, code, stdout, stderr, elapsed):
        self.argv = argv
        self.command = command
        self.code = code
        self.stdout = stdout
        self.stderr = stderr
        self.elapsed = elapsed
        try:
            self.out = json.loads(stdout) if stdout.strip() else None
        except ValueError:
            self.out = None

    @property
    def ok(self):
        return self.code == 0

    @property
    def error(self):
        """The error JSON (dict) or {}."""
        return self.out if isinstance(self.out, dict) else {}

    def describe(self):
        return (f"{os.path.basename(self.argv[-1])} {self.command}: exit {self.code}\n"
                f"  stdout: {self.stdout.strip()[:2000]}\n  stderr: {self.stderr.strip()[:2000]}")

    def __repr__(self):
        return self.describe()


def _ns_path(netns):
    if netns is None:
        return ""
    return netns.path if isinstance(netns, Netns) else str(netns)


def plugin_env(command, cid="", netns="", ifname="", cni_args="", cni_path="", unset=(),
               extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")}
    vals = {"CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": _ns_path(netns),
            "CNI_IFNAME": ifname, "CNI_ARGS": cni_args, "CNI_PATH": cni_path}
    for k, v in vals.items():
        if k not in unset:
            env[k] = v or ""  # libcni always sets all six, empty when unused
    env.update(extra or {})
    return env


def exec_plugin(path, command, conf, *, cid="", netns=None, ifname="", cni_args="",
                cni_path="", node=None, unset=(), raw_stdin=None, extra_env=None, timeout=60):
    """Run one plugin binary (inside `node` if given) and return a PluginRun."""
    argv = [path]
    if node is not None:
        argv = ["ip", "netns", "exec", node.name if isinstance(node, Netns) else node, path]
    if raw_stdin is not None:
        data = raw_stdin
    elif conf is None:
        data = ""
    else:
        data = json.dumps(conf)
    env = plugin_env(command, cid, netns, ifname, cni_args, cni_path, unset, extra_env)
    t0 = time.monotonic()
    r = subprocess.run(argv, input=data, env=env, capture_output=True, text=True, timeout=timeout)
    return PluginRun(argv, command, r.returncode, r.stdout, r.stderr, time.monotonic() - t0)


def kubelet_args(pod="pod", namespace="default", cid="0"):
    return (f"IgnoreUnknown=1;K8S_POD_NAMESPACE={namespace};K8S_POD_NAME={pod};"
            f"K8S_POD_INFRA_CONTAINER_ID={cid};K8S_POD_UID=00000000-0000-0000-0000-{RUN_ID:012d}")


# ---------------------------------------------------------------------------
# A libcni-like runtime: plugin lookup, conflist flattening, result cache

class ListOp:
    def __init__(self):
        self.runs = []
        self.result = None
        self.failed = None

    @property
    def ok(self):
        return self.failed is None

    def describe(self):
        return "\n".join(r.describe() for r in self.runs)


class Runtime:
    """Runs conflists the way libcni does (AddNetworkList & co).

    - each plugin config gets the list's name and cniVersion, `prevResult` (ADD: the
      previous plugin's result, 2nd+ plugin; CHECK and DEL from 0.4.0: the cached final
      ADD result) and `runtimeConfig` holding the capability args it declares;
    - DEL runs the plugins in reverse order; CHECK needs cniVersion >= 0.4.0;
    - GC/STATUS inject name, cniVersion (and the attachment list) and run with empty
      container/netns/ifname.
    """

    def __init__(self, path_dirs, node=None):
        self.path_dirs = list(path_dirs)
        self.node = node
        self.cache = {}  # (net name, cid, ifname) -> final ADD result

    @property
    def cni_path(self):
        return ":".join(self.path_dirs)

    def find(self, ptype):
        for d in self.path_dirs:
            p = os.path.join(d, ptype)
            if os.path.isfile(p) and os.access(p, os.X_OK):
                return p
        raise FileNotFoundError(f"plugin {ptype!r} not found in {self.path_dirs}")

    @staticmethod
    def flatten(conflist, plugin, prev_result=None, capability_args=None):
        conf = json.loads(json.dumps(plugin))
        conf["name"] = conflist["name"]
        conf["cniVersion"] = conflist.get("cniVersion", "")
        if prev_result is not None:
            conf["prevResult"] = prev_result
        rc = {}
        for cap, on in (plugin.get("capabilities") or {}).items():
            if on and capability_args and cap in capability_args:
                rc[cap] = capability_args[cap]
        if rc:
            conf["runtimeConfig"] = rc
        return conf

    def _exec(self, plugin, command, conf, cid, netns, ifname, cni_args):
        return exec_plugin(self.find(plugin["type"]), command, conf, cid=cid, netns=netns,
                           ifname=ifname, cni_args=cni_args, cni_path=self.cni_path,
                           node=self.node)

    def add(self, conflist, cid, netns, ifname="eth0", cni_args="", capability_args=None):
        op = ListOp()
        prev = None
        for plugin in conflist["plugins"]:
            conf = self.flatten(conflist, plugin, prev, capability_args)
            r = self._exec(plugin, "ADD", conf, cid, netns, ifname, cni_args)
            op.runs.append(r)
            if not r.ok:
                op.failed = r
                return op
            prev = r.out
        op.result = prev
        self.cache[(conflist["name"], cid, ifname)] = prev
        return op

    def check(self, conflist, cid, netns, ifname="eth0", cni_args="", capability_args=None):
        op = ListOp()
        if vtuple(conflist.get("cniVersion", "0.1.0")) < (0, 4, 0):
            raise ValueError("CHECK needs cniVersion >= 0.4.0 (libcni refuses it)")
        if conflist.get("disableCheck"):
            return op
        cached = self.cache.get((conflist["name"], cid, ifname))
        for plugin in conflist["plugins"]:
            conf = self.flatten(conflist, plugin, cached, capability_args)
            r = self._exec(plugin, "CHECK", conf, cid, netns, ifname, cni_args)
            op.runs.append(r)
            if not r.ok:
                op.failed = r
                return op
        return op

    def delete(self, conflist, cid, netns, ifname="eth0", cni_args="", capability_args=None):
        op = ListOp()
        key = (conflist["name"], cid, ifname)
        cached = None
        if vtuple(conflist.get("cniVersion", "0.1.0")) >= (0, 4, 0):
            cached = self.cache.get(key)
        for plugin in reversed(conflist["plugins"]):
            conf = self.flatten(conflist, plugin, cached, capability_args)
            r = self._exec(plugin, "DEL", conf, cid, netns, ifname, cni_args)
            op.runs.append(r)
            if not r.ok:
                op.failed = r
                return op
        self.cache.pop(key, None)
        return op

    def gc(self, conflist, valid_attachments, key="cni.dev/valid-attachments"):
        """valid_attachments: [(cid, ifname)]."""
        op = ListOp()
        for plugin in conflist["plugins"]:
            conf = json.loads(json.dumps(plugin))
            conf["name"] = conflist["name"]
            conf["cniVersion"] = conflist.get("cniVersion", "")
            conf[key] = [{"containerID": c, "ifname": i} for c, i in valid_attachments]
            r = self._exec(plugin, "GC", conf, "", None, "", "")
            op.runs.append(r)
            if not r.ok and op.failed is None:
                op.failed = r  # GC continues past errors
        return op

    def status(self, conflist):
        op = ListOp()
        for plugin in conflist["plugins"]:
            conf = json.loads(json.dumps(plugin))
            conf["name"] = conflist["name"]
            conf["cniVersion"] = conflist.get("cniVersion", "")
            r = self._exec(plugin, "STATUS", conf, "", None, "", "")
            op.runs.append(r)
            if not r.ok:
                op.failed = r
                return op
        return op


def as_conflist(conf):
    """A single plugin config as a one-element conflist (name/cniVersion lifted)."""
    plugin = {k: v for k, v in conf.items() if k not in ("name", "cniVersion")}
    return {"cniVersion": conf.get("cniVersion", "1.0.0"), "name": conf["name"],
            "plugins": [plugin]}


def vtuple(v):
    """"1.0.0" -> (1, 0, 0) for ordering spec versions."""
    try:
        return tuple(int(x) for x in v.split("."))
    except ValueError:
        return (0,)


# ---------------------------------------------------------------------------
# Node uplink to an "outside" namespace

UPLINK_NODE = "10.250.0.1"
UPLINK_OUTSIDE = "10.250.0.2"


def route_dst(dst, family):
    """A kernel route's dst ('default', '10.1.0.0/16', '10.1.1.1') as an ip_network."""
    if dst == "default":
        return ipaddress.ip_network("0.0.0.0/0" if family == 4 else "::/0")
    return ipaddress.ip_network(dst, strict=False)


def add_uplink(node, outside):
    """veth node:up0 (10.250.0.1/24) <-> outside:up1 (10.250.0.2/24); outside has no
    route to any pod subnet, so only masqueraded or DNATed traffic gets answers."""
    node.ip("link", "add", "up0", "type", "veth", "peer", "name", "up1", "netns", outside.name)
    node.ip("addr", "add", f"{UPLINK_NODE}/24", "dev", "up0")
    node.ip("link", "set", "up0", "up")
    outside.ip("addr", "add", f"{UPLINK_OUTSIDE}/24", "dev", "up1")
    outside.ip("link", "set", "up1", "up")
    outside.ip("link", "set", "lo", "up")


def wait_listening(ns, port, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = ns.run(["ss", "-Hltn", f"sport = :{port}"], check=False).stdout
        if out.strip():
            return True
        time.sleep(0.05)
    return False


# ---------------------------------------------------------------------------
# Configs

def ranges_of(*subnets, **range_keys):
    """[[{subnet}], ...]: one range set (one address) per subnet."""
    return [[dict({"subnet": s}, **range_keys)] for s in subnets]


def bridge_conf(name, bridge, data_dir, subnets=("10.77.0.0/24",), version="1.0.0",
                routes=None, ranges=None, **keys):
    ipam = {"type": "host-local", "ranges": ranges or ranges_of(*subnets), "dataDir": data_dir}
    if routes is not None:
        ipam["routes"] = routes
    conf = {"cniVersion": version, "name": name, "type": "bridge", "bridge": bridge}
    conf.update(keys)
    conf["ipam"] = ipam
    return conf


def host_local_conf(name, data_dir, subnets=("10.78.0.0/24",), version="1.0.0", routes=None,
                    ranges=None, **ipam_keys):
    ipam = {"type": "host-local", "ranges": ranges or ranges_of(*subnets), "dataDir": data_dir}
    if routes is not None:
        ipam["routes"] = routes
    ipam.update(ipam_keys)
    # host-local reads its keys from "ipam" of the whole config, as a bridge would pass it.
    return {"cniVersion": version, "name": name, "type": "host-local", "ipam": ipam}


# ---------------------------------------------------------------------------
# Result and store helpers

def result_ips(result):
    return [ip["address"] for ip in (result or {}).get("ips", [])]


def result_iface(result, sandbox=True):
    """The result's container interface (with sandbox) or host-side ones (without)."""
    ifs = (result or {}).get("interfaces", [])
    if sandbox:
        return next((i for i in ifs if i.get("sandbox")), None)
    return [i for i in ifs if not i.get("sandbox")]


def semantic_result(result):
    """A result with empty values dropped, for comparing what two plugins serialise
    (the reference always writes "dns": {}; others may omit it)."""
    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if v not in ({}, [], "", None)}
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x
    return strip(result or {})


def store_dir(data_dir, net_name):
    return os.path.join(data_dir, net_name)


def store_entries(data_dir, net_name):
    """{ip string: file content} for every reservation file in the host-local store."""
    d = store_dir(data_dir, net_name)
    out = {}
    if not os.path.isdir(d):
        return out
    for f in os.listdir(d):
        try:
            ipaddress.ip_address(f.replace("_", ":"))
        except ValueError:
            continue  # lock, last_reserved_ip.N
        with open(os.path.join(d, f), "rb") as fh:
            out[f] = fh.read().decode(errors="replace")
    return out


def store_owner(content):
    """(cid, ifname or None) from a reservation file's content; (None, None) if empty."""
    if not content.strip():
        return (None, None)
    parts = content.split("\r\n")
    cid = parts[0].strip()
    ifname = parts[1].strip() if len(parts) > 1 else None
    return (cid, ifname)


def ips_owned_by(data_dir, net_name, cid, ifname=None):
    return sorted(ip for ip, c in store_entries(data_dir, net_name).items()
                  if store_owner(c)[0] == cid and (ifname is None or store_owner(c)[1] in (None, ifname)))


# ---------------------------------------------------------------------------
# Netfilter snapshots of a namespace

_COUNTER = re.compile(r"counter packets \d+ bytes \d+")
_IPT_COUNTER = re.compile(r"\[\d+:\d+\]")


def netfilter_snapshot(ns):
    """Normalised `nft list ruleset` + iptables-save + ip6tables-save of ns (counters dropped)."""
    snap = {}
    r = ns.run(["nft", "list", "ruleset"], check=False) if have_tool("nft") else None
    snap["nft"] = [] if r is None else [
        _COUNTER.sub("counter", l.rstrip()) for l in r.stdout.splitlines() if l.strip()]
    for tool in ("iptables-save", "ip6tables-save"):
        if not have_tool(tool):
            snap[tool] = []
            continue
        r = ns.run([tool], check=False)
        snap[tool] = [_IPT_COUNTER.sub("", l).rstrip() for l in r.stdout.splitlines()
                      if l.strip() and not l.startswith("#")]
    return snap


def netfilter_content(snap):
    """Only what filters or rewrites packets: rules and set/map elements, each with the
    table/chain/set it sits in.

    Empty tables, chains and sets do not count: iptables-nft keeps `table ip nat` and
    its base chains after the last rule is gone, and so may any plugin.
    """
    content = []
    stack = []
    for l in snap["nft"]:
        s = l.strip()
        if s.endswith("{") and not s.startswith("elements"):
            stack.append(s[:-1].strip())
            continue
        if s == "}":
            if stack:
                stack.pop()
            continue
        block = stack[-1] if stack else ""
        if block.startswith("chain ") and s.startswith(("type ", "policy ", "comment ", "devices ")):
            continue  # the chain's own declaration
        if block.startswith(("set ", "map ")) and s.startswith(_SET_DECL):
            continue
        content.append(("nft", tuple(stack), s))
    for tool in ("iptables-save", "ip6tables-save"):
        content += [(tool, (), l) for l in snap[tool] if l.startswith("-A ")]
    return sorted(content)


_SET_DECL = ("type ", "typeof ", "flags ", "size ", "timeout ", "gc-interval ", "comment ",
             "policy ", "auto-merge", "counter")


def diff_lines(a, b):
    sa, sb = set(a), set(b)
    return {"removed": sorted(x for x in a if x not in sb), "added": sorted(x for x in b if x not in sa)}


# ---------------------------------------------------------------------------
# Base test case

class CNITestCase(unittest.TestCase):
    """Root, iproute2 and the plugins in `required_plugins` are checked once per class."""

    required_plugins = ("bridge", "host-local")
    required_tools = ("ip",)
    needs_root = True
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if cls.needs_root and not is_root():
            raise unittest.SkipTest("needs root (network namespaces, netlink)")
        for t in cls.required_tools:
            if not have_tool(t):
                raise unittest.SkipTest(f"needs {t!r} in PATH (see e2e/cni/README.md)")
        missing = [p for p in cls.required_plugins if not have_plugin(p)]
        if missing:
            raise unittest.SkipTest(f"plugin(s) {missing} not found in {plugin_dir()} "
                                    f"(set SLUICE_CNI_BIN)")

    def setUp(self):
        super().setUp()
        self.scope = Scope()
        self.addCleanup(self.scope.cleanup)

    # conveniences
    def ours(self, ptype):
        return plugin_path(ptype)

    def ref(self, ptype):
        return plugin_path(ptype, REF_DIR)

    def require_ref(self, *ptypes):
        missing = [p for p in ptypes if not have_plugin(p, REF_DIR)]
        if missing:
            self.skipTest(f"reference plugin(s) {missing} not in {REF_DIR} "
                          f"(apt-get install containernetworking-plugins)")

    def require_tool(self, *tools):
        missing = [t for t in tools if not have_tool(t)]
        if missing:
            self.skipTest(f"needs {missing} (see e2e/cni/README.md)")

    def assertPluginOk(self, run, what=""):
        self.assertIsNotNone(run)
        runs = run.runs if isinstance(run, ListOp) else [run]
        bad = run.failed if isinstance(run, ListOp) else (None if run.ok else run)
        if bad is not None:
            self.fail(f"{what} failed:\n" + "\n".join(r.describe() for r in runs))

    def assertPluginError(self, run, code=None, what=""):
        """Non-zero exit with the spec's error JSON {code:int, msg:str} on stdout."""
        self.assertNotEqual(run.code, 0, f"{what}: expected failure\n{run.describe()}")
        err = run.error
        self.assertIsInstance(err.get("code"), int, f"{what}: no error code\n{run.describe()}")
        self.assertIsInstance(err.get("msg"), str, f"{what}: no error msg\n{run.describe()}")
        if code is not None:
            self.assertEqual(err["code"], code, f"{what}: wrong code\n{run.describe()}")
        return err


class BridgeNet:
    """A node netns with one bridge network and pods attached through a Runtime."""

    def __init__(self, tc, *, subnets=("10.77.0.0/24",), version="1.0.0", routes=None,
                 ranges=None, node=None, extra_plugins=(), path_dirs=None, **keys):
        self.tc = tc
        self.scope = tc.scope
        self.node = node or self.scope.netns("node")
        if node is None:
            self.node.ip("link", "set", "lo", "up")
        self.data_dir = self.scope.tmpdir("ipam")
        self.name = f"{PREFIX}-{unique('net')}"
        self.bridge = link_name("b")
        self.conf = bridge_conf(self.name, self.bridge, self.data_dir, subnets=subnets,
                                version=version, routes=routes, ranges=ranges, **keys)
        plugin = {k: v for k, v in self.conf.items() if k not in ("name", "cniVersion")}
        self.conflist = {"cniVersion": version, "name": self.name,
                         "plugins": [plugin] + list(extra_plugins)}
        self.rt = Runtime(path_dirs or [plugin_dir(), REF_DIR], node=self.node)
        self.pods = []

    def new_pod(self, tag="pod"):
        ns = self.scope.netns(tag)
        ns.ip("link", "set", "lo", "up")
        return ns

    def add(self, pod_ns, cid=None, ifname="eth0", cni_args=None, capability_args=None,
            expect_ok=True):
        cid = cid or f"{PREFIX}-{unique('c')}"
        args = kubelet_args(pod_ns.name, cid=cid) if cni_args is None else cni_args
        op = self.rt.add(self.conflist, cid, pod_ns, ifname, args, capability_args)
        pod = Pod(self, pod_ns, cid, ifname, args, capability_args, op)
        if expect_ok:
            self.tc.assertPluginOk(op, f"ADD {cid}")
        self.pods.append(pod)
        return pod

    def attach(self, tag="pod", **kw):
        return self.add(self.new_pod(tag), **kw)

    def store(self):
        return store_entries(self.data_dir, self.name)

    def host_veths(self):
        return self.node.veth_names()


class Pod:
    def __init__(self, net, ns, cid, ifname, cni_args, capability_args, op):
        self.net = net
        self.ns = ns
        self.cid = cid
        self.ifname = ifname
        self.cni_args = cni_args
        self.capability_args = capability_args
        self.op = op
        self.result = op.result

    @property
    def ips(self):
        return result_ips(self.result)

    def ip(self, family=4):
        for a in self.ips:
            if (":" in a) == (family == 6):
                return a.split("/")[0]
        return None

    @property
    def host_veth(self):
        """Name of the host-side veth: the node veth whose peer is our pod interface."""
        for i in result_iface(self.result, sandbox=False):
            if i["name"] != self.net.bridge:
                return i["name"]
        return None

    def check(self):
        return self.net.rt.check(self.net.conflist, self.cid, self.ns, self.ifname,
                                 self.cni_args, self.capability_args)

    def delete(self, netns="same"):
        ns = self.ns if netns == "same" else netns
        return self.net.rt.delete(self.net.conflist, self.cid, ns, self.ifname, self.cni_args,
                                  self.capability_args)


if __name__ == "__main__":
    if sys.argv[1:] == ["sweep"]:
        gone = sweep()
        print(f"removed {len(gone)} namespace(s): {' '.join(gone)}")
    else:
        print(__doc__)
