// `tsnet replay --diff`: where tsnet and the recorded peer differ, per
// conversation. For each TCP connection: both sides' byte streams toward the
// guest (sequence numbers relative to the recorded ISS, which replay gives
// tsnet too), whether they are equal or the first byte where they part,
// each side's FIN and resets, and whether tsnet acknowledged all the guest
// sent. For UDP: the recorded answers against tsnet's. Everything else
// (ARP, ICMP, DHCP, ICMPv6 by message type) as frame counts by kind.

import type { StackConfig } from '../stack/config.js';
import type { PcapRecord } from '../host/pcap.js';
import { ipv4ToString, ipv6ToString } from '../wire/address.js';
import { EtherType, EthernetFrame } from '../wire/ethernet.js';
import { IpProtocol, Ipv4Packet } from '../wire/ipv4.js';
import { TcpFlags as F, TcpPacket, TcpRepr } from '../wire/tcp.js';
import { UdpPacket } from '../wire/udp.js';
import { Icmpv6Packet, Icmpv6Type } from '../wire/icmpv6.js';
import { Ipv6Packet, walkIpv6Ext } from '../wire/ipv6.js';

const ICMPV6_NAMES: Record<number, string> = {
  [Icmpv6Type.DstUnreachable]: 'unreachable',
  [Icmpv6Type.EchoRequest]: 'echo request',
  [Icmpv6Type.EchoReply]: 'echo reply',
  [Icmpv6Type.RouterSolicit]: 'router solicitation',
  [Icmpv6Type.RouterAdvert]: 'router advertisement',
  [Icmpv6Type.NeighborSolicit]: 'neighbor solicitation',
  [Icmpv6Type.NeighborAdvert]: 'neighbor advertisement',
  143: 'MLDv2 report',
};

interface Parsed {
  kind: string;
  /** guest side first: "10.0.2.100:40000 > 10.0.2.2:80" */
  conv?: string;
  tcp?: TcpRepr;
  udp?: Buffer;
}

function parse(frame: Buffer, fromGuest: boolean): Parsed {
  try {
    const eth = EthernetFrame.newChecked(frame);
    if (eth.ethertype === EtherType.ARP) return { kind: 'arp' };
    if (eth.ethertype === EtherType.IPv6) {
      const ip6 = Ipv6Packet.newChecked(eth.payload);
      const ext = walkIpv6Ext(ip6);
      const l4 = ip6.buffer.subarray(ext.offset, ip6.end);
      const [g, p] = (fromGuest ? [ip6.src, ip6.dst] : [ip6.dst, ip6.src]).map((a) => `[${ipv6ToString(a)}]`);
      if (ext.protocol === IpProtocol.TCP) {
        const seg = TcpRepr.parse(TcpPacket.newChecked(l4));
        const [gp, pp] = fromGuest ? [seg.srcPort, seg.dstPort] : [seg.dstPort, seg.srcPort];
        return { kind: 'tcp', conv: `${g}:${gp} > ${p}:${pp}`, tcp: seg };
      }
      if (ext.protocol === IpProtocol.UDP) {
        const u = UdpPacket.newChecked(l4);
        const [gp, pp] = fromGuest ? [u.srcPort, u.dstPort] : [u.dstPort, u.srcPort];
        return { kind: 'udp', conv: `${g}:${gp} > ${p}:${pp}`, udp: Buffer.from(u.payload) };
      }
      if (ext.protocol !== IpProtocol.ICMPv6) return { kind: `ipv6 proto ${ext.protocol}` };
      const type = Icmpv6Packet.newChecked(l4).type;
      return { kind: `icmpv6 ${ICMPV6_NAMES[type] ?? `type ${type}`}` };
    }
    if (eth.ethertype !== EtherType.IPv4) return { kind: `ethertype 0x${eth.ethertype.toString(16)}` };
    const ip = Ipv4Packet.newChecked(eth.payload);
    const [g, p] = fromGuest ? [ip.src, ip.dst] : [ip.dst, ip.src];
    if (ip.protocol === IpProtocol.TCP) {
      const seg = TcpRepr.parse(TcpPacket.newChecked(ip.payload));
      const [gp, pp] = fromGuest ? [seg.srcPort, seg.dstPort] : [seg.dstPort, seg.srcPort];
      return { kind: 'tcp', conv: `${ipv4ToString(g)}:${gp} > ${ipv4ToString(p)}:${pp}`, tcp: seg };
    }
    if (ip.protocol === IpProtocol.UDP) {
      const u = UdpPacket.newChecked(ip.payload);
      const [gp, pp] = fromGuest ? [u.srcPort, u.dstPort] : [u.dstPort, u.srcPort];
      return { kind: pp === 67 || gp === 67 ? 'dhcp' : 'udp', conv: `${ipv4ToString(g)}:${gp} > ${ipv4ToString(p)}:${pp}`, udp: Buffer.from(u.payload) };
    }
    if (ip.protocol === IpProtocol.ICMP) return { kind: 'icmp' };
    return { kind: `ip proto ${ip.protocol}` };
  } catch {
    return { kind: 'malformed' };
  }
}

