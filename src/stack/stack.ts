// Read this first: the Stack is tsnet's protocol core. It is pure — no
// sockets, no timers, no clock reads. The shell calls receive(now, frame) for
// every frame the guest sends; the stack answers through hooks.transmit
// (frames toward the guest) and reports drops and events through hooks.
// `now` is monotonic milliseconds, supplied by the caller (real time when
// attached, capture time in replay, a counter in tests).
//
// Dispatch: Ethernet → ARP (arp.ts) | IPv4 → ICMP (icmp.ts), TCP
// (tcp-flows.ts → tcp/connection.ts), UDP (udp.ts, DHCP) | IPv6, when
// configured → ipv6.ts (NDP, router advertisements, echo; TCP, UDP and echo
// to the same tables) | everything else is dropped and counted by reason. Host-side events come back in through the
// tcp/udp tables; flush(now) sends what they made due, poll(now) runs
// timers, pollAt() says when poll is next needed. Nothing thrown by a
// malformed frame escapes receive(): WireErrors become drop reasons, and any
// other exception is counted as "internal-error" and reported.

import { EtherType, EthernetFrame } from '../wire/ethernet.js';
import { WireError } from '../wire/errors.js';
import { IpProtocol, Ipv4Packet } from '../wire/ipv4.js';
import { TcpPacket } from '../wire/tcp.js';
import { UdpPacket } from '../wire/udp.js';
import { ipv4ToString, isMacMulticast, macToString } from '../wire/address.js';
import { arpRequestFrame, processArp } from './arp.js';
import type { StackConfig } from './config.js';
import type { StackContext } from './context.js';
import { Counters } from './counters.js';
import { DEFAULT_MEMORY_BUDGET, MemoryBudget } from './budget.js';
import { FlowTable } from './flow-table.js';
import { processIcmpv4 } from './icmp.js';
import { NeighborTable } from './neighbors.js';
import { Ipv6Link } from './ipv6.js';
import type { NatOptions } from './nat.js';
import { TcpTable, type TcpHooks, type TcpTableOptions } from './tcp-flows.js';
import { DEFAULT_UDP_IDLE_MS, UdpTable, type UdpHooks } from './udp.js';
import { EchoTable, type EchoHooks } from './icmp-echo.js';
import { DhcpServer, isForDhcpServer, processDhcp } from './dhcp.js';
import { Icmpv4Packet, Icmpv4Repr, Icmpv4Type } from '../wire/icmpv4.js';

/** Bounds on frames held while ARP resolves a guest address. */
const MAX_ARP_PENDING_HOSTS = 64;
const MAX_ARP_PENDING_FRAMES = 32;
/** Ask again after this long without an answer. */
const ARP_RETRY_MS = 250;
/**
 * Frames waiting for the guest's MAC are dropped (counted, arp-unresolved)
 * when it has not answered for this long — as Linux's neighbour resolution
 * fails after its three probes a second apart.
 */
const ARP_GIVE_UP_MS = 3000;

export interface StackHooks {
  /**
   * A frame for the guest. The callee must not keep `frame` after returning
   * (copy it if needed): the stack reuses the memory of hot-path frames.
   */
  transmit(frame: Buffer, gso?: number): void;
  /**
   * A frame for the guest in two pieces, `head` then `payload`, sent as
   * their concatenation (Port.sendParts). Optional: without it the stack
   * hands over whole frames only. The same rule: keep neither.
   */
  transmitParts?(head: Buffer, payload: Buffer, gso?: number): void;
  /** A frame was dropped; reason is a short kebab code. */
  onDrop?(reason: string, detail?: string): void;
  /** Something worth a log line happened (guest learned, ...). */
  onEvent?(event: string, detail: Record<string, unknown>): void;
  /**
   * Whether onEvent gets the per-flow and DHCP events too (flow opened and
   * closed, lease bound...), not only the guest's own ("guest address
   * learned"). Default true; the shell passes false unless it logs at
   * debug, since each costs address formatting per flow.
   */
  flowEvents?: boolean;
  /** A bug: an exception other than a WireError while handling a frame. */
  onError?(err: unknown): void;
  /** The shell's TCP side; without it TCP is dropped ("tcp-unhandled"). */
  tcp?: TcpHooks;
  /** The shell's UDP side; without it UDP is dropped ("udp-unhandled"). */
  udp?: UdpHooks;
  /** The shell's ping sockets; without them echo to outside addresses is dropped. */
  echo?: EchoHooks;
}

