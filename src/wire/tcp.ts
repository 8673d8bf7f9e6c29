// src/wire/tcp.ts — the TCP header and its options (RFC 9293 §3.1, RFC 7323,
// RFC 2018), over IPv4 or IPv6.
//
// Read this first:
// - TcpPacket views one segment: the IP payload, exactly (TCP has no length
//   field; the segment ends where the IP payload ends).
// - Checksums take a pseudo-header sum from pseudoV4/pseudoV6 computed with
//   the segment length; the *V4/*V6 helpers compute it for you.
// - TcpRepr.parse walks the options once and rejects malformed lengths.
// - TcpRepr.emit writes options in the order Linux uses (tcp_options_write):
//   MSS, SACK-permitted+timestamps, window scale, SACK blocks, with NOPs
//   where Linux puts them. Every group is a multiple of 4 bytes, so segments
//   from Linux round-trip byte for byte; other layouts (and unknown options)
//   are normalised.

import { WireError } from './errors.js';
import { readU16, readU32, writeU16, writeU32 } from './address.js';
import { ChecksumMode, fold, onesSum, pseudoV4, pseudoV6 } from './checksum.js';
import { IpProtocol } from './ipv4.js';

/** RFC 9293 §3.1 control bits (low byte of the 16-bit offset/flags word). */
export const TcpFlags = {
  FIN: 0x01,
  SYN: 0x02,
  RST: 0x04,
  PSH: 0x08,
  ACK: 0x10,
  URG: 0x20,
  /** RFC 3168 §6.1: ECN-Echo. */
  ECE: 0x40,
  /** RFC 3168 §6.1: Congestion Window Reduced. */
  CWR: 0x80,
  /** RFC 9768 AccECN "AE" (formerly the RFC 3540 NS bit). */
  AE: 0x100,
} as const;

/** RFC 9293 §3.2 and IANA "TCP Option Kind Numbers". */
export const TcpOption = {
  EOL: 0,
  NOP: 1,
  /** RFC 9293 §3.2: Maximum Segment Size, length 4. */
  MSS: 2,
  /** RFC 7323 §2.2: Window Scale, length 3. */
  WindowScale: 3,
  /** RFC 2018 §2: SACK-Permitted, length 2. */
  SackPermitted: 4,
  /** RFC 2018 §3: SACK, length 2 + 8n. */
  Sack: 5,
  /** RFC 7323 §3.2: Timestamps, length 10. */
  Timestamps: 8,
} as const;

export const TCP_SRC_PORT = 0;
export const TCP_DST_PORT = 2;
export const TCP_SEQ = 4;
export const TCP_ACK = 8;
/** Data offset (high nibble), reserved bits and AE (low nibble). */
export const TCP_DATA_OFF = 12;
export const TCP_FLAGS = 13;
export const TCP_WINDOW = 14;
export const TCP_CHECKSUM = 16;
export const TCP_URGENT = 18;
export const TCP_OPTIONS = 20;
/** RFC 9293 §3.1: Data Offset counts 32-bit words; the minimum header is 5 words. */
export const TCP_HEADER_LEN = 20;
/** Data Offset is 4 bits: at most 15 words = 60 bytes, so 40 bytes of options. */
export const TCP_MAX_HEADER_LEN = 60;
export const TCP_MAX_OPTIONS_LEN = 40;
/** RFC 2018 §3: a SACK option holds at most 4 blocks in 40 bytes. */
export const TCP_MAX_SACK_BLOCKS = 4;

export class TcpPacket {
  constructor(readonly buffer: Buffer) {}

  static newChecked(buf: Buffer): TcpPacket {
    if (buf.length < TCP_HEADER_LEN) throw new WireError('tcp-truncated');
    const p = new TcpPacket(buf);
    // RFC 9293 §3.1: Data Offset is the header length in 32-bit words,
    // options included; at least 5, and the header must fit in the segment.
    const hl = p.headerLen;
    if (hl < TCP_HEADER_LEN || hl > buf.length) throw new WireError('tcp-bad-data-offset');
    return p;
  }

