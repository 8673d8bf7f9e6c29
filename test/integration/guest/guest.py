#!/usr/bin/env python3
"""Guest-side test client, run inside the namespace behind tsnet.

Each subcommand prints one line of results for the test to parse.
  download HOST PORT                 read until EOF; print "<bytes> <sha256>"
  upload HOST PORT NBYTES            send NBYTES random bytes, half-close, wait
                                     for the server to close; print "<bytes> <sha256>"
  echo-many HOST PORT N SIZE         N concurrent connections, each sends SIZE
                                     random bytes to an echo server and checks
                                     the echo; print "ok <N>" or "fail <detail>"
  connect HOST PORT                  one connect; print "<result> <ms>"
                                     (result: ok, or the errno name)
  udp-echo HOST PORT                 one datagram, wait for the echo; print it
  udp-refused HOST PORT              send to a closed port; print "refused"
                                     when the ICMP error arrives as ECONNREFUSED
  dns-tcp SERVER NAME                A query over TCP; print the addresses
  dns-udp SERVER NAME                A query over UDP (2 s); print the addresses,
                                     or "timeout"
  serve-peer PORT N                  accept N connections on PORT; answer each
                                     with "peer=ADDR:PORT" and close
  serve-peer-any PORT N              the same on [::] (IPv6 and IPv4 clients)
  serve-sink PORT                    accept one connection, read to EOF, answer
                                     "<bytes> <sha256>", close
  serve-source PORT NBYTES           accept one connection, send NBYTES random
                                     bytes, close; print "<bytes> <sha256>"
  serve-echo PORT                    echo server, a thread per connection (runs
                                     until killed)
  udp-echo-server PORT               echo every datagram back, prefixed with
                                     the sender "ADDR:PORT " (until killed)
Hostile ones (the hardening tests):
  spray TARGET...                    TARGET is ADDR:PORT/udp or ADDR:PORT/tcp: one
                                     datagram, or one connect (1 s); errors ignored;
                                     print "sprayed <n>"
  stall HOST PORT N SECS             N connections that never read (small receive
                                     buffers); hold them SECS seconds; print
                                     "held <n> refused <m>"
  udp-ports HOST PORT N              one datagram from each of N sockets (N source
                                     ports); print "sent <n>"
  churn HOST PORT N                  N connects, each closed at once; print "ok <n>"
  syn-flood IFACE DST PORT N         N TCP SYNs with random spoofed sources
                                     (198.18.0.0/15) written to IFACE with
                                     AF_PACKET; print "sent <n>"
"""
import errno
import hashlib
import os
import socket
import struct
import sys
import threading
import time

CHUNK = 1 << 20


def download(host, port):
    s = socket.create_connection((host, int(port)), timeout=60)
    h = hashlib.sha256()
    n = 0
    while True:
        b = s.recv(CHUNK)
        if not b:
            break
        h.update(b)
        n += len(b)
    print(n, h.hexdigest())


def upload(host, port, nbytes):
    nbytes = int(nbytes)
    s = socket.create_connection((host, int(port)), timeout=60)
    h = hashlib.sha256()
    left = nbytes
    while left > 0:
        b = os.urandom(min(CHUNK, left))
        s.sendall(b)
        h.update(b)
        left -= len(b)
    s.shutdown(socket.SHUT_WR)
    while s.recv(CHUNK):
        pass
    print(nbytes, h.hexdigest())


def echo_many(host, port, n, size):
    n, size = int(n), int(size)
    failures = []

    def one(i):
        try:
            data = os.urandom(size)
            s = socket.create_connection((host, int(port)), timeout=120)
            got = bytearray()

            def reader():
                while True:
                    b = s.recv(CHUNK)
                    if not b:
                        return
                    got.extend(b)

            t = threading.Thread(target=reader)
            t.start()
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            t.join()
            s.close()
            if bytes(got) != data:
                failures.append("conn %d: got %d bytes, mismatch" % (i, len(got)))
        except Exception as e:  # noqa: BLE001 - report every failure
            failures.append("conn %d: %r" % (i, e))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("ok %d" % n if not failures else "fail %d %s" % (len(failures), failures[:3]))


def connect(host, port):
    t0 = time.monotonic()
    try:
        s = socket.create_connection((host, int(port)), timeout=10)
        s.close()
        r = "ok"
    except OSError as e:
        r = errno.errorcode.get(e.errno, str(e)) if e.errno else type(e).__name__
    print(r, int((time.monotonic() - t0) * 1000))


def family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def udp_echo(host, port):
    s = socket.socket(family(host), socket.SOCK_DGRAM)
    s.settimeout(5)
    s.sendto(b"hello tsnet", (host, int(port)))
    data, addr = s.recvfrom(65535)
    print(data.decode(), addr[0], addr[1])


