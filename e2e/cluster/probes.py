"""Probes of the mini-cluster: one exchange with whatever answers at ip:port, from inside the
namespace of `where` (a Pod, a Node, the outside Host: anything with .ns and a .label). The
sockets are made in that namespace by this process (nstest), so a probe costs a connect, not
a process. Every probe returns an Answer; str(answer) says what the packets did, in the words
a failure report needs ("GET http://10.96.0.12:80/hostname from pod c1 on node-1: timeout
after 2.0s").

Outcomes: "ok", or the failure kind nstest classifies: "refused" (RST, ICMP port unreachable,
SCTP ABORT), "unreachable" (ICMP host/net/protocol unreachable), "timeout" (silence), "reset",
"eperm" (dropped by the prober's own output path), "error: ...".
"""

import random
import socket
import time

import nstest
from proxy import podserver

PROBE_TIMEOUT = 2.0  # a probe that hears nothing for this long is a "timeout"


def label(where):
    return getattr(where, "label", None) or getattr(where, "name", None) or repr(where)


def url_host(ip):
    return f"[{ip}]" if ":" in ip else ip


class Answer:
    """What one probe got. ok: the exchange completed (for HTTP: any status). text: the body or
    datagram (stripped); seen: the client address the server reported, when it did."""

    __slots__ = ("what", "where", "outcome", "status", "text", "seen", "elapsed")

    def __init__(self, what, where, outcome="ok", status=None, text=None, seen=None,
                 elapsed=0.0):
        self.what, self.where = what, where
        self.outcome, self.status, self.text, self.seen = outcome, status, text, seen
        self.elapsed = elapsed

    @property
    def ok(self):
        return self.outcome == "ok"

    @property
    def error(self):
        return None if self.ok else self.outcome

    def reply(self):
        """The answer's content for messages: 'HTTP 200 "web-0"'."""
        if not self.ok:
            return f"{self.outcome} after {self.elapsed:.1f}s"
        text = self.text if self.text is None or len(self.text) <= 80 else \
            self.text[:60] + f"...({len(self.text)} bytes)"
        if self.status is not None:
            return f"HTTP {self.status} {text!r}"
        return repr(text) if text is not None else "connected"

    def __str__(self):
        return f"{self.what} from {self.where}: {self.reply()}"

    __repr__ = __str__


def client_ip(answer):
    """The IP of an "ip:port" / "[ip]:port" answer (/clientip, UDP clientip), else None."""
    if not answer.ok or not answer.text:
        return None
    t = answer.text.strip()
    if t.startswith("["):
        return t[1:t.index("]")] if "]" in t else None
    return t.rsplit(":", 1)[0] if t.count(":") == 1 else None


def http_get(where, ip, port, path="/hostname", timeout=PROBE_TIMEOUT):
    """GET http://ip:port/path; any HTTP status is an "ok" exchange (look at .status)."""
    what = f"GET http://{url_host(ip)}:{port}{path}"
    start = time.monotonic()
    status, body = nstest.http_get(where, ip, port, path, timeout=timeout)
    elapsed = time.monotonic() - start
    if status is None:
        return Answer(what, label(where), body, elapsed=elapsed)
    return Answer(what, label(where), "ok", status, body.strip(), elapsed=elapsed)


def udp(where, ip, port, command="hostname", timeout=PROBE_TIMEOUT, sport=0):
    """One datagram carrying `command` from a fresh socket (a new conntrack entry each time
    unless sport is set); the one datagram that answers."""
    shown = command if len(command) <= 40 else f"{command[:20]}...({len(command)} bytes)"
    what = f"UDP {shown!r} to {url_host(ip)}:{port}"
    start = time.monotonic()
    family = nstest.family_of(ip)
    s = nstest.probe_socket(where, family, socket.SOCK_DGRAM)
    try:
        s.settimeout(timeout)
        if sport:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        nstest.bind_to(s, None, sport)
        s.connect((ip, port))
        failed = nstest.send_or_failure(s, command.encode(), timeout)
        if failed:
            return Answer(what, label(where), failed, elapsed=time.monotonic() - start)
        data = s.recv(65535)
        return Answer(what, label(where), "ok", text=data.decode(errors="replace").strip(),
                      elapsed=time.monotonic() - start)
    except OSError as e:
        return Answer(what, label(where), nstest.failure_kind(e),
                      elapsed=time.monotonic() - start)
    finally:
        s.close()


