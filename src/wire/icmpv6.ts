// src/wire/icmpv6.ts — ICMPv6 (RFC 4443) and Neighbor Discovery (RFC 4861).
//
// Read this first:
// - Icmpv6Packet views the ICMPv6 message alone (the upper-layer bytes found
//   by walkIpv6Ext, bounded by the IPv6 Payload Length).
// - The checksum covers the IPv6 pseudo-header, so verify/fill/parse/emit
//   take the source and destination addresses (16-byte arrays).
// - Icmpv6Repr is one flat class for every type: `rest` is the 32-bit word
//   after the checksum (MTU for Packet Too Big, pointer for Parameter
//   Problem), `ident`/`seq` split it for echoes, `data` is what follows.
//   NDP messages fill the NDP fields and `options` (in wire order, so
//   emit(parse(b)) reproduces the bytes) instead of `data`.

import { WireError } from './errors.js';
import { readMac, readU16, readU32, writeMac, writeU16, writeU32 } from './address.js';
import { onesSum, pseudoV6 } from './checksum.js';
import { IpProtocol } from './ipv4.js';
import { copy16 } from './ipv6.js';

/** RFC 4443 §2.1 and RFC 4861 §4 message types. */
export const Icmpv6Type = {
  DstUnreachable: 1,
  PacketTooBig: 2,
  TimeExceeded: 3,
  ParamProblem: 4,
  EchoRequest: 128,
  EchoReply: 129,
  RouterSolicit: 133,
  RouterAdvert: 134,
  NeighborSolicit: 135,
  NeighborAdvert: 136,
  Redirect: 137,
} as const;

/** RFC 4443 §3.1: Destination Unreachable codes. */
export const Icmpv6DstUnreachable = {
  NoRoute: 0,
  AdminProhibited: 1,
  BeyondScope: 2,
  AddrUnreachable: 3,
  PortUnreachable: 4,
  FailedPolicy: 5,
  RejectRoute: 6,
} as const;

/** RFC 4443 §3.3: Time Exceeded codes. */
export const Icmpv6TimeExceeded = {
  HopLimitExceeded: 0,
  FragReassembly: 1,
} as const;

/** RFC 4861 §4.2: Router Advertisement flag byte. */
export const RA_FLAG_MANAGED = 0x80;
export const RA_FLAG_OTHER = 0x40;
/** RFC 4861 §4.4: Neighbor Advertisement flags (top byte of the reserved word). */
export const NA_FLAG_ROUTER = 0x80;
export const NA_FLAG_SOLICITED = 0x40;
export const NA_FLAG_OVERRIDE = 0x20;
/** RFC 4861 §4.6.2: Prefix Information flags. */
export const PREFIX_FLAG_ON_LINK = 0x80;
export const PREFIX_FLAG_AUTONOMOUS = 0x40;

/** RFC 4861 §4.6 option types (and RFC 8106 RDNSS). */
export const NdpOptionType = {
  SourceLinkAddr: 1,
  TargetLinkAddr: 2,
  PrefixInfo: 3,
  RedirectedHeader: 4,
  Mtu: 5,
  Rdnss: 25,
} as const;

export const ICMPV6_TYPE = 0;
export const ICMPV6_CODE = 1;
export const ICMPV6_CHECKSUM = 2;
export const ICMPV6_REST = 4;
export const ICMPV6_IDENT = 4;
export const ICMPV6_SEQ = 6;
export const ICMPV6_DATA = 8;
/** Every type tsnet handles has at least type, code, checksum and a 32-bit word. */
export const ICMPV6_HEADER_LEN = 8;

// RFC 4861 §4.2 Router Advertisement layout.
export const RA_CUR_HOP_LIMIT = 4;
export const RA_FLAGS = 5;
export const RA_ROUTER_LIFETIME = 6;
export const RA_REACHABLE_TIME = 8;
export const RA_RETRANS_TIMER = 12;
// RFC 4861 §4.3/§4.4/§4.5: target address after the reserved/flags word.
export const NDP_TARGET = 8;
export const REDIRECT_DST = 24;

/**
 * Offset of the first NDP option for a message type, or -1 if the type has
 * none. Also the minimum message length (RFC 4861 §6.1.1, §6.1.2, §7.1.1,
 * §7.1.2, §8.1: "ICMP length is N or more octets").
 */