def udp_gso(host, port, seg, total):
    """One send of `total` bytes with UDP_SEGMENT=seg (the kernel hands a
    USO super-datagram to the TAP); prints the sizes of the echoes."""
    seg, total = int(seg), int(total)
    s = socket.socket(family(host), socket.SOCK_DGRAM)
    s.settimeout(3)
    s.setsockopt(socket.IPPROTO_UDP, 103, seg)  # UDP_SEGMENT
    s.connect((host, int(port)))
    s.send(bytes(i % 251 for i in range(total)))
    sizes = []
    try:
        while sum(sizes) < total:
            sizes.append(len(s.recv(65535)))
    except socket.timeout:
        pass
    print(" ".join(str(n) for n in sizes))


def udp_refused(host, port):
    s = socket.socket(family(host), socket.SOCK_DGRAM)
    s.settimeout(5)
    s.connect((host, int(port)))
    s.send(b"anyone?")
    try:
        s.recv(100)
        print("answered")
    except ConnectionRefusedError:
        print("refused")
    except socket.timeout:
        print("timeout")


def dns_query(name):
    q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\x00" + struct.pack(">HH", 1, 1)


def dns_tcp(server, name):
    q = dns_query(name)
    s = socket.create_connection((server, 53), timeout=10)
    s.sendall(struct.pack(">H", len(q)) + q)
    ln = struct.unpack(">H", s.recv(2))[0]
    r = b""
    while len(r) < ln:
        r += s.recv(ln - len(r))
    print_answers(q, r)


def dns_udp(server, name):
    q = dns_query(name)
    s = socket.socket(family(server), socket.SOCK_DGRAM)
    s.settimeout(2)
    s.sendto(q, (server, 53))
    try:
        r, _ = s.recvfrom(65535)
    except socket.timeout:
        print("timeout")
        return
    print_answers(q, r)


def print_answers(q, r):
    an = struct.unpack(">H", r[6:8])[0]
    off = len(q)
    out = []
    for _ in range(an):
        off += 2 if r[off] & 0xC0 == 0xC0 else r.index(b"\x00", off) + 1 - off
        typ, _cls, _ttl, rdlen = struct.unpack(">HHIH", r[off:off + 10])
        off += 10
        if typ == 1:
            out.append(socket.inet_ntoa(r[off:off + 4]))
        off += rdlen
    print(" ".join(out) or "none")


def listen(port, backlog, any_family=False):
    """A TCP listener on all IPv4 addresses (any_family: on [::], IPv4 too); says "listening" (the test waits for it)."""
    ls = socket.socket(socket.AF_INET6 if any_family else socket.AF_INET)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if any_family:
        ls.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    ls.bind(("::" if any_family else "0.0.0.0", int(port)))
    ls.listen(backlog)
    print("listening", flush=True)
    return ls


def serve_peer(port, n, any_family=False):
    ls = listen(port, 64, any_family)
    for _ in range(int(n)):
        c, addr = ls.accept()
        c.sendall(("peer=%s:%d\n" % (addr[0], addr[1])).encode())
        c.close()


def serve_peer_any(port, n):
    serve_peer(port, n, True)


def serve_sink(port):
    ls = listen(port, 1)
    c, _ = ls.accept()
    h = hashlib.sha256()
    n = 0
    while True:
        b = c.recv(CHUNK)
        if not b:
            break
        h.update(b)
        n += len(b)
    c.sendall(("%d %s" % (n, h.hexdigest())).encode())
    c.close()


def serve_source(port, nbytes):
    nbytes = int(nbytes)
    ls = listen(port, 1)
    c, _ = ls.accept()
    h = hashlib.sha256()
    left = nbytes
    while left > 0:
        b = os.urandom(min(CHUNK, left))
        c.sendall(b)
        h.update(b)
        left -= len(b)
    c.close()
    print(nbytes, h.hexdigest(), flush=True)


def serve_echo(port):
    ls = listen(port, 1024)

    def handle(c):
        with c:
            while True:
                b = c.recv(CHUNK)
                if not b:
                    return
                c.sendall(b)

    while True:
        c, _ = ls.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()


def udp_echo_server(port, any_family=""):
    """Echoes datagrams prefixed with "ADDR:PORT " of the sender; on [::] (IPv6 too) when any_family is "any"."""
    s = socket.socket(socket.AF_INET6 if any_family else socket.AF_INET, socket.SOCK_DGRAM)
    if any_family:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::" if any_family else "0.0.0.0", int(port)))
    print("listening", flush=True)
    while True:
        data, addr = s.recvfrom(65535)
        s.sendto(("%s:%d " % (addr[0], addr[1])).encode() + data, addr)


