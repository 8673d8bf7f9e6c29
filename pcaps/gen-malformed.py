#!/usr/bin/env python3
"""gen-malformed.py - write malformed.pcap: SYNTHETIC frames, not from a kernel.

Each frame has exactly one deliberate defect (frame 8 is well-formed but
VLAN-tagged); every other field, including checksums, is computed correctly
so that a parser is exercised on that one defect only.  Stdlib only (struct),
no scapy.  Timestamps are fixed (1700000000 + n seconds), so the output is
byte-for-byte reproducible.

Addresses mimic the slirp4netns setup: "guest" 02:00:00:00:00:64 / 10.0.2.100,
gateway 52:55:0a:00:02:02 / 10.0.2.2.  No Ethernet padding is added (frames
read from a tap device are not padded to 60 bytes either).

 1  truncated Ethernet: only 10 bytes (first 10 bytes of an ARP broadcast)
 2  IPv4 with IHL=3 (12-byte header; < 20 minimum).  The 20 bytes present are
    otherwise a valid ICMP-echo header, checksum computed over those 20 bytes.
 3  IPv4 total length 1000 but the frame carries only 20+8+4 = 32 bytes of IP
 4  TCP SYN with data offset 15 (claims a 60-byte header) in a segment that
    has only the 20-byte fixed header; IP length and TCP checksum are correct
    for the 20 bytes actually present
 5  UDP with length field 4 (< 8-byte header); 4 payload bytes follow; IP
    total length 32 (consistent); UDP checksum 0 (= none, legal for IPv4)
 6  ARP request with hlen 8 (hardware addresses 8 bytes long; 36-byte ARP)
 7  IPv4 ICMP echo request with a wrong header checksum (0xdead); ICMP
    checksum correct
 8  802.1Q-tagged (VID 1, PCP 0) ARP request who-has 10.0.2.2 tell 10.0.2.100
"""
import socket
import struct
import sys

GUEST_MAC = bytes.fromhex("020000000064")
GW_MAC = bytes.fromhex("52550a000202")
BCAST = b"\xff" * 6
GUEST_IP = socket.inet_aton("10.0.2.100")
GW_IP = socket.inet_aton("10.0.2.2")


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def eth(dst, src, etype, payload):
    return dst + src + struct.pack("!H", etype) + payload


def ipv4(proto, payload, *, ihl=5, total_len=None, ident=0x1234, check=None,
         hdr_extra=b""):
    if total_len is None:
        total_len = 20 + len(hdr_extra) + len(payload)
    h = struct.pack("!BBHHHBBH4s4s", (4 << 4) | ihl, 0, total_len, ident,
                    0x4000, 64, proto, 0, GUEST_IP, GW_IP)
    if check is None:
        check = csum(h)
    h = h[:10] + struct.pack("!H", check) + h[12:]
    return h + hdr_extra + payload


def icmp_echo(ident=0x4242, seq=1, data=b"tsnt"):
    m = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + data
    return m[:2] + struct.pack("!H", csum(m)) + m[4:]


def arp(op, sha, spa, tha, tpa, hlen=6):
    return struct.pack("!HHBBH", 1, 0x0800, hlen, 4, op) + sha + spa + tha + tpa


def pseudo(proto, length):
    return GUEST_IP + GW_IP + struct.pack("!BBH", 0, proto, length)


frames = []

# 1 truncated Ethernet
full = eth(BCAST, GUEST_MAC, 0x0806,
           arp(1, GUEST_MAC, GUEST_IP, b"\0" * 6, GW_IP))
frames.append(full[:10])

# 2 IPv4 IHL=3
frames.append(eth(GW_MAC, GUEST_MAC, 0x0800, ipv4(1, icmp_echo(seq=2), ihl=3)))

# 3 IPv4 total length > frame
frames.append(eth(GW_MAC, GUEST_MAC, 0x0800,
                  ipv4(1, icmp_echo(seq=3), total_len=1000)))

# 4 TCP data offset 15 in a 20-byte segment
tcp = struct.pack("!HHIIBBHHH", 40000, 18099, 0x01020304, 0,
                  15 << 4, 0x02, 64240, 0, 0)
tcp = tcp[:16] + struct.pack("!H", csum(pseudo(6, len(tcp)) + tcp)) + tcp[18:]
frames.append(eth(GW_MAC, GUEST_MAC, 0x0800, ipv4(6, tcp)))

# 5 UDP length 4
udp = struct.pack("!HHHH", 40001, 53, 4, 0) + b"\xde\xad\xbe\xef"
frames.append(eth(GW_MAC, GUEST_MAC, 0x0800, ipv4(17, udp)))

# 6 ARP with hlen 8
frames.append(eth(BCAST, GUEST_MAC, 0x0806,
                  arp(1, GUEST_MAC + b"\0\0", GUEST_IP, b"\0" * 8, GW_IP,
                      hlen=8)))

# 7 IPv4 bad header checksum
good = ipv4(1, icmp_echo(seq=7))
assert struct.unpack("!H", good[10:12])[0] != 0xDEAD
frames.append(eth(GW_MAC, GUEST_MAC, 0x0800,
                  ipv4(1, icmp_echo(seq=7), check=0xDEAD)))

# 8 802.1Q-tagged ARP request
frames.append(BCAST + GUEST_MAC + struct.pack("!HH", 0x8100, 0x0001)
              + struct.pack("!H", 0x0806)
              + arp(1, GUEST_MAC, GUEST_IP, b"\0" * 6, GW_IP))

out = sys.argv[1] if len(sys.argv) > 1 else "malformed.pcap"
with open(out, "wb") as f:
    # classic libpcap, little-endian, microsecond, snaplen 262144, EN10MB
    f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
    for n, fr in enumerate(frames):
        f.write(struct.pack("<IIII", 1700000000 + n, 0, len(fr), len(fr)))
        f.write(fr)
