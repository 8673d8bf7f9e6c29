// src/wire/arp.ts — ARP (RFC 826) for Ethernet hardware and IPv4 protocol
// addresses, the only combination tsnet speaks.
//
// RFC 826 "Packet format": hrd(16) pro(16) hln(8) pln(8) op(16) sha spa tha tpa,
// where the address fields have hln/pln bytes; for Ethernet/IPv4 that is a
// fixed 28-byte packet.

import { WireError } from './errors.js';
import { readMac, readU16, readU32, writeMac, writeU16, writeU32 } from './address.js';

export const ArpOperation = {
  /** RFC 826: ares_op$REQUEST. */
  Request: 1,
  /** RFC 826: ares_op$REPLY. */
  Reply: 2,
} as const;

/** RFC 826 / IANA: hardware type 1 is Ethernet (10Mb, and all its successors). */
export const ARP_HTYPE_ETHERNET = 1;
/** The protocol type reuses the EtherType space: 0x0800 is IPv4. */
export const ARP_PTYPE_IPV4 = 0x0800;

export const ARP_HTYPE = 0;
export const ARP_PTYPE = 2;
export const ARP_HLEN = 4;
export const ARP_PLEN = 5;
export const ARP_OPER = 6;
export const ARP_SHA = 8;
export const ARP_SPA = 14;
export const ARP_THA = 18;
export const ARP_TPA = 24;
/** Fixed part (8) + 2 × (6-byte MAC + 4-byte IPv4). */
export const ARP_LEN = 28;
const ARP_FIXED_LEN = 8;

export class ArpPacket {
  constructor(readonly buffer: Buffer) {}

  /**
   * Checks the fixed header, that the address types are Ethernet/IPv4
   * ('arp-unsupported' otherwise), and that the 28 bytes are present.
   * Trailing bytes (Ethernet padding to 60 bytes) are allowed.
   */
  static newChecked(buf: Buffer): ArpPacket {
    if (buf.length < ARP_FIXED_LEN) throw new WireError('arp-truncated');
    const p = new ArpPacket(buf);
    if (
      p.htype !== ARP_HTYPE_ETHERNET ||
      p.ptype !== ARP_PTYPE_IPV4 ||
      p.hlen !== 6 ||
      p.plen !== 4
    ) {
      throw new WireError('arp-unsupported');
    }
    if (buf.length < ARP_LEN) throw new WireError('arp-truncated');
    return p;
  }

  get htype(): number {
    return readU16(this.buffer, ARP_HTYPE);
  }
  set htype(v: number) {
    writeU16(this.buffer, ARP_HTYPE, v);
  }
  get ptype(): number {
    return readU16(this.buffer, ARP_PTYPE);
  }
  set ptype(v: number) {
    writeU16(this.buffer, ARP_PTYPE, v);
  }
  get hlen(): number {
    return this.buffer[ARP_HLEN] ?? 0;
  }
  set hlen(v: number) {
    this.buffer[ARP_HLEN] = v;
  }
  get plen(): number {
    return this.buffer[ARP_PLEN] ?? 0;
  }
  set plen(v: number) {
    this.buffer[ARP_PLEN] = v;
  }
  get operation(): number {
    return readU16(this.buffer, ARP_OPER);
  }
  set operation(v: number) {
    writeU16(this.buffer, ARP_OPER, v);
  }
  get senderMac(): number {
    return readMac(this.buffer, ARP_SHA);
  }
  set senderMac(v: number) {
    writeMac(this.buffer, ARP_SHA, v);
  }
  get senderIp(): number {
    return readU32(this.buffer, ARP_SPA);
  }
  set senderIp(v: number) {
    writeU32(this.buffer, ARP_SPA, v);
  }
  get targetMac(): number {
    return readMac(this.buffer, ARP_THA);
  }
  set targetMac(v: number) {
    writeMac(this.buffer, ARP_THA, v);
  }
  get targetIp(): number {
    return readU32(this.buffer, ARP_TPA);
  }
  set targetIp(v: number) {
    writeU32(this.buffer, ARP_TPA, v);
  }
}

export interface ArpFields {
  operation: number;
  senderMac: number;
  senderIp: number;
  targetMac: number;
  targetIp: number;
}

export class ArpRepr implements ArpFields {
  operation: number;
  senderMac: number;
  senderIp: number;
  targetMac: number;
  targetIp: number;

  constructor(f: ArpFields) {
    this.operation = f.operation;
    this.senderMac = f.senderMac;
    this.senderIp = f.senderIp;
    this.targetMac = f.targetMac;
    this.targetIp = f.targetIp;
  }

  static parse(p: ArpPacket): ArpRepr {
    const op = p.operation;
    // RFC 826 defines only request and reply; RARP (RFC 903, ops 3/4) and
    // InARP (RFC 2390, ops 8/9) are not answered by tsnet.
    if (op !== ArpOperation.Request && op !== ArpOperation.Reply) {
      throw new WireError('arp-bad-operation');
    }
    return new ArpRepr({
      operation: op,
      senderMac: p.senderMac,
      senderIp: p.senderIp,
      targetMac: p.targetMac,
      targetIp: p.targetIp,
    });
  }

  bufferLen(): number {
    return ARP_LEN;
  }

  emit(target: ArpPacket | Buffer): void {
    const b = target instanceof ArpPacket ? target.buffer : target;
    if (b.length < ARP_LEN) throw new WireError('buffer-too-small');
    writeU16(b, ARP_HTYPE, ARP_HTYPE_ETHERNET);
    writeU16(b, ARP_PTYPE, ARP_PTYPE_IPV4);
    b[ARP_HLEN] = 6;
    b[ARP_PLEN] = 4;
    writeU16(b, ARP_OPER, this.operation);
    writeMac(b, ARP_SHA, this.senderMac);
    writeU32(b, ARP_SPA, this.senderIp);
    writeMac(b, ARP_THA, this.targetMac);
    writeU32(b, ARP_TPA, this.targetIp);
  }
}