export function ndpOptionsOffset(type: number): number {
  switch (type) {
    case Icmpv6Type.RouterSolicit:
      return 8;
    case Icmpv6Type.RouterAdvert:
      return 16;
    case Icmpv6Type.NeighborSolicit:
    case Icmpv6Type.NeighborAdvert:
      return 24;
    case Icmpv6Type.Redirect:
      return 40;
    default:
      return -1;
  }
}

export class Icmpv6Packet {
  constructor(readonly buffer: Buffer) {}

  static newChecked(buf: Buffer): Icmpv6Packet {
    if (buf.length < ICMPV6_HEADER_LEN) throw new WireError('icmpv6-truncated');
    const p = new Icmpv6Packet(buf);
    const optOff = ndpOptionsOffset(p.type);
    if (optOff > 0 && buf.length < optOff) throw new WireError('icmpv6-truncated');
    return p;
  }

  get type(): number {
    return this.buffer[ICMPV6_TYPE] ?? 0;
  }
  set type(v: number) {
    this.buffer[ICMPV6_TYPE] = v;
  }
  get code(): number {
    return this.buffer[ICMPV6_CODE] ?? 0;
  }
  set code(v: number) {
    this.buffer[ICMPV6_CODE] = v;
  }
  get checksum(): number {
    return readU16(this.buffer, ICMPV6_CHECKSUM);
  }
  set checksum(v: number) {
    writeU16(this.buffer, ICMPV6_CHECKSUM, v);
  }
  get rest(): number {
    return readU32(this.buffer, ICMPV6_REST);
  }
  set rest(v: number) {
    writeU32(this.buffer, ICMPV6_REST, v);
  }
  get ident(): number {
    return readU16(this.buffer, ICMPV6_IDENT);
  }
  set ident(v: number) {
    writeU16(this.buffer, ICMPV6_IDENT, v);
  }
  get seq(): number {
    return readU16(this.buffer, ICMPV6_SEQ);
  }
  set seq(v: number) {
    writeU16(this.buffer, ICMPV6_SEQ, v);
  }
  /** RFC 4443 §3.2: the MTU of a Packet Too Big message. */
  get mtu(): number {
    return readU32(this.buffer, ICMPV6_REST);
  }
  /** NS/NA/Redirect target address (16-byte view). */
  get target(): Buffer {
    return this.buffer.subarray(NDP_TARGET, NDP_TARGET + 16);
  }
  /** Echo data or invoking packet (view; for NDP types see ndpOptionsOffset). */
  get data(): Buffer {
    return this.buffer.subarray(ICMPV6_DATA);
  }

  /** RFC 4443 §2.3: checksum over the pseudo-header (RFC 8200 §8.1) and the message. */
  verifyChecksum(src: Uint8Array, dst: Uint8Array): boolean {
    const len = this.buffer.length;
    return onesSum(this.buffer, 0, len, pseudoV6(src, dst, IpProtocol.ICMPv6, len)) === 0xffff;
  }

  fillChecksum(src: Uint8Array, dst: Uint8Array): void {
    const len = this.buffer.length;
    this.checksum = 0;
    this.checksum = ~onesSum(this.buffer, 0, len, pseudoV6(src, dst, IpProtocol.ICMPv6, len)) & 0xffff;
  }
}

/** A parsed NDP option (RFC 4861 §4.6); unknown ones are kept raw. */
export type NdpOption =
  | { kind: 'source-lla'; linkAddr: number }
  | { kind: 'target-lla'; linkAddr: number }
  | {
      kind: 'prefix-info';
      prefixLen: number;
      /** L/A flags byte (PREFIX_FLAG_*). */
      flags: number;
      /** Seconds; 0xffffffff = infinity. */
      validLifetime: number;
      preferredLifetime: number;
      /** 16 bytes. */
      prefix: Uint8Array;
    }
  | { kind: 'mtu'; mtu: number }
  | {
      /** RFC 8106 §5.1 Recursive DNS Server option. */
      kind: 'rdnss';
      lifetime: number;
      /** 16 bytes each. */
      servers: Uint8Array[];
    }
  /** Any other option, `raw` being the whole option (type, length, body). */
  | { kind: 'other'; raw: Buffer };

