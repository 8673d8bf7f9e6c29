// src/stack/ipv6.ts — IPv6 on the guest's link: the router tsnet plays.
//
// Read this first:
// - Addresses are slirp4netns's (config.ts, Ipv6Plan): prefix fd00::/64,
//   gateway and host fd00::2, DNS fd00::3, the router's link-local address
//   fe80::2, all at one virtual MAC (52:56:00:00:00:02).
// - Neighbor Discovery (RFC 4861): neighbor solicitations for our three
//   addresses are answered (solicited, override, router); a guest's duplicate
//   address detection for its own addresses is left alone, and one probing
//   one of ours is told it is taken. Router solicitations are answered with
//   a router advertisement, and advertisements also go out unsolicited
//   (three at start, then every RA_INTERVAL_MS): prefix fd00::/64 on-link and
//   autonomous (the guest forms its address by SLAAC), router lifetime 1800 s
//   (its default route via fe80::2), the link MTU (RFC 4861 §4.6.4) and the
//   DNS server fd00::3 (RFC 8106 RDNSS).
// - ICMPv6 echo to our addresses (and to the all-nodes / all-routers groups)
//   is answered here.
// - TCP and UDP over IPv6 go to the flow tables (tcp-flows.ts, udp.ts
//   input6) like IPv4's: fd00::2 reaches the host's ::1, fd00::3:53 the
//   nameservers, other addresses the host's IPv6 (nat.ts routeFor6).
// - Echo toward other addresses goes through IPv6 ping sockets
//   (icmp-echo.ts request6). A stack built without flow tables (no host
//   sockets) answers TCP, UDP and echo with an immediate ICMPv6 destination
//   unreachable instead, so applications fail over at once.
// - The guest's link-layer addresses: learned from the source of its IPv6
//   frames and from NDP options (bounded, the stalest forgotten); a frame
//   for an address not learned yet is dropped (counted) after a neighbor
//   solicitation asks for it — TCP retransmits.
// - Fragments are counted and dropped (slirp4netns does not reassemble IPv6
//   either); other extension headers are walked past to the upper layer; a
//   malformed chain is counted and dropped. MLD reports (the guest joining
//   groups) are counted and ignored.
// - ICMPv6 errors are never sent about an error, a multicast destination, or
//   an unspecified or multicast source (RFC 4443 §2.4 e), and at most
//   ERRORS_PER_SECOND of them (§2.4 f); router advertisements answering
//   solicitations at most RA_REPLIES_PER_SECOND.

import { ipv6Equal, ipv6MulticastMac, ipv6SolicitedNode } from '../wire/address.js';
import type { EthernetFrame } from '../wire/ethernet.js';
import {
  Icmpv6DstUnreachable,
  Icmpv6Packet,
  Icmpv6Repr,
  Icmpv6Type,
  NA_FLAG_OVERRIDE,
  NA_FLAG_ROUTER,
  NA_FLAG_SOLICITED,
  PREFIX_FLAG_AUTONOMOUS,
  PREFIX_FLAG_ON_LINK,
  type NdpOption,
} from '../wire/icmpv6.js';
import { IpProtocol } from '../wire/ipv4.js';
import { IPV6_HEADER_LEN, Ipv6ExtInfo, Ipv6Packet, walkIpv6Ext } from '../wire/ipv6.js';
import { WireError } from '../wire/errors.js';
import { macFor6, type Ipv6Plan } from './config.js';
import type { StackContext } from './context.js';
import { icmpv6Frame } from './emit.js';
import type { TcpTable } from './tcp-flows.js';
import type { UdpTable } from './udp.js';
import type { EchoTable } from './icmp-echo.js';

/** RFC 4861 §6.2.1 AdvDefaultLifetime (3 × MaxRtrAdvInterval), as slirp4netns sends. */
const ROUTER_LIFETIME_S = 1800;
/** RFC 4861 §6.2.1 AdvValidLifetime / AdvPreferredLifetime defaults (slirp4netns's too). */
const PREFIX_VALID_S = 86400;
const PREFIX_PREFERRED_S = 14400;
/** RFC 8106 §5.1: at least MaxRtrAdvInterval; the router lifetime covers it. */
const RDNSS_LIFETIME_S = ROUTER_LIFETIME_S;
/** RFC 4861 §6.2.4: the first advertisements (at most 3, at most 16 s apart). */
const INITIAL_RAS = 3;
const INITIAL_RA_INTERVAL_MS = 4000;
/** Between MinRtrAdvInterval (200 s) and MaxRtrAdvInterval (600 s). */
export const RA_INTERVAL_MS = 300_000;
const RA_REPLIES_PER_SECOND = 10;
const ERRORS_PER_SECOND = 100;
/** RFC 4443 §2.4 (c): an error carries as much of the invoking packet as fits in the minimum MTU. */
const MIN_MTU = 1280;

