// Building frames the stack originates: one allocation per frame, Ethernet
// and IPv4 or IPv6 headers written by the wire Reprs, the payload region
// returned for the protocol to fill; ICMP and ICMPv6 errors.

import { EtherType, EthernetRepr, ETH_HEADER_LEN } from '../wire/ethernet.js';
import { IpProtocol, Ipv4Repr } from '../wire/ipv4.js';
import { UdpRepr } from '../wire/udp.js';
import { pseudoV4, pseudoV6 } from '../wire/checksum.js';
import { Icmpv4Repr, Icmpv4Type } from '../wire/icmpv4.js';
import { Icmpv6Repr, Icmpv6Type } from '../wire/icmpv6.js';
import { IPV6_HEADER_LEN, Ipv6Repr } from '../wire/ipv6.js';
import { macFor6, type Ipv6Plan } from './config.js';

export interface Ipv4FrameParts {
  frame: Buffer;
  /** The IP payload region (after the IPv4 header). */
  payload: Buffer;
}

/**
 * An Ethernet+IPv4 frame with `payloadLen` bytes of payload; headers are
 * filled. With `scratch`, the frame is built in that buffer (when it is big
 * enough) instead of a new allocation: the hot path (TCP segments) reuses
 * one buffer, since transmitting copies the frame out synchronously — a
 * fresh 64 KiB ArrayBuffer per segment made V8 spend a third of its time in
 * major GCs at a few Gbit/s (measured with perf).
 */
export function ipv4Frame(srcMac: number, dstMac: number, ip: Ipv4Repr, scratch?: Buffer): Ipv4FrameParts {
  const ipLen = ip.bufferLen();
  const size = ETH_HEADER_LEN + ipLen;
  const frame = scratch && scratch.length >= size ? scratch.subarray(0, size) : Buffer.allocUnsafe(size);
  new EthernetRepr({ src: srcMac, dst: dstMac, ethertype: EtherType.IPv4 }).emit(frame);
  const ipBuf = frame.subarray(ETH_HEADER_LEN);
  ip.emit(ipBuf);
  return { frame, payload: ipBuf.subarray(ip.headerLen()) };
}


/** A complete Ethernet+IPv4+UDP frame with the checksum filled. */
export function udpFrame(
  srcMac: number,
  dstMac: number,
  src: number,
  dst: number,
  srcPort: number,
  dstPort: number,
  payload: Buffer,
): Buffer {
  const udp = new UdpRepr({ srcPort, dstPort, payload });
  const len = udp.bufferLen();
  const { frame, payload: region } = ipv4Frame(srcMac, dstMac, new Ipv4Repr({ src, dst, protocol: IpProtocol.UDP, payloadLen: len, dontFrag: false }));
  udp.emit(region, pseudoV4(src, dst, IpProtocol.UDP, len));
  return frame;
}

// RFC 1812 §4.3.2.3: an ICMP error carries as much of the offending datagram
// as fits without the error exceeding 576 bytes.
const ICMP_ERROR_MAX = 576;

/**
 * ICMP destination unreachable (RFC 792) about `original` (the offending IPv4
 * datagram, header first), from `src` to the guest.
 */
export function icmpUnreachableFrame(srcMac: number, dstMac: number, src: number, dst: number, code: number, original: Buffer, mtu = ICMP_ERROR_MAX): Buffer {
  // RFC 1812 §4.3.2.3: quote as much as fits in 576 bytes — and never more
  // than the guest's MTU carries (IPv4 header 20 + ICMP header 8).
  const quoted = original.subarray(0, Math.max(0, Math.min(original.length, Math.min(ICMP_ERROR_MAX, mtu) - 20 - 8)));
  const icmp = new Icmpv4Repr({ type: Icmpv4Type.DstUnreachable, code, data: quoted });
  const { frame, payload } = ipv4Frame(srcMac, dstMac, new Ipv4Repr({ src, dst, protocol: IpProtocol.ICMP, payloadLen: icmp.bufferLen(), dontFrag: false }));
  icmp.emit(payload);
  return frame;
}

/**
 * An Ethernet+IPv6 frame (fixed header, no extension headers) with the
 * payload region returned, as ipv4Frame does (`scratch` likewise).
 */
export function ipv6Frame(srcMac: number, dstMac: number, ip: Ipv6Repr, scratch?: Buffer): Ipv4FrameParts {
  const size = ETH_HEADER_LEN + ip.bufferLen();
  const frame = scratch && scratch.length >= size ? scratch.subarray(0, size) : Buffer.allocUnsafe(size);
  new EthernetRepr({ src: srcMac, dst: dstMac, ethertype: EtherType.IPv6 }).emit(frame);
  ip.emit(frame.subarray(ETH_HEADER_LEN));
  return { frame, payload: frame.subarray(ETH_HEADER_LEN + IPV6_HEADER_LEN) };
}

/** RFC 4443 §2.4 (c): an ICMPv6 error never exceeds the minimum IPv6 MTU. */
const ICMPV6_ERROR_MAX = 1280;

/**
 * An ICMPv6 message from tsnet's router to the guest: from fe80::2 when the
 * guest's address is link-local, else from the gateway fd00::2.
 */
export function icmpv6Frame(plan: Ipv6Plan, dstMac: number, dst: Uint8Array, msg: Icmpv6Repr, from?: Uint8Array, hopLimit = 64): Buffer {
  const src = from ?? (dst[0] === 0xfe && (dst[1]! & 0xc0) === 0x80 ? plan.linkLocal : plan.gateway);
  const len = msg.bufferLen();
  const { frame, payload } = ipv6Frame(macFor6(plan, src), dstMac, new Ipv6Repr({ src, dst, nextHeader: IpProtocol.ICMPv6, payloadLen: len, hopLimit }));
  msg.emit(payload, src, dst);
  return frame;
}

/** ICMPv6 destination unreachable (RFC 4443 §3.1, `code` IPv6's) quoting `original` (the guest's IPv6 packet, header first). */
export function icmpv6UnreachableFrame(plan: Ipv6Plan, dstMac: number, dst: Uint8Array, code: number, original: Buffer, mtu = ICMPV6_ERROR_MAX, from?: Uint8Array): Buffer {
  const room = Math.min(ICMPV6_ERROR_MAX, mtu) - IPV6_HEADER_LEN - 8;
  const msg = new Icmpv6Repr({ type: Icmpv6Type.DstUnreachable, code, data: Buffer.from(original.subarray(0, Math.max(0, Math.min(original.length, room)))) });
  return icmpv6Frame(plan, dstMac, dst, msg, from);
}

/** A complete Ethernet+IPv6+UDP frame with the checksum filled (mandatory over IPv6). */
export function udp6Frame(srcMac: number, src: Uint8Array, dst: Uint8Array, srcPort: number, dstPort: number, payload: Buffer): Buffer {
  const udp = new UdpRepr({ srcPort, dstPort, payload });
  const len = udp.bufferLen();
  const { frame, payload: region } = ipv6Frame(srcMac, 0, new Ipv6Repr({ src, dst, nextHeader: IpProtocol.UDP, payloadLen: len }));
  udp.emit(region, pseudoV6(src, dst, IpProtocol.UDP, len));
  return frame;
}
