// native/sockopt.ts — owns: the socket plumbing shared by sockerr.ts and
// ping.ts: opening raw-fd sockets, int setsockopt/getsockopt, getsockname,
// bind, and converting between address strings and struct sockaddr_in/in6.
//
// Read this first:
// - Works on any socket fd, including the fd under a Node `dgram` socket
//   (see socketFd() in sockerr.ts). Never close an fd Node owns.
// - Addresses are strings here ('127.0.0.1', '::1', '::ffff:10.0.2.2');
//   this is setup/slow-path code, not the per-packet hot path.
// - Linux x86_64/aarch64 constants and struct layouts.

import { isIPv4, isIPv6 } from 'node:net';
import { E, NativeError, errno, raw } from './libc.js';
import { ipv4FromString, ipv4ToString, ipv6FromString, ipv6ToString, readU32, writeU32 } from '../src/wire/address.js';

export const AF_UNSPEC = 0;
export const AF_INET = 2;
export const AF_INET6 = 10;

export const SOCK_STREAM = 1;
export const SOCK_DGRAM = 2;
export const SOCK_RAW = 3;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;

export const IPPROTO_IP = 0;
export const IPPROTO_ICMP = 1;
export const IPPROTO_UDP = 17;
export const IPPROTO_IPV6 = 41;
export const IPPROTO_ICMPV6 = 58;

export const SOL_SOCKET = 1;
export const SOL_IP = 0;
export const SOL_IPV6 = 41;

export const SO_ERROR = 4;
export const SO_RCVBUF = 8;
export const SO_SNDBUF = 7;

export const IP_TTL = 2;
export const IP_RECVERR = 11;
export const IP_MTU_DISCOVER = 10;
export const IPV6_UNICAST_HOPS = 16;
export const IPV6_RECVERR = 25;
export const IPV6_MTU_DISCOVER = 23;
export const IPV6_V6ONLY = 26;

export const MSG_DONTWAIT = 0x40;
export const MSG_TRUNC = 0x20;
export const MSG_CTRUNC = 0x08;
export const MSG_ERRQUEUE = 0x2000;

export type Family = 4 | 6;

export interface SockAddr {
  family: Family;
  address: string;
  port: number;
  /** IPv6 only. */
  flowinfo?: number;
  /** IPv6 only (interface index for link-local). */
  scopeId?: number;
}

export const SOCKADDR_IN_LEN = 16;
export const SOCKADDR_IN6_LEN = 28;
/** sizeof(struct sockaddr_storage) */
export const SOCKADDR_STORAGE_LEN = 128;

// ---------------------------------------------------------------------------
// address text <-> bytes

// The text forms themselves are the wire layer's (RFC 5952 output, RFC 4291
// input, src/wire/address.ts); these wrappers fit them to sockaddr buffers and
// report bad input as EINVAL, like inet_pton.

/** '1.2.3.4' -> 4 bytes. Throws EINVAL on anything else. */
export function ipv4ToBytes(s: string, out: Uint8Array = new Uint8Array(4), off = 0): Uint8Array {
  if (!isIPv4(s)) throw new NativeError(E.EINVAL, 'inet_pton', `"${s}" is not an IPv4 address`);
  writeU32(out, off, ipv4FromString(s));
  return out;
}

/** RFC 4291 text (with '::', embedded IPv4, optional %numeric-zone ignored) -> 16 bytes. */
export function ipv6ToBytes(s: string, out: Uint8Array = new Uint8Array(16), off = 0): Uint8Array {
  const pct = s.indexOf('%');
  const text = pct >= 0 ? s.slice(0, pct) : s;
  if (!isIPv6(text)) throw new NativeError(E.EINVAL, 'inet_pton', `"${s}" is not an IPv6 address`);
  out.set(ipv6FromString(text), off);
  return out;
}

/** 4 bytes -> '1.2.3.4'. */
export function bytesToIpv4(b: Uint8Array, off = 0): string {
  return ipv4ToString(readU32(b, off));
}

/** 16 bytes -> RFC 5952 text ('::1', '::ffff:127.0.0.1', '2001:db8::1'). */
export function bytesToIpv6(b: Uint8Array, off = 0): string {
  return ipv6ToString(b, off);
}