export interface StackOptions {
  nat?: NatOptions;
  udpIdleMs?: number;
  /** Initial sequence numbers for new TCP connections (the shell passes crypto randomness; tests a counter). */
  iss?: () => number;
  /** Overrides for TCP connection parameters (tests). */
  tcp?: TcpTableOptions['conn'];
  /** The one cap on flows of every kind (TCP, UDP, forwarded, ICMP echo). */
  maxFlows?: number;
  /** TCP flows opening at once. */
  maxHalfOpen?: number;
  /** Bytes tsnet may buffer for all flows together. */
  memoryBudget?: number;
  /**
   * The port below segments and checksums (a TAP with a virtio-net header):
   * TCP sends super-segments with partial checksums (src/host/port.ts).
   */
  offload?: boolean;
}

export const DEFAULT_MAX_FLOWS = 16384;

export class Stack implements StackContext {
  readonly counters = new Counters();
  readonly neighbors = new NeighborTable();
  readonly dhcp = new DhcpServer();
  readonly budget: MemoryBudget;
  readonly flows: FlowTable;
  /** Frames for guest addresses whose MAC we are asking for with ARP. */
  private readonly awaitingArp = new Map<number, { frames: Buffer[]; gso: (number | undefined)[]; askedAt: number; since: number }>();
  readonly offload: boolean;
  /** The hooks take frames in two pieces (StackContext.partsOk). */
  readonly partsOk: boolean;
  /** Set for the frame receive() is handling (see StackContext.rxCsumTrusted). */
  rxCsumTrusted = false;

  readonly tcp: TcpTable | undefined;
  readonly udp: UdpTable | undefined;
  readonly echo: EchoTable | undefined;
  /** IPv6 on the guest link (ipv6.ts), when the configuration turns it on. */
  readonly ipv6: Ipv6Link | undefined;

  constructor(
    readonly config: StackConfig,
    private readonly hooks: StackHooks,
    opts: StackOptions = {},
  ) {
    this.offload = opts.offload ?? false;
    this.partsOk = hooks.transmitParts !== undefined;
    const onEvent = hooks.onEvent;
    this.event = onEvent && hooks.flowEvents !== false ? (name, detail) => onEvent(name, detail) : undefined;
    this.budget = new MemoryBudget(opts.memoryBudget ?? DEFAULT_MEMORY_BUDGET);
    this.flows = new FlowTable(opts.maxFlows ?? DEFAULT_MAX_FLOWS, opts.udpIdleMs ?? DEFAULT_UDP_IDLE_MS);
    let issCounter = 0x1000;
    const iss = opts.iss ?? (() => (issCounter = (issCounter + 0x10000) >>> 0));
    this.tcp = hooks.tcp ? new TcpTable(this, hooks.tcp, { nat: opts.nat, iss, conn: opts.tcp, maxHalfOpen: opts.maxHalfOpen, offload: this.offload }) : undefined;
    this.udp = hooks.udp ? new UdpTable(this, hooks.udp, opts.nat) : undefined;
    this.echo = hooks.echo ? new EchoTable(this, hooks.echo) : undefined;
    this.ipv6 = config.ipv6 ? new Ipv6Link(this, config.ipv6, this.tcp, this.udp, this.echo) : undefined;
  }

  /** Flows of every kind in the table. */
  get flowCount(): number {
    return this.flows.size;
  }

  get maxFlows(): number {
    return this.flows.maxFlows;
  }

  /** Reports a per-flow or DHCP event; undefined when nobody wants them (StackHooks.flowEvents). */
  readonly event: ((name: string, detail: Record<string, unknown>) => void) | undefined;

  /** Sends what became due after frames or host events (end of a batch). Never throws. */
  flush(now: number): void {
    // guard()'s semantics without a closure per call (twice per round trip).
    try {
      this.tcp?.flush(now);
    } catch (e) {
      this.internalError(e);
    }
  }

  /** Runs timers that are due (retransmissions, delayed ACKs, expiry). Never throws. */
  poll(now: number): void {
    this.guard(() => {
      this.tcp?.poll(now);
      this.flows.expire(now);
      this.pollArp(now);
      this.ipv6?.poll(now);
    });
  }

