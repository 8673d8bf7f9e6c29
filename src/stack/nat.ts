// Where a guest's flow goes on the host: the NAT policy, pure. For a
// destination (address, port, protocol) it returns the host endpoint tsnet's
// socket talks to, or why the flow must be refused. Mirrors slirp4netns:
//   gateway (10.0.2.2)  → host loopback 127.0.0.1, unless --disable-host-loopback
//   DNS (10.0.2.3):53   → the host's nameservers (the shell tries them in order)
//   other addresses in the virtual network → nobody there: host unreachable
//   loopback, multicast, broadcast, 0/8, class E → dropped, never forwarded
//   everything else     → the same address, reached from the host
// IPv6 (routeFor6), slirp4netns's plan: fd00::2 (and the router's fe80::2)
// → host ::1, fd00::3:53 → the nameservers, the rest of fd00::/64 and other
// link-local addresses → nobody there, ::, ::1, multicast and v4-mapped →
// dropped, everything else → the same address from the host.

import { ipv6Equal, ipv6FromString, ipv6ToString } from '../wire/address.js';
import type { StackConfig } from './config.js';

export type Proto = 'tcp' | 'udp' | 'icmp';

export type Route =
  | { kind: 'host'; addr: number }
  /** An IPv6 destination, as text for the host socket. */
  | { kind: 'host6'; addr: string }
  | { kind: 'dns' }
  /** ICMP destination unreachable to the guest (RFC 792 codes: 0 net, 1 host, 3 port). */
  | { kind: 'unreachable'; code: 0 | 1 | 3; reason?: string }
  | { kind: 'drop'; reason: string };

export const LOOPBACK = 0x7f000001; // 127.0.0.1
export const DNS_PORT = 53;

export interface NatOptions {
  /** --disable-dns: DNS address drops port 53 silently. */
  disableDns?: boolean;
}

/** Where IPv4 destinations go (never 'host6'). */
export type Route4 = Exclude<Route, { kind: 'host6' }>;

export function routeFor(cfg: StackConfig, dst: number, port: number, proto: Proto, opts: NatOptions = {}): Route4 {
  const route = destinationRoute(cfg, dst, port, opts);
  // Port 0 is reserved (RFC 768 / RFC 9293 use it for "no port"): no host
  // socket can send to it. The guest gets what a closed port gives: RST for
  // TCP, ICMP port unreachable for UDP.
  if (route.kind === 'host' && port === 0 && proto !== 'icmp') return { kind: 'unreachable', code: 3, reason: 'dst-port-zero' };
  return route;
}

function destinationRoute(cfg: StackConfig, dst: number, port: number, opts: NatOptions): Route4 {
  if (dst === cfg.gateway) {
    // --disable-host-loopback: TCP/UDP to the gateway get ICMP net unreachable
    // (ping to the gateway is still answered by the stack itself).
    if (cfg.disableHostLoopback) return { kind: 'unreachable', code: 0 };
    return { kind: 'host', addr: LOOPBACK };
  }
  if (dst === cfg.dns) {
    if (port !== DNS_PORT) return { kind: 'unreachable', code: 3 };
    if (opts.disableDns) return { kind: 'drop', reason: 'dns-disabled' };
    return { kind: 'dns' };
  }
  // The subnet broadcast is for every host on the link, none of them ours to answer.
  if (dst === ((cfg.network | ~cfg.netmask) >>> 0)) return { kind: 'drop', reason: 'dst-broadcast' };
  if (((dst & cfg.netmask) >>> 0) === cfg.network) {
    // The virtual network has only the guest and tsnet's own addresses.
    return { kind: 'unreachable', code: 1 };
  }
  const first = dst >>> 24;
  // RFC 1122 §3.2.1.3 / RFC 5735: 0/8 "this network", 127/8 loopback,
  // 224/4 multicast, 240/4 reserved and the limited broadcast are never
  // forwarded. Host loopback is reachable only through the gateway address.
  if (first === 0) return { kind: 'drop', reason: 'dst-this-network' };
  if (first === 127) return { kind: 'drop', reason: 'dst-loopback' };
  if (first >= 224) return { kind: 'drop', reason: first < 240 ? 'dst-multicast' : 'dst-reserved' };
  return { kind: 'host', addr: dst };
}

/** routeFor for an IPv6 destination (16 bytes); `cfg.ipv6` must be set. Unreachable codes are IPv4's (0 net, 1 host, 3 port). */
export function routeFor6(cfg: StackConfig, dst: Uint8Array, port: number, proto: Proto, opts: NatOptions = {}): Route {
  const route = destinationRoute6(cfg, dst, port, opts);
  if (route.kind === 'host6' && port === 0 && proto !== 'icmp') return { kind: 'unreachable', code: 3, reason: 'dst-port-zero' };
  return route;
}

function destinationRoute6(cfg: StackConfig, dst: Uint8Array, port: number, opts: NatOptions): Route {
  const plan = cfg.ipv6!;
  if (ipv6Equal(dst, plan.gateway) || ipv6Equal(dst, plan.linkLocal)) {
    if (cfg.disableHostLoopback) return { kind: 'unreachable', code: 0 };
    return { kind: 'host6', addr: '::1' };
  }
  if (ipv6Equal(dst, plan.dns)) {
    if (port !== DNS_PORT) return { kind: 'unreachable', code: 3 };
    if (opts.disableDns) return { kind: 'drop', reason: 'dns-disabled' };
    return { kind: 'dns' };
  }
  // The rest of the prefix, and other link-local addresses: nobody else is on the link.
  if (ipv6Equal(dst.subarray(0, 8), plan.prefix.subarray(0, 8)) || (dst[0] === 0xfe && (dst[1]! & 0xc0) === 0x80)) {
    return { kind: 'unreachable', code: 1 };
  }
  if (dst[0] === 0xff) return { kind: 'drop', reason: 'dst-multicast' };
  let zeros = 0;
  while (zeros < 15 && dst[zeros] === 0) zeros++;
  if (zeros === 15 && dst[15]! <= 1) return { kind: 'drop', reason: dst[15] === 0 ? 'dst-this-network' : 'dst-loopback' };
  // ::ffff:a.b.c.d belongs to IPv4 sockets, not to the IPv6 network.
  if (zeros === 10 && dst[10] === 0xff && dst[11] === 0xff) return { kind: 'drop', reason: 'dst-v4-mapped' };
  return { kind: 'host6', addr: ipv6ToString(dst) };
}

/** guestVisibleSource for IPv6 (host address as text): ::1 appears as fd00::2. */
export function guestVisibleSource6(cfg: StackConfig, src: string): Buffer {
  if (src === '::1' && !cfg.disableHostLoopback) return cfg.ipv6!.gateway;
  return ipv6FromString(src);
}

/**
 * Reverse mapping for replies: a datagram arriving on the host from `src`
 * appears to the guest as coming from this virtual address.
 */
export function guestVisibleSource(cfg: StackConfig, src: number): number {
  if ((src >>> 24) === 127 && !cfg.disableHostLoopback) return cfg.gateway;
  return src;
}
