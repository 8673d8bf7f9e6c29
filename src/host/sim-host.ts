// A simulated host for `tsnet replay`: a deterministic, in-memory stand-in
// for the host sockets, answering from the host side of a capture. No
// sockets, no timers: the replay driver calls step(now) as capture time
// advances.
//
// Read this first:
// - From the capture, per TCP connection (guest ip:port ↔ peer ip:port, the
//   peer as the guest saw it, e.g. 10.0.2.2:80): the recorded peer's verdict
//   on the SYN (SYN-ACK: accepted, RST: refused), its initial sequence
//   number, the bytes it sent in order with the time each first appeared, and
//   when it sent FIN. Per UDP exchange: the recorded answers to the guest, by
//   source and destination port (DNS ones also by query id).
// - As tsnet's host side: a connect is answered with the recorded verdict at
//   the next step; bytes are handed to tsnet once capture time reaches the
//   time the recorded peer sent them, as fast as tsnet's send space takes
//   them; FIN follows the last byte. What the guest sends is consumed at
//   once (recorded: `fromGuest`). UDP and DNS are answered with the recorded
//   answers at their recorded times.
// - issFor(): the recorded peer's ISS for a connection, so that the driver
//   can give tsnet the same one — the guest's recorded ACK numbers then mean
//   what they meant.
// - Connections the recorded peer opened (a port forward: its SYN came
//   first) are opened into the guest at the recorded time, with the recorded
//   ISS (takeIss()) and to the MAC the recorded SYN was addressed to (the
//   recorded peer knew it, so tsnet is told it too).
// - ICMP destination unreachable the recorded peer sent: for a guest SYN it
//   is the verdict on the connect (net or host unreachable); for a UDP
//   datagram it answers that datagram, at its recorded time.

import { isMacMulticast } from '../wire/address.js';
import { EtherType, EthernetFrame } from '../wire/ethernet.js';
import { Icmpv4Packet, Icmpv4Type } from '../wire/icmpv4.js';
import { IpProtocol, Ipv4Packet } from '../wire/ipv4.js';
import { TcpFlags, TcpPacket, TcpRepr } from '../wire/tcp.js';
import { UdpPacket } from '../wire/udp.js';
import type { TcpFlow, TcpHooks, TcpRoute, TcpTable } from '../stack/tcp-flows.js';
import type { UdpCloseReason, UdpFlow, UdpHooks, UdpTable } from '../stack/udp.js';
import type { StackConfig } from '../stack/config.js';
import { guestVisibleSource, guestVisibleSource6 } from '../stack/nat.js';
import { ipv6ToString } from '../wire/address.js';
import { Ipv6Packet, walkIpv6Ext } from '../wire/ipv6.js';

export interface CapturedFrame {
  /** Milliseconds from the start of the capture. */
  timeMs: number;
  data: Buffer;
}

interface PeerBytes {
  timeMs: number;
  /** Offset in the peer's byte stream (0 = first byte after its SYN). */
  off: number;
  data: Buffer;
}

/** One recorded TCP connection, as its peer behaved. */
export interface RecordedTcp {
  key: string;
  guestIp: RecordedAddr;
  guestPort: number;
  peerIp: RecordedAddr;
  peerPort: number;
  /** 'unreachable': an ICMP error answered the SYN (`unreachableCode`, 0 net or 1 host). */
  verdict: 'accept' | 'refuse' | 'unreachable' | 'none';
  unreachableCode: 0 | 1;
  /** The recorded peer opened this connection (its SYN came first), at this time, to this guest MAC. */
  opened: { timeMs: number; guestMac: number } | undefined;
  peerIss: number;
  /** What the recorded SYN-ACK agreed to (the guest's later segments follow it). */
  synAck: { windowScale: boolean; timestamps: boolean; sackPermitted: boolean };
  chunks: PeerBytes[];
  /** Stream length at the peer's FIN, and when it was sent (undefined: no FIN). */
  fin: { off: number; timeMs: number } | undefined;
}