  get srcPort(): number {
    return readU16(this.buffer, TCP_SRC_PORT);
  }
  set srcPort(v: number) {
    writeU16(this.buffer, TCP_SRC_PORT, v);
  }
  get dstPort(): number {
    return readU16(this.buffer, TCP_DST_PORT);
  }
  set dstPort(v: number) {
    writeU16(this.buffer, TCP_DST_PORT, v);
  }
  get seq(): number {
    return readU32(this.buffer, TCP_SEQ);
  }
  set seq(v: number) {
    writeU32(this.buffer, TCP_SEQ, v);
  }
  get ack(): number {
    return readU32(this.buffer, TCP_ACK);
  }
  set ack(v: number) {
    writeU32(this.buffer, TCP_ACK, v);
  }
  /** Data Offset in 32-bit words. */
  get dataOffset(): number {
    return (this.buffer[TCP_DATA_OFF] ?? 0) >>> 4;
  }
  set dataOffset(words: number) {
    const b = this.buffer;
    b[TCP_DATA_OFF] = ((words & 0xf) << 4) | (b[TCP_DATA_OFF] & 0xf);
  }
  /** Header length in bytes. */
  get headerLen(): number {
    return this.dataOffset << 2;
  }
  /** The 12 bits after Data Offset: TcpFlags bits (plus reserved bits, kept as-is). */
  get flags(): number {
    return (((this.buffer[TCP_DATA_OFF] ?? 0) & 0xf) << 8) | (this.buffer[TCP_FLAGS] ?? 0);
  }
  set flags(v: number) {
    const b = this.buffer;
    b[TCP_DATA_OFF] = (b[TCP_DATA_OFF] & 0xf0) | ((v >>> 8) & 0xf);
    b[TCP_FLAGS] = v;
  }
  get fin(): boolean {
    return ((this.buffer[TCP_FLAGS] ?? 0) & TcpFlags.FIN) !== 0;
  }
  get syn(): boolean {
    return ((this.buffer[TCP_FLAGS] ?? 0) & TcpFlags.SYN) !== 0;
  }
  get rst(): boolean {
    return ((this.buffer[TCP_FLAGS] ?? 0) & TcpFlags.RST) !== 0;
  }
  get psh(): boolean {
    return ((this.buffer[TCP_FLAGS] ?? 0) & TcpFlags.PSH) !== 0;
  }
  /** The ACK control bit (the acknowledgment number is `ack`). */
  get hasAck(): boolean {
    return ((this.buffer[TCP_FLAGS] ?? 0) & TcpFlags.ACK) !== 0;
  }
  get window(): number {
    return readU16(this.buffer, TCP_WINDOW);
  }
  set window(v: number) {
    writeU16(this.buffer, TCP_WINDOW, v);
  }
  get checksum(): number {
    return readU16(this.buffer, TCP_CHECKSUM);
  }
  set checksum(v: number) {
    writeU16(this.buffer, TCP_CHECKSUM, v);
  }
  get urgent(): number {
    return readU16(this.buffer, TCP_URGENT);
  }
  set urgent(v: number) {
    writeU16(this.buffer, TCP_URGENT, v);
  }
  /** Option bytes (view). */
  get options(): Buffer {
    return this.buffer.subarray(TCP_OPTIONS, Math.max(TCP_OPTIONS, this.headerLen));
  }
  /** Segment data (view). */
  get payload(): Buffer {
    return this.buffer.subarray(Math.max(TCP_HEADER_LEN, this.headerLen));
  }

  /** RFC 9293 §3.1: checksum over pseudo-header, header and data. */
  verifyChecksum(pseudoSum: number): boolean {
    return onesSum(this.buffer, 0, this.buffer.length, pseudoSum) === 0xffff;
  }
  verifyChecksumV4(src: number, dst: number): boolean {
    return this.verifyChecksum(pseudoV4(src, dst, IpProtocol.TCP, this.buffer.length));
  }
  verifyChecksumV6(src: Uint8Array, dst: Uint8Array): boolean {
    return this.verifyChecksum(pseudoV6(src, dst, IpProtocol.TCP, this.buffer.length));
  }
  fillChecksum(pseudoSum: number): void {
    this.checksum = 0;
    this.checksum = ~onesSum(this.buffer, 0, this.buffer.length, pseudoSum) & 0xffff;
  }
}