  /** When poll() next has work (Infinity: nothing scheduled). */
  pollAt(): number {
    let at = Math.min(this.tcp?.pollAt() ?? Infinity, this.flows.pollAt(), this.ipv6?.pollAt() ?? Infinity);
    for (const w of this.awaitingArp.values()) at = Math.min(at, w.askedAt + ARP_RETRY_MS, w.since + ARP_GIVE_UP_MS);
    return at;
  }

  /** Asks again for guests that have not answered; gives up (and drops what waited) after ARP_GIVE_UP_MS. */
  private pollArp(now: number): void {
    for (const [ip, w] of this.awaitingArp) {
      if (now - w.since >= ARP_GIVE_UP_MS) {
        this.awaitingArp.delete(ip);
        for (let i = 0; i < w.frames.length; i++) this.drop('arp-unresolved', ipv4ToString(ip));
      } else if (now - w.askedAt >= ARP_RETRY_MS) {
        w.askedAt = now;
        this.counters.count('arp-request-sent');
        this.transmit(arpRequestFrame(this.config.gatewayMac, this.config.gateway, ip));
      }
    }
  }

  private guard(f: () => void): void {
    try {
      f();
    } catch (e) {
      this.internalError(e);
    }
  }

  /** A bug surfaced: count the drop and report it (the hooks' onError). */
  private internalError(e: unknown): void {
    this.drop('internal-error', e instanceof Error ? e.message : String(e));
    this.hooks.onError?.(e);
  }

  /**
   * Handles one frame from the guest. Never throws. `csumTrusted`: the port
   * vouches for its TCP/UDP checksum (src/host/port.ts); only a port that
   * offloads says so.
   */
  receive(now: number, frame: Buffer, csumTrusted = false): void {
    this.counters.rxFrames++;
    this.counters.rxBytes += frame.length;
    this.rxCsumTrusted = csumTrusted;
    try {
      this.processEthernet(now, frame);
    } catch (e) {
      if (e instanceof WireError) {
        this.drop(e.reason, e.message);
      } else {
        this.drop('internal-error', e instanceof Error ? e.message : String(e));
        this.hooks.onError?.(e);
      }
    }
  }

  transmit(frame: Buffer, gso?: number): void {
    this.counters.txFrames++;
    this.counters.txBytes += frame.length;
    this.hooks.transmit(frame, gso);
  }

  transmitParts(head: Buffer, payload: Buffer, gso?: number): void {
    this.counters.txFrames++;
    this.counters.txBytes += head.length + payload.length;
    this.hooks.transmitParts!(head, payload, gso);
  }

  drop(reason: string, detail?: string): void {
    this.counters.drop(reason);
    this.hooks.onDrop?.(reason, detail);
  }

  inNetwork(ip: number): boolean {
    return ((ip & this.config.netmask) >>> 0) === this.config.network;
  }

  isOwnAddress(ip: number): boolean {
    return ip === this.config.gateway || ip === this.config.dns;
  }

  ownMac(ip: number): number | undefined {
    if (ip === this.config.gateway) return this.config.gatewayMac;
    if (ip === this.config.dns) return this.config.dnsMac;
    return undefined;
  }

  /** The guest's MAC for ip, if it has spoken. */
  guestMac(ip: number): number | undefined {
    return this.neighbors.lookup(ip);
  }

  learnNeighbor(ip: number, mac: number, now: number): void {
    if (this.neighbors.learn(ip, mac, now)) {
      this.hooks.onEvent?.('guest address learned', { ip: ipv4ToString(ip), mac: macToString(mac) });
    }
    const waiting = this.awaitingArp.get(ip);
    if (waiting) {
      this.awaitingArp.delete(ip);
      for (let i = 0; i < waiting.frames.length; i++) {
        const frame = waiting.frames[i]!;
        frame.writeUIntBE(mac, 0, 6);
        this.transmit(frame, waiting.gso[i]);
      }
    }
  }