interface RecordedDatagram {
  timeMs: number;
  /** guest port, peer ip:port */
  key: string;
  payload: Buffer;
  dnsId: number | undefined;
  /** An ICMP destination unreachable (this code) answered the datagram instead of a reply. */
  unreachable?: number;
}

/** An address as a recording keys it: an IPv4 number, or IPv6 bytes (bracketed text). */
export type RecordedAddr = number | Uint8Array;
const addrKey = (a: RecordedAddr) => (typeof a === 'number' ? String(a) : `[${ipv6ToString(a)}]`);
const tcpKey = (guestIp: RecordedAddr, guestPort: number, peerIp: RecordedAddr, peerPort: number) =>
  `${addrKey(guestIp)}:${guestPort}>${addrKey(peerIp)}:${peerPort}`;

/** The parts of a capture a simulated host needs, read once. `isPeer` tells the recorded peer's frames from the guest's. */
export function readRecording(frames: CapturedFrame[], isPeer: (frame: Buffer) => boolean): { tcp: Map<string, RecordedTcp>; udp: RecordedDatagram[] } {
  const tcp = new Map<string, RecordedTcp>();
  const udp: RecordedDatagram[] = [];
  const conn = (guestIp: RecordedAddr, guestPort: number, peerIp: RecordedAddr, peerPort: number): RecordedTcp => {
    const key = tcpKey(guestIp, guestPort, peerIp, peerPort);
    let c = tcp.get(key);
    if (!c) {
      c = {
        key, guestIp, guestPort, peerIp, peerPort, verdict: 'none', unreachableCode: 1, opened: undefined, peerIss: 0,
        synAck: { windowScale: false, timestamps: false, sackPermitted: false }, chunks: [], fin: undefined,
      };
      tcp.set(key, c);
    }
    return c;
  };
  for (const f of frames) {
    let ip: Ipv4Packet;
    let guestMac = 0;
    try {
      const eth = EthernetFrame.newChecked(f.data);
      if (!isPeer(f.data) || isMacMulticast(eth.src)) continue;
      if (eth.ethertype === EtherType.IPv6) {
        const ip6 = Ipv6Packet.newChecked(eth.payload);
        const ext = walkIpv6Ext(ip6);
        if (ext.hasFragment) continue;
        const l4 = ip6.buffer.subarray(ext.offset, ip6.end);
        if (ext.protocol === IpProtocol.UDP) recordUdp6(f, ip6, l4, udp);
        if (ext.protocol === IpProtocol.TCP) {
          const seg = TcpRepr.parse(TcpPacket.newChecked(l4));
          recordTcp(conn(Buffer.from(ip6.dst), seg.dstPort, Buffer.from(ip6.src), seg.srcPort), seg, f, eth.dst);
        }
        continue;
      }
      if (eth.ethertype !== EtherType.IPv4) continue;
      ip = Ipv4Packet.newChecked(eth.payload);
      guestMac = eth.dst;
    } catch {
      continue;
    }
    if (ip.protocol === IpProtocol.TCP) {
      let seg: TcpRepr;
      try {
        seg = TcpRepr.parse(TcpPacket.newChecked(ip.payload));
      } catch {
        continue;
      }
      // From the peer: src is the peer, dst the guest.
      recordTcp(conn(ip.dst, seg.dstPort, ip.src, seg.srcPort), seg, f, guestMac);
    } else if (ip.protocol === IpProtocol.UDP) {
      let u: UdpPacket;
      try {
        u = UdpPacket.newChecked(ip.payload);
      } catch {
        continue;
      }
      const payload = Buffer.from(u.payload);
      udp.push({
        timeMs: f.timeMs,
        key: `${u.dstPort}>${ip.src}:${u.srcPort}`,
        payload,
        dnsId: u.srcPort === 53 && payload.length >= 2 ? payload.readUInt16BE(0) : undefined,
      });
    } else if (ip.protocol === IpProtocol.ICMP) {
      // An error quoting the guest's datagram: its IPv4 header and 8 bytes.
      try {
        const icmp = Icmpv4Packet.newChecked(ip.payload);
        if (icmp.type !== Icmpv4Type.DstUnreachable) continue;
        const q = Ipv4Packet.newChecked(icmp.data);
        const ports = q.buffer.subarray(q.headerLen);
        if (ports.length < 4) continue;
        const srcPort = ports.readUInt16BE(0);
        const dstPort = ports.readUInt16BE(2);
        if (q.protocol === IpProtocol.UDP) {
          udp.push({ timeMs: f.timeMs, key: `${srcPort}>${q.dst}:${dstPort}`, payload: Buffer.alloc(0), dnsId: undefined, unreachable: icmp.code });
        } else if (q.protocol === IpProtocol.TCP && (icmp.code === 0 || icmp.code === 1)) {
          const c = conn(q.src, srcPort, q.dst, dstPort);
          if (c.verdict === 'none') {
            c.verdict = 'unreachable';
            c.unreachableCode = icmp.code;
          }
        }
      } catch {
        continue;
      }
    }
  }
  return { tcp, udp };
}

