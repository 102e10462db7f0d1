"""Network-namespace machinery shared by the kernel end-to-end suites (e2e/proxy, e2e/cluster).

- Run: what one suite made in this process (namespaces, processes, a state dir
  <state root>/<prefix>/ holding the run's pid). Everything is registered before it is created
  and removed by the suite's own cleanup, by an atexit hook and by the SIGINT/SIGTERM handlers
  installed here, also after failures. sweep(state_root) removes what a SIGKILLed run left.
- Netns: a namespace under /var/run/netns; sockets are created inside it from this process
  (setns on the creating thread), so a probe costs a connect, not a process.
- Probe helpers: sockets whose ICMP errors fail the next call at once (IP_RECVERR), and one
  classification of failures: "refused" (RST, ICMP port unreachable), "unreachable" (ICMP
  host/net/protocol unreachable), "timeout" (silence), "eperm" (dropped by the local output
  path), "reset", or "error: ...".

Nothing here touches the host namespace: links, routes and rules are made with `ip -n NS` or
inside a namespace; the only host-side sockets are what a suite binds to loopback itself.
"""

import atexit
import concurrent.futures
import ctypes
import errno
import http.client
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

NETNS_DIR = "/var/run/netns"


def family_of(ip):
    return 6 if ":" in ip else 4


def af(family):
    return socket.AF_INET6 if family == 6 else socket.AF_INET


# ---------------------------------------------------------------------------
# The safety net: everything a run creates, removed at exit and on SIGINT/SIGTERM

class Run:
    """One suite's share of this process: its prefix, its state dir, the namespaces and
    processes it made. Every Run is cleaned up at exit and on SIGINT/SIGTERM."""

    def __init__(self, state_root, prefix):
        self.state_root = state_root
        self.prefix = prefix
        self.lock = threading.RLock()
        self.netns = []
        self.procs = []
        self.state_dir = None
        with _RUNS_LOCK:
            _RUNS.append(self)

    def run_dir(self):
        """<state root>/<prefix>/, made on first use with the pid file sweep() reads."""
        with self.lock:
            if not self.state_dir:
                self.state_dir = os.path.join(self.state_root, self.prefix)
                os.makedirs(self.state_dir, exist_ok=True)
                with open(os.path.join(self.state_dir, "pid"), "w") as f:
                    f.write(str(os.getpid()))
            return self.state_dir

    def add_netns(self, name):
        with self.lock:
            self.netns.append(name)

    def add_proc(self, p):
        with self.lock:
            self.procs.append(p)

    def forget_netns(self, names):
        with self.lock:
            self.netns[:] = [n for n in self.netns if n not in names]

    def cleanup(self):
        with self.lock:
            for p in reversed(self.procs):
                kill_proc(p)
            self.procs.clear()
            delete_netns(self.netns)
            self.netns.clear()
            if self.state_dir:
                shutil.rmtree(self.state_dir, ignore_errors=True)
                self.state_dir = None


_RUNS = []
_RUNS_LOCK = threading.Lock()


def cleanup_all():
    with _RUNS_LOCK:
        runs = list(_RUNS)
    for run in reversed(runs):
        run.cleanup()


atexit.register(cleanup_all)


def _on_signal(signum, _frame):
    cleanup_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


if threading.current_thread() is threading.main_thread():
    for _sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(_sig, _on_signal)