/** Bound on remembered IPv6 neighbors (a guest has a few addresses). */
const MAX_NEIGHBORS = 256;

const ALL_NODES = Buffer.from('ff020000000000000000000000000001', 'hex');
const ALL_ROUTERS = Buffer.from('ff020000000000000000000000000002', 'hex');
const UNSPECIFIED = Buffer.alloc(16);

/** At most `perSecond` events in any one-second window (fixed windows). */
class RateLimit {
  private windowStart = -Infinity;
  private used = 0;
  constructor(private readonly perSecond: number) {}
  take(now: number): boolean {
    if (now - this.windowStart >= 1000) {
      this.windowStart = now;
      this.used = 0;
    }
    if (this.used >= this.perSecond) return false;
    this.used++;
    return true;
  }
}

export class Ipv6Link {
  private readonly ext = new Ipv6ExtInfo();
  private rasSent = 0;
  private nextRaAt = 0;
  private readonly raReplies = new RateLimit(RA_REPLIES_PER_SECOND);
  private readonly errors = new RateLimit(ERRORS_PER_SECOND);
  private readonly solicitedGateway: Buffer;
  private readonly solicitedDns: Buffer;
  private readonly solicitedLinkLocal: Buffer;

  /** Guest IPv6 address (16 bytes as latin1) → MAC, least recently learned first. */
  private readonly neighbors = new Map<string, number>();
  private lastGlobal: Buffer | undefined;
  /** learn()'s last call. */
  private readonly lastLearned = Buffer.alloc(16);
  private lastLearnedMac = -1;
  /** sendToGuest's last lookup (cleared whenever a neighbor is learned). */
  private lastAddr: Uint8Array | undefined;
  private lastMac: number | undefined;

  constructor(
    private readonly ctx: StackContext,
    private readonly plan: Ipv6Plan,
    private readonly tcp: TcpTable | undefined,
    private readonly udp: UdpTable | undefined,
    private readonly echo: EchoTable | undefined,
  ) {
    this.solicitedGateway = Buffer.from(ipv6SolicitedNode(plan.gateway));
    this.solicitedDns = Buffer.from(ipv6SolicitedNode(plan.dns));
    this.solicitedLinkLocal = Buffer.from(ipv6SolicitedNode(plan.linkLocal));
  }

  /** When the next unsolicited router advertisement is due. */
  pollAt(): number {
    return this.nextRaAt;
  }

  poll(now: number): void {
    if (now < this.nextRaAt) return;
    this.sendRa(now, ALL_NODES, ipv6MulticastMac(ALL_NODES));
    this.rasSent++;
    this.nextRaAt = now + (this.rasSent < INITIAL_RAS ? INITIAL_RA_INTERVAL_MS : RA_INTERVAL_MS);
  }

  /** Is `a` one of our unicast addresses? */
  private isOwn(a: Uint8Array): boolean {
    const p = this.plan;
    return ipv6Equal(a, p.gateway) || ipv6Equal(a, p.dns) || ipv6Equal(a, p.linkLocal);
  }

  /** Is `a` a multicast group we listen to (all-nodes, all-routers, our solicited-node groups)? */
  private isOurGroup(a: Uint8Array): boolean {
    return (
      ipv6Equal(a, ALL_NODES) ||
      ipv6Equal(a, ALL_ROUTERS) ||
      ipv6Equal(a, this.solicitedGateway) ||
      ipv6Equal(a, this.solicitedDns) ||
      ipv6Equal(a, this.solicitedLinkLocal)
    );
  }

