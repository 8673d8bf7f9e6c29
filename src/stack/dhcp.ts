// DHCP server for the virtual network (RFC 2131, options RFC 2132), pure.
//
// Read this first:
// - The address plan is slirp4netns's: leases from config.dhcpStart..
//   dhcpEnd (10.0.2.15–10.0.2.30), router and server identifier = gateway,
//   DNS = the DNS address, mask from the prefix, MTU option = config.mtu.
// - DhcpServer is the state: one lease record per client (keyed by client
//   identifier, option 61, else by chaddr) and per address (an address is
//   held by at most one record, so the table is bounded by the pool), plus
//   addresses a client declined. Time is `now` in monotonic milliseconds.
//   Records outlive their lease so a returning client gets its old address
//   back (RFC 2131 §4.3.1); an expired or released address is handed to
//   someone else only when the pool has no never-used address left.
// - processDhcp handles one client message (UDP to port 67) and answers from
//   gateway:67 to port 68. It is authoritative, as the only server on a
//   virtual link can be: a REQUEST for a free pool address is ACKed even
//   without a matching offer (tsnet restarted, client rebooted), and one for
//   an address that is not the client's to have is NAKed.
// - Relayed messages (giaddr ≠ 0) and plain BOOTP (no option 53) are
//   dropped: no relay or BOOTP client lives on a TAP link.

import { ipv4ToString, MAC_BROADCAST, macToString } from '../wire/address.js';
import { pseudoV4 } from '../wire/checksum.js';
import {
  BootpOp,
  DHCP_CLIENT_PORT,
  DHCP_FLAG_BROADCAST,
  DHCP_SERVER_PORT,
  DhcpMessageType,
  DhcpPacket,
  DhcpRepr,
} from '../wire/dhcp.js';
import { WireError } from '../wire/errors.js';
import type { EthernetFrame } from '../wire/ethernet.js';
import { IpProtocol, Ipv4Repr, type Ipv4Packet } from '../wire/ipv4.js';
import { UdpRepr, type UdpPacket } from '../wire/udp.js';
import type { StackConfig } from './config.js';
import type { StackContext } from './context.js';
import { ipv4Frame } from './emit.js';

/** slirp4netns/libslirp lease time: one day (seconds). */
export const DEFAULT_LEASE_TIME_S = 86400;
/** How long an offered address stays reserved for the client (udhcpd's offer_time). */
export const DEFAULT_OFFER_HOLD_MS = 60_000;
/** How long a declined address is kept out of the pool. */
export const DEFAULT_DECLINE_HOLD_MS = 10 * 60_000;

const LIMITED_BROADCAST = 0xffffffff;

export interface DhcpServerOptions {
  /** Lease time in seconds (option 51); T1/T2 are 1/2 and 7/8 of it. */
  leaseTimeS?: number;
  offerHoldMs?: number;
  declineHoldMs?: number;
}

export type DhcpLeaseState = 'offered' | 'bound' | 'released';

export interface DhcpLease {
  readonly ip: number;
  /** "id:<hex client identifier>" or "hw:<mac>". */
  readonly key: string;
  mac: number;
  state: DhcpLeaseState;
  /** Monotonic ms; the address is in use while state ≠ released and now < expiresAt. */
  expiresAt: number;
  hostname: string | undefined;
}

/** The lease table. All methods are pure functions of their arguments and the table. */
export class DhcpServer {
  readonly leaseTimeS: number;
  readonly offerHoldMs: number;
  readonly declineHoldMs: number;
  private readonly byKey = new Map<string, DhcpLease>();
  private readonly byIp = new Map<number, DhcpLease>();
  /** Declined address → until when (ms) it stays out of the pool. */
  private readonly declined = new Map<number, number>();

  constructor(opts: DhcpServerOptions = {}) {
    this.leaseTimeS = opts.leaseTimeS ?? DEFAULT_LEASE_TIME_S;
    this.offerHoldMs = opts.offerHoldMs ?? DEFAULT_OFFER_HOLD_MS;
    this.declineHoldMs = opts.declineHoldMs ?? DEFAULT_DECLINE_HOLD_MS;
  }

