// src/wire/address.ts — address formatting/parsing for logs, the CLI and
// tests, plus a few allocation-free address predicates.
//
// On the per-packet path addresses stay numeric: IPv4 as an unsigned 32-bit
// number, MAC as a 48-bit integer in a double (exact below 2^53), IPv6 as a
// 16-byte view into the packet. The *ToString/*FromString functions below
// allocate and are meant for humans, not for frame processing.

import { WireError } from './errors.js';

/** ff:ff:ff:ff:ff:ff */
export const MAC_BROADCAST = 0xffff_ffff_ffff;

// ---------------------------------------------------------------- raw access

/** Reads a 48-bit MAC address at `off` as a number. */
export function readMac(b: Uint8Array, off: number): number {
  return ((b[off] << 8) | b[off + 1]) * 0x1_0000_0000 + readU32(b, off + 2);
}

/** Writes a 48-bit MAC address (a number) at `off`. */
export function writeMac(b: Uint8Array, off: number, mac: number): void {
  const hi = Math.floor(mac / 0x1_0000_0000);
  b[off] = hi >>> 8;
  b[off + 1] = hi;
  writeU32(b, off + 2, mac);
}

/** Big-endian unsigned 32-bit read (never throws; missing bytes read as 0). */
export function readU32(b: Uint8Array, off: number): number {
  return ((b[off] << 24) | (b[off + 1] << 16) | (b[off + 2] << 8) | b[off + 3]) >>> 0;
}

/** Big-endian 32-bit write (writes past the end are dropped). */
export function writeU32(b: Uint8Array, off: number, v: number): void {
  b[off] = v >>> 24;
  b[off + 1] = v >>> 16;
  b[off + 2] = v >>> 8;
  b[off + 3] = v;
}

/** Big-endian unsigned 16-bit read (never throws). */
export function readU16(b: Uint8Array, off: number): number {
  return (b[off] << 8) | b[off + 1];
}

/** Big-endian 16-bit write. */
export function writeU16(b: Uint8Array, off: number, v: number): void {
  b[off] = v >>> 8;
  b[off + 1] = v;
}

/** Compares two 16-byte IPv6 addresses without allocating. */
export function ipv6Equal(a: Uint8Array, b: Uint8Array, aOff = 0, bOff = 0): boolean {
  for (let i = 0; i < 16; i++) if (a[aOff + i] !== b[bOff + i]) return false;
  return true;
}

// ------------------------------------------------------- address predicates

/** RFC 1112 §4: 224.0.0.0/4 is the IPv4 multicast range. */
export function isIpv4Multicast(a: number): boolean {
  return a >>> 28 === 0xe;
}

/** RFC 4291 §2.7: IPv6 multicast addresses start with 0xff. */
export function isIpv6Multicast(a: Uint8Array, off = 0): boolean {
  return a[off] === 0xff;
}

/** RFC 4291 §2.5.2: the unspecified address ::. */
export function isIpv6Unspecified(a: Uint8Array, off = 0): boolean {
  for (let i = 0; i < 16; i++) if (a[off + i] !== 0) return false;
  return true;
}

/** The multicast bit (I/G, least-significant bit of the first octet). */
export function isMacMulticast(mac: number): boolean {
  return (Math.floor(mac / 0x100_0000_0000) & 1) === 1;
}

/**
 * RFC 2464 §7: an IPv6 multicast destination maps to the MAC 33:33 followed
 * by the last four bytes of the address.
 */
export function ipv6MulticastMac(a: Uint8Array, off = 0): number {
  return 0x3333 * 0x1_0000_0000 + readU32(a, off + 12);
}

/**
 * RFC 4291 §2.7.1: the solicited-node multicast address ff02::1:ffXX:XXXX
 * carries the low 24 bits of the unicast address. Writes into `out` (16 bytes).
 */
export function ipv6SolicitedNode(target: Uint8Array, out: Uint8Array = Buffer.alloc(16), off = 0): Uint8Array {
  out.fill(0, 0, 16);
  out[0] = 0xff;
  out[1] = 0x02;
  out[11] = 0x01;
  out[12] = 0xff;
  out[13] = target[off + 13];
  out[14] = target[off + 14];
  out[15] = target[off + 15];
  return out;
}