/** Wire length of an option in bytes (always a multiple of 8). */
export function ndpOptionLen(o: NdpOption): number {
  switch (o.kind) {
    case 'source-lla':
    case 'target-lla':
    case 'mtu':
      return 8;
    case 'prefix-info':
      return 32;
    case 'rdnss':
      return 8 + 16 * o.servers.length;
    case 'other':
      return o.raw.length;
  }
}

/**
 * Parses the options in b[start, end). RFC 4861 §4.6: each option is type,
 * length in units of 8 octets (including type and length), body; a length of
 * zero is invalid and the whole message must be dropped, as must an option
 * running past the message.
 */
export function parseNdpOptions(b: Buffer, start: number, end: number): NdpOption[] {
  const out: NdpOption[] = [];
  let off = start;
  while (off < end) {
    if (off + 2 > end) throw new WireError('ndp-bad-option-len');
    const type = b[off];
    const len = b[off + 1] << 3;
    if (len === 0 || off + len > end) throw new WireError('ndp-bad-option-len');
    switch (type) {
      case NdpOptionType.SourceLinkAddr:
      case NdpOptionType.TargetLinkAddr:
        // RFC 2464 §6: for Ethernet the link-layer address option is 8 bytes
        // (type, length 1, 6-byte MAC). Other link types are kept raw.
        if (len === 8) {
          const linkAddr = readMac(b, off + 2);
          out.push(type === NdpOptionType.SourceLinkAddr ? { kind: 'source-lla', linkAddr } : { kind: 'target-lla', linkAddr });
        } else {
          out.push({ kind: 'other', raw: b.subarray(off, off + len) });
        }
        break;
      case NdpOptionType.PrefixInfo:
        // RFC 4861 §4.6.2: Length is always 4 (32 bytes): prefix length, flags,
        // valid lifetime, preferred lifetime, reserved, 16-byte prefix.
        if (len !== 32) throw new WireError('ndp-bad-option-len');
        out.push({
          kind: 'prefix-info',
          prefixLen: b[off + 2],
          flags: b[off + 3],
          validLifetime: readU32(b, off + 4),
          preferredLifetime: readU32(b, off + 8),
          prefix: b.subarray(off + 16, off + 32),
        });
        break;
      case NdpOptionType.Mtu:
        // RFC 4861 §4.6.4: Length 1; 16 reserved bits, then the 32-bit MTU.
        if (len !== 8) throw new WireError('ndp-bad-option-len');
        out.push({ kind: 'mtu', mtu: readU32(b, off + 4) });
        break;
      case NdpOptionType.Rdnss: {
        // RFC 8106 §5.1: Length is 1 + 2 × (number of addresses), at least 3.
        const units = len >>> 3;
        if (units < 3 || (units & 1) === 0) throw new WireError('ndp-bad-option-len');
        const servers: Uint8Array[] = [];
        for (let a = off + 8; a < off + len; a += 16) servers.push(b.subarray(a, a + 16));
        out.push({ kind: 'rdnss', lifetime: readU32(b, off + 4), servers });
        break;
      }
      default:
        // RFC 4861 §4.6: unrecognised options are skipped (and kept raw here).
        out.push({ kind: 'other', raw: b.subarray(off, off + len) });
    }
    off += len;
  }
  return out;
}

/** Writes options at `off`; returns the offset after the last one. */
export function emitNdpOptions(b: Buffer, off: number, opts: readonly NdpOption[]): number {
  for (const o of opts) {
    const len = ndpOptionLen(o);
    switch (o.kind) {
      case 'source-lla':
      case 'target-lla':
        b[off] = o.kind === 'source-lla' ? NdpOptionType.SourceLinkAddr : NdpOptionType.TargetLinkAddr;
        b[off + 1] = 1;
        writeMac(b, off + 2, o.linkAddr);
        break;
      case 'prefix-info':
        b[off] = NdpOptionType.PrefixInfo;
        b[off + 1] = 4;
        b[off + 2] = o.prefixLen;
        b[off + 3] = o.flags;
        writeU32(b, off + 4, o.validLifetime);
        writeU32(b, off + 8, o.preferredLifetime);
        writeU32(b, off + 12, 0);
        copy16(o.prefix, b, off + 16);
        break;
      case 'mtu':
        b[off] = NdpOptionType.Mtu;
        b[off + 1] = 1;
        writeU16(b, off + 2, 0);
        writeU32(b, off + 4, o.mtu);
        break;
      case 'rdnss':
        b[off] = NdpOptionType.Rdnss;
        b[off + 1] = len >>> 3;
        writeU16(b, off + 2, 0);
        writeU32(b, off + 4, o.lifetime);
        for (let i = 0; i < o.servers.length; i++) copy16(o.servers[i], b, off + 8 + 16 * i);
        break;
      case 'other':
        o.raw.copy(b, off);
        break;
    }
    off += len;
  }
  return off;
}