/** One segment of the recorded peer's: its verdict on the connection, its ISS and options, its bytes and FIN. */
function recordTcp(c: RecordedTcp, seg: TcpRepr, f: CapturedFrame, guestMac: number): void {
  if (seg.flags & TcpFlags.SYN) {
    if (!(seg.flags & TcpFlags.ACK) && c.verdict === 'none') c.opened = { timeMs: f.timeMs, guestMac };
    c.verdict = 'accept';
    c.peerIss = seg.seq;
    c.synAck = { windowScale: seg.windowScale !== undefined, timestamps: seg.tsVal !== undefined, sackPermitted: seg.sackPermitted };
    return;
  }
  if (seg.flags & TcpFlags.RST) {
    if (c.verdict === 'none') c.verdict = 'refuse';
    return;
  }
  const off = (seg.seq - c.peerIss - 1) >>> 0;
  if (seg.payload.length > 0) c.chunks.push({ timeMs: f.timeMs, off, data: Buffer.from(seg.payload) });
  if (seg.flags & TcpFlags.FIN && !c.fin) c.fin = { off: off + seg.payload.length, timeMs: f.timeMs };
}

/** A UDP datagram the recorded peer sent over IPv6, keyed as send6() looks for it (the peer in brackets). */
function recordUdp6(f: CapturedFrame, ip: Ipv6Packet, l4: Buffer, udp: RecordedDatagram[]): void {
  const u = UdpPacket.newChecked(l4);
  const payload = Buffer.from(u.payload);
  udp.push({
    timeMs: f.timeMs,
    key: `${u.dstPort}>[${ipv6ToString(ip.src)}]:${u.srcPort}`,
    payload,
    dnsId: u.srcPort === 53 && payload.length >= 2 ? payload.readUInt16BE(0) : undefined,
  });
}

interface SimConn {
  rec: RecordedTcp;
  flow: TcpFlow;
  state: 'connecting' | 'open' | 'done';
  /** Next byte of the recorded stream to hand to tsnet. */
  sent: number;
  finSent: boolean;
}

interface PendingDatagram {
  atMs: number;
  flow: UdpFlow;
  src: number | string;
  srcPort: number;
  payload: Buffer;
  dns: boolean;
  unreachable: number | undefined;
}

export class SimHost implements TcpHooks, UdpHooks {
  private tcpTable: TcpTable | undefined;
  private udpTable: UdpTable | undefined;
  private readonly conns = new Map<number, SimConn>();
  private readonly datagrams: PendingDatagram[] = [];
  private readonly usedUdp = new Set<RecordedDatagram>();
  /** What the guest sent on each connection (by recorded key), as tsnet delivered it. */
  readonly fromGuest = new Map<string, Buffer[]>();
  /** Connections by recorded key, as they ended here. */
  readonly ended = new Map<string, 'eof' | 'reset' | 'closed'>();
  private now = 0;
  private readonly opened = new Set<RecordedTcp>();
  private iss: number | undefined;
  private learn: ((ip: number, mac: number, now: number) => void) | undefined;

  /** `cfg`: the replayed stack's configuration (to see host addresses as the guest did). */
  constructor(
    private readonly rec: ReturnType<typeof readRecording>,
    private readonly cfg: StackConfig,
  ) {}

