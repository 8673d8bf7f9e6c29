// src/wire/ipv6.ts — the IPv6 fixed header (RFC 8200 §3) and a walker over
// the extension-header chain (RFC 8200 §4).
//
// Ipv6Packet is a view over a buffer starting at the IPv6 header; `payload`
// is bounded by Payload Length (the buffer may carry link-layer padding).
// Addresses are 16-byte views (`src`, `dst`), or read in place at
// IPV6_SRC / IPV6_DST to avoid even the view object.
// `walkIpv6Ext` follows Next Header through Hop-by-Hop, Routing, Fragment,
// Destination Options and AH to the upper-layer protocol and its offset.

import { WireError } from './errors.js';
import { readU16, readU32, writeU16, writeU32 } from './address.js';
import { IpProtocol } from './ipv4.js';

export const IPV6_VER_TC_FLOW = 0;
export const IPV6_PAYLOAD_LEN = 4;
export const IPV6_NEXT_HEADER = 6;
export const IPV6_HOP_LIMIT = 7;
export const IPV6_SRC = 8;
export const IPV6_DST = 24;
/** RFC 8200 §3: the fixed header is 40 bytes. */
export const IPV6_HEADER_LEN = 40;

/** Copies a 16-byte address into `b` at `off`; never throws (bytes past the end are dropped). */
export function copy16(a: Uint8Array, b: Uint8Array, off: number): void {
  for (let i = 0; i < 16; i++) b[off + i] = a[i] ?? 0;
}

export class Ipv6Packet {
  constructor(readonly buffer: Buffer) {}

  static newChecked(buf: Buffer): Ipv6Packet {
    if (buf.length < IPV6_HEADER_LEN) throw new WireError('ipv6-truncated');
    const p = new Ipv6Packet(buf);
    if (p.version !== 6) throw new WireError('ipv6-bad-version');
    // RFC 8200 §3: Payload Length counts everything after the fixed header,
    // extension headers included. It may not claim more than was received.
    // (A zero length with a Jumbo Payload option, RFC 2675, is not supported:
    // it simply reads as an empty payload.)
    if (IPV6_HEADER_LEN + p.payloadLen > buf.length) throw new WireError('ipv6-bad-payload-len');
    return p;
  }

  get version(): number {
    return (this.buffer[0] ?? 0) >>> 4;
  }
  set version(v: number) {
    const b = this.buffer;
    b[0] = ((v & 0xf) << 4) | (b[0] & 0xf);
  }
  /** RFC 8200 §7: 8-bit Traffic Class (DSCP + ECN), straddling bytes 0–1. */
  get trafficClass(): number {
    return (readU16(this.buffer, 0) >>> 4) & 0xff;
  }
  set trafficClass(v: number) {
    const w = readU32(this.buffer, 0);
    writeU32(this.buffer, 0, (w & 0xf00fffff) | ((v & 0xff) << 20));
  }
  /** RFC 8200 §6: 20-bit Flow Label. */
  get flowLabel(): number {
    return readU32(this.buffer, 0) & 0xfffff;
  }
  set flowLabel(v: number) {
    const w = readU32(this.buffer, 0);
    writeU32(this.buffer, 0, (w & 0xfff00000) | (v & 0xfffff));
  }
  get payloadLen(): number {
    return readU16(this.buffer, IPV6_PAYLOAD_LEN);
  }
  set payloadLen(v: number) {
    writeU16(this.buffer, IPV6_PAYLOAD_LEN, v);
  }
  /** Next Header of the fixed header (the first extension header, if any). */
  get nextHeader(): number {
    return this.buffer[IPV6_NEXT_HEADER] ?? 0;
  }
  set nextHeader(v: number) {
    this.buffer[IPV6_NEXT_HEADER] = v;
  }
  get hopLimit(): number {
    return this.buffer[IPV6_HOP_LIMIT] ?? 0;
  }
  set hopLimit(v: number) {
    this.buffer[IPV6_HOP_LIMIT] = v;
  }
  /** Source address (16-byte view). */
  get src(): Buffer {
    return this.buffer.subarray(IPV6_SRC, IPV6_SRC + 16);
  }
  set src(a: Uint8Array) {
    copy16(a, this.buffer, IPV6_SRC);
  }
  /** Destination address (16-byte view). */
  get dst(): Buffer {
    return this.buffer.subarray(IPV6_DST, IPV6_DST + 16);
  }
  set dst(a: Uint8Array) {
    copy16(a, this.buffer, IPV6_DST);
  }
  /** Everything after the fixed header up to Payload Length (view). */
  get payload(): Buffer {
    return this.buffer.subarray(IPV6_HEADER_LEN, IPV6_HEADER_LEN + this.payloadLen);
  }
  /** Offset one past the last byte of the packet (40 + Payload Length). */
  get end(): number {
    return IPV6_HEADER_LEN + this.payloadLen;
  }
}

/** Result of walking the extension-header chain; reusable to avoid allocation. */
export class Ipv6ExtInfo {
  /** The upper-layer protocol (TCP, UDP, ICMPv6, ESP, 59 = No Next Header, or unknown). */
  protocol = 0;
  /** Offset of the upper-layer header in the packet buffer. */
  offset = IPV6_HEADER_LEN;
  /** True when a Fragment header was seen. */
  hasFragment = false;
  /** Fragment offset in bytes (when hasFragment). */
  fragOffset = 0;
  /** M flag of the Fragment header. */
  moreFrags = false;
  /** Identification of the Fragment header. */
  fragIdent = 0;
  /** Offset of the Fragment header itself (-1 when absent). */
  fragHeaderOffset = -1;