// ------------------------------------------------------------ human formats

/** 0x0a000202 → "10.0.2.2" */
export function ipv4ToString(a: number): string {
  return `${a >>> 24}.${(a >>> 16) & 0xff}.${(a >>> 8) & 0xff}.${a & 0xff}`;
}

/** "10.0.2.2" → 0x0a000202 (strict dotted quad; throws WireError 'address-bad-format'). */
export function ipv4FromString(s: string): number {
  const parts = s.split('.');
  if (parts.length !== 4) throw new WireError('address-bad-format', s);
  let a = 0;
  for (const p of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) throw new WireError('address-bad-format', s);
    const n = Number(p);
    if (n > 255) throw new WireError('address-bad-format', s);
    a = a * 256 + n;
  }
  return a >>> 0;
}

/** 0x52550a000202 → "52:55:0a:00:02:02" */
export function macToString(mac: number): string {
  let s = '';
  for (let i = 5; i >= 0; i--) {
    const byte = Math.floor(mac / 2 ** (8 * i)) & 0xff;
    s += (byte < 16 ? '0' : '') + byte.toString(16) + (i > 0 ? ':' : '');
  }
  return s;
}

/** "52:55:0a:00:02:02" (or with '-') → 0x52550a000202; throws WireError 'address-bad-format'. */
export function macFromString(s: string): number {
  const parts = s.split(/[:-]/);
  if (parts.length !== 6) throw new WireError('address-bad-format', s);
  let mac = 0;
  for (const p of parts) {
    if (!/^[0-9a-fA-F]{1,2}$/.test(p)) throw new WireError('address-bad-format', s);
    mac = mac * 256 + parseInt(p, 16);
  }
  return mac;
}

/**
 * 16 bytes at `off` → text in the RFC 5952 canonical form: lowercase, no
 * leading zeros, the longest run (≥ 2) of zero groups compressed to "::"
 * (the first one on a tie, §4.2.3), and IPv4-mapped addresses written with a
 * dotted quad (§5).
 */
export function ipv6ToString(a: Uint8Array, off = 0): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((a[off + 2 * i] << 8) | a[off + 2 * i + 1]);
  // RFC 5952 §5: ::ffff:a.b.c.d for IPv4-mapped addresses.
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    return `::ffff:${ipv4ToString(readU32(a, off + 12))}`;
  }
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  // RFC 5952 §4.2.2: a single zero group is never shortened to "::".
  if (bestLen < 2) return g.map((x) => x.toString(16)).join(':');
  const head = g.slice(0, bestStart).map((x) => x.toString(16)).join(':');
  const tail = g.slice(bestStart + bestLen).map((x) => x.toString(16)).join(':');
  return `${head}::${tail}`;
}

/** Text (any RFC 4291 §2.2 form, incl. embedded dotted quad) → new 16-byte Buffer. */
export function ipv6FromString(s: string): Buffer {
  const out = Buffer.alloc(16);
  const bad = (): never => {
    throw new WireError('address-bad-format', s);
  };
  const halves = s.split('::');
  if (halves.length > 2) bad();
  const toGroups = (part: string, allowV4: boolean): number[] => {
    if (part === '') return [];
    const items = part.split(':');
    const groups: number[] = [];
    items.forEach((item, idx) => {
      if (allowV4 && idx === items.length - 1 && item.includes('.')) {
        const v4 = ipv4FromString(item);
        groups.push(v4 >>> 16, v4 & 0xffff);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(item)) bad();
        groups.push(parseInt(item, 16));
      }
    });
    return groups;
  };
  const compressed = halves.length === 2;
  const head = toGroups(halves[0], !compressed);
  const tail = compressed ? toGroups(halves[1], true) : [];
  const total = head.length + tail.length;
  if (compressed ? total > 7 : total !== 8) bad();
  const groups = [...head, ...new Array<number>(8 - total).fill(0), ...tail];
  groups.forEach((v, i) => writeU16(out, 2 * i, v));
  return out;
}