  bind(tcp: TcpTable | undefined, udp: UdpTable | undefined, learnNeighbor?: (ip: number, mac: number, now: number) => void): void {
    this.tcpTable = tcp;
    this.udpTable = udp;
    this.learn = learnNeighbor;
  }

  /** The ISS for a connection being opened into the guest right now (the recorded peer's), once. */
  takeIss(): number | undefined {
    const iss = this.iss;
    this.iss = undefined;
    return iss;
  }

  /** The recorded peer's ISS for a guest SYN (undefined: not in the capture). */
  issFor(guestIp: RecordedAddr, guestPort: number, peerIp: RecordedAddr, peerPort: number): number | undefined {
    const r = this.rec.tcp.get(tcpKey(guestIp, guestPort, peerIp, peerPort));
    return r && r.verdict === 'accept' ? r.peerIss : undefined;
  }

  /** What the recorded peer agreed to in its SYN-ACK. */
  synAckOf(guestIp: RecordedAddr, guestPort: number, peerIp: RecordedAddr, peerPort: number): RecordedTcp['synAck'] | undefined {
    return this.rec.tcp.get(tcpKey(guestIp, guestPort, peerIp, peerPort))?.synAck;
  }

  /** Capture time has reached nowMs: answer connects, hand over the bytes and datagrams that are due. */
  step(nowMs: number): void {
    this.now = nowMs;
    const tcp = this.tcpTable;
    if (tcp) this.openInbound(tcp, nowMs);
    for (const c of this.conns.values()) {
      if (!tcp || c.state === 'done') continue;
      if (c.state === 'connecting') {
        if (c.rec.verdict === 'accept') {
          c.state = 'open';
          tcp.accepted(nowMs, c.flow.id);
        } else if (c.rec.verdict === 'unreachable') {
          c.state = 'done';
          tcp.unreachable(nowMs, c.flow.id, c.rec.unreachableCode);
          continue;
        } else {
          c.state = 'done';
          tcp.refused(nowMs, c.flow.id);
          continue;
        }
      }
      this.feed(c, nowMs);
    }
    for (let i = 0; i < this.datagrams.length; ) {
      const d = this.datagrams[i]!;
      if (d.atMs > nowMs) {
        i++;
        continue;
      }
      this.datagrams.splice(i, 1);
      if (d.unreachable !== undefined) this.udpTable?.unreachable(nowMs, d.flow.id, d.src, d.srcPort, d.unreachable, d.dns);
      else this.udpTable?.deliver(nowMs, d.flow.id, d.src, d.srcPort, d.payload, d.dns);
    }
  }

  /** Connections the recorded peer opened by now: tsnet opens them into the guest. */
  private openInbound(tcp: TcpTable, nowMs: number): void {
    for (const r of this.rec.tcp.values()) {
      if (!r.opened || r.opened.timeMs > nowMs || this.opened.has(r)) continue;
      this.opened.add(r);
      if (typeof r.guestIp === 'number') this.learn?.(r.guestIp, r.opened.guestMac, nowMs);
      this.iss = r.peerIss;
      const flow =
        typeof r.guestIp === 'number' && typeof r.peerIp === 'number'
          ? tcp.connectInbound(nowMs, r.peerIp, r.peerPort, r.guestIp, r.guestPort)
          : typeof r.guestIp !== 'number' && typeof r.peerIp !== 'number'
            ? tcp.connectInbound6(nowMs, r.peerIp, r.peerPort, r.guestIp, r.guestPort)
            : undefined;
      this.iss = undefined;
      if (flow) this.conns.set(flow.id, { rec: r, flow, state: 'open', sent: 0, finSent: false });
    }
  }

