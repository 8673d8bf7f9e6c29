// src/wire/ipv4.ts — the IPv4 header (RFC 791) and the IP protocol numbers.
//
// Ipv4Packet is a view over a buffer that starts at the IPv4 header; the
// buffer may be longer than the datagram (Ethernet pads short frames to 60
// bytes), so `payload` is bounded by Total Length, never by the buffer.
// Ipv4Repr covers what tsnet originates: no options unless given, and
// fragment fields carried through only so that parse → emit round-trips.

import { WireError } from './errors.js';
import { readU16, readU32, writeU16, writeU32 } from './address.js';
import { checksum, onesSum } from './checksum.js';

/** IANA "Assigned Internet Protocol Numbers" used by tsnet. */
export const IpProtocol = {
  HopByHop: 0,
  ICMP: 1,
  TCP: 6,
  UDP: 17,
  IPv6Route: 43,
  IPv6Frag: 44,
  ESP: 50,
  AH: 51,
  ICMPv6: 58,
  IPv6NoNxt: 59,
  IPv6Opts: 60,
} as const;

export const IPV4_VER_IHL = 0;
export const IPV4_DSCP_ECN = 1;
export const IPV4_LENGTH = 2;
export const IPV4_IDENT = 4;
export const IPV4_FLG_OFF = 6;
export const IPV4_TTL = 8;
export const IPV4_PROTOCOL = 9;
export const IPV4_CHECKSUM = 10;
export const IPV4_SRC = 12;
export const IPV4_DST = 16;
/** RFC 791 §3.1: IHL counts 32-bit words and the minimum header is 5 words. */
export const IPV4_HEADER_LEN = 20;
/** RFC 791 §3.1: IHL is 4 bits, so options end by byte 60. */
export const IPV4_MAX_HEADER_LEN = 60;

/** RFC 791 §3.1 flags (bit 0 reserved, must be zero). */
export const IPV4_FLAG_DF = 0x4000;
export const IPV4_FLAG_MF = 0x2000;
const IPV4_OFFSET_MASK = 0x1fff;

export class Ipv4Packet {
  constructor(readonly buffer: Buffer) {}

  static newChecked(buf: Buffer): Ipv4Packet {
    if (buf.length < IPV4_HEADER_LEN) throw new WireError('ipv4-truncated');
    const p = new Ipv4Packet(buf);
    if (p.version !== 4) throw new WireError('ipv4-bad-version');
    // RFC 791 §3.1: IHL is the header length in 32-bit words; minimum 5.
    const hl = p.headerLen;
    if (hl < IPV4_HEADER_LEN || hl > buf.length) throw new WireError('ipv4-bad-header-len');
    // RFC 791 §3.1: Total Length covers header and data, so it can be neither
    // shorter than the header nor longer than what was received. A longer
    // buffer is fine (link-layer padding); the excess is ignored.
    const tl = p.totalLen;
    if (tl < hl || tl > buf.length) throw new WireError('ipv4-bad-total-len');
    return p;
  }