def kill_proc(p, sig=signal.SIGKILL):
    if p.poll() is None:
        try:
            os.killpg(p.pid, sig)
        except (ProcessLookupError, PermissionError):
            try:
                p.send_signal(sig)
            except ProcessLookupError:
                pass
    try:
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def _pids_in(ns_inodes):
    """Processes whose network namespace is one of ns_inodes (what `ip netns pids` does)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}/ns/net").st_ino in ns_inodes:
                pids.append(int(entry))
        except OSError:
            pass
    return pids


def delete_netns(names):
    """Ends what still runs inside (it would keep the namespace and its veths alive), then
    removes the namespaces, in one `ip -batch`."""
    names = [n for n in names if os.path.exists(os.path.join(NETNS_DIR, n))]
    if not names:
        return
    inodes = set()
    for n in names:
        try:
            inodes.add(os.stat(os.path.join(NETNS_DIR, n)).st_ino)
        except OSError:
            pass
    for pid in _pids_in(inodes):
        if pid != os.getpid():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    subprocess.run(["ip", "-force", "-batch", "-"], capture_output=True, text=True,
                   input="".join(f"netns del {n}\n" for n in names))


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def sweep(state_root, dry_run=False):
    """Removes namespaces and state of earlier runs under state_root whose process is gone
    (SIGKILL). Returns the namespace names removed."""
    removed = []
    if not os.path.isdir(state_root):
        return removed
    names = os.listdir(NETNS_DIR) if os.path.isdir(NETNS_DIR) else []
    for prefix in os.listdir(state_root):
        d = os.path.join(state_root, prefix)
        try:
            pid = int(open(os.path.join(d, "pid")).read().strip())
        except (OSError, ValueError):
            pid = 0
        if pid and _alive(pid):
            continue
        stale = [n for n in names if n.startswith(prefix + "-")]
        removed += stale
        if not dry_run:
            delete_netns(stale)
            shutil.rmtree(d, ignore_errors=True)
    return removed


# ---------------------------------------------------------------------------
# Namespaces

_libc = ctypes.CDLL(None, use_errno=True)
_CLONE_NEWNET = 0x40000000


def _setns(fd):
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"setns: {os.strerror(e)}")


class Netns:
    def __init__(self, name):
        self.name = name
        self.path = os.path.join(NETNS_DIR, name)

    def __repr__(self):
        return f"Netns({self.name})"

    @property
    def ns(self):
        return self

    def socket(self, family, type_, proto=0):
        """A socket living in this namespace. The network namespace is per thread: this thread
        enters it, creates the socket and comes back; the socket stays where it was made."""
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(self.path, os.O_RDONLY)
        try:
            _setns(target)
            try:
                return socket.socket(family, type_, proto)
            finally:
                _setns(home)
        finally:
            os.close(target)
            os.close(home)

    def call(self, fn, *args, **kw):
        """fn(*args, **kw) on a fresh thread that lives in this namespace; its result or its
        exception. Sockets fn creates (a listener, say) stay in the namespace, and so do the
        threads fn starts."""
        out = {}

        def body():
            try:
                fd = os.open(self.path, os.O_RDONLY)
                try:
                    _setns(fd)
                finally:
                    os.close(fd)
                out["value"] = fn(*args, **kw)
            except BaseException as e:  # handed to the caller
                out["error"] = e
        t = threading.Thread(target=body, name=f"in-{self.name}", daemon=True)
        t.start()
        t.join()
        if "error" in out:
            raise out["error"]
        return out.get("value")

    def run(self, argv, check=True, input=None, timeout=30):
        r = subprocess.run(["ip", "netns", "exec", self.name] + list(argv), input=input,
                           capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"[{self.name}] {' '.join(argv)} -> {r.returncode}: "
                               f"{r.stderr.strip()} {r.stdout.strip()}")
        return r

    def batch_argv(self, lines):
        return ["ip", "-n", self.name, "-batch", "-"], "".join(l + "\n" for l in lines)

    def ip_batch(self, lines):
        argv, text = self.batch_argv(lines)
        r = subprocess.run(argv, input=text, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"ip -n {self.name} -batch: {r.stderr.strip()}")

    def nft(self, *args, check=True, input=None):
        return self.run(["nft", *args], check=check, input=input)

    def sysctl_argv(self, settings):
        return ["ip", "netns", "exec", self.name, "sysctl", "-q", "-w"] + [
            f"{k}={v}" for k, v in settings.items()]


def create_netns(names):
    """`ip netns add` for every name, in one batch (register them first)."""
    if not names:
        return
    r = subprocess.run(["ip", "-batch", "-"], capture_output=True, text=True,
                       input="".join(f"netns add {n}\n" for n in names))
    if r.returncode != 0:
        raise RuntimeError(f"ip netns add: {r.stderr.strip()}")


def run_parallel(jobs):
    """[(argv, stdin text or None)] run at once; raises on the first failure."""
    procs = []
    for argv, text in jobs:
        p = subprocess.Popen(argv, stdin=subprocess.PIPE if text is not None else
                             subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        procs.append((argv, text, p))
    errors = []
    for argv, text, p in procs:
        out, err = p.communicate(text, timeout=30)
        if p.returncode != 0:
            errors.append(f"{' '.join(argv)}: {err.strip()} {out.strip()}")
    if errors:
        raise RuntimeError("\n".join(errors))


# Kernel settings of test namespaces, each for a reason: ICMP rate limits off or raised (a burst
# of rejects must not turn "refused" into "timeout"), redirects off (a router forwarding on the
# interface a packet came in on must not teach the sender a shortcut), DAD off (addresses usable
# at once).
SYSCTL_ALL_NS = {
    "net.ipv6.conf.all.accept_dad": 0, "net.ipv6.conf.default.accept_dad": 0,
    "net.ipv4.icmp_ratelimit": 0, "net.ipv6.icmp.ratelimit": 0,
    "net.ipv4.icmp_msgs_per_sec": 100000, "net.ipv4.icmp_msgs_burst": 10000,
    "net.ipv4.conf.all.accept_redirects": 0, "net.ipv4.conf.default.accept_redirects": 0,
    "net.ipv6.conf.all.accept_redirects": 0, "net.ipv6.conf.default.accept_redirects": 0,
}
# Routers: forwarding on, no redirects sent, rp_filter off.
SYSCTL_ROUTER = {
    "net.ipv4.ip_forward": 1, "net.ipv6.conf.all.forwarding": 1,
    "net.ipv4.conf.all.send_redirects": 0, "net.ipv4.conf.default.send_redirects": 0,
    "net.ipv4.conf.all.rp_filter": 0, "net.ipv4.conf.default.rp_filter": 0,
}
# Kubernetes nodes: bridged pod traffic goes through netfilter (br_netfilter), as kubeadm
# requires.
SYSCTL_NODE = {"net.bridge.bridge-nf-call-iptables": 1, "net.bridge.bridge-nf-call-ip6tables": 1}

# What a gateway namespace does with a packet it has no route for: with its default routes
# pointing into the veth "sink0" (peer "sink1", both up), ICMP host unreachable at once. (A
# route of type unreachable would say the same, but IPv4 limits those errors to one a second
# per source with a knob that is not per namespace: net.ipv4.route.error_cost.)
GATEWAY_REJECT_RULES = """table inet gateway {
  chain forward {
    type filter hook forward priority 0; policy accept;
    oifname "sink0" reject with icmpx type host-unreachable
  }
}
"""


# ---------------------------------------------------------------------------
# Probe helpers

ERRNO_KIND = {
    errno.ECONNREFUSED: "refused",
    errno.EHOSTUNREACH: "unreachable", errno.ENETUNREACH: "unreachable",
    errno.ENOPROTOOPT: "unreachable", errno.EACCES: "unreachable",
    errno.EPROTO: "unreachable",  # ICMPv6 parameter problem: no such next header
    errno.EPERM: "eperm", errno.ECONNRESET: "reset", errno.ETIMEDOUT: "timeout",
}


def failure_kind(e):
    """The kind of failure an OSError from a probe socket stands for."""
    kind = ERRNO_KIND.get(e.errno)
    if kind is None:
        kind = "timeout" if isinstance(e, TimeoutError) else f"error: {e}"
    return kind


_IP_RECVERR = getattr(socket, "IP_RECVERR", 11)
_IPV6_RECVERR = getattr(socket, "IPV6_RECVERR", 25)


def probe_socket(where, family, type_, proto=0):
    """A socket in `where` (anything with .ns) on which every ICMP error fails the next call at
    once (without IP_RECVERR, net and host unreachable are soft errors UDP and raw sockets
    ignore)."""
    s = where.ns.socket(af(family), type_, proto)
    if family == 6:
        s.setsockopt(socket.IPPROTO_IPV6, _IPV6_RECVERR, 1)
    else:
        s.setsockopt(socket.IPPROTO_IP, _IP_RECVERR, 1)
    return s


def icmp_queued(sock):
    """Whether an ICMP error sits in the socket's error queue (IP_RECVERR): tells a connect
    refused by ICMP port unreachable from one refused by a TCP RST."""
    try:
        sock.setblocking(False)
        _, ancdata, _, _ = sock.recvmsg(512, 1024, socket.MSG_ERRQUEUE)
        return bool(ancdata)
    except OSError:
        return False


def bind_to(sock, src, sport=0):
    if src is not None or sport:
        if sock.family == socket.AF_INET6:
            sock.bind((src or "::", sport))
        else:
            sock.bind((src or "0.0.0.0", sport))


def send_or_failure(sock, data, timeout):
    """send(); None, or the kind of failure. A packet the node's own output path rejects fails
    the send with EPERM (netfilter dropped it) while the reject's ICMP error comes back through
    loopback: that is "refused"; EPERM without an ICMP is a local drop ("eperm")."""
    try:
        sock.send(data)
        return None
    except PermissionError as e:
        try:
            sock.settimeout(min(timeout, 0.2))
            sock.recv(512)
        except OSError as again:
            if again.errno == errno.ECONNREFUSED:
                return failure_kind(again)
        return failure_kind(e)
    except OSError as e:
        return failure_kind(e)


class NsHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection whose socket is made in `where`'s namespace."""

    def __init__(self, where, host, port, timeout):
        super().__init__(host, port, timeout=timeout)
        self._where = where

    def connect(self):
        self.sock = probe_socket(self._where, family_of(self.host), socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect((self.host, self.port))


def http_get(where, ip, port, path="/", timeout=2.0):
    """(status, body) or (None, failure kind)."""
    conn = NsHTTPConnection(where, ip, port, timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    except OSError as e:
        return None, failure_kind(e)
    except http.client.HTTPException as e:
        return None, f"error: {type(e).__name__} {e}"
    finally:
        conn.close()


def concurrently(*calls):
    """Runs zero-argument callables (probes that may each wait a whole timeout) at once;
    their results in order."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(calls))) as pool:
        return [f.result() for f in [pool.submit(c) for c in calls]]


def wait_until(fn, accept, what, timeout=10.0, interval=0.05):
    """Calls fn() until accept(value); returns that value. On timeout the message carries the
    last value seen."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if accept(value):
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; "
                                 f"last: {value!r}")
        time.sleep(interval)