export interface Icmpv6Fields {
  type: number;
  /** Default 0. */
  code?: number;
  /** Echo identifier/sequence (echo types). */
  ident?: number;
  seq?: number;
  /**
   * The 32-bit word after the checksum for non-echo, non-RA types: MTU for
   * Packet Too Big, pointer for Parameter Problem, NA flags in the top byte
   * (see `flags`), otherwise unused/reserved. Default 0.
   */
  rest?: number;
  /** Echo data, an error's invoking packet, or the body of an unknown type. */
  data?: Buffer;
  // --- NDP ---
  /** RA: Cur Hop Limit (default 0 = unspecified). */
  curHopLimit?: number;
  /** RA flags byte (RA_FLAG_*), or NA flags (NA_FLAG_*): top byte of `rest`. */
  flags?: number;
  /** RA: seconds (default 0). */
  routerLifetime?: number;
  /** RA: ms (default 0). */
  reachableTime?: number;
  /** RA: ms (default 0). */
  retransTimer?: number;
  /** NS/NA/Redirect target (16 bytes). */
  target?: Uint8Array;
  /** Redirect destination (16 bytes). */
  redirectDst?: Uint8Array;
  /** NDP options, in wire order. */
  options?: NdpOption[];
}

const EMPTY = Buffer.alloc(0);
const ZERO16 = new Uint8Array(16);

export interface Icmpv6ParseOptions {
  ignoreChecksum?: boolean;
}

export class Icmpv6Repr implements Icmpv6Fields {
  type: number;
  code: number;
  ident: number;
  seq: number;
  rest: number;
  data: Buffer;
  curHopLimit: number;
  flags: number;
  routerLifetime: number;
  reachableTime: number;
  retransTimer: number;
  target: Uint8Array;
  redirectDst: Uint8Array;
  options: NdpOption[];

  constructor(f: Icmpv6Fields) {
    this.type = f.type;
    this.code = f.code ?? 0;
    this.ident = f.ident ?? 0;
    this.seq = f.seq ?? 0;
    this.rest = f.rest ?? 0;
    this.data = f.data ?? EMPTY;
    this.curHopLimit = f.curHopLimit ?? 0;
    this.flags = f.flags ?? 0;
    this.routerLifetime = f.routerLifetime ?? 0;
    this.reachableTime = f.reachableTime ?? 0;
    this.retransTimer = f.retransTimer ?? 0;
    this.target = f.target ?? ZERO16;
    this.redirectDst = f.redirectDst ?? ZERO16;
    this.options = f.options ?? [];
  }

  get isEcho(): boolean {
    return this.type === Icmpv6Type.EchoRequest || this.type === Icmpv6Type.EchoReply;
  }
  get isNdp(): boolean {
    return ndpOptionsOffset(this.type) > 0;
  }
  /** RFC 4443 §3.2: Packet Too Big MTU. */
  get mtu(): number {
    return this.rest;
  }
  /** The Source Link-Layer Address option's MAC, or -1. */
  get sourceLinkAddr(): number {
    for (const o of this.options) if (o.kind === 'source-lla') return o.linkAddr;
    return -1;
  }
  /** The Target Link-Layer Address option's MAC, or -1. */
  get targetLinkAddr(): number {
    for (const o of this.options) if (o.kind === 'target-lla') return o.linkAddr;
    return -1;
  }