  get version(): number {
    return (this.buffer[IPV4_VER_IHL] ?? 0) >>> 4;
  }
  set version(v: number) {
    const b = this.buffer;
    b[IPV4_VER_IHL] = ((v & 0xf) << 4) | (b[IPV4_VER_IHL] & 0xf);
  }
  /** IHL in 32-bit words. */
  get ihl(): number {
    return (this.buffer[IPV4_VER_IHL] ?? 0) & 0xf;
  }
  set ihl(v: number) {
    const b = this.buffer;
    b[IPV4_VER_IHL] = (b[IPV4_VER_IHL] & 0xf0) | (v & 0xf);
  }
  /** Header length in bytes (IHL × 4). */
  get headerLen(): number {
    return this.ihl << 2;
  }
  /** RFC 2474: the upper six bits of the former TOS byte. */
  get dscp(): number {
    return (this.buffer[IPV4_DSCP_ECN] ?? 0) >>> 2;
  }
  set dscp(v: number) {
    const b = this.buffer;
    b[IPV4_DSCP_ECN] = ((v & 0x3f) << 2) | (b[IPV4_DSCP_ECN] & 3);
  }
  /** RFC 3168 §5: the low two bits of the former TOS byte. */
  get ecn(): number {
    return (this.buffer[IPV4_DSCP_ECN] ?? 0) & 3;
  }
  set ecn(v: number) {
    const b = this.buffer;
    b[IPV4_DSCP_ECN] = (b[IPV4_DSCP_ECN] & 0xfc) | (v & 3);
  }
  get totalLen(): number {
    return readU16(this.buffer, IPV4_LENGTH);
  }
  set totalLen(v: number) {
    writeU16(this.buffer, IPV4_LENGTH, v);
  }
  get ident(): number {
    return readU16(this.buffer, IPV4_IDENT);
  }
  set ident(v: number) {
    writeU16(this.buffer, IPV4_IDENT, v);
  }
  get dontFrag(): boolean {
    return (readU16(this.buffer, IPV4_FLG_OFF) & IPV4_FLAG_DF) !== 0;
  }
  set dontFrag(v: boolean) {
    const w = readU16(this.buffer, IPV4_FLG_OFF);
    writeU16(this.buffer, IPV4_FLG_OFF, v ? w | IPV4_FLAG_DF : w & ~IPV4_FLAG_DF);
  }
  get moreFrags(): boolean {
    return (readU16(this.buffer, IPV4_FLG_OFF) & IPV4_FLAG_MF) !== 0;
  }
  set moreFrags(v: boolean) {
    const w = readU16(this.buffer, IPV4_FLG_OFF);
    writeU16(this.buffer, IPV4_FLG_OFF, v ? w | IPV4_FLAG_MF : w & ~IPV4_FLAG_MF);
  }
  /** RFC 791 §3.1: Fragment Offset counts 8-byte units; this returns bytes. */
  get fragOffset(): number {
    return (readU16(this.buffer, IPV4_FLG_OFF) & IPV4_OFFSET_MASK) << 3;
  }
  /** Sets the offset in bytes (must be a multiple of 8). */
  set fragOffset(bytes: number) {
    const w = readU16(this.buffer, IPV4_FLG_OFF);
    writeU16(this.buffer, IPV4_FLG_OFF, (w & ~IPV4_OFFSET_MASK) | ((bytes >>> 3) & IPV4_OFFSET_MASK));
  }
  /**
   * RFC 791 §2.3 / RFC 815: a datagram is a fragment when More Fragments is
   * set or the offset is non-zero (the last fragment has MF clear).
   */
  get isFragment(): boolean {
    return (readU16(this.buffer, IPV4_FLG_OFF) & (IPV4_FLAG_MF | IPV4_OFFSET_MASK)) !== 0;
  }
  get ttl(): number {
    return this.buffer[IPV4_TTL] ?? 0;
  }
  set ttl(v: number) {
    this.buffer[IPV4_TTL] = v;
  }
  get protocol(): number {
    return this.buffer[IPV4_PROTOCOL] ?? 0;
  }
  set protocol(v: number) {
    this.buffer[IPV4_PROTOCOL] = v;
  }
  get checksum(): number {
    return readU16(this.buffer, IPV4_CHECKSUM);
  }
  set checksum(v: number) {
    writeU16(this.buffer, IPV4_CHECKSUM, v);
  }
  get src(): number {
    return readU32(this.buffer, IPV4_SRC);
  }
  set src(v: number) {
    writeU32(this.buffer, IPV4_SRC, v);
  }
  get dst(): number {
    return readU32(this.buffer, IPV4_DST);
  }
  set dst(v: number) {
    writeU32(this.buffer, IPV4_DST, v);
  }
  /** Options bytes (view; empty when IHL is 5). */
  get options(): Buffer {
    return this.buffer.subarray(IPV4_HEADER_LEN, Math.max(IPV4_HEADER_LEN, this.headerLen));
  }
  /** Payload length in bytes (Total Length minus header). */
  get payloadLen(): number {
    return Math.max(0, this.totalLen - this.headerLen);
  }
  /** The payload (view), bounded by Total Length. */
  get payload(): Buffer {
    return this.buffer.subarray(this.headerLen, Math.max(this.headerLen, this.totalLen));
  }

  /** RFC 791 §3.1: the one's-complement sum over the header, checksum included, is all ones. */
  verifyChecksum(): boolean {
    return onesSum(this.buffer, 0, this.headerLen) === 0xffff;
  }

  /** RFC 791 §3.1: computed with the checksum field taken as zero. */
  fillChecksum(): void {
    this.checksum = 0;
    this.checksum = checksum(this.buffer, 0, this.headerLen);
  }
}

export interface Ipv4ParseOptions {
  /** Skip header checksum verification (e.g. a trusted, offloaded source). */
  ignoreChecksum?: boolean;
}