/** The byte stream segments carry, by sequence number from iss+1 (overlaps folded), and how many bytes of it no segment covered. */
export function streamOf(segs: TcpRepr[], iss: number): { data: Buffer; holes: number } {
  const parts = segs.filter((s) => s.payload.length > 0).map((s) => [(s.seq - iss - 1) >>> 0, s.payload] as const);
  const len = Math.max(0, ...parts.map(([o, d]) => o + d.length));
  const data = Buffer.alloc(len);
  const have = new Uint8Array(len);
  for (const [o, d] of parts) {
    d.copy(data, o);
    have.fill(1, o, o + d.length);
  }
  return { data, holes: have.filter((b) => b === 0).length };
}

function firstDifference(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

/** The comparison as text, one block per conversation. */
export function replayDiff(cfg: StackConfig, recordedPeer: PcapRecord[], guest: PcapRecord[], ours: PcapRecord[]): string {
  void cfg;
  const rec = recordedPeer.map((r) => parse(r.data, false));
  const mine = ours.map((r) => parse(r.data, false));
  const g = guest.map((r) => parse(r.data, true));
  const lines: string[] = [];
  const convs = [...new Set([...rec, ...mine].filter((p) => p.kind === 'tcp').map((p) => p.conv!))];
  for (const conv of convs) {
    const r = rec.filter((p) => p.conv === conv).map((p) => p.tcp!);
    const m = mine.filter((p) => p.conv === conv).map((p) => p.tcp!);
    const gs = g.filter((p) => p.conv === conv).map((p) => p.tcp!);
    const iss = (r.find((s) => s.flags & F.SYN) ?? m.find((s) => s.flags & F.SYN))?.seq ?? 0;
    const rs = streamOf(r, iss);
    const ms = streamOf(m, iss);
    const fin = (segs: TcpRepr[]) => {
      const f = segs.find((s) => s.flags & F.FIN);
      return f ? `FIN at ${((f.seq - iss - 1) >>> 0) + f.payload.length}` : 'no FIN';
    };
    const resets = (segs: TcpRepr[]) => segs.filter((s) => s.flags & F.RST).length;
    lines.push(`tcp ${conv}`);
    lines.push(`  recorded: ${r.length} segments, ${rs.data.length} bytes${rs.holes ? ` (${rs.holes} missing)` : ''}, ${fin(r)}, ${resets(r)} resets`);
    lines.push(`  tsnet:    ${m.length} segments, ${ms.data.length} bytes${ms.holes ? ` (${ms.holes} missing)` : ''}, ${fin(m)}, ${resets(m)} resets`);
    const d = firstDifference(rs.data, ms.data);
    lines.push(d < 0 ? `  stream: identical (${rs.data.length} bytes)` : `  stream: differs from byte ${d}`);
    const syn = gs.find((s) => s.flags & F.SYN);
    if (syn) {
      const end = Math.max(...gs.map((s) => ((s.seq - syn.seq) >>> 0) + s.payload.length + (s.flags & F.FIN ? 1 : 0) + (s.flags & F.SYN ? 1 : 0)));
      const acked = Math.max(0, ...m.filter((s) => s.flags & F.ACK).map((s) => (s.ack - syn.seq) >>> 0));
      // Sequence space after the SYN: the guest's bytes, then its FIN.
      const fin = gs.some((s) => s.flags & F.FIN) ? 1 : 0;
      const bytes = end - 1 - fin;
      if (end > 1) {
        const got = acked >= end ? 'all acknowledged' : `acknowledged up to byte ${Math.max(0, acked - 1)}`;
        lines.push(`  guest's ${bytes} bytes${fin ? ' and FIN' : ''}: ${got}`);
      }
    }
  }
  const udpConvs = [...new Set([...rec, ...mine].filter((p) => p.kind === 'udp').map((p) => p.conv!))];
  for (const conv of udpConvs) {
    const r = rec.filter((p) => p.conv === conv).map((p) => p.udp!.toString('hex')).sort();
    const m = mine.filter((p) => p.conv === conv).map((p) => p.udp!.toString('hex')).sort();
    const same = r.length === m.length && r.every((x, i) => x === m[i]);
    lines.push(`udp ${conv}: recorded ${r.length} datagrams, tsnet ${m.length}${same ? ', identical' : ', different'}`);
  }
  const count = (ps: Parsed[]) => {
    const c = new Map<string, number>();
    for (const p of ps) if (p.kind !== 'tcp' && p.kind !== 'udp') c.set(p.kind, (c.get(p.kind) ?? 0) + 1);
    return c;
  };
  const rc = count(rec);
  const mc = count(mine);
  for (const k of new Set([...rc.keys(), ...mc.keys()])) lines.push(`${k}: recorded ${rc.get(k) ?? 0} frames, tsnet ${mc.get(k) ?? 0}`);
  return lines.join('\n') + '\n';
}
