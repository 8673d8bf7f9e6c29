// Frame construction for the fuzzer: Ethernet (optionally 802.1Q/802.1ad
// tagged), IPv4 with options and fragment fields, TCP with raw option bytes,
// UDP, ICMP, ARP with any field values — built with the project's own wire
// Reprs where they can express the frame, by hand where the frame is one no
// Repr would emit. Also the checksum surgery the generators need after
// lying about lengths: fixChecksums() makes every checksum correct *as the
// stack will verify it*, so deliberately malformed frames still reach the
// deep paths; breakChecksum() spoils one on purpose.

import { readU16, writeMac, writeU16 } from '../../src/wire/address.js';
import { checksum, pseudoV4 } from '../../src/wire/checksum.js';
import { EtherType } from '../../src/wire/ethernet.js';
import { IpProtocol, Ipv4Repr, type Ipv4Fields } from '../../src/wire/ipv4.js';
import { TcpRepr, type TcpFields } from '../../src/wire/tcp.js';
import { UdpRepr } from '../../src/wire/udp.js';
import { Icmpv4Repr } from '../../src/wire/icmpv4.js';
import { ArpRepr, type ArpFields } from '../../src/wire/arp.js';
import type { Rng } from './rng.js';

/** An IPv4 header as the builders take it: the Repr's fields, the length coming from the payload. */
export type Ipv4Spec = Omit<Ipv4Fields, 'payloadLen'>;

/** An Ethernet frame around `payload`; `tags` are TPIDs (0x8100 / 0x88a8) each followed by a TCI. */
export function eth(src: number, dst: number, ethertype: number, payload: Buffer, tags: ReadonlyArray<readonly [number, number]> = []): Buffer {
  const f = Buffer.allocUnsafe(14 + 4 * tags.length + payload.length);
  writeMac(f, 0, dst);
  writeMac(f, 6, src);
  let o = 12;
  for (const [tpid, tci] of tags) {
    writeU16(f, o, tpid);
    writeU16(f, o + 2, tci);
    o += 4;
  }
  writeU16(f, o, ethertype);
  payload.copy(f, o + 2);
  return f;
}

/** An IPv4 datagram carrying `l4` (header checksum filled). */
export function ipv4(spec: Ipv4Spec, l4: Buffer): Buffer {
  const r = new Ipv4Repr({
    src: spec.src,
    dst: spec.dst,
    protocol: spec.protocol,
    payloadLen: l4.length,
    ttl: spec.ttl ?? 64,
    ident: spec.ident ?? 0,
    dontFrag: spec.dontFrag ?? true,
    moreFrags: spec.moreFrags ?? false,
    fragOffset: spec.fragOffset ?? 0,
    tos: spec.tos ?? 0,
    options: spec.options && spec.options.length > 0 ? spec.options.subarray(0, 40) : undefined,
  });
  const b = Buffer.allocUnsafe(r.bufferLen());
  r.emit(b);
  l4.copy(b, r.headerLen());
  return b;
}

/**
 * A TCP segment from src to dst (checksum filled). With `rawOptions`, the
 * Repr's options are replaced by those bytes (padded with EOL to 4, at most
 * 40), so malformed options can be sent.
 */
export function tcp(src: number, dst: number, f: TcpFields, rawOptions?: Buffer): Buffer {
  const r = new TcpRepr(f);
  let b: Buffer;
  if (rawOptions === undefined) {
    b = Buffer.allocUnsafe(r.bufferLen());
    r.emit(b, pseudoV4(src, dst, IpProtocol.TCP, b.length));
    return b;
  }
  const opts = rawOptions.subarray(0, 40);
  const optLen = (opts.length + 3) & ~3;
  const plain = new TcpRepr({ ...f, mss: undefined, windowScale: undefined, sackPermitted: false, sackBlocks: undefined, tsVal: undefined, tsEcr: undefined });
  const hdr = Buffer.allocUnsafe(plain.bufferLen());
  plain.emit(hdr, 0);
  b = Buffer.alloc(20 + optLen + plain.payload.length);
  hdr.copy(b, 0, 0, 20);
  opts.copy(b, 20);
  plain.payload.copy(b, 20 + optLen);
  b[12] = (((20 + optLen) >>> 2) << 4) | (b[12]! & 0x0f);
  writeU16(b, 16, 0);
  writeU16(b, 16, checksum(b, 0, b.length, pseudoV4(src, dst, IpProtocol.TCP, b.length)));
  return b;
}

/** A UDP datagram (checksum filled, or 0 = none when `noChecksum`). */
export function udp(src: number, dst: number, srcPort: number, dstPort: number, payload: Buffer, noChecksum = false): Buffer {
  const r = new UdpRepr({ srcPort, dstPort, payload });
  const b = Buffer.allocUnsafe(r.bufferLen());
  r.emit(b, pseudoV4(src, dst, IpProtocol.UDP, b.length));
  if (noChecksum) writeU16(b, 6, 0);
  return b;
}

