// src/wire/icmpv4.ts — ICMP for IPv4 (RFC 792).
//
// Icmpv4Packet is a view over the ICMP message alone: pass the IPv4 payload
// (bounded by Total Length), since the checksum covers exactly the message.
// Every message starts with type, code, checksum and a 4-byte "rest of
// header" whose meaning depends on the type; Icmpv4Repr keeps that word as
// `rest` for every type and also splits it into `ident`/`seq` for echoes.

import { WireError } from './errors.js';
import { readU16, readU32, writeU16, writeU32 } from './address.js';
import { checksum, onesSum } from './checksum.js';

/** RFC 792 message types (and the later ones tsnet may meet). */
export const Icmpv4Type = {
  EchoReply: 0,
  DstUnreachable: 3,
  /** RFC 6633: deprecated, never sent. */
  SourceQuench: 4,
  Redirect: 5,
  EchoRequest: 8,
  /** RFC 1256. */
  RouterAdvert: 9,
  RouterSolicit: 10,
  TimeExceeded: 11,
  ParamProblem: 12,
  Timestamp: 13,
  TimestampReply: 14,
} as const;

/** RFC 792 / RFC 1812 §5.2.7.1: Destination Unreachable codes. */
export const Icmpv4DstUnreachable = {
  NetUnreachable: 0,
  HostUnreachable: 1,
  ProtoUnreachable: 2,
  PortUnreachable: 3,
  /** RFC 1191: "fragmentation needed and DF set", carries the next-hop MTU. */
  FragNeeded: 4,
  SourceRouteFailed: 5,
  DstNetUnknown: 6,
  DstHostUnknown: 7,
  NetProhibited: 9,
  HostProhibited: 10,
  /** RFC 1812: communication administratively prohibited. */
  AdminProhibited: 13,
} as const;

/** RFC 792: Time Exceeded codes. */
export const Icmpv4TimeExceeded = {
  TtlExceeded: 0,
  FragReassembly: 1,
} as const;

export const ICMPV4_TYPE = 0;
export const ICMPV4_CODE = 1;
export const ICMPV4_CHECKSUM = 2;
/** Echo: identifier (RFC 792 "Echo or Echo Reply Message"). */
export const ICMPV4_IDENT = 4;
/** Echo: sequence number. */
export const ICMPV4_SEQ = 6;
/** The 32-bit "rest of header" word. */
export const ICMPV4_REST = 4;
/** RFC 1191 §4: Next-Hop MTU in the low 16 bits of the rest-of-header word. */
export const ICMPV4_NEXT_HOP_MTU = 6;
export const ICMPV4_DATA = 8;
export const ICMPV4_HEADER_LEN = 8;

/** Error messages whose data must begin with the invoking datagram's IP header. */
function isError(type: number): boolean {
  return (
    type === Icmpv4Type.DstUnreachable ||
    type === Icmpv4Type.TimeExceeded ||
    type === Icmpv4Type.ParamProblem ||
    type === Icmpv4Type.Redirect
  );
}

export class Icmpv4Packet {
  constructor(readonly buffer: Buffer) {}

  static newChecked(buf: Buffer): Icmpv4Packet {
    // RFC 792: every message has at least the 8-byte header.
    if (buf.length < ICMPV4_HEADER_LEN) throw new WireError('icmpv4-truncated');
    return new Icmpv4Packet(buf);
  }

  get type(): number {
    return this.buffer[ICMPV4_TYPE] ?? 0;
  }
  set type(v: number) {
    this.buffer[ICMPV4_TYPE] = v;
  }
  get code(): number {
    return this.buffer[ICMPV4_CODE] ?? 0;
  }
  set code(v: number) {
    this.buffer[ICMPV4_CODE] = v;
  }
  get checksum(): number {
    return readU16(this.buffer, ICMPV4_CHECKSUM);
  }
  set checksum(v: number) {
    writeU16(this.buffer, ICMPV4_CHECKSUM, v);
  }
  get ident(): number {
    return readU16(this.buffer, ICMPV4_IDENT);
  }
  set ident(v: number) {
    writeU16(this.buffer, ICMPV4_IDENT, v);
  }
  get seq(): number {
    return readU16(this.buffer, ICMPV4_SEQ);
  }
  set seq(v: number) {
    writeU16(this.buffer, ICMPV4_SEQ, v);
  }
  get rest(): number {
    return readU32(this.buffer, ICMPV4_REST);
  }
  set rest(v: number) {
    writeU32(this.buffer, ICMPV4_REST, v);
  }
  /** RFC 1191: next-hop MTU of a "fragmentation needed" message. */
  get nextHopMtu(): number {
    return readU16(this.buffer, ICMPV4_NEXT_HOP_MTU);
  }
  set nextHopMtu(v: number) {
    writeU16(this.buffer, ICMPV4_NEXT_HOP_MTU, v);
  }
  /** Echo data, or the invoking datagram of an error (view). */
  get data(): Buffer {
    return this.buffer.subarray(ICMPV4_DATA);
  }