export interface Ipv4Fields {
  src: number;
  dst: number;
  protocol: number;
  /** Bytes after the header (Total Length = header + payloadLen). */
  payloadLen: number;
  /** Default 64. */
  ttl?: number;
  /** Identification (default 0). */
  ident?: number;
  /** Don't Fragment (default true, as Linux sets it on its own TCP/UDP). */
  dontFrag?: boolean;
  /** More Fragments (default false; for round-tripping fragments). */
  moreFrags?: boolean;
  /** Fragment offset in bytes (default 0; for round-tripping fragments). */
  fragOffset?: number;
  /** The DSCP/ECN byte (default 0). */
  tos?: number;
  /** Raw options, padded with zeros to 4 bytes on emit (default none). */
  options?: Buffer;
}

export class Ipv4Repr implements Ipv4Fields {
  src: number;
  dst: number;
  protocol: number;
  payloadLen: number;
  ttl: number;
  ident: number;
  dontFrag: boolean;
  moreFrags: boolean;
  fragOffset: number;
  tos: number;
  /** A view into the parsed packet when it came from parse. */
  options: Buffer | undefined;

  constructor(f: Ipv4Fields) {
    this.src = f.src;
    this.dst = f.dst;
    this.protocol = f.protocol;
    this.payloadLen = f.payloadLen;
    this.ttl = f.ttl ?? 64;
    this.ident = f.ident ?? 0;
    this.dontFrag = f.dontFrag ?? true;
    this.moreFrags = f.moreFrags ?? false;
    this.fragOffset = f.fragOffset ?? 0;
    this.tos = f.tos ?? 0;
    this.options = f.options;
  }

  /** Verifies the checksum (unless told not to); the packet must come from newChecked. */
  static parse(p: Ipv4Packet, opts?: Ipv4ParseOptions): Ipv4Repr {
    if (!opts?.ignoreChecksum && !p.verifyChecksum()) throw new WireError('ipv4-bad-checksum');
    const b = p.buffer;
    const fo = readU16(b, IPV4_FLG_OFF);
    return new Ipv4Repr({
      src: p.src,
      dst: p.dst,
      protocol: p.protocol,
      payloadLen: p.payloadLen,
      ttl: p.ttl,
      ident: p.ident,
      dontFrag: (fo & IPV4_FLAG_DF) !== 0,
      moreFrags: (fo & IPV4_FLAG_MF) !== 0,
      fragOffset: (fo & IPV4_OFFSET_MASK) << 3,
      tos: b[IPV4_DSCP_ECN],
      options: p.headerLen > IPV4_HEADER_LEN ? p.options : undefined,
    });
  }

  headerLen(): number {
    // RFC 791 §3.1: options are padded with zeros to a 32-bit boundary.
    return IPV4_HEADER_LEN + (this.options ? (this.options.length + 3) & ~3 : 0);
  }

  bufferLen(): number {
    return this.headerLen() + this.payloadLen;
  }

  /** Writes the header (not the payload) and fills the header checksum. */
  emit(target: Ipv4Packet | Buffer): void {
    const b = target instanceof Ipv4Packet ? target.buffer : target;
    const hl = this.headerLen();
    if (b.length < hl) throw new WireError('buffer-too-small');
    b[IPV4_VER_IHL] = 0x40 | (hl >>> 2);
    b[IPV4_DSCP_ECN] = this.tos;
    writeU16(b, IPV4_LENGTH, hl + this.payloadLen);
    writeU16(b, IPV4_IDENT, this.ident);
    writeU16(
      b,
      IPV4_FLG_OFF,
      (this.dontFrag ? IPV4_FLAG_DF : 0) |
        (this.moreFrags ? IPV4_FLAG_MF : 0) |
        ((this.fragOffset >>> 3) & IPV4_OFFSET_MASK),
    );
    b[IPV4_TTL] = this.ttl;
    b[IPV4_PROTOCOL] = this.protocol;
    writeU16(b, IPV4_CHECKSUM, 0);
    writeU32(b, IPV4_SRC, this.src);
    writeU32(b, IPV4_DST, this.dst);
    if (this.options) {
      const n = this.options.length;
      if (this.options.buffer !== b.buffer || this.options.byteOffset !== b.byteOffset + IPV4_HEADER_LEN) {
        this.options.copy(b, IPV4_HEADER_LEN);
      }
      b.fill(0, IPV4_HEADER_LEN + n, hl);
    }
    writeU16(b, IPV4_CHECKSUM, checksum(b, 0, hl));
  }
}
