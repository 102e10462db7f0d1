#!/usr/bin/env python3
"""The test server of a mini-cluster pod, like agnhost netexec. Over IPv4 and IPv6:

  HTTP 8083   /hostname, /clientip ("ip:port" as seen, "[ip]:port" for IPv6),
              /echo?msg=..., /healthz
  UDP  8081   one datagram per command, one answer: "hostname", "echo <msg>", "clientip";
              datagrams up to 64 KiB (the 2000-byte echo of the large-request tests)
  SCTP 8082   an INIT answered with an INIT-ACK whose State Cookie is "<hostname> <client-ip>"

This kernel has no SCTP sockets, so SCTP speaks the first half of the handshake over raw
sockets with proxy/podserver.py's codec (see there why that is what a proxy acts on).

Each request is logged on stderr as one line "<unix time> <PROTO> <client-ip> <what>", which
the harness reads to tell which pods traffic reached. Prints "ready" on stdout once every
socket is bound.
"""

import argparse
import http.server
import os
import selectors
import socket
import socketserver
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from proxy import podserver  # noqa: E402  (the SCTP codec)

HTTP_PORT, UDP_PORT, SCTP_PORT = 8083, 8081, 8082


def plain(ip):
    return podserver.plain(ip)


def host_port(ip, port):
    ip = plain(ip)
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


class Log:
    def __init__(self):
        self.lock = threading.Lock()

    def request(self, proto, client_ip, what):
        with self.lock:
            sys.stderr.write(f"{time.time():.6f} {proto} {plain(client_ip)} {what}\n")
            sys.stderr.flush()


LOG = Log()


class HttpServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "netexec"

    def log_message(self, *args):
        pass

    def _answer(self, code, text):
        body = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        LOG.request("HTTP", self.client_address[0], url.path)
        name = self.server.pod_name
        if url.path == "/hostname":
            self._answer(200, name)
        elif url.path == "/clientip":
            self._answer(200, host_port(*self.client_address[:2]))
        elif url.path == "/echo":
            msg = urllib.parse.parse_qs(url.query).get("msg", [""])[0]
            self._answer(200, msg)
        elif url.path == "/healthz":
            self._answer(200, "ok")
        else:
            self._answer(404, f"404 page not found: {url.path}\n")


class Server:
    def __init__(self, name, http_port, udp_port, sctp_port):
        self.name = name
        self.sctp_port = sctp_port
        self.http = HttpServer(("::", http_port), Handler)
        self.http.pod_name = name
        self.sel = selectors.DefaultSelector()
        udp = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        udp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        udp.bind(("::", udp_port))
        udp.setblocking(False)
        self.sel.register(udp, selectors.EVENT_READ, self.on_udp)
        for family in (socket.AF_INET, socket.AF_INET6):
            raw = socket.socket(family, socket.SOCK_RAW, socket.IPPROTO_SCTP)
            raw.setblocking(False)
            self.sel.register(raw, selectors.EVENT_READ, self.on_sctp)
        self.tsn = int.from_bytes(os.urandom(4), "big")

    def on_udp(self, sock):
        try:
            data, addr = sock.recvfrom(65535)
        except OSError:
            return
        text = data.decode(errors="replace").strip()
        cmd, _, arg = text.partition(" ")
        LOG.request("UDP", addr[0], cmd if cmd != "echo" else f"echo ({len(arg)} bytes)")
        if cmd == "hostname":
            answer = self.name
        elif cmd == "echo":
            answer = arg
        elif cmd == "clientip":
            answer = host_port(addr[0], addr[1])
        else:
            answer = f"unknown command {cmd!r}"
        try:
            sock.sendto(answer.encode(), addr)
        except OSError:
            pass  # an ICMP error from an earlier reply, or a vanished client

    def on_sctp(self, sock):
        try:
            data, addr = sock.recvfrom(65535)
        except OSError:
            return
        if sock.family == socket.AF_INET:
            data, src = podserver.strip_ip_header(data)
        else:
            src = addr[0]
        parsed = podserver.sctp_parse(data)
        if not parsed:
            return
        sport, dport, _vtag, ctype, value = parsed
        if ctype != podserver.SCTP_INIT or dport != self.sctp_port or len(value) < 16:
            return
        LOG.request("SCTP", src, "INIT")
        peer_tag, _ = podserver.init_fields(value)
        tag = int.from_bytes(os.urandom(4), "big") or 1
        cookie = f"{self.name} {plain(src)}".encode()
        reply = podserver.sctp_init_ack(dport, sport, peer_tag, tag, self.tsn, cookie)
        try:
            sock.sendto(reply, (src, 0))
        except OSError:
            pass

    def serve(self):
        threading.Thread(target=self.http.serve_forever, kwargs={"poll_interval": 0.5},
                         daemon=True).start()
        print("ready", flush=True)
        while True:
            for key, _ in self.sel.select():
                key.data(key.fileobj)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", required=True, help="the hostname this server answers with")
    ap.add_argument("--http-port", type=int, default=HTTP_PORT)
    ap.add_argument("--udp-port", type=int, default=UDP_PORT)
    ap.add_argument("--sctp-port", type=int, default=SCTP_PORT)
    args = ap.parse_args()
    try:
        server = Server(args.name, args.http_port, args.udp_port, args.sctp_port)
    except OSError as e:
        print(f"netexec {args.name}: {e}", file=sys.stderr, flush=True)
        return 1
    try:
        server.serve()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