  /** RFC 792: the checksum covers the whole ICMP message; a correct one sums to all ones. */
  verifyChecksum(): boolean {
    return onesSum(this.buffer, 0, this.buffer.length) === 0xffff;
  }

  fillChecksum(): void {
    this.checksum = 0;
    this.checksum = checksum(this.buffer, 0, this.buffer.length);
  }
}

export interface Icmpv4Fields {
  type: number;
  /** Default 0. */
  code?: number;
  /** Echo identifier (echo types only; default 0). */
  ident?: number;
  /** Echo sequence number (echo types only; default 0). */
  seq?: number;
  /**
   * The rest-of-header word for non-echo types (default 0): unused for
   * Destination Unreachable except the RFC 1191 MTU (low 16 bits), the
   * gateway for Redirect, the pointer (top byte) for Parameter Problem.
   */
  rest?: number;
  /** Echo data, or the invoking IP header + leading payload for errors. */
  data?: Buffer;
}

const EMPTY = Buffer.alloc(0);

export interface Icmpv4ParseOptions {
  ignoreChecksum?: boolean;
}

export class Icmpv4Repr implements Icmpv4Fields {
  type: number;
  code: number;
  ident: number;
  seq: number;
  rest: number;
  /** From parse: a view into the packet. */
  data: Buffer;

  constructor(f: Icmpv4Fields) {
    this.type = f.type;
    this.code = f.code ?? 0;
    this.ident = f.ident ?? 0;
    this.seq = f.seq ?? 0;
    this.rest = f.rest ?? 0;
    this.data = f.data ?? EMPTY;
  }

  get isEcho(): boolean {
    return this.type === Icmpv4Type.EchoRequest || this.type === Icmpv4Type.EchoReply;
  }

  /** RFC 1191: the next-hop MTU of a "fragmentation needed" message. */
  get mtu(): number {
    return this.rest & 0xffff;
  }

  static parse(p: Icmpv4Packet, opts?: Icmpv4ParseOptions): Icmpv4Repr {
    if (!opts?.ignoreChecksum && !p.verifyChecksum()) throw new WireError('icmpv4-bad-checksum');
    const type = p.type;
    const data = p.data;
    if (isError(type)) {
      // RFC 792: error messages carry the internet header of the datagram
      // that caused them, plus (at least) its first 64 data bits. Insist on
      // a well-formed embedded IPv4 header; the stack reads its addresses,
      // protocol and ports to find the flow.
      const ihl = (data[0] ?? 0) & 0xf;
      if (data.length < 20 || data[0] >>> 4 !== 4 || ihl < 5 || data.length < ihl * 4) {
        throw new WireError('icmpv4-bad-embedded');
      }
    }
    const rest = p.rest;
    return new Icmpv4Repr({
      type,
      code: p.code,
      ident: rest >>> 16,
      seq: rest & 0xffff,
      rest,
      data,
    });
  }

  bufferLen(): number {
    return ICMPV4_HEADER_LEN + this.data.length;
  }

  /** Writes header and data and fills the checksum over exactly bufferLen() bytes. */
  emit(target: Icmpv4Packet | Buffer): void {
    const b = target instanceof Icmpv4Packet ? target.buffer : target;
    const len = this.bufferLen();
    if (b.length < len) throw new WireError('buffer-too-small');
    b[ICMPV4_TYPE] = this.type;
    b[ICMPV4_CODE] = this.code;
    writeU16(b, ICMPV4_CHECKSUM, 0);
    if (this.isEcho) {
      writeU16(b, ICMPV4_IDENT, this.ident);
      writeU16(b, ICMPV4_SEQ, this.seq);
    } else {
      writeU32(b, ICMPV4_REST, this.rest);
    }
    this.data.copy(b, ICMPV4_DATA);
    writeU16(b, ICMPV4_CHECKSUM, checksum(b, 0, len));
  }
}