  /** Upper-layer length: from `offset` to the end of the payload. */
  upperLen(p: Ipv6Packet): number {
    return p.end - this.offset;
  }
}

/** RFC 8200 §4.5: the Fragment header is always 8 bytes. */
export const IPV6_FRAG_HEADER_LEN = 8;

/**
 * Follows Next Header from the fixed header to the first header that is not
 * a known extension header. Throws 'ipv6-ext-truncated' when a header does
 * not fit in Payload Length, 'ipv6-ext-bad-order' for a misplaced Hop-by-Hop.
 * The packet must come from newChecked.
 */
export function walkIpv6Ext(p: Ipv6Packet, out: Ipv6ExtInfo = new Ipv6ExtInfo()): Ipv6ExtInfo {
  const b = p.buffer;
  const end = p.end;
  let nh = p.nextHeader;
  let off = IPV6_HEADER_LEN;
  out.hasFragment = false;
  out.fragOffset = 0;
  out.moreFrags = false;
  out.fragIdent = 0;
  out.fragHeaderOffset = -1;
  for (;;) {
    // RFC 8200 §4.1: Hop-by-Hop Options may only follow the fixed header.
    if (nh === IpProtocol.HopByHop && off !== IPV6_HEADER_LEN) throw new WireError('ipv6-ext-bad-order');
    let len: number;
    switch (nh) {
      case IpProtocol.HopByHop:
      case IpProtocol.IPv6Route:
      case IpProtocol.IPv6Opts:
        // RFC 8200 §4.3/§4.4/§4.6: Hdr Ext Len counts 8-octet units beyond the
        // first 8 octets, so these headers are (len + 1) × 8 bytes.
        if (off + 2 > end) throw new WireError('ipv6-ext-truncated');
        len = (b[off + 1] + 1) << 3;
        break;
      case IpProtocol.IPv6Frag:
        // RFC 8200 §4.5: Next Header, reserved, 13-bit offset (8-octet units)
        // + 2 reserved bits + M flag, 32-bit Identification.
        len = IPV6_FRAG_HEADER_LEN;
        if (off + len > end) throw new WireError('ipv6-ext-truncated');
        {
          const w = readU16(b, off + 2);
          out.hasFragment = true;
          out.fragHeaderOffset = off;
          out.fragOffset = w & 0xfff8;
          out.moreFrags = (w & 1) !== 0;
          out.fragIdent = readU32(b, off + 4);
        }
        break;
      case IpProtocol.AH:
        // RFC 4302 §2.2: for IPv6, Payload Len is the AH length in 32-bit
        // words minus 2.
        if (off + 2 > end) throw new WireError('ipv6-ext-truncated');
        len = (b[off + 1] + 2) << 2;
        break;
      default:
        // Upper layer, ESP (opaque), No Next Header (RFC 8200 §4.7) or an
        // unknown header: stop here and let the caller decide.
        out.protocol = nh;
        out.offset = off;
        return out;
    }
    if (off + len > end) throw new WireError('ipv6-ext-truncated');
    nh = b[off];
    off += len;
  }
}

export interface Ipv6Fields {
  /** 16 bytes. */
  src: Uint8Array;
  /** 16 bytes. */
  dst: Uint8Array;
  /** Next Header of the fixed header. */
  nextHeader: number;
  /** Bytes after the fixed header. */
  payloadLen: number;
  /** Default 64. */
  hopLimit?: number;
  /** Default 0. */
  trafficClass?: number;
  /** Default 0. */
  flowLabel?: number;
}

export class Ipv6Repr implements Ipv6Fields {
  /** From parse: a view into the packet buffer — copy it to keep it. */
  src: Uint8Array;
  dst: Uint8Array;
  nextHeader: number;
  payloadLen: number;
  hopLimit: number;
  trafficClass: number;
  flowLabel: number;

  constructor(f: Ipv6Fields) {
    this.src = f.src;
    this.dst = f.dst;
    this.nextHeader = f.nextHeader;
    this.payloadLen = f.payloadLen;
    this.hopLimit = f.hopLimit ?? 64;
    this.trafficClass = f.trafficClass ?? 0;
    this.flowLabel = f.flowLabel ?? 0;
  }

  /** Describes the fixed header only; use walkIpv6Ext for the chain. */
  static parse(p: Ipv6Packet): Ipv6Repr {
    return new Ipv6Repr({
      src: p.src,
      dst: p.dst,
      nextHeader: p.nextHeader,
      payloadLen: p.payloadLen,
      hopLimit: p.hopLimit,
      trafficClass: p.trafficClass,
      flowLabel: p.flowLabel,
    });
  }

  bufferLen(): number {
    return IPV6_HEADER_LEN + this.payloadLen;
  }

  /** Writes the 40-byte fixed header (not the payload). */
  emit(target: Ipv6Packet | Buffer): void {
    const b = target instanceof Ipv6Packet ? target.buffer : target;
    if (b.length < IPV6_HEADER_LEN) throw new WireError('buffer-too-small');
    // RFC 8200 §3: version 6, Traffic Class, Flow Label in the first word.
    writeU32(b, 0, (0x6 << 28) | ((this.trafficClass & 0xff) << 20) | (this.flowLabel & 0xfffff));
    writeU16(b, IPV6_PAYLOAD_LEN, this.payloadLen);
    b[IPV6_NEXT_HEADER] = this.nextHeader;
    b[IPV6_HOP_LIMIT] = this.hopLimit;
    copy16(this.src, b, IPV6_SRC);
    copy16(this.dst, b, IPV6_DST);
  }
}