def spray(*targets):
    n = 0
    for t in targets:
        addr, rest = t.rsplit(":", 1)
        addr = addr.strip("[]")
        port, proto = rest.split("/")
        try:
            if proto == "udp":
                s = socket.socket(family(addr), socket.SOCK_DGRAM)
                if addr == "255.255.255.255":
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
                s.sendto(b"x", (addr, int(port)))
            else:
                s = socket.socket(family(addr))
                s.settimeout(1)
                s.connect((addr, int(port)))
            s.close()
        except OSError:
            pass
        n += 1
    print("sprayed", n)


def stall(host, port, n, secs):
    socks = []
    refused = 0
    for _ in range(int(n)):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        try:
            s.connect((host, int(port)))
            socks.append(s)
        except OSError:
            refused += 1
            s.close()
    time.sleep(float(secs))
    for s in socks:
        s.close()
    print("held", len(socks), "refused", refused)


def udp_ports(host, port, n):
    for i in range(int(n)):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.sendto(b"flood", (host, int(port)))
        except OSError:
            pass
        s.close()
        if i % 200 == 199:
            time.sleep(0.005)
    print("sent", n)


def churn(host, port, n):
    for _ in range(int(n)):
        s = socket.create_connection((host, int(port)), timeout=10)
        s.close()
    print("ok", n)


def csum(b):
    if len(b) % 2:
        b += b"\0"
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while t >> 16:
        t = (t & 0xFFFF) + (t >> 16)
    return ~t & 0xFFFF


def ipv4_packet(src, dst, proto, l4):
    """An IPv4 header (no options, header checksum filled) in front of l4; src/dst as 4 bytes."""
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, 0, 64, proto, 0, src, dst)
    return ip[:10] + struct.pack("!H", csum(ip)) + ip[12:] + l4


def syn_flood(iface, dst, port, n):
    import random
    rnd = random.Random(7)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    src_mac = s.getsockname()[4]
    dst_mac = bytes.fromhex("52550a000202")
    d = socket.inet_aton(dst)
    for _ in range(int(n)):
        src = bytes([198, 18 + rnd.randrange(2), rnd.randrange(256), 1 + rnd.randrange(254)])
        sport = 1024 + rnd.randrange(60000)
        tcp = struct.pack("!HHIIBBHHH", sport, int(port), rnd.getrandbits(32), 0, 5 << 4, 0x02, 64240, 0, 0)
        tcp = tcp[:16] + struct.pack("!H", csum(src + d + struct.pack("!BBH", 0, 6, len(tcp)) + tcp)) + tcp[18:]
        s.send(dst_mac + src_mac + b"\x08\x00" + ipv4_packet(src, d, 6, tcp))
        if _ % 200 == 199:
            time.sleep(0.005)  # stay within the TAP queue (1000 frames): the flood must reach tsnet
    print("sent", n)


