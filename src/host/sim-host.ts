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

import { isMacMulticast } from '../wire/address.js';
import { EtherType, EthernetFrame } from '../wire/ethernet.js';
import { IpProtocol, Ipv4Packet } from '../wire/ipv4.js';
import { TcpFlags, TcpPacket, TcpRepr } from '../wire/tcp.js';
import { UdpPacket } from '../wire/udp.js';
import type { TcpFlow, TcpHooks, TcpRoute, TcpTable } from '../stack/tcp-flows.js';
import type { UdpCloseReason, UdpFlow, UdpHooks, UdpTable } from '../stack/udp.js';

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
  verdict: 'accept' | 'refuse' | 'none';
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
}

const tcpKey = (guestIp: number, guestPort: number, peerIp: number, peerPort: number) => `${guestIp}:${guestPort}>${peerIp}:${peerPort}`;

/** The parts of a capture a simulated host needs, read once. `isPeer` tells the recorded peer's frames from the guest's. */
export function readRecording(frames: CapturedFrame[], isPeer: (frame: Buffer) => boolean): { tcp: Map<string, RecordedTcp>; udp: RecordedDatagram[] } {
  const tcp = new Map<string, RecordedTcp>();
  const udp: RecordedDatagram[] = [];
  for (const f of frames) {
    let ip: Ipv4Packet;
    try {
      const eth = EthernetFrame.newChecked(f.data);
      if (eth.ethertype !== EtherType.IPv4 || !isPeer(f.data) || isMacMulticast(eth.src)) continue;
      ip = Ipv4Packet.newChecked(eth.payload);
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
      const key = tcpKey(ip.dst, seg.dstPort, ip.src, seg.srcPort);
      let c = tcp.get(key);
      if (!c) {
        c = { key, verdict: 'none', peerIss: 0, synAck: { windowScale: false, timestamps: false, sackPermitted: false }, chunks: [], fin: undefined };
        tcp.set(key, c);
      }
      if (seg.flags & TcpFlags.SYN) {
        c.verdict = 'accept';
        c.peerIss = seg.seq;
        c.synAck = { windowScale: seg.windowScale !== undefined, timestamps: seg.tsVal !== undefined, sackPermitted: seg.sackPermitted };
        continue;
      }
      if (seg.flags & TcpFlags.RST) {
        if (c.verdict === 'none') c.verdict = 'refuse';
        continue;
      }
      const off = (seg.seq - c.peerIss - 1) >>> 0;
      if (seg.payload.length > 0) c.chunks.push({ timeMs: f.timeMs, off, data: Buffer.from(seg.payload) });
      if (seg.flags & TcpFlags.FIN && !c.fin) c.fin = { off: off + seg.payload.length, timeMs: f.timeMs };
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
    }
  }
  return { tcp, udp };
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
  src: number;
  srcPort: number;
  payload: Buffer;
  dns: boolean;
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

  constructor(private readonly rec: ReturnType<typeof readRecording>) {}

  bind(tcp: TcpTable | undefined, udp: UdpTable | undefined): void {
    this.tcpTable = tcp;
    this.udpTable = udp;
  }

  /** The recorded peer's ISS for a guest SYN (undefined: not in the capture). */
  issFor(guestIp: number, guestPort: number, peerIp: number, peerPort: number): number | undefined {
    const r = this.rec.tcp.get(tcpKey(guestIp, guestPort, peerIp, peerPort));
    return r && r.verdict === 'accept' ? r.peerIss : undefined;
  }

  /** What the recorded peer agreed to in its SYN-ACK. */
  synAckOf(guestIp: number, guestPort: number, peerIp: number, peerPort: number): RecordedTcp['synAck'] | undefined {
    return this.rec.tcp.get(tcpKey(guestIp, guestPort, peerIp, peerPort))?.synAck;
  }

  /** Capture time has reached nowMs: answer connects, hand over the bytes and datagrams that are due. */
  step(nowMs: number): void {
    this.now = nowMs;
    const tcp = this.tcpTable;
    for (const c of this.conns.values()) {
      if (!tcp || c.state === 'done') continue;
      if (c.state === 'connecting') {
        if (c.rec.verdict === 'accept') {
          c.state = 'open';
          tcp.accepted(nowMs, c.flow.id);
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
      this.udpTable?.deliver(nowMs, d.flow.id, d.src, d.srcPort, d.payload, d.dns);
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
    const rec = this.rec.tcp.get(tcpKey(flow.guestIp, flow.guestPort, flow.peerIp, flow.peerPort));
    const r: RecordedTcp = rec ?? { key: '', verdict: 'refuse', peerIss: 0, synAck: { windowScale: false, timestamps: false, sackPermitted: false }, chunks: [], fin: undefined };
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
    this.answerFrom(flow, `${flow.guestPort}>${addr}:${port}`, addr, port, false, undefined);
  }

  sendDns(flow: UdpFlow, payload: Buffer): void {
    const id = payload.length >= 2 ? payload.readUInt16BE(0) : -1;
    this.answerFrom(flow, undefined, 0, 53, true, id);
  }

  close(_flow: UdpFlow, _reason: UdpCloseReason): void {}

  private answerFrom(flow: UdpFlow, key: string | undefined, src: number, srcPort: number, dns: boolean, dnsId: number | undefined): void {
    for (const d of this.rec.udp) {
      if (this.usedUdp.has(d)) continue;
      const ok = dns ? d.dnsId === dnsId && d.key.startsWith(`${flow.guestPort}>`) : d.key === key;
      if (!ok) continue;
      this.usedUdp.add(d);
      this.datagrams.push({ atMs: Math.max(d.timeMs, this.now), flow, src, srcPort, payload: d.payload, dns });
      return;
    }
  }
}