  sendToGuest(now: number, ip: number, frame: Buffer, gso?: number, payload?: Buffer): void {
    const mac = this.neighbors.lookup(ip);
    if (mac !== undefined) {
      frame.writeUIntBE(mac, 0, 6);
      if (payload === undefined) this.transmit(frame, gso);
      else this.transmitParts(frame, payload, gso);
      return;
    }
    let w = this.awaitingArp.get(ip);
    if (!w) {
      if (this.awaitingArp.size >= MAX_ARP_PENDING_HOSTS) {
        this.drop('arp-pending-full', ipv4ToString(ip));
        return;
      }
      w = { frames: [], gso: [], askedAt: -Infinity, since: now };
      this.awaitingArp.set(ip, w);
    }
    if (w.frames.length >= MAX_ARP_PENDING_FRAMES) this.drop('arp-pending-full', ipv4ToString(ip));
    else {
      w.frames.push(payload === undefined ? Buffer.from(frame) : Buffer.concat([frame, payload]));
      w.gso.push(gso);
    }
    // RFC 1122 §2.3.2.1: at most one request per address per second... we
    // ask again after ARP_RETRY_MS so a lost request does not stall a flow.
    if (now - w.askedAt >= ARP_RETRY_MS) {
      w.askedAt = now;
      this.counters.count('arp-request-sent');
      this.transmit(arpRequestFrame(this.config.gatewayMac, this.config.gateway, ip));
    }
  }

  sendToGuest6(now: number, addr: Uint8Array, frame: Buffer, gso?: number, payload?: Buffer): void {
    if (this.ipv6) this.ipv6.sendToGuest(now, addr, frame, gso, payload);
    else this.drop('ipv6-disabled');
  }

  private processEthernet(now: number, frame: Buffer): void {
    const eth = EthernetFrame.newChecked(frame);
    const dst = eth.dst;
    // Unicast frames must be addressed to one of our virtual MACs; broadcast
    // and multicast (ARP who-has, IPv6 NDP) are looked at.
    if (dst !== this.config.gatewayMac && dst !== this.config.dnsMac && dst !== this.config.ipv6?.mac && dst !== this.config.ipv6?.dnsMac && !isMacMulticast(dst)) {
      this.drop('eth-not-for-us', macToString(dst));
      return;
    }
    switch (eth.ethertype) {
      case EtherType.ARP:
        processArp(this, now, eth.payload);
        return;
      case EtherType.IPv4:
        this.processIpv4(now, eth);
        return;
      case EtherType.IPv6:
        if (this.ipv6) this.ipv6.receive(now, eth);
        else this.drop('ipv6-disabled');
        return;
      default:
        this.drop('eth-unknown-ethertype', `0x${eth.ethertype.toString(16).padStart(4, '0')}`);
    }
  }

  private processIpv4(now: number, eth: EthernetFrame): void {
    const ip = Ipv4Packet.newChecked(eth.payload);
    // RFC 1122 §3.2.1.2: a datagram with a bad header checksum is silently discarded.
    if (!ip.verifyChecksum()) throw new WireError('ipv4-bad-checksum');
    const src = ip.src;
    if (src !== 0 && this.inNetwork(src) && !this.isOwnAddress(src)) this.learnNeighbor(src, eth.src, now);
    if (ip.isFragment) {
      // Reassembly arrives with TCP/UDP termination; until then fragments are dropped.
      this.drop('ipv4-fragment');
      return;
    }
    const dst = ip.dst;
    switch (ip.protocol) {
      case IpProtocol.ICMP:
        if (this.isOwnAddress(dst)) {
          processIcmpv4(this, now, eth, ip);
        } else if (this.echo) {
          const icmp = Icmpv4Repr.parse(Icmpv4Packet.newChecked(ip.payload));
          if (icmp.type === Icmpv4Type.EchoRequest) this.echo.request(now, eth, ip, icmp);
          else this.drop('icmp-type-unhandled', String(icmp.type));
        } else {
          this.drop('icmp-to-external-unhandled', ipv4ToString(dst));
        }
        return;
      case IpProtocol.TCP:
        if (!this.tcp) this.drop('tcp-unhandled', ipv4ToString(dst));
        else this.tcp.input(now, eth, ip, TcpPacket.newChecked(ip.payload));
        return;
      case IpProtocol.UDP: {
        const udp = UdpPacket.newChecked(ip.payload);
        // DHCP before NAT: it is answered by the stack itself, hooks or not.
        if (isForDhcpServer(this.config, dst, udp.dstPort)) processDhcp(this, now, eth, ip, udp);
        else if (!this.udp) this.drop('udp-unhandled', ipv4ToString(dst));
        else this.udp.input(now, eth, ip, udp);
        return;
      }
      default:
        this.drop('ipv4-unknown-protocol', String(ip.protocol));
    }
  }
}