def sctp(where, ip, port, timeout=PROBE_TIMEOUT):
    """An SCTP INIT from a random source port; netexec's INIT-ACK cookie carries
    "<hostname> <client-ip>" (text = hostname, seen = client IP). Raw sockets: ICMP errors reach
    the connected socket through IP_RECVERR; an ABORT is "refused"."""
    what = f"SCTP INIT to {url_host(ip)}:{port}"
    start = time.monotonic()
    family = nstest.family_of(ip)

    def done(outcome, **kw):
        return Answer(what, label(where), outcome, elapsed=time.monotonic() - start, **kw)
    s = nstest.probe_socket(where, family, socket.SOCK_RAW, socket.IPPROTO_SCTP)
    try:
        s.connect((ip, 0))
        sport = random.randint(32768, 60999)
        tag = random.randint(1, 0xFFFFFFFF)
        failed = nstest.send_or_failure(
            s, podserver.sctp_init(sport, port, tag, random.randint(0, 0xFFFFFFFF)), timeout)
        if failed:
            return done(failed)
        deadline = start + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return done("timeout")
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
                return done("refused")
            if ctype == podserver.SCTP_INIT_ACK:
                cookie = (podserver.init_ack_cookie(value) or b"").decode(errors="replace")
                name, _, seen = cookie.partition(" ")
                return done("ok", text=name, seen=seen or None)
    except OSError as e:
        return done(nstest.failure_kind(e))
    finally:
        s.close()


def tcp_connect(where, ip, port, timeout=PROBE_TIMEOUT):
    """A TCP connect and nothing else: ok / refused / timeout / unreachable."""
    what = f"TCP connect to {url_host(ip)}:{port}"
    start = time.monotonic()
    s = nstest.probe_socket(where, nstest.family_of(ip), socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.connect((ip, port))
        return Answer(what, label(where), "ok", elapsed=time.monotonic() - start)
    except OSError as e:
        return Answer(what, label(where), nstest.failure_kind(e),
                      elapsed=time.monotonic() - start)
    finally:
        s.close()


def hostname(where, proto, ip, port, timeout=PROBE_TIMEOUT):
    """The one probe per protocol that asks who answers: HTTP /hostname, UDP "hostname", SCTP
    INIT. Answer.text is the hostname when ok (and, for HTTP, status 200)."""
    if proto == "HTTP" or proto == "TCP":
        a = http_get(where, ip, port, "/hostname", timeout=timeout)
        if a.ok and a.status != 200:
            a.outcome = f"error: HTTP {a.status}"
        return a
    if proto == "UDP":
        return udp(where, ip, port, "hostname", timeout=timeout)
    if proto == "SCTP":
        return sctp(where, ip, port, timeout=timeout)
    raise ValueError(f"unknown protocol {proto!r}")


def source_ip(where, proto, ip, port, timeout=PROBE_TIMEOUT):
    """(Answer, the client IP the server saw or None): HTTP /clientip, UDP clientip, SCTP
    cookie."""
    if proto in ("HTTP", "TCP"):
        a = http_get(where, ip, port, "/clientip", timeout=timeout)
        return a, client_ip(a) if a.ok and a.status == 200 else None
    if proto == "UDP":
        a = udp(where, ip, port, "clientip", timeout=timeout)
        return a, client_ip(a)
    a = sctp(where, ip, port, timeout=timeout)
    return a, a.seen