export interface TcpParseOptions {
  /** Pseudo-header sum (with the segment length); omit to skip verification. */
  pseudoSum?: number;
}

export interface TcpFields {
  srcPort: number;
  dstPort: number;
  seq: number;
  /** The acknowledgment number field (meaningful when flags has ACK). */
  ack: number;
  /** TcpFlags bitmask. */
  flags: number;
  /** The raw (unscaled) window field. */
  window: number;
  /** Urgent pointer (default 0). */
  urgent?: number;
  mss?: number;
  windowScale?: number;
  /** Default false. */
  sackPermitted?: boolean;
  /** [left, right) edges, at most 4 (fewer are emitted if space is short). */
  sackBlocks?: [number, number][];
  /** RFC 7323: present together with tsEcr. */
  tsVal?: number;
  tsEcr?: number;
  /** From parse: a view into the segment. Default empty. */
  payload?: Buffer;
}

const EMPTY = Buffer.alloc(0);

function badOpt(): never {
  throw new WireError('tcp-bad-option-len');
}

/**
 * A TCP segment's fields. seq, ack, SACK edges and timestamps are held as
 * signed 32-bit integers (the `| 0` of the wire's unsigned value; emit
 * writes the same bits back): V8 keeps those as small integers, where
 * values of 2^31 and up would be heap numbers. Compare them only through
 * src/stack/tcp/seq.ts; `>>> 0` gives the unsigned reading for display.
 */
export class TcpRepr implements TcpFields {
  // The stack's own constructions (src/stack/tcp) and parse() pass the
  // fields as one literal shape — srcPort, dstPort, seq, ack, flags,
  // window, urgent, payload, in that order — and set options on the repr
  // afterwards: V8 then sees one map here, and optimized code built for it
  // is not thrown away when a new shape shows up ("wrong map").
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  urgent: number;
  mss: number | undefined;
  windowScale: number | undefined;
  sackPermitted: boolean;
  sackBlocks: [number, number][] | undefined;
  tsVal: number | undefined;
  tsEcr: number | undefined;
  payload: Buffer;

  constructor(f: TcpFields) {
    this.srcPort = f.srcPort;
    this.dstPort = f.dstPort;
    this.seq = f.seq | 0;
    this.ack = f.ack | 0;
    this.flags = f.flags;
    this.window = f.window;
    this.urgent = f.urgent ?? 0;
    this.mss = f.mss;
    this.windowScale = f.windowScale;
    this.sackPermitted = f.sackPermitted ?? false;
    this.sackBlocks = f.sackBlocks;
    this.tsVal = f.tsVal === undefined ? undefined : f.tsVal | 0;
    this.tsEcr = f.tsEcr === undefined ? undefined : f.tsEcr | 0;
    this.payload = f.payload ?? EMPTY;
  }

  /**
   * RFC 9293 §3.4: SEG.LEN, the sequence space the segment occupies — its
   * data plus one for SYN and one for FIN.
   */
  seqLen(): number {
    return this.payload.length + (this.flags & TcpFlags.SYN ? 1 : 0) + (this.flags & TcpFlags.FIN ? 1 : 0);
  }