  /** Every record (active or remembered), for stats and tests. */
  leases(): DhcpLease[] {
    return [...this.byIp.values()];
  }

  /** The record holding ip, if any (active or not). */
  byAddress(ip: number): DhcpLease | undefined {
    return this.byIp.get(ip);
  }

  /** The bound, unexpired lease for ip. */
  boundLease(ip: number, now: number): DhcpLease | undefined {
    const l = this.byIp.get(ip);
    return l && l.state === 'bound' && l.expiresAt > now ? l : undefined;
  }

  static isActive(l: DhcpLease, now: number): boolean {
    return l.state !== 'released' && l.expiresAt > now;
  }

  isDeclined(ip: number, now: number): boolean {
    const until = this.declined.get(ip);
    if (until === undefined) return false;
    if (until > now) return true;
    this.declined.delete(ip);
    return false;
  }

  /** May `key` have ip? (not declined, not in use by another client) */
  isFreeFor(ip: number, key: string, now: number): boolean {
    if (this.isDeclined(ip, now)) return false;
    const l = this.byIp.get(ip);
    return l === undefined || l.key === key || !DhcpServer.isActive(l, now);
  }

  /**
   * Chooses an address for a client, in RFC 2131 §4.3.1 order: its current
   * or previous binding, the address it asked for, then a new one from the
   * pool — never-used addresses first, then the longest-unused remembered
   * one. Undefined when the pool is exhausted.
   */
  choose(start: number, end: number, key: string, mac: number, requested: number | undefined, now: number): number | undefined {
    const inPool = (ip: number) => ip >= start && ip <= end;
    const own = this.byKey.get(key);
    if (own && inPool(own.ip) && this.isFreeFor(own.ip, key, now)) return own.ip;
    // The same interface may come back with another client identifier
    // (udhcpc then systemd-networkd): give it its old address if unused.
    for (const l of this.byIp.values()) {
      if (l.mac === mac && inPool(l.ip) && !DhcpServer.isActive(l, now) && !this.isDeclined(l.ip, now)) return l.ip;
    }
    if (requested !== undefined && inPool(requested) && this.isFreeFor(requested, key, now)) return requested;
    let oldest: DhcpLease | undefined;
    for (let ip = start; ip <= end; ip++) {
      if (this.isDeclined(ip, now)) continue;
      const l = this.byIp.get(ip);
      if (l === undefined) return ip;
      if (!DhcpServer.isActive(l, now) && (oldest === undefined || l.expiresAt < oldest.expiresAt)) oldest = l;
    }
    return oldest?.ip;
  }

  /** Records that `key` holds ip (state and expiry given); evicts whatever held either before. */
  claim(ip: number, key: string, mac: number, state: DhcpLeaseState, expiresAt: number, hostname?: string): DhcpLease {
    const mine = this.byKey.get(key);
    if (mine && mine.ip !== ip) this.byIp.delete(mine.ip);
    const other = this.byIp.get(ip);
    if (other && other.key !== key) this.byKey.delete(other.key);
    const l: DhcpLease = { ip, key, mac, state, expiresAt, hostname: hostname ?? mine?.hostname };
    this.byKey.set(key, l);
    this.byIp.set(ip, l);
    return l;
  }

  /** RFC 2131 §4.3.4: the address is no longer allocated; the record is kept for reuse. */
  release(key: string, ip: number, now: number): boolean {
    const l = this.byKey.get(key);
    if (!l || l.ip !== ip || l.state === 'released') return false;
    l.state = 'released';
    l.expiresAt = now;
    return true;
  }

  /** The client took another server's offer: our offer (if any) lapses now. */
  withdrawOffer(key: string, now: number): void {
    const l = this.byKey.get(key);
    if (l && l.state === 'offered') l.expiresAt = Math.min(l.expiresAt, now);
  }

  /** RFC 2131 §4.3.3: the address is in use by someone else; keep it out of the pool for a while. */
  decline(ip: number, now: number): void {
    const l = this.byIp.get(ip);
    if (l) {
      this.byIp.delete(ip);
      this.byKey.delete(l.key);
    }
    this.declined.set(ip, now + this.declineHoldMs);
  }
}