/** Build a struct sockaddr_in / sockaddr_in6 (16 / 28 bytes). */
export function encodeSockaddr(a: { address: string; port: number; family?: Family; scopeId?: number; flowinfo?: number }): Buffer {
  const family = a.family ?? (isIPv6(a.address.split('%')[0]!) ? 6 : 4);
  if (family === 4) {
    const b = Buffer.alloc(SOCKADDR_IN_LEN);
    b.writeUInt16LE(AF_INET, 0);
    b.writeUInt16BE(a.port & 0xffff, 2);
    ipv4ToBytes(a.address, b, 4);
    return b;
  }
  const b = Buffer.alloc(SOCKADDR_IN6_LEN);
  b.writeUInt16LE(AF_INET6, 0);
  b.writeUInt16BE(a.port & 0xffff, 2);
  b.writeUInt32BE((a.flowinfo ?? 0) >>> 0, 4);
  ipv6ToBytes(a.address, b, 8);
  let scope = a.scopeId ?? 0;
  const pct = a.address.indexOf('%');
  if (scope === 0 && pct >= 0) scope = Number(a.address.slice(pct + 1)) || 0;
  b.writeUInt32LE(scope >>> 0, 24);
  return b;
}

/**
 * Parse a struct sockaddr (AF_INET / AF_INET6) at b[off..off+len). Returns
 * null for AF_UNSPEC, other families, or a length too short for the family.
 */
export function decodeSockaddr(b: Uint8Array, off = 0, len = b.length - off): SockAddr | null {
  if (len < 2) return null;
  const v = Buffer.from(b.buffer, b.byteOffset + off, len);
  const fam = v.readUInt16LE(0);
  if (fam === AF_INET && len >= 8) {
    return { family: 4, port: v.readUInt16BE(2), address: bytesToIpv4(v, 4) };
  }
  if (fam === AF_INET6 && len >= 24) {
    return {
      family: 6,
      port: v.readUInt16BE(2),
      flowinfo: v.readUInt32BE(4),
      address: bytesToIpv6(v, 8),
      scopeId: len >= 28 ? v.readUInt32LE(24) : 0,
    };
  }
  return null;
}

// ---------------------------------------------------------------------------
// socket calls

/**
 * socket(2) with SOCK_CLOEXEC always added (and SOCK_NONBLOCK unless
 * nonBlocking is false). Throws NativeError (EACCES, EAFNOSUPPORT, ...).
 */
export function openSocket(domain: number, type: number, protocol: number, nonBlocking = true, doing?: string): number {
  const fd = raw.socket(domain, type | SOCK_CLOEXEC | (nonBlocking ? SOCK_NONBLOCK : 0), protocol);
  if (fd < 0) throw new NativeError(errno(), 'socket', doing ?? `socket(${domain}, ${type}, ${protocol})`);
  return fd;
}

/** setsockopt(fd, level, name, &int, 4). */
export function setSockOptInt(fd: number, level: number, name: number, value: number, what?: string): void {
  const v = Buffer.alloc(4);
  v.writeInt32LE(value | 0, 0);
  if (raw.setsockopt(fd, level, name, v, 4) < 0) {
    throw new NativeError(errno(), 'setsockopt', `setsockopt(${what ?? `${level}/${name}`}) on fd ${fd}`);
  }
}

/** getsockopt(fd, level, name, &int, &len) -> int. */
export function getSockOptInt(fd: number, level: number, name: number, what?: string): number {
  const v = Buffer.alloc(4);
  const l = Buffer.alloc(4);
  l.writeUInt32LE(4, 0);
  if (raw.getsockopt(fd, level, name, v, l) < 0) {
    throw new NativeError(errno(), 'getsockopt', `getsockopt(${what ?? `${level}/${name}`}) on fd ${fd}`);
  }
  return v.readInt32LE(0);
}

/** SO_ERROR: read and clear the socket's pending error (sk_err); 0 if none. */
export function takeSocketError(fd: number): number {
  return getSockOptInt(fd, SOL_SOCKET, SO_ERROR, 'SO_ERROR');
}

/** getsockname(2). For a ping socket, port = the ICMP echo identifier. */
export function getSockName(fd: number): SockAddr {
  const b = Buffer.alloc(SOCKADDR_STORAGE_LEN);
  const l = Buffer.alloc(4);
  l.writeUInt32LE(SOCKADDR_STORAGE_LEN, 0);
  if (raw.getsockname(fd, b, l) < 0) throw new NativeError(errno(), 'getsockname', `getsockname on fd ${fd}`);
  const a = decodeSockaddr(b, 0, Math.min(l.readUInt32LE(0), SOCKADDR_STORAGE_LEN));
  if (!a) throw new NativeError(E.EAFNOSUPPORT, 'getsockname', `getsockname on fd ${fd}: not an inet socket`);
  return a;
}

/** bind(2) to address:port. */
export function bindSocket(fd: number, address: string, port: number, family?: Family): void {
  const sa = encodeSockaddr({ address, port, family });
  if (raw.bind(fd, sa, sa.length) < 0) {
    throw new NativeError(errno(), 'bind', `binding fd ${fd} to ${address.includes(':') ? `[${address}]` : address}:${port}`);
  }
}