  /** An IPv6 frame from the guest. Throws WireError for malformed ones (the stack counts them). */
  receive(now: number, eth: EthernetFrame): void {
    const ip = Ipv6Packet.newChecked(eth.payload);
    const ext = walkIpv6Ext(ip, this.ext);
    if (ext.hasFragment) {
      // slirp4netns does not reassemble IPv6 either.
      this.ctx.drop('ipv6-fragment');
      return;
    }
    const src = ip.src;
    const dst = ip.dst;
    if (src[0] === 0xff) throw new WireError('ipv6-multicast-source');
    if (!ipv6Equal(src, UNSPECIFIED)) this.learn(src, eth.src);
    const multicast = dst[0] === 0xff;
    if (ext.protocol === IpProtocol.ICMPv6) {
      this.icmp(now, eth, ip, ext.offset, multicast);
      return;
    }
    if (multicast) {
      this.ctx.drop('ipv6-multicast-ignored', String(ext.protocol));
      return;
    }
    if (ext.protocol === IpProtocol.TCP && this.tcp) {
      this.tcp.input6(now, eth, ip, ext.offset);
      return;
    }
    if (ext.protocol === IpProtocol.UDP && this.udp) {
      this.udp.input6(now, eth, ip, ext.offset);
      return;
    }
    // Without a TCP or UDP table (a stack built without them): fail fast.
    if (ext.protocol === IpProtocol.TCP || ext.protocol === IpProtocol.UDP) {
      const own = this.isOwn(dst);
      this.ctx.drop(own ? 'ipv6-port-unreachable' : 'ipv6-no-route', String(ext.protocol));
      this.sendError(now, eth, ip, Icmpv6Type.DstUnreachable, own ? Icmpv6DstUnreachable.PortUnreachable : Icmpv6DstUnreachable.NoRoute);
      return;
    }
    this.ctx.drop('ipv6-protocol-unhandled', String(ext.protocol));
  }

  private icmp(now: number, eth: EthernetFrame, ip: Ipv6Packet, offset: number, multicast: boolean): void {
    const src = ip.src;
    const dst = ip.dst;
    const pkt = Icmpv6Packet.newChecked(ip.buffer.subarray(offset, ip.end));
    if (!pkt.verifyChecksum(src, dst)) throw new WireError('icmpv6-bad-checksum');
    const msg = Icmpv6Repr.parse(pkt, src, dst, { ignoreChecksum: true });
    const toUs = multicast ? this.isOurGroup(dst) : this.isOwn(dst);
    switch (msg.type) {
      case Icmpv6Type.NeighborSolicit:
        this.neighborSolicit(now, eth, ip, msg);
        return;
      case Icmpv6Type.RouterSolicit:
        this.routerSolicit(now, eth, ip, msg);
        return;
      case Icmpv6Type.EchoRequest:
        if (toUs) this.echoReply(now, eth, ip, msg, multicast);
        else if (multicast) this.ctx.drop('icmpv6-echo-other-group');
        else if (this.echo) this.echo.request6(now, eth, ip, msg);
        else {
          // A stack without echo flows (no ping sockets): no route.
          this.ctx.drop('ipv6-no-route', 'echo');
          this.sendError(now, eth, ip, Icmpv6Type.DstUnreachable, Icmpv6DstUnreachable.NoRoute);
        }
        return;
      case 130: // MLD query, report, done (RFC 2710), MLDv2 report (RFC 3810)
      case 131:
      case 132:
      case 143:
        this.ctx.counters.count('mld-ignored');
        return;
      case Icmpv6Type.DstUnreachable:
        this.unreachableFromGuest(msg);
        return;
      case Icmpv6Type.NeighborAdvert:
        // An answer to our solicitation, or the guest announcing itself.
        if (ip.hopLimit === 255 && msg.targetLinkAddr >= 0 && msg.target[0] !== 0xff && !this.isOwn(msg.target)) {
          this.learn(msg.target, msg.targetLinkAddr);
          this.ctx.counters.count('ndp-na-learned');
        } else this.ctx.drop('ndp-invalid', 'neighbor advertisement');
        return;
      default:
        this.ctx.drop('icmpv6-type-unhandled', String(msg.type));
    }
  }

  /**
   * The guest could not deliver something we sent it: for a port-forwarded
   * UDP datagram (port unreachable), the UDP table may carry the
   * conversation over IPv4 instead. Anything else is only counted.
   */
  private unreachableFromGuest(msg: Icmpv6Repr): void {
    this.ctx.counters.count('icmpv6-unreachable-from-guest');
    const q = msg.data;
    if (msg.code !== Icmpv6DstUnreachable.PortUnreachable || q.length < IPV6_HEADER_LEN + 8 || q[6] !== IpProtocol.UDP) return;
    const quotedSrc = q.subarray(8, 24);
    const quotedDst = q.subarray(24, 40);
    this.udp?.refusedByGuest6(quotedDst, q.readUInt16BE(IPV6_HEADER_LEN + 2), quotedSrc, q.readUInt16BE(IPV6_HEADER_LEN));
  }

  /** RFC 4861 §7.1.1 validity: hop limit 255, code 0, and a :: source only toward a solicited-node group, without SLLA. */
  private ndpValid(ip: Ipv6Packet, msg: Icmpv6Repr): boolean {
    if (ip.hopLimit !== 255 || msg.code !== 0) return false;
    if (ipv6Equal(ip.src, UNSPECIFIED) && msg.sourceLinkAddr >= 0) return false;
    return true;
  }

