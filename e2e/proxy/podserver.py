#!/usr/bin/env python3
"""The test server of one pod in e2e/proxy: on each port given it answers, over IPv4 and IPv6,

  TCP   one line "<pod> <client-ip>\\n" per connection, then closes;
  UDP   the same line per datagram;
  SCTP  an INIT with an INIT-ACK whose State Cookie carries the same line.

<client-ip> is the source address the pod saw, so tests read NAT off it. One process per pod,
run inside the pod's namespace; it prints "ready" on stdout once every socket is bound.

SCTP: the test kernel has no SCTP stack (CONFIG_IP_SCTP is off; socket(IPPROTO_SCTP) fails
with EPROTONOSUPPORT), but conntrack and NAT track SCTP (CONFIG_NF_CT_PROTO_SCTP). So both ends
speak the first half of the SCTP handshake over raw sockets: the client sends an INIT, the
pod answers INIT-ACK. That half is what a proxy acts on (the INIT creates the conntrack entry
that is DNATed; the INIT-ACK is un-NATed on its way back). The codec below is shared with the
client side (proxytest.py imports it).
"""

import argparse
import os
import selectors
import socket
import struct
import sys

# ---------------------------------------------------------------------------
# SCTP over raw sockets (RFC 9260): common header, INIT and INIT-ACK chunks, CRC32c.

SCTP_INIT = 1
SCTP_INIT_ACK = 2
SCTP_ABORT = 6
PARAM_STATE_COOKIE = 7


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC32C[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def sctp_packet(sport, dport, vtag, chunk):
    """Common header + one chunk; the CRC32c goes in little-endian byte order (RFC 9260 B)."""
    pkt = struct.pack("!HHII", sport, dport, vtag, 0) + chunk
    return pkt[:8] + struct.pack("<I", crc32c(pkt)) + pkt[12:]


def sctp_init(sport, dport, tag, tsn):
    # type, flags, length, initiate tag, a_rwnd, outbound streams, inbound streams, initial TSN
    chunk = struct.pack("!BBHIIHHI", SCTP_INIT, 0, 20, tag, 65535, 1, 1, tsn)
    return sctp_packet(sport, dport, 0, chunk)  # an INIT carries verification tag 0


def sctp_init_ack(sport, dport, peer_tag, tag, tsn, cookie):
    cookie += b"\0" * (-len(cookie) % 4)  # whole words: no chunk padding to account for
    param = struct.pack("!HH", PARAM_STATE_COOKIE, 4 + len(cookie)) + cookie
    body = struct.pack("!IIHHI", tag, 65535, 1, 1, tsn) + param
    chunk = struct.pack("!BBH", SCTP_INIT_ACK, 0, 4 + len(body)) + body
    return sctp_packet(sport, dport, peer_tag, chunk)


def sctp_parse(pkt):
    """(sport, dport, vtag, first chunk type, chunk value) or None; the checksum is checked."""
    if len(pkt) < 16:
        return None
    sport, dport, vtag = struct.unpack("!HHI", pkt[:8])
    if struct.unpack("<I", pkt[8:12])[0] != crc32c(pkt[:8] + b"\0\0\0\0" + pkt[12:]):
        return None
    ctype, _flags, clen = struct.unpack("!BBH", pkt[12:16])
    return sport, dport, vtag, ctype, pkt[16:12 + clen]


def init_fields(value):
    """(initiate tag, initial TSN) of an INIT or INIT-ACK chunk value."""
    tag, _rwnd, _os, _mis, tsn = struct.unpack("!IIHHI", value[:16])
    return tag, tsn


def init_ack_cookie(value):
    """The State Cookie parameter of an INIT-ACK chunk value, or None."""
    off = 16
    while off + 4 <= len(value):
        ptype, plen = struct.unpack("!HH", value[off:off + 4])
        if plen < 4:
            return None
        if ptype == PARAM_STATE_COOKIE:
            return value[off + 4:off + plen].rstrip(b"\0")
        off += plen + (-plen % 4)
    return None


def strip_ip_header(data):
    """IPv4 raw sockets hand over the IP header: (payload, source address)."""
    ihl = (data[0] & 0x0F) * 4
    return data[ihl:], socket.inet_ntop(socket.AF_INET, data[12:16])


# ---------------------------------------------------------------------------
# The server

def plain(ip):
    """'::ffff:10.0.0.1' (a v4 client on a dual-stack socket) -> '10.0.0.1'."""
    return ip[7:] if ip.startswith("::ffff:") and "." in ip else ip


class PodServer:
    def __init__(self, name, ports):
        self.name = name
        self.ports = set(ports)
        self.sel = selectors.DefaultSelector()
        for port in ports:
            tcp = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            tcp.bind(("::", port))
            tcp.listen(512)
            tcp.setblocking(False)
            self.sel.register(tcp, selectors.EVENT_READ, self.on_tcp)
            udp = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            udp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            udp.bind(("::", port))
            udp.setblocking(False)
            self.sel.register(udp, selectors.EVENT_READ, self.on_udp)
        for family in (socket.AF_INET, socket.AF_INET6):
            raw = socket.socket(family, socket.SOCK_RAW, socket.IPPROTO_SCTP)
            raw.setblocking(False)
            self.sel.register(raw, selectors.EVENT_READ, self.on_sctp)
        self.tsn = int.from_bytes(os.urandom(4), "big")

    def line(self, client_ip):
        return f"{self.name} {plain(client_ip)}\n".encode()

    def on_tcp(self, sock):
        try:
            conn, addr = sock.accept()
        except BlockingIOError:
            return
        try:
            conn.setblocking(True)
            conn.settimeout(1)
            conn.sendall(self.line(addr[0]))
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            conn.close()

    def on_udp(self, sock):
        try:
            _data, addr = sock.recvfrom(2048)
            sock.sendto(self.line(addr[0]), addr)
        except OSError:
            pass  # an ICMP error from an earlier reply, or a vanished client

    def on_sctp(self, sock):
        try:
            data, addr = sock.recvfrom(65535)
        except OSError:
            return
        if sock.family == socket.AF_INET:
            data, src = strip_ip_header(data)
        else:
            src = addr[0]
        parsed = sctp_parse(data)
        if not parsed:
            return
        sport, dport, _vtag, ctype, value = parsed
        if ctype != SCTP_INIT or dport not in self.ports or len(value) < 16:
            return
        peer_tag, _ = init_fields(value)
        tag = int.from_bytes(os.urandom(4), "big") or 1
        reply = sctp_init_ack(dport, sport, peer_tag, tag, self.tsn, self.line(src).strip())
        try:
            sock.sendto(reply, (src, 0))
        except OSError:
            pass

    def serve(self):
        print("ready", flush=True)
        while True:
            for key, _ in self.sel.select():
                key.data(key.fileobj)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", required=True)
    ap.add_argument("--ports", default="8080", help="comma-separated")
    args = ap.parse_args()
    try:
        server = PodServer(args.name, [int(p) for p in args.ports.split(",")])
    except OSError as e:
        print(f"podserver {args.name}: {e}", file=sys.stderr, flush=True)
        return 1
    try:
        server.serve()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