  private feed(c: SimConn, nowMs: number): void {
    const tcp = this.tcpTable!;
    for (const ch of c.rec.chunks) {
      if (ch.timeMs > nowMs) break;
      const end = ch.off + ch.data.length;
      if (end <= c.sent) continue;
      const from = ch.data.subarray(Math.max(0, c.sent - ch.off));
      if (ch.off > c.sent) break; // a gap the capture never filled: wait
      const n = tcp.send(c.flow.id, from);
      c.sent += n;
      if (n < from.length) return; // no room: sendSpace() brings us back
    }
    const fin = c.rec.fin;
    if (fin && !c.finSent && fin.timeMs <= nowMs && c.sent >= fin.off) {
      c.finSent = true;
      tcp.close(nowMs, c.flow.id);
    }
  }

  // --- TcpHooks ----------------------------------------------------------------

  open(flow: TcpFlow, _route: TcpRoute): void {
    const tcp = this.tcpTable!;
    const rec = this.rec.tcp.get(tcpKey(tcp.address(flow.guestIp), flow.guestPort, tcp.address(flow.peerIp), flow.peerPort));
    const r: RecordedTcp = rec ?? {
      key: '', guestIp: flow.guestIp, guestPort: flow.guestPort, peerIp: flow.peerIp, peerPort: flow.peerPort, verdict: 'refuse', unreachableCode: 1,
      opened: undefined, peerIss: 0, synAck: { windowScale: false, timestamps: false, sackPermitted: false }, chunks: [], fin: undefined,
    };
    this.conns.set(flow.id, { rec: r, flow, state: 'connecting', sent: 0, finSent: false });
  }

  data(flow: TcpFlow, data: Buffer): void {
    const c = this.conns.get(flow.id);
    if (c) {
      const list = this.fromGuest.get(c.rec.key) ?? [];
      list.push(Buffer.from(data));
      this.fromGuest.set(c.rec.key, list);
    }
    this.tcpTable?.consumed(flow.id, data.length);
  }

  eof(flow: TcpFlow): void {
    const c = this.conns.get(flow.id);
    if (c) this.ended.set(c.rec.key, 'eof');
  }

  established(_flow: TcpFlow): void {}

  sendSpace(flow: TcpFlow): void {
    const c = this.conns.get(flow.id);
    if (c && c.state === 'open') this.feed(c, this.now);
  }

  reset(flow: TcpFlow): void {
    const c = this.conns.get(flow.id);
    if (c) this.ended.set(c.rec.key, 'reset');
  }

  closed(flow: TcpFlow): void {
    const c = this.conns.get(flow.id);
    if (c) {
      c.state = 'done';
      if (!this.ended.has(c.rec.key)) this.ended.set(c.rec.key, 'closed');
    }
  }

  // --- UdpHooks ----------------------------------------------------------------

  send(flow: UdpFlow, addr: number, port: number, _payload: Buffer): void {
    // The capture names the peer as the guest saw it (127.0.0.1 is 10.0.2.2).
    this.answerFrom(flow, `${flow.guestPort}>${guestVisibleSource(this.cfg, addr)}:${port}`, addr, port, false, undefined);
  }

  send6(flow: UdpFlow, addr: string, port: number, _payload: Buffer): void {
    const visible = ipv6ToString(guestVisibleSource6(this.cfg, addr));
    this.answerFrom(flow, `${flow.guestPort}>[${visible}]:${port}`, addr, port, false, undefined);
  }

  sendDns(flow: UdpFlow, payload: Buffer): void {
    const id = payload.length >= 2 ? payload.readUInt16BE(0) : -1;
    this.answerFrom(flow, undefined, 0, 53, true, id);
  }

  close(_flow: UdpFlow, _reason: UdpCloseReason): void {}

  private answerFrom(flow: UdpFlow, key: string | undefined, src: number | string, srcPort: number, dns: boolean, dnsId: number | undefined): void {
    for (const d of this.rec.udp) {
      if (this.usedUdp.has(d)) continue;
      const ok = dns ? d.dnsId === dnsId && d.key.startsWith(`${flow.guestPort}>`) : d.key === key;
      if (!ok) continue;
      this.usedUdp.add(d);
      this.datagrams.push({ atMs: Math.max(d.timeMs, this.now), flow, src, srcPort, payload: d.payload, dns, unreachable: d.unreachable });
      return;
    }
  }
}