/** What processDhcp needs: the stack context plus the server's state. */
export interface DhcpContext extends StackContext {
  readonly dhcp: DhcpServer;
  event?(name: string, detail: Record<string, unknown>): void;
}

/**
 * Is a UDP datagram to dstIp:dstPort for the DHCP server? RFC 2131 §4.1:
 * clients broadcast to 255.255.255.255 until configured and unicast to the
 * server identifier when renewing; the subnet's directed broadcast is
 * accepted too.
 */
export function isForDhcpServer(cfg: StackConfig, dstIp: number, dstPort: number): boolean {
  if (dstPort !== DHCP_SERVER_PORT) return false;
  return dstIp === LIMITED_BROADCAST || dstIp === cfg.gateway || dstIp === (cfg.network | ~cfg.netmask) >>> 0;
}

function clientKey(msg: DhcpRepr): string {
  // RFC 2131 §4.2: the client identifier, when supplied, identifies the
  // client; otherwise chaddr does.
  return msg.clientId !== undefined ? `id:${msg.clientId.toString('hex')}` : `hw:${macToString(msg.chaddr)}`;
}

/**
 * Handles one DHCP message from the guest (a UDP datagram for which
 * isForDhcpServer is true). Replies through ctx.transmit; everything not
 * answered is counted as an event (release, decline) or a drop by reason.
 * Throws WireError on malformed input, as every handler does.
 */
export function processDhcp(ctx: DhcpContext, now: number, eth: EthernetFrame, ip: Ipv4Packet, udp: UdpPacket): void {
  // `eth` is unused: replies go to chaddr (RFC 2131 §4.1), not to the frame's source.
  // RFC 768: a zero checksum means none was computed (udhcpc and dhclient fill it).
  if (!udp.verifyChecksumV4(ip.src, ip.dst)) throw new WireError('udp-bad-checksum');
  const msg = DhcpRepr.parse(DhcpPacket.newChecked(UdpRepr.parse(udp).payload));
  // RFC 2131 §4.1: servers handle BOOTREQUESTs; a BOOTREPLY here is another
  // server (or a loop) on the guest side.
  if (msg.op !== BootpOp.Request) {
    ctx.drop('dhcp-not-request');
    return;
  }
  // RFC 1534: a DHCP server may serve BOOTP clients; none live on a TAP link.
  if (msg.messageType === undefined) {
    ctx.drop('dhcp-bootp-unsupported');
    return;
  }
  // RFC 2131 §4.1: replies to relayed messages go to the relay (giaddr:67);
  // there is no relay on a virtual point-to-point link.
  if (msg.giaddr !== 0) {
    ctx.drop('dhcp-relayed-unsupported', ipv4ToString(msg.giaddr));
    return;
  }
  const s = ctx.dhcp;
  const key = clientKey(msg);
  switch (msg.messageType) {
    case DhcpMessageType.Discover:
      onDiscover(ctx, s, now, msg, key);
      return;
    case DhcpMessageType.Request:
      onRequest(ctx, s, now, msg, key);
      return;
    case DhcpMessageType.Decline:
      onDecline(ctx, s, now, msg);
      return;
    case DhcpMessageType.Release:
      // RFC 2131 §4.3.4: the client names its address in ciaddr; no reply.
      if (msg.serverId !== undefined && msg.serverId !== ctx.config.gateway) {
        ctx.drop('dhcp-for-other-server');
      } else if (s.release(key, msg.ciaddr, now)) {
        ctx.counters.count('dhcp-release-received');
        ctx.event?.('dhcp lease released', { ip: ipv4ToString(msg.ciaddr), mac: macToString(msg.chaddr) });
      } else {
        ctx.drop('dhcp-release-unknown', ipv4ToString(msg.ciaddr));
      }
      return;
    case DhcpMessageType.Inform:
      // RFC 2131 §4.3.5: configuration only; an ACK without lease time or
      // yiaddr, sent to ciaddr.
      reply(ctx, msg, DhcpMessageType.Ack, 0, undefined);
      ctx.counters.count('dhcp-inform-ack-sent');
      return;
    default:
      // OFFER, ACK, NAK (server messages) or an unknown type.
      ctx.drop('dhcp-unexpected-type', String(msg.messageType));
  }
}