  /** `src`/`dst`: the IPv6 addresses, for the pseudo-header checksum. */
  static parse(p: Icmpv6Packet, src: Uint8Array, dst: Uint8Array, opts?: Icmpv6ParseOptions): Icmpv6Repr {
    if (!opts?.ignoreChecksum && !p.verifyChecksum(src, dst)) throw new WireError('icmpv6-bad-checksum');
    const b = p.buffer;
    const type = p.type;
    const code = p.code;
    const rest = p.rest;
    const optOff = ndpOptionsOffset(type);
    if (optOff < 0) {
      return new Icmpv6Repr({ type, code, ident: rest >>> 16, seq: rest & 0xffff, rest, data: p.data });
    }
    // RFC 4861 §6.1.1 / §6.1.2 / §7.1.1 / §7.1.2 / §8.1: ICMP Code is 0.
    if (code !== 0) throw new WireError('ndp-bad-code');
    if (b.length < optOff) throw new WireError('icmpv6-truncated');
    const options = parseNdpOptions(b, optOff, b.length);
    const r = new Icmpv6Repr({ type, code, rest, options });
    if (type === Icmpv6Type.RouterAdvert) {
      r.curHopLimit = b[RA_CUR_HOP_LIMIT];
      r.flags = b[RA_FLAGS];
      r.routerLifetime = readU16(b, RA_ROUTER_LIFETIME);
      r.reachableTime = readU32(b, RA_REACHABLE_TIME);
      r.retransTimer = readU32(b, RA_RETRANS_TIMER);
    } else if (type !== Icmpv6Type.RouterSolicit) {
      r.flags = rest >>> 24;
      r.target = b.subarray(NDP_TARGET, NDP_TARGET + 16);
      if (type === Icmpv6Type.Redirect) r.redirectDst = b.subarray(REDIRECT_DST, REDIRECT_DST + 16);
    }
    return r;
  }

  bufferLen(): number {
    const optOff = ndpOptionsOffset(this.type);
    if (optOff < 0) return ICMPV6_HEADER_LEN + this.data.length;
    let n = optOff;
    for (const o of this.options) n += ndpOptionLen(o);
    return n;
  }

  /** Writes the message and fills the checksum over exactly bufferLen() bytes. */
  emit(target: Icmpv6Packet | Buffer, src: Uint8Array, dst: Uint8Array): void {
    const b = target instanceof Icmpv6Packet ? target.buffer : target;
    const len = this.bufferLen();
    if (b.length < len) throw new WireError('buffer-too-small');
    b[ICMPV6_TYPE] = this.type;
    b[ICMPV6_CODE] = this.code;
    writeU16(b, ICMPV6_CHECKSUM, 0);
    const optOff = ndpOptionsOffset(this.type);
    if (optOff < 0) {
      if (this.isEcho) {
        writeU16(b, ICMPV6_IDENT, this.ident);
        writeU16(b, ICMPV6_SEQ, this.seq);
      } else {
        writeU32(b, ICMPV6_REST, this.rest);
      }
      this.data.copy(b, ICMPV6_DATA);
    } else {
      switch (this.type) {
        case Icmpv6Type.RouterAdvert:
          b[RA_CUR_HOP_LIMIT] = this.curHopLimit;
          b[RA_FLAGS] = this.flags;
          writeU16(b, RA_ROUTER_LIFETIME, this.routerLifetime);
          writeU32(b, RA_REACHABLE_TIME, this.reachableTime);
          writeU32(b, RA_RETRANS_TIMER, this.retransTimer);
          break;
        case Icmpv6Type.RouterSolicit:
          // RFC 4861 §4.1: the reserved word is zero on send.
          writeU32(b, ICMPV6_REST, 0);
          break;
        default:
          // NS (§4.3): reserved. NA (§4.4): R/S/O flags then reserved.
          // Redirect (§4.5): reserved, then target and destination.
          writeU32(b, ICMPV6_REST, ((this.flags & 0xff) << 24) >>> 0);
          copy16(this.target, b, NDP_TARGET);
          if (this.type === Icmpv6Type.Redirect) copy16(this.redirectDst, b, REDIRECT_DST);
      }
      emitNdpOptions(b, optOff, this.options);
    }
    const sum = onesSum(b, 0, len, pseudoV6(src, dst, IpProtocol.ICMPv6, len));
    writeU16(b, ICMPV6_CHECKSUM, ~sum & 0xffff);
  }
}
