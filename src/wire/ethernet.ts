// src/wire/ethernet.ts — Ethernet II framing as it appears on a TAP device
// (no preamble, no FCS), with 802.1Q / 802.1ad VLAN tags skipped.
//
// EthernetFrame is a view; EthernetRepr is the 14-byte untagged header that
// tsnet emits (tsnet never originates tagged frames).

import { WireError } from './errors.js';
import { readMac, readU16, writeMac, writeU16 } from './address.js';

/** EtherType values (IEEE 802.3 clause 3.2.6; IANA "ieee-802-numbers"). */
export const EtherType = {
  IPv4: 0x0800,
  ARP: 0x0806,
  /** IEEE 802.1Q customer VLAN tag (C-tag). */
  VLAN: 0x8100,
  /** IEEE 802.1ad service VLAN tag (S-tag, "QinQ" outer tag). */
  QinQ: 0x88a8,
  IPv6: 0x86dd,
} as const;

export const ETH_DST = 0;
export const ETH_SRC = 6;
export const ETH_TYPE = 12;
/** Destination MAC + source MAC + EtherType. */
export const ETH_HEADER_LEN = 14;
/** An 802.1Q tag inserts 4 bytes (TPID + TCI) before the real EtherType. */
export const VLAN_TAG_LEN = 4;

function isTag(t: number): boolean {
  return t === EtherType.VLAN || t === EtherType.QinQ;
}

export class EthernetFrame {
  /** Offset of the first payload byte: 14, 18 with one tag, 22 with two. */
  readonly payloadOffset: number;

  constructor(readonly buffer: Buffer) {
    let off = ETH_TYPE;
    // IEEE 802.1Q §9.5: a tag is TPID (0x8100, or 0x88a8 for an 802.1ad
    // S-tag) followed by a 16-bit TCI; the EtherType proper follows. An S-tag
    // is normally followed by a C-tag, so up to two tags are skipped.
    if (isTag(readU16(buffer, off))) {
      off += VLAN_TAG_LEN;
      if (isTag(readU16(buffer, off))) off += VLAN_TAG_LEN;
    }
    this.payloadOffset = off + 2;
  }

  /** Validates that the (possibly tagged) header fits in `buf`. */
  static newChecked(buf: Buffer): EthernetFrame {
    if (buf.length < ETH_HEADER_LEN) throw new WireError('eth-truncated');
    const f = new EthernetFrame(buf);
    if (buf.length < f.payloadOffset) throw new WireError('eth-truncated');
    return f;
  }

  get dst(): number {
    return readMac(this.buffer, ETH_DST);
  }
  set dst(mac: number) {
    writeMac(this.buffer, ETH_DST, mac);
  }
  get src(): number {
    return readMac(this.buffer, ETH_SRC);
  }
  set src(mac: number) {
    writeMac(this.buffer, ETH_SRC, mac);
  }
  /** The EtherType of the payload (the inner one when tagged). */
  get ethertype(): number {
    return readU16(this.buffer, this.payloadOffset - 2);
  }
  set ethertype(t: number) {
    writeU16(this.buffer, this.payloadOffset - 2, t);
  }
  /** True when at least one VLAN tag was skipped. */
  get tagged(): boolean {
    return this.payloadOffset > ETH_HEADER_LEN;
  }
  /** The 12-bit VLAN ID of the innermost tag, or -1 when untagged. */
  get vlanId(): number {
    return this.tagged ? readU16(this.buffer, this.payloadOffset - 4) & 0x0fff : -1;
  }
  /** The payload (a view; includes any Ethernet padding after the L3 packet). */
  get payload(): Buffer {
    return this.buffer.subarray(this.payloadOffset);
  }
}

export interface EthernetFields {
  src: number;
  dst: number;
  ethertype: number;
}

export class EthernetRepr implements EthernetFields {
  src: number;
  dst: number;
  ethertype: number;

  constructor(f: EthernetFields) {
    this.src = f.src;
    this.dst = f.dst;
    this.ethertype = f.ethertype;
  }

  /** Takes the inner EtherType when the frame was tagged (the tag is dropped). */
  static parse(frame: EthernetFrame): EthernetRepr {
    return new EthernetRepr({ src: frame.src, dst: frame.dst, ethertype: frame.ethertype });
  }

  bufferLen(): number {
    return ETH_HEADER_LEN;
  }

  /** Writes the 14-byte untagged header at the start of the target. */
  emit(target: EthernetFrame | Buffer): void {
    const b = target instanceof EthernetFrame ? target.buffer : target;
    if (b.length < ETH_HEADER_LEN) throw new WireError('buffer-too-small');
    writeMac(b, ETH_DST, this.dst);
    writeMac(b, ETH_SRC, this.src);
    writeU16(b, ETH_TYPE, this.ethertype);
  }
}