  static parse(p: TcpPacket, opts?: TcpParseOptions): TcpRepr {
    const pseudo = opts?.pseudoSum;
    if (pseudo !== undefined && !p.verifyChecksum(pseudo)) throw new WireError('tcp-bad-checksum');
    const b = p.buffer;
    const r = new TcpRepr({
      srcPort: p.srcPort,
      dstPort: p.dstPort,
      // Signed 32-bit, as the constructor keeps them: unsigned values of
      // 2^31 and up would make this literal's fields doubles.
      seq: p.seq | 0,
      ack: p.ack | 0,
      flags: p.flags,
      window: p.window,
      urgent: p.urgent,
      payload: p.payload,
    });
    const end = p.headerLen;
    let i = TCP_OPTIONS;
    while (i < end) {
      const kind = b[i];
      // RFC 9293 §3.2: End of Option List; what follows is padding.
      if (kind === TcpOption.EOL) break;
      // RFC 9293 §3.2: No-Operation is a single byte, used for alignment.
      if (kind === TcpOption.NOP) {
        i++;
        continue;
      }
      // RFC 9293 §3.2: every other option is kind, length (counting kind and
      // length themselves, so ≥ 2), data — and must end inside the header.
      if (i + 1 >= end) badOpt();
      const len = b[i + 1];
      if (len < 2 || i + len > end) badOpt();
      switch (kind) {
        case TcpOption.MSS:
          if (len !== 4) badOpt();
          r.mss = readU16(b, i + 2);
          break;
        case TcpOption.WindowScale:
          // RFC 7323 §2.2: shift count byte; clamping to 14 is the stack's call.
          if (len !== 3) badOpt();
          r.windowScale = b[i + 2];
          break;
        case TcpOption.SackPermitted:
          if (len !== 2) badOpt();
          r.sackPermitted = true;
          break;
        case TcpOption.Sack: {
          // RFC 2018 §3: 2 + 8n bytes, each block a pair of 32-bit edges.
          if (len < 10 || (len - 2) % 8 !== 0) badOpt();
          const blocks: [number, number][] = [];
          for (let j = i + 2; j < i + len; j += 8) blocks.push([readU32(b, j) | 0, readU32(b, j + 4) | 0]);
          r.sackBlocks = blocks;
          break;
        }
        case TcpOption.Timestamps:
          // RFC 7323 §3.2: TSval then TSecr, 32 bits each.
          if (len !== 10) badOpt();
          r.tsVal = readU32(b, i + 2) | 0;
          r.tsEcr = readU32(b, i + 6) | 0;
          break;
        default:
        // RFC 9293 §3.2: options not understood are skipped by their length.
      }
      i += len;
    }
    return r;
  }

  /** How many SACK blocks emit writes, given the 40-byte option budget. */
  sackBlocksEmitted(): number {
    const n = this.sackBlocks?.length ?? 0;
    if (n === 0) return 0;
    const room = TCP_MAX_OPTIONS_LEN - this.fixedOptionsLen() - 4;
    return Math.max(0, Math.min(n, TCP_MAX_SACK_BLOCKS, Math.floor(room / 8)));
  }

  private fixedOptionsLen(): number {
    let n = 0;
    if (this.mss !== undefined) n += 4;
    if (this.tsVal !== undefined) n += 12;
    else if (this.sackPermitted) n += 4;
    if (this.windowScale !== undefined) n += 4;
    return n;
  }

  /** Option bytes emit writes (a multiple of 4). */
  optionsLen(): number {
    const s = this.sackBlocksEmitted();
    return this.fixedOptionsLen() + (s > 0 ? 4 + 8 * s : 0);
  }

  headerLen(): number {
    return TCP_HEADER_LEN + this.optionsLen();
  }

  bufferLen(): number {
    return this.headerLen() + this.payload.length;
  }

  /**
   * Writes header, options and payload. `pseudoSum` must be computed with
   * bufferLen() as the length. Mode Partial writes the folded pseudo-header
   * sum for checksum offload (csum_start = TCP header, csum_offset = 16).
   */
  emit(target: TcpPacket | Buffer, pseudoSum: number, mode: ChecksumMode = ChecksumMode.Full): void {
    const b = target instanceof TcpPacket ? target.buffer : target;
    const hl = this.headerLen();
    const len = hl + this.payload.length;
    if (b.length < len) throw new WireError('buffer-too-small');
    this.writeHeader(b, hl);
    this.payload.copy(b, hl);
    if (mode === ChecksumMode.Full) {
      writeU16(b, TCP_CHECKSUM, ~onesSum(b, 0, len, pseudoSum) & 0xffff);
    } else if (mode === ChecksumMode.Partial) {
      writeU16(b, TCP_CHECKSUM, fold(pseudoSum));
    }
  }