function onDiscover(ctx: DhcpContext, s: DhcpServer, now: number, msg: DhcpRepr, key: string): void {
  const cfg = ctx.config;
  const addr = s.choose(cfg.dhcpStart, cfg.dhcpEnd, key, msg.chaddr, msg.requestedIp, now);
  if (addr === undefined) {
    // RFC 2131 §4.3.1: with no address available the server may stay silent.
    ctx.drop('dhcp-pool-exhausted', macToString(msg.chaddr));
    return;
  }
  // RFC 2131 §4.3.1: the offered address is reserved for a while. A client
  // re-discovering an address it holds keeps its lease as it is.
  const held = s.byAddress(addr);
  if (!(held && held.key === key && held.state === 'bound' && held.expiresAt > now)) {
    s.claim(addr, key, msg.chaddr, 'offered', now + s.offerHoldMs, msg.hostname);
  }
  reply(ctx, msg, DhcpMessageType.Offer, addr, s.leaseTimeS);
  ctx.counters.count('dhcp-offer-sent');
}

function onRequest(ctx: DhcpContext, s: DhcpServer, now: number, msg: DhcpRepr, key: string): void {
  const cfg = ctx.config;
  // RFC 2131 §4.3.2 tells the client states apart:
  // - SELECTING: server identifier present (and requested IP, ciaddr 0).
  //   Addressed to another server: the client declined our offer.
  // - INIT-REBOOT: no server identifier, requested IP, ciaddr 0.
  // - RENEWING (unicast) / REBINDING (broadcast): no server identifier and
  //   no requested IP; the address is in ciaddr.
  if (msg.serverId !== undefined && msg.serverId !== cfg.gateway) {
    s.withdrawOffer(key, now);
    ctx.drop('dhcp-for-other-server', ipv4ToString(msg.serverId));
    return;
  }
  const want = msg.requestedIp ?? msg.ciaddr;
  // RFC 2131 §4.3.2: NAK an address that is wrong for this network or not
  // the client's to have (outside the pool, declined, held by another).
  if (want === 0 || want < cfg.dhcpStart || want > cfg.dhcpEnd || !s.isFreeFor(want, key, now)) {
    const why = want === 0 ? 'no address requested' : 'requested address not available';
    reply(ctx, msg, DhcpMessageType.Nak, 0, undefined, why);
    ctx.counters.count('dhcp-nak-sent');
    return;
  }
  const l = s.claim(want, key, msg.chaddr, 'bound', now + s.leaseTimeS * 1000, msg.hostname);
  // A router learns who has the address as it hands it out; frames the stack
  // originates toward the guest can then be addressed before the guest speaks.
  ctx.learnNeighbor(want, msg.chaddr, now);
  reply(ctx, msg, DhcpMessageType.Ack, want, s.leaseTimeS);
  ctx.counters.count('dhcp-ack-sent');
  ctx.event?.('dhcp lease bound', {
    ip: ipv4ToString(want),
    mac: macToString(msg.chaddr),
    ...(l.hostname !== undefined ? { hostname: l.hostname } : {}),
  });
}

function onDecline(ctx: DhcpContext, s: DhcpServer, now: number, msg: DhcpRepr): void {
  const cfg = ctx.config;
  if (msg.serverId !== undefined && msg.serverId !== cfg.gateway) {
    ctx.drop('dhcp-for-other-server', ipv4ToString(msg.serverId));
    return;
  }
  // RFC 2131 §4.3.3: option 50 carries the address found to be in use.
  const bad = msg.requestedIp;
  if (bad === undefined || bad < cfg.dhcpStart || bad > cfg.dhcpEnd) {
    ctx.drop('dhcp-decline-bad-address', bad === undefined ? 'none' : ipv4ToString(bad));
    return;
  }
  s.decline(bad, now);
  ctx.counters.count('dhcp-decline-received');
  ctx.event?.('dhcp address declined', { ip: ipv4ToString(bad), mac: macToString(msg.chaddr) });
}