  private neighborSolicit(now: number, eth: EthernetFrame, ip: Ipv6Packet, msg: Icmpv6Repr): void {
    if (!this.ndpValid(ip, msg) || msg.target[0] === 0xff) {
      this.ctx.drop('ndp-invalid', 'neighbor solicitation');
      return;
    }
    const dad = ipv6Equal(ip.src, UNSPECIFIED);
    if (!this.isOwn(msg.target)) {
      // The guest resolving (or, from ::, checking) an address of its own or
      // another guest's: not ours to answer. Duplicate address detection
      // names the address the guest is about to use (SLAAC): remember it, so
      // a port forward can reach the guest before it has sent from it.
      if (dad && msg.target[0] !== 0xfe) this.learn(msg.target, eth.src);
      this.ctx.counters.count('ndp-ns-not-ours');
      return;
    }
    if (!dad && msg.sourceLinkAddr >= 0) this.learn(ip.src, msg.sourceLinkAddr);
    // RFC 4861 §7.2.4: answer a solicitation unicast, with S; one from ::
    // (duplicate address detection for our address) to all-nodes, without S.
    const flags = NA_FLAG_ROUTER | NA_FLAG_OVERRIDE | (dad ? 0 : NA_FLAG_SOLICITED);
    const to = dad ? ALL_NODES : ip.src;
    const toMac = dad ? ipv6MulticastMac(ALL_NODES) : msg.sourceLinkAddr >= 0 ? msg.sourceLinkAddr : eth.src;
    const na = new Icmpv6Repr({
      type: Icmpv6Type.NeighborAdvert,
      flags,
      target: Buffer.from(msg.target),
      options: [{ kind: 'target-lla', linkAddr: macFor6(this.plan, msg.target) }],
    });
    this.ctx.counters.count('ndp-na-sent');
    this.send(now, Buffer.from(msg.target), to, toMac, na, 255);
  }

  private routerSolicit(now: number, eth: EthernetFrame, ip: Ipv6Packet, msg: Icmpv6Repr): void {
    if (!this.ndpValid(ip, msg)) {
      this.ctx.drop('ndp-invalid', 'router solicitation');
      return;
    }
    if (!this.raReplies.take(now)) {
      this.ctx.drop('ndp-rs-rate-limited');
      return;
    }
    // RFC 4861 §6.2.6: the answer may go unicast to the solicitor; from ::
    // it cannot, and goes to all-nodes.
    if (ipv6Equal(ip.src, UNSPECIFIED)) this.sendRa(now, ALL_NODES, ipv6MulticastMac(ALL_NODES));
    else this.sendRa(now, Buffer.from(ip.src), msg.sourceLinkAddr >= 0 ? msg.sourceLinkAddr : eth.src);
  }

  private sendRa(now: number, to: Buffer, toMac: number): void {
    const p = this.plan;
    const options: NdpOption[] = [
      { kind: 'source-lla', linkAddr: p.mac },
      { kind: 'mtu', mtu: this.ctx.config.mtu },
      {
        kind: 'prefix-info',
        prefixLen: p.prefixLen,
        flags: PREFIX_FLAG_ON_LINK | PREFIX_FLAG_AUTONOMOUS,
        validLifetime: PREFIX_VALID_S,
        preferredLifetime: PREFIX_PREFERRED_S,
        prefix: p.prefix,
      },
      { kind: 'rdnss', lifetime: RDNSS_LIFETIME_S, servers: [p.dns] },
    ];
    const ra = new Icmpv6Repr({ type: Icmpv6Type.RouterAdvert, curHopLimit: 64, flags: 0, routerLifetime: ROUTER_LIFETIME_S, options });
    this.ctx.counters.count('ndp-ra-sent');
    this.send(now, p.linkLocal, to, toMac, ra, 255);
  }

  private echoReply(now: number, eth: EthernetFrame, ip: Ipv6Packet, msg: Icmpv6Repr, multicast: boolean): void {
    // RFC 4443 §4.2: identifier, sequence number and data unchanged; a
    // request to a group is answered from a unicast address of ours.
    const from = multicast ? this.plan.linkLocal : Buffer.from(ip.dst);
    const reply = new Icmpv6Repr({ type: Icmpv6Type.EchoReply, ident: msg.ident, seq: msg.seq, data: Buffer.from(msg.data) });
    this.ctx.counters.count('icmpv6-echo-reply-sent');
    this.send(now, from, Buffer.from(ip.src), eth.src, reply, 64);
  }