  /**
   * Writes the header alone into b (headerLen() bytes), for a payload sent
   * from where it lies (Port.sendParts); the checksum covers that payload
   * all the same.
   */
  emitHeader(b: Buffer, pseudoSum: number, mode: ChecksumMode = ChecksumMode.Full): void {
    const hl = this.headerLen();
    if (b.length < hl) throw new WireError('buffer-too-small');
    this.writeHeader(b, hl);
    if (mode === ChecksumMode.Full) {
      // The header is a whole number of 32-bit words: the sum goes on over the payload.
      writeU16(b, TCP_CHECKSUM, ~onesSum(this.payload, 0, this.payload.length, onesSum(b, 0, hl, pseudoSum)) & 0xffff);
    } else if (mode === ChecksumMode.Partial) {
      writeU16(b, TCP_CHECKSUM, fold(pseudoSum));
    }
  }

  private writeHeader(b: Buffer, hl: number): void {
    writeU16(b, TCP_SRC_PORT, this.srcPort);
    writeU16(b, TCP_DST_PORT, this.dstPort);
    writeU32(b, TCP_SEQ, this.seq);
    writeU32(b, TCP_ACK, this.ack);
    b[TCP_DATA_OFF] = ((hl >>> 2) << 4) | ((this.flags >>> 8) & 0xf);
    b[TCP_FLAGS] = this.flags;
    writeU16(b, TCP_WINDOW, this.window);
    writeU16(b, TCP_CHECKSUM, 0);
    writeU16(b, TCP_URGENT, this.urgent);
    let o = TCP_OPTIONS;
    if (this.mss !== undefined) {
      b[o] = TcpOption.MSS;
      b[o + 1] = 4;
      writeU16(b, o + 2, this.mss);
      o += 4;
    }
    if (this.tsVal !== undefined) {
      // Linux packs SACK-permitted into the two bytes it would otherwise pad
      // the timestamps option with: 04 02 08 0a, else 01 01 08 0a.
      if (this.sackPermitted) {
        b[o] = TcpOption.SackPermitted;
        b[o + 1] = 2;
      } else {
        b[o] = TcpOption.NOP;
        b[o + 1] = TcpOption.NOP;
      }
      b[o + 2] = TcpOption.Timestamps;
      b[o + 3] = 10;
      writeU32(b, o + 4, this.tsVal);
      writeU32(b, o + 8, this.tsEcr ?? 0);
      o += 12;
    } else if (this.sackPermitted) {
      b[o] = TcpOption.NOP;
      b[o + 1] = TcpOption.NOP;
      b[o + 2] = TcpOption.SackPermitted;
      b[o + 3] = 2;
      o += 4;
    }
    if (this.windowScale !== undefined) {
      b[o] = TcpOption.NOP;
      b[o + 1] = TcpOption.WindowScale;
      b[o + 2] = 3;
      b[o + 3] = this.windowScale;
      o += 4;
    }
    const nSack = this.sackBlocksEmitted();
    if (nSack > 0) {
      const blocks = this.sackBlocks!;
      b[o] = TcpOption.NOP;
      b[o + 1] = TcpOption.NOP;
      b[o + 2] = TcpOption.Sack;
      b[o + 3] = 2 + 8 * nSack;
      o += 4;
      for (let k = 0; k < nSack; k++) {
        writeU32(b, o, blocks[k][0]);
        writeU32(b, o + 4, blocks[k][1]);
        o += 8;
      }
    }
    // RFC 9293 §3.1: the header ends on a 32-bit boundary; pad with EOL (0).
    // Every group above is already a multiple of 4, so this is defensive.
    for (; o < hl; o++) b[o] = TcpOption.EOL;
  }
}