/**
 * Builds and sends OFFER / ACK / NAK. Fields follow RFC 2131 Table 3;
 * `leaseTimeS` undefined = no lease options (NAK, INFORM's ACK).
 */
function reply(ctx: DhcpContext, req: DhcpRepr, type: number, yiaddr: number, leaseTimeS: number | undefined, message?: string): void {
  const cfg = ctx.config;
  const nak = type === DhcpMessageType.Nak;
  const out = new DhcpRepr({
    op: BootpOp.Reply,
    xid: req.xid,
    chaddr: req.chaddr,
    // Table 3: flags from the client; ciaddr echoed in ACK, 0 in OFFER/NAK.
    flags: req.flags,
    ciaddr: type === DhcpMessageType.Ack ? req.ciaddr : 0,
    yiaddr,
    messageType: type,
    serverId: cfg.gateway,
    // RFC 6842 §3: the client identifier is returned unaltered.
    clientId: req.clientId,
  });
  if (nak) {
    out.message = message;
  } else {
    if (leaseTimeS !== undefined) {
      out.leaseTime = leaseTimeS;
      // RFC 2131 §4.4.5: T1 defaults to 0.5 and T2 to 0.875 of the lease.
      out.renewalTime = Math.floor(leaseTimeS / 2);
      out.rebindingTime = Math.floor((leaseTimeS * 7) / 8);
    }
    out.subnetMask = cfg.netmask;
    out.broadcast = (cfg.network | ~cfg.netmask) >>> 0;
    out.router = [cfg.gateway];
    out.dns = [cfg.dns];
    out.mtu = cfg.mtu;
  }
  // RFC 2131 §4.1 (giaddr is 0 here): a NAK is broadcast; a client with an
  // address (ciaddr: INFORM, RENEWING, REBINDING) gets unicast to it; a
  // client that set the broadcast bit gets 255.255.255.255; otherwise the
  // reply is unicast to chaddr/yiaddr — what libslirp does too. Every Linux
  // client (udhcpc, dhclient, dhcpcd, systemd-networkd) listens on a packet
  // socket before it is configured, so the unicast reaches it; a client that
  // cannot receive it must set the broadcast bit, and then gets a broadcast.
  let dstIp: number;
  let dstMac: number;
  if (nak) {
    dstIp = LIMITED_BROADCAST;
    dstMac = MAC_BROADCAST;
  } else if (req.ciaddr !== 0) {
    dstIp = req.ciaddr;
    dstMac = req.chaddr;
  } else if ((req.flags & DHCP_FLAG_BROADCAST) !== 0 || yiaddr === 0) {
    dstIp = LIMITED_BROADCAST;
    dstMac = MAC_BROADCAST;
  } else {
    dstIp = yiaddr;
    dstMac = req.chaddr;
  }
  // tsnet does not fragment: a reply must fit the MTU (IPv4 20 + UDP 8). A
  // client identifier too long to echo (RFC 6842) is left out rather than
  // the client left without a lease; if even that does not fit (an MTU
  // below DHCP's 300-byte minimum) the reply is dropped, counted.
  if (20 + 8 + out.bufferLen() > cfg.mtu && out.clientId !== undefined) {
    out.clientId = undefined;
    ctx.counters.count('dhcp-client-id-not-echoed');
  }
  if (20 + 8 + out.bufferLen() > cfg.mtu) {
    ctx.drop('dhcp-reply-too-big', String(20 + 8 + out.bufferLen()));
    return;
  }
  const udp = new UdpRepr({ srcPort: DHCP_SERVER_PORT, dstPort: DHCP_CLIENT_PORT, payload: Buffer.alloc(out.bufferLen()) });
  out.emit(udp.payload);
  const len = udp.bufferLen();
  const src = cfg.gateway;
  const ipr = new Ipv4Repr({ src, dst: dstIp, protocol: IpProtocol.UDP, payloadLen: len, ttl: 64, dontFrag: false });
  const { frame, payload } = ipv4Frame(cfg.gatewayMac, dstMac, ipr);
  udp.emit(payload, pseudoV4(src, dstIp, IpProtocol.UDP, len));
  ctx.transmit(frame);
}
