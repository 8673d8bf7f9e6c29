// Annotated frames shared by the wire tests and the property test.
//
// Unless marked "constructed", every frame was captured with tcpdump on a
// veth pair between two network namespaces created for the purpose
// (guest 10.0.2.100 / fd00::100, MAC 52:54:00:12:34:56 — gateway 10.0.2.2 /
// fd00::2, MAC 52:55:0a:00:02:02), Linux 6.x, and pasted byte for byte.
//
// The sending veth offloads TCP/UDP checksums, so tcpdump saw the SYN and
// the DNS query with CHECKSUM_PARTIAL values (the folded pseudo-header sum);
// the fixtures carry the completed checksums (computed independently in
// Python) and *_PARTIAL keep the bytes as captured.
//
// `hex` takes one row per field; everything after `#` is the annotation.

export function hex(src: string): Buffer {
  const clean = src
    .split('\n')
    .map((l) => l.replace(/#.*$/, ''))
    .join('')
    .replace(/\s+/g, '');
  if (clean.length % 2 !== 0 || /[^0-9a-fA-F]/.test(clean)) throw new Error(`bad hex fixture: ${clean}`);
  return Buffer.from(clean, 'hex');
}

/** Copy of a fixture's bytes from `start` (tests mutate their copies freely). */
export function slice(frame: Buffer, start: number, end?: number): Buffer {
  return Buffer.from(frame.subarray(start, end));
}

// ---------------------------------------------------------------- ARP

/** `arping`-style request from the guest: who has 10.0.2.2? (real) */
export const ARP_REQUEST = hex(`
  ff ff ff ff ff ff   # eth dst: broadcast
  52 54 00 12 34 56   # eth src: guest
  08 06               # ethertype: ARP
  00 01               # htype: Ethernet (1)
  08 00               # ptype: IPv4 (0x0800)
  06                  # hlen: 6
  04                  # plen: 4
  00 01               # oper: request
  52 54 00 12 34 56   # sender MAC
  0a 00 02 64         # sender IP 10.0.2.100
  00 00 00 00 00 00   # target MAC: unknown
  0a 00 02 02         # target IP 10.0.2.2
`);

/** The gateway's reply (real). */
export const ARP_REPLY = hex(`
  52 54 00 12 34 56   # eth dst: guest
  52 55 0a 00 02 02   # eth src: gateway
  08 06               # ethertype: ARP
  00 01               # htype: Ethernet
  08 00               # ptype: IPv4
  06                  # hlen
  04                  # plen
  00 02               # oper: reply
  52 55 0a 00 02 02   # sender MAC: gateway
  0a 00 02 02         # sender IP 10.0.2.2
  52 54 00 12 34 56   # target MAC: guest
  0a 00 02 64         # target IP 10.0.2.100
`);

/** The ARP request with an 802.1Q tag inserted (constructed). */
export const ARP_REQUEST_VLAN = hex(`
  ff ff ff ff ff ff   # eth dst: broadcast
  52 54 00 12 34 56   # eth src: guest
  81 00               # TPID: 802.1Q
  20 64               # TCI: PCP 1, DEI 0, VID 100
  08 06               # inner ethertype: ARP
  00 01 08 00 06 04 00 01                            # ARP fixed part (request)
  52 54 00 12 34 56 0a 00 02 64 00 00 00 00 00 00 0a 00 02 02   # addresses
`);

// ---------------------------------------------------------------- IPv4 / ICMP

/** `ping -c1 10.0.2.2` echo request (real). */
export const ICMP_ECHO_REQUEST = hex(`
  52 55 0a 00 02 02   # eth dst: gateway
  52 54 00 12 34 56   # eth src: guest
  08 00               # ethertype: IPv4
  45                  # version 4, IHL 5
  00                  # DSCP 0, ECN 0
  00 54               # total length 84
  2f 53               # identification
  40 00               # flags DF, offset 0
  40                  # TTL 64
  01                  # protocol ICMP
  f2 f0               # header checksum
  0a 00 02 64         # src 10.0.2.100
  0a 00 02 02         # dst 10.0.2.2
  08                  # ICMP type: echo request
  00                  # code 0
  71 98               # ICMP checksum
  26 2f               # identifier 0x262f
  00 01               # sequence 1
  41 fa 0b 6b 00 00 00 00 4b ff 08 00 00 00 00 00   # data: ping's struct timeval
  10 11 12 13 14 15 16 17 18 19 1a 1b 1c 1d 1e 1f   # data: ping's fill pattern
  20 21 22 23 24 25 26 27 28 29 2a 2b 2c 2d 2e 2f
  30 31 32 33 34 35 36 37
`);

/** The kernel's port-unreachable answer to DNS_QUERY (real; note TOS 0xc0, DF clear). */
export const ICMP_PORT_UNREACHABLE = hex(`
  52 54 00 12 34 56   # eth dst: guest
  52 55 0a 00 02 02   # eth src: gateway
  08 00               # ethertype: IPv4
  45                  # version 4, IHL 5
  c0                  # DSCP 48 (CS6), ECN 0
  00 55               # total length 85
  df de               # identification
  00 00               # no flags, offset 0
  40                  # TTL 64
  01                  # protocol ICMP
  81 a4               # header checksum
  0a 00 02 02         # src 10.0.2.2
  0a 00 02 64         # dst 10.0.2.100
  03                  # ICMP type: destination unreachable
  03                  # code: port unreachable
  51 5d               # ICMP checksum
  00 00 00 00         # unused
  45 00 00 39 77 53 40 00 40 11 aa fb 0a 00 02 64 0a 00 02 02   # embedded IPv4 header
  b1 07 00 35 00 25 18 9c                                        # embedded UDP header (partial csum, as received)
  12 34 01 00 00 01 00 00 00 00 00 00                            # embedded DNS header
  07 65 78 61 6d 70 6c 65 03 63 6f 6d 00 00 01 00 01             # embedded question
`);

// ---------------------------------------------------------------- UDP

/** A DNS query for example.com A from the guest (real). */
export const DNS_QUERY = hex(`
  52 55 0a 00 02 02   # eth dst: gateway
  52 54 00 12 34 56   # eth src: guest
  08 00               # ethertype: IPv4
  45 00               # version 4, IHL 5, TOS 0
  00 39               # total length 57
  77 53               # identification
  40 00               # DF
  40 11               # TTL 64, protocol UDP
  aa fb               # header checksum
  0a 00 02 64         # src 10.0.2.100
  0a 00 02 02         # dst 10.0.2.2
  b1 07               # UDP src port 45319
  00 35               # UDP dst port 53
  00 25               # UDP length 37
  54 60               # UDP checksum (completed; the capture held the partial sum 18 9c)
  12 34               # DNS id 0x1234
  01 00               # flags: RD
  00 01 00 00 00 00 00 00                      # QD 1, AN 0, NS 0, AR 0
  07 65 78 61 6d 70 6c 65 03 63 6f 6d 00       # QNAME example.com
  00 01               # QTYPE A
  00 01               # QCLASS IN
`);

/** DNS_QUERY exactly as captured (partial UDP checksum). */
export const DNS_QUERY_PARTIAL = Buffer.from(DNS_QUERY);
DNS_QUERY_PARTIAL.writeUInt16BE(0x189c, 14 + 20 + 6);

// ---------------------------------------------------------------- TCP

/** A Linux SYN: MSS, SACK-permitted + timestamps, NOP + window scale (real). */
export const TCP_SYN = hex(`
  52 55 0a 00 02 02   # eth dst: gateway
  52 54 00 12 34 56   # eth src: guest
  08 00               # ethertype: IPv4
  45 00               # version 4, IHL 5, TOS 0
  00 3c               # total length 60
  53 d9               # identification
  40 00               # DF
  40 06               # TTL 64, protocol TCP
  ce 7d               # header checksum
  0a 00 02 64         # src 10.0.2.100
  0a 00 02 02         # dst 10.0.2.2
  e6 42               # src port 58946
  1f 90               # dst port 8080
  bf 1c 02 ed         # seq 0xbf1c02ed
  00 00 00 00         # ack 0
  a0                  # data offset 10 words (40 bytes)
  02                  # flags: SYN
  fa f0               # window 64240
  86 75               # checksum (completed; the capture held the partial sum 18 94)
  00 00               # urgent pointer
  02 04 05 b4         # option MSS 1460
  04 02               # option SACK-permitted
  08 0a 48 c1 9d 93 00 00 00 00   # option timestamps TSval 0x48c19d93, TSecr 0
  01                  # NOP
  03 03 0a            # option window scale 10
`);

/** TCP_SYN exactly as captured: checksum field = fold(pseudo-header sum). */
export const TCP_SYN_PARTIAL = Buffer.from(TCP_SYN);
TCP_SYN_PARTIAL.writeUInt16BE(0x1894, 14 + 20 + 16);

/** The closed port's RST/ACK (real). */
export const TCP_RST_ACK = hex(`
  52 54 00 12 34 56   # eth dst: guest
  52 55 0a 00 02 02   # eth src: gateway
  08 00               # ethertype: IPv4
  45 00 00 28         # version 4, IHL 5, TOS 0, total length 40
  00 00 40 00         # identification 0, DF
  40 06 22 6b         # TTL 64, protocol TCP, header checksum
  0a 00 02 02         # src 10.0.2.2
  0a 00 02 64         # dst 10.0.2.100
  1f 90               # src port 8080
  e6 42               # dst port 58946
  00 00 00 00         # seq 0
  bf 1c 02 ee         # ack = SYN seq + 1
  50                  # data offset 5 words
  14                  # flags: RST, ACK
  00 00               # window 0
  cf 8d               # checksum
  00 00               # urgent pointer
`);

/**
 * A Linux-layout ACK with timestamps and two SACK blocks, 4 data bytes
 * (constructed: TCP header only; checksum for 10.0.2.100 → 10.0.2.2).
 */
export const TCP_SACK_SEGMENT = hex(`
  e6 42               # src port 58946
  1f 90               # dst port 8080
  00 00 10 00         # seq 4096
  bf 1c 02 ee         # ack
  d0                  # data offset 13 words (20 + 12 + 4 + 16 = 52 bytes)
  18                  # flags: PSH, ACK
  01 f5               # window 501
  00 00               # checksum (filled by the test)
  00 00               # urgent pointer
  01 01 08 0a 00 00 00 07 00 00 00 09   # NOP NOP timestamps TSval 7, TSecr 9
  01 01 05 12                           # NOP NOP SACK, length 18 (2 blocks)
  00 00 20 00 00 00 30 00               # block [0x2000, 0x3000)
  00 00 40 00 00 00 48 00               # block [0x4000, 0x4800)
  64 61 74 61                           # data "data"
`);

// ---------------------------------------------------------------- IPv6 / ICMPv6

/** Neighbor Solicitation for fd00::2 with a source link-layer option (real). */
export const NDP_NS = hex(`
  33 33 ff 00 00 02   # eth dst: solicited-node multicast MAC
  52 54 00 12 34 56   # eth src: guest
  86 dd               # ethertype: IPv6
  60 00 00 00         # version 6, traffic class 0, flow label 0
  00 20               # payload length 32
  3a                  # next header: ICMPv6
  ff                  # hop limit 255 (RFC 4861 §7.1.1)
  fd 00 00 00 00 00 00 00 00 00 00 00 00 00 01 00   # src fd00::100
  ff 02 00 00 00 00 00 00 00 00 00 01 ff 00 00 02   # dst ff02::1:ff00:2
  87                  # type 135: Neighbor Solicitation
  00                  # code 0
  f7 dc               # checksum
  00 00 00 00         # reserved
  fd 00 00 00 00 00 00 00 00 00 00 00 00 00 00 02   # target fd00::2
  01 01 52 54 00 12 34 56                           # option: source link-layer address
`);

/** The solicited, overriding, router Neighbor Advertisement (real). */
export const NDP_NA = hex(`
  52 54 00 12 34 56   # eth dst: guest
  52 55 0a 00 02 02   # eth src: gateway
  86 dd               # ethertype: IPv6
  60 00 00 00         # version 6, TC 0, flow 0
  00 20               # payload length 32
  3a ff               # next header ICMPv6, hop limit 255
  fd 00 00 00 00 00 00 00 00 00 00 00 00 00 00 02   # src fd00::2
  fd 00 00 00 00 00 00 00 00 00 00 00 00 00 01 00   # dst fd00::100
  88                  # type 136: Neighbor Advertisement
  00                  # code 0
  3f 45               # checksum
  e0 00 00 00         # flags R, S, O; reserved
  fd 00 00 00 00 00 00 00 00 00 00 00 00 00 00 02   # target fd00::2
  02 01 52 55 0a 00 02 02                           # option: target link-layer address
`);

/** Router Solicitation sent by the guest when the link comes up (real). */
export const NDP_RS = hex(`
  33 33 00 00 00 02   # eth dst: all-routers MAC
  52 54 00 12 34 56   # eth src: guest
  86 dd               # ethertype: IPv6
  60 00 00 00         # version 6, TC 0, flow 0
  00 10               # payload length 16
  3a ff               # next header ICMPv6, hop limit 255
  fe 80 00 00 00 00 00 00 50 54 00 ff fe 12 34 56   # src fe80::5054:ff:fe12:3456
  ff 02 00 00 00 00 00 00 00 00 00 00 00 00 00 02   # dst ff02::2
  85                  # type 133: Router Solicitation
  00                  # code 0
  71 b5               # checksum
  00 00 00 00         # reserved
  01 01 52 54 00 12 34 56   # option: source link-layer address
`);

/**
 * Router Advertisement as tsnet's gateway sends it (constructed; checksum
 * computed independently with a Python RFC 1071 implementation).
 */
export const NDP_RA = hex(`
  33 33 00 00 00 01   # eth dst: all-nodes MAC
  52 55 0a 00 02 02   # eth src: gateway
  86 dd               # ethertype: IPv6
  60 00 00 00         # version 6, TC 0, flow 0
  00 58               # payload length 88
  3a ff               # next header ICMPv6, hop limit 255
  fe 80 00 00 00 00 00 00 50 55 0a ff fe 00 02 02   # src fe80::5055:aff:fe00:202
  ff 02 00 00 00 00 00 00 00 00 00 00 00 00 00 01   # dst ff02::1
  86                  # type 134: Router Advertisement
  00                  # code 0
  87 bd               # checksum
  40                  # cur hop limit 64
  00                  # flags: none (no DHCPv6)
  07 08               # router lifetime 1800 s
  00 00 00 00         # reachable time: unspecified
  00 00 00 00         # retrans timer: unspecified
  01 01 52 55 0a 00 02 02   # option: source link-layer address
  05 01 00 00 00 00 05 dc   # option: MTU 1500
  03 04               # option: prefix information, length 4 (32 bytes)
  40                  # prefix length 64
  c0                  # flags L, A
  00 01 51 80         # valid lifetime 86400
  00 00 38 40         # preferred lifetime 14400
  00 00 00 00         # reserved
  fd 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00   # prefix fd00::
  19 03               # option: RDNSS, length 3 (one address)
  00 00               # reserved
  00 00 07 08         # lifetime 1800
  fd 00 00 00 00 00 00 00 00 00 00 00 00 00 00 03   # server fd00::3
`);

/** `ping -6 -c1 fd00::2` echo request (real, note the flow label). */
export const ICMPV6_ECHO_REQUEST = hex(`
  52 55 0a 00 02 02   # eth dst: gateway
  52 54 00 12 34 56   # eth src: guest
  86 dd               # ethertype: IPv6
  60 03 80 83         # version 6, traffic class 0, flow label 0x38083
  00 40               # payload length 64
  3a                  # next header: ICMPv6
  40                  # hop limit 64
  fd 00 00 00 00 00 00 00 00 00 00 00 00 00 01 00   # src fd00::100
  fd 00 00 00 00 00 00 00 00 00 00 00 00 00 00 02   # dst fd00::2
  80                  # type 128: echo request
  00                  # code 0
  7a a5               # checksum
  26 59               # identifier
  00 01               # sequence 1
  42 fa 0b 6b 00 00 00 00 d6 49 00 00 00 00 00 00   # data: timeval
  10 11 12 13 14 15 16 17 18 19 1a 1b 1c 1d 1e 1f   # data: fill pattern
  20 21 22 23 24 25 26 27 28 29 2a 2b 2c 2d 2e 2f
  30 31 32 33 34 35 36 37
`);

/** MLDv2 report behind a Hop-by-Hop Router Alert, sent at link-up (real). */
export const MLD_REPORT_HBH = hex(`
  33 33 00 00 00 16   # eth dst: MLDv2-capable routers MAC
  52 54 00 12 34 56   # eth src: guest
  86 dd               # ethertype: IPv6
  60 00 00 00         # version 6, TC 0, flow 0
  00 38               # payload length 56
  00                  # next header: Hop-by-Hop Options
  01                  # hop limit 1
  fe 80 00 00 00 00 00 00 50 54 00 ff fe 12 34 56   # src fe80::5054:ff:fe12:3456
  ff 02 00 00 00 00 00 00 00 00 00 00 00 00 00 16   # dst ff02::16
  3a                  # HbH: next header ICMPv6
  00                  # HbH: ext len 0 (8 bytes)
  05 02 00 00         # HbH option: Router Alert, MLD
  01 00               # HbH option: PadN (0 bytes of padding)
  8f                  # ICMPv6 type 143: MLDv2 report
  00                  # code 0
  b5 ca               # checksum
  00 00               # reserved
  00 02               # 2 multicast address records
  04 00 00 00 ff 02 00 00 00 00 00 00 00 00 00 01 ff 12 34 56   # CHANGE_TO_EXCLUDE ff02::1:ff12:3456
  04 00 00 00 ff 02 00 00 00 00 00 00 00 00 00 01 ff 00 01 00   # CHANGE_TO_EXCLUDE ff02::1:ff00:100
`);

/**
 * First fragment of a 2048-byte UDP datagram sent with IPV6_HOPOPTS set
 * (real): Hop-by-Hop, then Fragment, then UDP. The 1432 data bytes are the
 * sender's pattern (i & 0xff) and are appended below.
 */
export const IPV6_HBH_FRAG_UDP = Buffer.concat([
  hex(`
    52 55 0a 00 02 02   # eth dst: gateway
    52 54 00 12 34 56   # eth src: guest
    86 dd               # ethertype: IPv6
    60 04 3d 2b         # version 6, TC 0, flow label 0x43d2b
    05 b0               # payload length 1456
    00                  # next header: Hop-by-Hop
    40                  # hop limit 64
    fd 00 00 00 00 00 00 00 00 00 00 00 00 00 01 00   # src fd00::100
    fd 00 00 00 00 00 00 00 00 00 00 00 00 00 00 02   # dst fd00::2
    2c                  # HbH: next header Fragment (44)
    00                  # HbH: ext len 0
    05 02 00 00         # Router Alert (value 0)
    01 00               # PadN
    11                  # Frag: next header UDP
    00                  # Frag: reserved
    00 01               # Frag: offset 0, M = 1
    d4 2f ae 7f         # Frag: identification
    c2 49               # UDP src port 49737
    00 09               # UDP dst port 9 (discard)
    08 08               # UDP length 2056 (whole datagram, not this fragment)
    30 8a               # UDP checksum (of the whole datagram)
  `),
  Buffer.from(Array.from({ length: 1432 }, (_, i) => i & 0xff)),
]);

// ---------------------------------------------------------------- virtio-net

/**
 * virtio_net_hdr_mrg_rxbuf in front of a TSO super-frame, as the kernel
 * hands it over with IFF_VNET_HDR and TUN_F_TSO4 (constructed; little-endian).
 */
export const VNET_HDR_TSO4 = hex(`
  01                  # flags: NEEDS_CSUM
  01                  # gso_type: TCPV4
  42 00               # hdr_len 66 (eth 14 + ip 20 + tcp 32)
  a8 05               # gso_size 1448
  22 00               # csum_start 34 (TCP header)
  10 00               # csum_offset 16 (TCP checksum field)
  01 00               # num_buffers 1
`);

// ---------------------------------------------------------------- helpers

import { expect } from 'vitest';
import { WireError } from '../../../src/wire/errors.js';

/** Asserts that `fn` throws a WireError with exactly `reason` (and nothing else). */
export function expectWireError(fn: () => unknown, reason: string): void {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  expect(thrown, `expected WireError '${reason}'`).toBeInstanceOf(WireError);
  expect((thrown as WireError).reason).toBe(reason);
}

/** Deterministic PRNG (mulberry32, shared with the fault injector) for property tests. */
export { makePrng as prng } from '../../../src/host/fault.js';

export function randomBytes(rand: () => number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (rand() * 256) | 0;
  return b;
}
