// src/wire/udp.ts — UDP (RFC 768), over IPv4 or IPv6.
//
// UdpPacket views the IP payload. Checksums take a *pseudo-header sum*
// (pseudoV4/pseudoV6 from checksum.ts, computed with the UDP length) so the
// same code serves both families; the *V4/*V6 helpers compute it for you.
// Over IPv4 a zero checksum field means "not computed" (RFC 768); over IPv6
// it is forbidden (RFC 8200 §8.1).

import { WireError } from './errors.js';
import { readU16, writeU16 } from './address.js';
import { ChecksumMode, fold, onesSum, pseudoV4, pseudoV6, udpChecksumField } from './checksum.js';
import { IpProtocol } from './ipv4.js';

export const UDP_SRC_PORT = 0;
export const UDP_DST_PORT = 2;
export const UDP_LENGTH = 4;
export const UDP_CHECKSUM = 6;
/** RFC 768: the header is four 16-bit fields. */
export const UDP_HEADER_LEN = 8;

export class UdpPacket {
  constructor(readonly buffer: Buffer) {}

  static newChecked(buf: Buffer): UdpPacket {
    if (buf.length < UDP_HEADER_LEN) throw new WireError('udp-truncated');
    const p = new UdpPacket(buf);
    // RFC 768: Length counts header and data, so its minimum is 8; it cannot
    // claim more than the IP payload holds. (A shorter length is legal; the
    // bytes after it are not part of the datagram.)
    const len = p.length;
    if (len < UDP_HEADER_LEN || len > buf.length) throw new WireError('udp-bad-length');
    return p;
  }

  get srcPort(): number {
    return readU16(this.buffer, UDP_SRC_PORT);
  }
  set srcPort(v: number) {
    writeU16(this.buffer, UDP_SRC_PORT, v);
  }
  get dstPort(): number {
    return readU16(this.buffer, UDP_DST_PORT);
  }
  set dstPort(v: number) {
    writeU16(this.buffer, UDP_DST_PORT, v);
  }
  get length(): number {
    return readU16(this.buffer, UDP_LENGTH);
  }
  set length(v: number) {
    writeU16(this.buffer, UDP_LENGTH, v);
  }
  get checksum(): number {
    return readU16(this.buffer, UDP_CHECKSUM);
  }
  set checksum(v: number) {
    writeU16(this.buffer, UDP_CHECKSUM, v);
  }
  /** Bytes 8..length (view). */
  get payload(): Buffer {
    return this.buffer.subarray(UDP_HEADER_LEN, Math.max(UDP_HEADER_LEN, this.length));
  }

  /**
   * True if the checksum is correct for `pseudoSum` (which must have been
   * computed with this packet's length). A zero field is *not* accepted
   * here; see verifyChecksumV4 for the IPv4 "no checksum" rule.
   */
  verifyChecksum(pseudoSum: number): boolean {
    return onesSum(this.buffer, 0, this.length, pseudoSum) === 0xffff;
  }

  /** RFC 768: over IPv4 a zero field means the sender computed no checksum. */
  verifyChecksumV4(src: number, dst: number): boolean {
    return this.checksum === 0 || this.verifyChecksum(pseudoV4(src, dst, IpProtocol.UDP, this.length));
  }

  /** RFC 8200 §8.1: over IPv6 the checksum is mandatory; zero is invalid. */
  verifyChecksumV6(src: Uint8Array, dst: Uint8Array): boolean {
    return this.checksum !== 0 && this.verifyChecksum(pseudoV6(src, dst, IpProtocol.UDP, this.length));
  }

  /** Fills the checksum (never zero: RFC 768 transmits a computed 0 as 0xffff). */
  fillChecksum(pseudoSum: number): void {
    this.checksum = 0;
    this.checksum = udpChecksumField(~onesSum(this.buffer, 0, this.length, pseudoSum) & 0xffff);
  }
}

export interface UdpParseOptions {
  /**
   * The pseudo-header sum to verify against (pseudoV4/pseudoV6 with the UDP
   * length); omit to skip verification (e.g. virtio DATA_VALID).
   */
  pseudoSum?: number;
  /** IPv6: a zero checksum is an error ('udp-missing-checksum'). */
  ipv6?: boolean;
}

export interface UdpFields {
  srcPort: number;
  dstPort: number;
  /** The datagram payload (from parse: a view). */
  payload: Buffer;
}

export class UdpRepr implements UdpFields {
  srcPort: number;
  dstPort: number;
  payload: Buffer;

  constructor(f: UdpFields) {
    this.srcPort = f.srcPort;
    this.dstPort = f.dstPort;
    this.payload = f.payload;
  }

  static parse(p: UdpPacket, opts?: UdpParseOptions): UdpRepr {
    const pseudo = opts?.pseudoSum;
    if (pseudo !== undefined) {
      if (p.checksum === 0) {
        // RFC 768: zero = no checksum over IPv4; RFC 8200 §8.1: IPv6
        // receivers must discard such datagrams.
        if (opts?.ipv6) throw new WireError('udp-missing-checksum');
      } else if (!p.verifyChecksum(pseudo)) {
        throw new WireError('udp-bad-checksum');
      }
    }
    return new UdpRepr({ srcPort: p.srcPort, dstPort: p.dstPort, payload: p.payload });
  }

  bufferLen(): number {
    return UDP_HEADER_LEN + this.payload.length;
  }

  /**
   * Writes header and payload. `pseudoSum` must be computed with
   * bufferLen() as the length. Mode Full computes the checksum (0 → 0xffff),
   * None writes 0 (IPv4 only), Partial writes the folded pseudo-header sum for
   * checksum offload (csum_start = UDP header, csum_offset = 6).
   */
  emit(target: UdpPacket | Buffer, pseudoSum: number, mode: ChecksumMode = ChecksumMode.Full): void {
    const b = target instanceof UdpPacket ? target.buffer : target;
    const len = this.bufferLen();
    if (b.length < len) throw new WireError('buffer-too-small');
    writeU16(b, UDP_SRC_PORT, this.srcPort);
    writeU16(b, UDP_DST_PORT, this.dstPort);
    writeU16(b, UDP_LENGTH, len);
    writeU16(b, UDP_CHECKSUM, 0);
    this.payload.copy(b, UDP_HEADER_LEN);
    if (mode === ChecksumMode.Full) {
      writeU16(b, UDP_CHECKSUM, udpChecksumField(~onesSum(b, 0, len, pseudoSum) & 0xffff));
    } else if (mode === ChecksumMode.Partial) {
      writeU16(b, UDP_CHECKSUM, fold(pseudoSum));
    }
  }
}