  /** An ICMPv6 error about `ip` (RFC 4443 §2.4), from the router's address for it. */
  private sendError(now: number, eth: EthernetFrame, ip: Ipv6Packet, type: number, code: number): void {
    const src = ip.src;
    if (ipv6Equal(src, UNSPECIFIED) || src[0] === 0xff || ip.dst[0] === 0xff) return;
    if (!this.errors.take(now)) {
      this.ctx.drop('icmpv6-error-rate-limited');
      return;
    }
    // Port unreachable comes from the address the datagram went to; no
    // route from the router (global, or link-local toward a link-local guest).
    const from = this.isOwn(ip.dst) ? Buffer.from(ip.dst) : src[0] === 0xfe && (src[1] & 0xc0) === 0x80 ? this.plan.linkLocal : this.plan.gateway;
    const room = Math.min(MIN_MTU, this.ctx.config.mtu) - IPV6_HEADER_LEN - 8;
    const invoking = Buffer.from(ip.buffer.subarray(0, Math.min(ip.end, room)));
    const err = new Icmpv6Repr({ type, code, data: invoking });
    this.ctx.counters.count('icmpv6-error-sent');
    this.send(now, from, Buffer.from(src), eth.src, err, 64);
  }

  private send(_now: number, src: Uint8Array, dst: Uint8Array, dstMac: number, msg: Icmpv6Repr, hopLimit: number): void {
    this.ctx.transmit(icmpv6Frame(this.plan, dstMac, dst, msg, src, hopLimit));
  }

  /** The guest's most recently learned address in the prefix (what a port forward connects to), if any. */
  guestAddress(): Buffer | undefined {
    return this.lastGlobal;
  }

  /** Records that guest address `addr` is at `mac` (called for every IPv6 frame from the guest). */
  private learn(addr: Uint8Array, mac: number): void {
    // The same as the last call (a bulk transfer's frames): nothing to do,
    // and no key string per frame.
    if (mac === this.lastLearnedMac && ipv6Equal(addr, this.lastLearned)) return;
    this.lastLearned.set(addr.subarray(0, 16));
    this.lastLearnedMac = mac;
    if (ipv6Equal(addr.subarray(0, 8), this.plan.prefix.subarray(0, 8)) && !this.isOwn(addr)) {
      if (!this.lastGlobal || !ipv6Equal(this.lastGlobal, addr)) this.lastGlobal = Buffer.from(addr.subarray(0, 16));
    }
    const key = Buffer.from(addr.buffer, addr.byteOffset, 16).toString('latin1');
    if (this.neighbors.get(key) === mac) return;
    this.lastAddr = undefined;
    this.neighbors.delete(key);
    if (this.neighbors.size >= MAX_NEIGHBORS) this.neighbors.delete(this.neighbors.keys().next().value!);
    this.neighbors.set(key, mac);
  }

  /** The guest's MAC for an IPv6 address, if learned. */
  neighbor(addr: Uint8Array): number | undefined {
    return this.neighbors.get(Buffer.from(addr.buffer, addr.byteOffset, 16).toString('latin1'));
  }

  /**
   * A frame for guest address `addr` (destination MAC filled in here). An
   * address not learned yet gets a neighbor solicitation and the frame is
   * dropped (counted): what sends toward a guest that has not spoken
   * retransmits.
   */
  sendToGuest(now: number, addr: Uint8Array, frame: Buffer, gso?: number, payload?: Buffer): void {
    // Flows pass the same Buffer for the same address (addresses.ts): one
    // remembered lookup spares a key string per segment.
    let mac: number | undefined;
    if (addr === this.lastAddr) mac = this.lastMac;
    else {
      mac = this.neighbor(addr);
      this.lastAddr = addr;
      this.lastMac = mac;
    }
    if (mac !== undefined) {
      frame.writeUIntBE(mac, 0, 6);
      if (payload === undefined) this.ctx.transmit(frame, gso);
      else this.ctx.transmitParts(frame, payload, gso);
      return;
    }
    this.ctx.drop('ndp-unresolved');
    if (!this.errors.take(now)) return;
    const group = ipv6SolicitedNode(addr);
    const ns = new Icmpv6Repr({ type: Icmpv6Type.NeighborSolicit, target: Buffer.from(addr.subarray(0, 16)), options: [{ kind: 'source-lla', linkAddr: this.plan.mac }] });
    this.ctx.counters.count('ndp-ns-sent');
    this.send(now, addr[0] === 0xfe ? this.plan.linkLocal : this.plan.gateway, group, ipv6MulticastMac(group), ns, 255);
  }
}