export function icmp(type: number, code: number, rest: number, data: Buffer): Buffer {
  const r = new Icmpv4Repr({ type, code, rest, ident: rest >>> 16, seq: rest & 0xffff, data });
  const b = Buffer.allocUnsafe(r.bufferLen());
  r.emit(b);
  // emit writes ident/seq for echoes and rest otherwise: both come from `rest`.
  return b;
}

export function arp(f: ArpFields): Buffer {
  const b = Buffer.allocUnsafe(28);
  new ArpRepr(f).emit(b);
  return b;
}

/** Where the layers of a frame start, as far as the frame lets us tell (-1: absent). */
export interface Layers {
  /** Offset of the L3 header (after Ethernet and any VLAN tags). */
  l3: number;
  ethertype: number;
  /** IPv4 only: header length from IHL (may be a lie). */
  ihl: number;
  /** Offset of the L4 header, -1 when IHL is unusable. */
  l4: number;
  /** End of the IP datagram by Total Length, clamped to the frame. */
  end: number;
  protocol: number;
}

export function layers(f: Buffer): Layers {
  const out: Layers = { l3: -1, ethertype: -1, ihl: 0, l4: -1, end: f.length, protocol: -1 };
  if (f.length < 14) return out;
  let o = 12;
  let t = readU16(f, o);
  for (let k = 0; k < 2 && (t === EtherType.VLAN || t === EtherType.QinQ) && o + 6 <= f.length; k++) {
    o += 4;
    t = readU16(f, o);
  }
  out.ethertype = t;
  out.l3 = o + 2;
  if (t !== EtherType.IPv4 || f.length < out.l3 + 20) return out;
  const ip = out.l3;
  out.ihl = (f[ip]! & 0xf) * 4;
  out.protocol = f[ip + 9]!;
  const tl = readU16(f, ip + 2);
  out.end = Math.min(f.length, ip + tl);
  if (out.ihl >= 20 && ip + out.ihl <= f.length) out.l4 = ip + out.ihl;
  return out;
}

/**
 * Makes the IPv4 header checksum and the TCP/UDP/ICMP checksum correct the
 * way the stack verifies them (over what IHL, Total Length and the UDP
 * length claim, when those claims are usable). Lengths are left as they are.
 * A zero UDP checksum ("none") stays zero.
 */
export function fixChecksums(f: Buffer): Buffer {
  const L = layers(f);
  if (L.ethertype !== EtherType.IPv4 || L.l4 < 0) return f;
  const ip = L.l3;
  const src = f.readUInt32BE(ip + 12);
  const dst = f.readUInt32BE(ip + 16);
  const tl = readU16(f, ip + 2);
  if (tl >= L.ihl && ip + tl <= f.length) {
    const seg = f.subarray(L.l4, ip + tl);
    if (L.protocol === IpProtocol.TCP && seg.length >= 20) {
      writeU16(seg, 16, 0);
      writeU16(seg, 16, checksum(seg, 0, seg.length, pseudoV4(src, dst, IpProtocol.TCP, seg.length)));
    } else if (L.protocol === IpProtocol.UDP && seg.length >= 8) {
      const ulen = readU16(seg, 4);
      if (ulen >= 8 && ulen <= seg.length && readU16(seg, 6) !== 0) {
        writeU16(seg, 6, 0);
        const c = checksum(seg, 0, ulen, pseudoV4(src, dst, IpProtocol.UDP, ulen));
        writeU16(seg, 6, c === 0 ? 0xffff : c);
      }
    } else if (L.protocol === IpProtocol.ICMP && seg.length >= 4) {
      writeU16(seg, 2, 0);
      writeU16(seg, 2, checksum(seg, 0, seg.length));
    }
  }
  writeU16(f, ip + 10, 0);
  writeU16(f, ip + 10, checksum(f, ip, ip + L.ihl));
  return f;
}

/** Spoils one checksum: the IPv4 header's or the transport's (when present). */
export function breakChecksum(f: Buffer, r: Rng): Buffer {
  const L = layers(f);
  if (L.ethertype !== EtherType.IPv4 || L.l4 < 0) return f;
  const off = r.chance(0.3) || L.l4 + 20 > f.length
    ? L.l3 + 10
    : L.l4 + (L.protocol === IpProtocol.TCP ? 16 : L.protocol === IpProtocol.UDP ? 6 : 2);
  if (off + 2 > f.length) return f;
  writeU16(f, off, readU16(f, off) ^ (1 + r.int(0xfffe)));
  return f;
}
