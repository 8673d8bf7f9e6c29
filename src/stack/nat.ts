// Where a guest's flow goes on the host: the NAT policy, pure. For a
// destination (address, port, protocol) it returns the host endpoint tsnet's
// socket talks to, or why the flow must be refused. Mirrors slirp4netns:
//   gateway (10.0.2.2)  → host loopback 127.0.0.1, unless --disable-host-loopback
//   DNS (10.0.2.3):53   → the host's nameservers (the shell tries them in order)
//   other addresses in the virtual network → nobody there: host unreachable
//   loopback, multicast, broadcast, 0/8, class E → dropped, never forwarded
//   everything else     → the same address, reached from the host

import type { StackConfig } from './config.js';

export type Proto = 'tcp' | 'udp' | 'icmp';

export type Route =
  | { kind: 'host'; addr: number }
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

export function routeFor(cfg: StackConfig, dst: number, port: number, proto: Proto, opts: NatOptions = {}): Route {
  const route = destinationRoute(cfg, dst, port, opts);
  // Port 0 is reserved (RFC 768 / RFC 9293 use it for "no port"): no host
  // socket can send to it. The guest gets what a closed port gives: RST for
  // TCP, ICMP port unreachable for UDP.
  if (route.kind === 'host' && port === 0 && proto !== 'icmp') return { kind: 'unreachable', code: 3, reason: 'dst-port-zero' };
  return route;
}

function destinationRoute(cfg: StackConfig, dst: number, port: number, opts: NatOptions): Route {
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

/**
 * Reverse mapping for replies: a datagram arriving on the host from `src`
 * appears to the guest as coming from this virtual address.
 */
export function guestVisibleSource(cfg: StackConfig, src: number): number {
  if ((src >>> 24) === 127 && !cfg.disableHostLoopback) return cfg.gateway;
  return src;
}