def vnet_hostile(iface, dst, port, n):
    """Frames with virtio-net headers a packet socket (PACKET_VNET_HDR) lets
    a guest write: UDP segmentation into 1-byte pieces (thousands of
    datagrams), gso_size 0, TCP segmentation of a tiny segment, checksum
    offsets past the frame. Prints how many each case got past the kernel."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.setsockopt(263, 15, 1)  # SOL_PACKET, PACKET_VNET_HDR
    s.bind((iface, 0))
    src_mac = s.getsockname()[4]
    dst_mac = bytes.fromhex("52550a000202")
    src = socket.inet_aton("10.0.2.100")
    d = socket.inet_aton(dst)

    def ipv4(proto, l4):
        return ipv4_packet(src, d, proto, l4)

    def pseudo(proto, n):
        return csum(src + d + struct.pack("!BBH", 0, proto, n)) ^ 0xFFFF

    payload = bytes(3000)
    udp = struct.pack("!HHHH", 40000, int(port), 8 + len(payload), pseudo(17, 8 + len(payload))) + payload
    tcp = struct.pack("!HHIIBBHHH", 40001, int(port), 1, 0, 5 << 4, 0x18, 64240, pseudo(6, 20 + 100), 0) + bytes(100)
    eth = dst_mac + src_mac + b"\x08\x00"
    cases = {
        # flags, gso_type, hdr_len, gso_size, csum_start, csum_offset, frame
        "uso-1-byte": (1, 5, 42, 1, 34, 6, eth + ipv4(17, udp)),
        "uso-375": (1, 5, 42, 8, 34, 6, eth + ipv4(17, udp)),
        "uso-3": (1, 5, 42, 1000, 34, 6, eth + ipv4(17, udp)),
        "uso-size-0": (1, 5, 42, 0, 34, 6, eth + ipv4(17, udp)),
        "tso-tiny": (1, 1, 54, 1, 34, 16, eth + ipv4(6, tcp)),
        "csum-past-end": (1, 0, 0, 0, 4000, 6, eth + ipv4(17, udp[:20])),
        "uso-on-tcp": (1, 5, 54, 8, 34, 16, eth + ipv4(6, tcp)),
    }
    got = []
    for name, (flags, gso, hdr_len, gso_size, cstart, coff, frame) in cases.items():
        ok = 0
        for _ in range(int(n)):
            try:
                s.send(struct.pack("<BBHHHH", flags, gso, hdr_len, gso_size, cstart, coff) + frame)
                ok += 1
            except OSError:
                pass
        got.append("%s=%d" % (name, ok))
        time.sleep(0.05)
    print(" ".join(got))


def syn_flood6(iface, dst, port, n):
    """n TCP SYNs to [dst]:port from spoofed 2001:db8:: sources (raw frames on iface)."""
    import random
    rnd = random.Random(7)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    src_mac = s.getsockname()[4]
    dst_mac = bytes.fromhex("525600000002")
    d = socket.inet_pton(socket.AF_INET6, dst)
    for i in range(int(n)):
        src = bytes.fromhex("20010db8000000000000") + rnd.getrandbits(48).to_bytes(6, "big")
        tcp = struct.pack("!HHIIBBHHH", 1024 + rnd.randrange(60000), int(port), rnd.getrandbits(32), 0, 5 << 4, 0x02, 64240, 0, 0)
        pseudo = src + d + struct.pack("!IxxxB", len(tcp), 6)
        tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
        ip = struct.pack("!IHBB16s16s", 6 << 28, len(tcp), 6, 64, src, d)
        s.send(dst_mac + src_mac + b"\x86\xdd" + ip + tcp)
        if i % 200 == 199:
            time.sleep(0.005)
    print("sent", n)


def ndp_flood(iface, n):
    """n router solicitations and n neighbor solicitations for random targets from random sources (raw frames)."""
    import random
    rnd = random.Random(11)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    src_mac = s.getsockname()[4]

    def icmp6(src, dst, body):
        pseudo = src + dst + struct.pack("!IxxxB", len(body), 58)
        body = body[:2] + struct.pack("!H", csum(pseudo + body)) + body[4:]
        ip = struct.pack("!IHBB16s16s", 6 << 28, len(body), 58, 255, src, dst)
        return ip + body

    all_routers = socket.inet_pton(socket.AF_INET6, "ff02::2")
    for i in range(int(n)):
        src = bytes.fromhex("fe80000000000000") + rnd.getrandbits(64).to_bytes(8, "big")
        rs = struct.pack("!BBHI", 133, 0, 0, 0) + struct.pack("!BB6s", 1, 1, rnd.getrandbits(48).to_bytes(6, "big"))
        s.send(b"\x33\x33\x00\x00\x00\x02" + src_mac + b"\x86\xdd" + icmp6(src, all_routers, rs))
        target = bytes.fromhex("fd000000000000000000") + rnd.getrandbits(48).to_bytes(6, "big")
        group = bytes.fromhex("ff0200000000000000000001ff") + target[13:]
        ns = struct.pack("!BBHI", 135, 0, 0, 0) + target + struct.pack("!BB6s", 1, 1, rnd.getrandbits(48).to_bytes(6, "big"))
        s.send(b"\x33\x33" + group[12:] + src_mac + b"\x86\xdd" + icmp6(src, group, ns))
        if i % 200 == 199:
            time.sleep(0.005)
    print("sent", n)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {
        "download": download,
        "upload": upload,
        "echo-many": echo_many,
        "connect": connect,
        "udp-echo": udp_echo,
        "udp-refused": udp_refused,
        "udp-gso": udp_gso,
        "dns-tcp": dns_tcp,
        "dns-udp": dns_udp,
        "serve-peer": serve_peer,
        "serve-peer-any": serve_peer_any,
        "serve-sink": serve_sink,
        "serve-source": serve_source,
        "serve-echo": serve_echo,
        "udp-echo-server": udp_echo_server,
        "spray": spray,
        "syn-flood6": syn_flood6,
        "vnet-hostile": vnet_hostile,
        "ndp-flood": ndp_flood,
        "stall": stall,
        "udp-ports": udp_ports,
        "churn": churn,
        "syn-flood": syn_flood,
    }[cmd](*args)
