// Golden replays: whole sessions recorded against the real slirp4netns
// (pcaps/README.md, sessions A to D) played through `tsnet replay`'s whole
// stack and simulated host. What tsnet sends is checked against what a
// correct peer must send, not merely counted: the byte stream each
// connection delivers to the guest equals the one the recorded peer
// delivered; every segment's sequence number lies where that stream puts
// it (tsnet is given the recorded peer's ISS, so the numbers are the
// recorded ones); what tsnet acknowledges covers all the guest sent and its
// FIN; nothing is reset; the guest's bytes reach the host intact; DNS and
// DHCP answers carry the right ids.

import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isFromStack, replayRecords } from '../../src/app/replay.js';
import { streamOf } from '../../src/app/replay-diff.js';
import { readPcap, type PcapRecord } from '../../src/host/pcap.js';
import { makeConfig } from '../../src/stack/config.js';
import { EtherType, EthernetFrame } from '../../src/wire/ethernet.js';
import { IpProtocol, Ipv4Packet } from '../../src/wire/ipv4.js';
import { TcpFlags as F, TcpPacket, TcpRepr } from '../../src/wire/tcp.js';
import { UdpPacket } from '../../src/wire/udp.js';
import { pseudoV6 } from '../../src/wire/checksum.js';
import { ipv6ToString } from '../../src/wire/address.js';
import { Icmpv6Packet, Icmpv6Repr, Icmpv6Type } from '../../src/wire/icmpv6.js';
import { Ipv6Packet } from '../../src/wire/ipv6.js';

const PCAPS = path.resolve(import.meta.dirname, '../../pcaps');
const cfg = makeConfig();

interface Seg {
  src: number;
  dst: number;
  seg: TcpRepr;
}

function tcpSegs(records: PcapRecord[]): Seg[] {
  return records.flatMap((r) => {
    const eth = EthernetFrame.newChecked(r.data);
    if (eth.ethertype === EtherType.IPv6) {
      const ip6 = Ipv6Packet.newChecked(eth.payload);
      if (ip6.nextHeader !== IpProtocol.TCP) return [];
      const seg = TcpRepr.parse(TcpPacket.newChecked(ip6.payload), { pseudoSum: pseudoV6(ip6.src, ip6.dst, IpProtocol.TCP, ip6.payloadLen) });
      return [{ src: -1, dst: -1, seg }];
    }
    if (eth.ethertype !== EtherType.IPv4) return [];
    const ip = Ipv4Packet.newChecked(eth.payload);
    if (ip.protocol !== IpProtocol.TCP) return [];
    return [{ src: ip.src, dst: ip.dst, seg: TcpRepr.parse(TcpPacket.newChecked(ip.payload)) }];
  });
}

function udpPayloads(records: PcapRecord[]): Buffer[] {
  return records.flatMap((r) => {
    const eth = EthernetFrame.newChecked(r.data);
    if (eth.ethertype === EtherType.IPv6) {
      const ip6 = Ipv6Packet.newChecked(eth.payload);
      return ip6.nextHeader === IpProtocol.UDP ? [Buffer.from(UdpPacket.newChecked(ip6.payload).payload)] : [];
    }
    if (eth.ethertype !== EtherType.IPv4) return [];
    const ip = Ipv4Packet.newChecked(eth.payload);
    return ip.protocol === IpProtocol.UDP ? [Buffer.from(UdpPacket.newChecked(ip.payload).payload)] : [];
  });
}

function stream(segs: TcpRepr[], iss: number): Buffer {
  const s = streamOf(segs, iss);
  expect(s.holes, 'the stream has no hole').toBe(0);
  return s.data;
}

async function session(name: string, c = cfg) {
  const records = await readPcap(path.join(PCAPS, name));
  const recordedPeer = records.filter((r) => isFromStack(c, r.data));
  const guest = records.filter((r) => !isFromStack(c, r.data));
  const r = replayRecords(records, c);
  return { records, recordedPeer, guest, ...r };
}

/** The checks every replayed TCP session must pass; returns the stream tsnet delivered. */
function checkTcpSession(s: Awaited<ReturnType<typeof session>>): Buffer {
  const recorded = tcpSegs(s.recordedPeer).map((x) => x.seg);
  const ours = tcpSegs(s.output).map((x) => x.seg);
  const guestSegs = tcpSegs(s.guest).map((x) => x.seg);
  // The recorded peer's SYN-ACK (the guest connected) or SYN (a port forward).
  const peerSyn = recorded.find((x) => x.flags & F.SYN)!;
  const ourSyn = ours.find((x) => x.flags & F.SYN)!;
  expect(ourSyn.flags).toBe(peerSyn.flags & (F.SYN | F.ACK));
  expect(ourSyn.seq).toBe(peerSyn.seq); // the recorded ISS, as given
  const iss = peerSyn.seq;
  // The same bytes, in the same places, ending with a FIN right after them.
  const want = stream(recorded, iss);
  const got = stream(ours, iss);
  expect(got.equals(want), `${got.length} bytes vs ${want.length}`).toBe(true);
  const fin = ours.find((x) => x.flags & F.FIN);
  expect(fin, 'tsnet closed its side').toBeDefined();
  expect((fin!.seq + fin!.payload.length) >>> 0).toBe((iss + 1 + want.length) >>> 0);
  for (const x of ours) {
    const off = (x.seq - iss - 1) >>> 0;
    // Data inside the stream; bare ACKs at most one past it (after our FIN).
    if (!(x.flags & F.SYN)) expect(off <= want.length + (x.payload.length === 0 ? 1 : 0), `segment at ${off}`).toBe(true);
    expect(x.flags & F.RST).toBe(0);
  }
  // Everything the guest sent, its FIN included, acknowledged.
  const guestSyn = guestSegs.find((x) => x.flags & F.SYN)!;
  const guestEnd = Math.max(...guestSegs.map((x) => ((x.seq - guestSyn.seq) >>> 0) + x.payload.length + (x.flags & F.FIN ? 1 : 0)));
  const maxAck = Math.max(...ours.filter((x) => x.flags & F.ACK).map((x) => (x.ack - guestSyn.seq) >>> 0));
  expect(maxAck).toBe(guestEnd);
  // And the guest's bytes reached the host as it sent them.
  const fromGuest = Buffer.concat([...s.host.fromGuest.values()].flat());
  expect(fromGuest.equals(stream(guestSegs, guestSyn.seq))).toBe(true);
  expect(s.stack.counters.drops.get('internal-error')).toBeUndefined();
  return got;
}

/** ICMPv6 messages in frames, parsed (checksum verified). */
function icmpv6(records: PcapRecord[]) {
  return records.flatMap((r) => {
    const eth = EthernetFrame.newChecked(r.data);
    if (eth.ethertype !== EtherType.IPv6) return [];
    const ip = Ipv6Packet.newChecked(eth.payload);
    if (ip.nextHeader !== IpProtocol.ICMPv6) return [];
    const pkt = Icmpv6Packet.newChecked(ip.payload);
    expect(pkt.verifyChecksum(ip.src, ip.dst)).toBe(true);
    return [{ eth, ip, msg: Icmpv6Repr.parse(pkt, ip.src, ip.dst) }];
  });
}

describe('IPv6 replays (session B, slirp4netns --enable-ipv6; tsnet -6)', () => {
  const cfg6 = makeConfig({ enableIpv6: true });
  const replay6 = async (name: string) => {
    const records = await readPcap(path.join(PCAPS, name));
    return { recorded: icmpv6(records.filter((r) => isFromStack(cfg6, r.data))), ...replayRecords(records, cfg6) };
  };

  it('ipv6-ndp.pcap: the router solicitation is answered with the advertisement slirp4netns sent (prefix, flags, lifetimes, router MAC); DAD is left alone', async () => {
    const s = await replay6('ipv6-ndp.pcap');
    const want = s.recorded.find((m) => m.msg.type === Icmpv6Type.RouterAdvert)!.msg;
    const ours = icmpv6(s.output).filter((m) => m.msg.type === Icmpv6Type.RouterAdvert);
    expect(ours.length).toBeGreaterThan(0);
    const solicitedAt = s.input.find((r) => icmpv6([r]).some((m) => m.msg.type === Icmpv6Type.RouterSolicit))!.timeUs;
    const answer = icmpv6(s.output.filter((r) => r.timeUs === solicitedAt))[0]!;
    const same = (m: Icmpv6Repr) => [m.curHopLimit, m.flags, m.routerLifetime, m.sourceLinkAddr, JSON.stringify(m.options.find((o) => o.kind === 'prefix-info'))];
    expect(same(answer.msg)).toEqual(same(want));
    expect(ipv6ToString(answer.ip.src)).toBe('fe80::2');
    // Nothing answers the guest's duplicate address detection.
    expect(icmpv6(s.output).filter((m) => m.msg.type === Icmpv6Type.NeighborAdvert)).toHaveLength(0);
  });

  it('ipv6-http-curl.pcap: curl over IPv6 to fd00::2 gets the page from the host\'s ::1, byte for byte', async () => {
    const s = await session('ipv6-http-curl.pcap', cfg6);
    const got = checkTcpSession(s).toString();
    expect(got).toMatch(/^HTTP\/1\.0 200 OK/);
    expect(got).toContain('hello from the tsnet pcap recorder');
  });

  it('ipv6-dns-tcp.pcap and ipv6-dns-udp.pcap: DNS through fd00::3 answered with the recorded answers', async () => {
    const t = await session('ipv6-dns-tcp.pcap', cfg6);
    const got = checkTcpSession(t);
    expect(got.readUInt16BE(2)).toBe(0x1234);
    const u = await session('ipv6-dns-udp.pcap', cfg6);
    expect(udpPayloads(u.output).map((p) => p.toString('hex'))).toEqual(udpPayloads(u.recordedPeer).map((p) => p.toString('hex')));
    expect(udpPayloads(u.output)[0]!.readUInt16BE(0)).toBe(0x4321);
  });

  it('ipv6-ping-gateway.pcap: fd00::2 is resolved to the router MAC (R, S, O) and the three echoes come back unchanged', async () => {
    const s = await replay6('ipv6-ping-gateway.pcap');
    const ours = icmpv6(s.output);
    const na = ours.find((m) => m.msg.type === Icmpv6Type.NeighborAdvert)!;
    const wantNa = s.recorded.find((m) => m.msg.type === Icmpv6Type.NeighborAdvert)!;
    expect([na.msg.flags, ipv6ToString(na.msg.target), na.msg.targetLinkAddr]).toEqual([wantNa.msg.flags, ipv6ToString(wantNa.msg.target), wantNa.msg.targetLinkAddr]);
    const echo = (ms: typeof ours) => ms.filter((m) => m.msg.type === Icmpv6Type.EchoReply).map((m) => [m.msg.ident, m.msg.seq, m.msg.data.toString('hex'), ipv6ToString(m.ip.src), ipv6ToString(m.ip.dst)]);
    expect(echo(ours)).toEqual(echo(s.recorded));
    expect(echo(ours)).toHaveLength(3);
  });
});

describe('golden replays of whole sessions (recorded against slirp4netns)', () => {
  it('dns-tcp.pcap: a DNS query over TCP to 10.0.2.3 is answered with the recorded answer, both sides closed', async () => {
    const s = await session('dns-tcp.pcap');
    const got = checkTcpSession(s);
    expect(got.readUInt16BE(0)).toBe(got.length - 2); // one length-prefixed message
    expect(got.readUInt16BE(2)).toBe(0x1234); // the query's id
  });

  it('http-curl.pcap: curl gets the page; tsnet closes after the server did', async () => {
    const s = await session('http-curl.pcap');
    const got = checkTcpSession(s).toString();
    expect(got).toMatch(/^HTTP\/1\.0 200 OK/);
    expect(got).toContain('hello from the tsnet pcap recorder');
  });

  it('tcp-syn.pcap: the wget session of session A likewise', async () => {
    const s = await session('tcp-syn.pcap');
    expect(checkTcpSession(s).toString()).toContain('hello from the tsnet pcap recorder');
  });

  // The guest's ACKs are the ones it gave slirp4netns, which sent its whole
  // window at once; tsnet starts with ten segments. The replay cuts ACKs
  // (and SACK blocks) back to what tsnet has sent, and the recorded losses
  // show up as the guest's duplicate ACKs: tsnet recovers from them.
  it('http-download-loss.pcap: the 1 MiB download with 3 % loss each way delivers every byte in place; both sides close', async () => {
    const s = await session('http-download-loss.pcap');
    const got = checkTcpSession(s);
    const body = got.subarray(got.indexOf('\r\n\r\n') + 4);
    expect(body.length).toBe(1 << 20);
    for (let i = 0; i < body.length; i += 4099) expect(body[i]).toBe((i * 7) % 251);
    expect(s.stack.tcp!.stats().retransmits).toBeGreaterThan(0);
  });

  it('tcp-upload.pcap: 256 KiB from the guest reach the host intact and acknowledged; the host closes after the guest', async () => {
    const s = await session('tcp-upload.pcap');
    expect(checkTcpSession(s).length).toBe(0);
    const up = Buffer.concat([...s.host.fromGuest.values()].flat());
    expect(up.length).toBe(1 << 18);
    for (let i = 0; i < up.length; i += 1009) expect(up[i]).toBe((i * 13) % 253);
  });

  it('port-forward.pcap: a host client forwarded into the guest: tsnet opens from 10.0.2.2 with a SYN, sends the request, gets the page', async () => {
    const s = await session('port-forward.pcap');
    checkTcpSession(s);
    const ours = tcpSegs(s.output);
    expect(ours[0]!.seg.flags).toBe(F.SYN);
    expect([ours[0]!.src, ours[0]!.seg.dstPort]).toEqual([cfg.gateway, 80]);
    expect(Buffer.concat([...s.host.fromGuest.values()].flat()).toString()).toContain('hello from inside the guest');
  });

  it('tcp-refused.pcap: a connect to a closed host port is answered RST|ACK for the SYN', async () => {
    const s = await session('tcp-refused.pcap');
    const [syn] = tcpSegs(s.guest);
    const ours = tcpSegs(s.output);
    expect(ours).toHaveLength(1);
    expect(ours[0]!.seg.flags).toBe(F.RST | F.ACK);
    expect(ours[0]!.seg.ack).toBe((syn!.seg.seq + 1) >>> 0);
    expect(s.stack.tcp!.size).toBe(0);
  });

  it('udp-refused.pcap: a datagram to a closed host port gets ICMP port unreachable from 10.0.2.2, quoting it', async () => {
    const s = await session('udp-refused.pcap');
    const sent = s.guest.map((r) => Ipv4Packet.newChecked(EthernetFrame.newChecked(r.data).payload));
    const icmp = s.output.map((r) => Ipv4Packet.newChecked(EthernetFrame.newChecked(r.data).payload));
    expect(icmp).toHaveLength(1);
    expect([icmp[0]!.protocol, icmp[0]!.src, icmp[0]!.dst]).toEqual([IpProtocol.ICMP, cfg.gateway, sent[0]!.src]);
    const msg = icmp[0]!.payload;
    expect([msg[0], msg[1]]).toEqual([3, 3]); // destination unreachable, port
    const quoted = Ipv4Packet.newChecked(msg.subarray(8));
    const ports = quoted.buffer.subarray(quoted.headerLen, quoted.headerLen + 4);
    const orig = sent[0]!.payload.subarray(0, 4);
    expect([quoted.src, quoted.dst, ports.equals(orig)]).toEqual([sent[0]!.src, sent[0]!.dst, true]);
  });

  it('udp-dns.pcap: both queries answered with the recorded answers, ids matching', async () => {
    const s = await session('udp-dns.pcap');
    const asked = udpPayloads(s.guest).map((p) => p.readUInt16BE(0));
    const answered = udpPayloads(s.output).map((p) => p.readUInt16BE(0));
    expect(answered.sort()).toEqual(asked.sort());
    expect(udpPayloads(s.output).map((p) => p.toString('hex')).sort()).toEqual(udpPayloads(s.recordedPeer).map((p) => p.toString('hex')).sort());
  });

  it('dhcp.pcap: DISCOVER gets an OFFER and REQUEST an ACK of 10.0.2.15, for the same transaction', async () => {
    const s = await session('dhcp.pcap');
    const replies = udpPayloads(s.output);
    expect(replies).toHaveLength(2);
    const xid = udpPayloads(s.guest)[0]!.readUInt32BE(4);
    for (const r of replies) {
      expect(r.readUInt32BE(4)).toBe(xid);
      expect([...r.subarray(16, 20)].join('.')).toBe('10.0.2.15'); // yiaddr
    }
    const type = (r: Buffer) => r[r.indexOf(Buffer.from([53, 1]), 240) + 2];
    expect(replies.map(type)).toEqual([2, 5]); // OFFER, ACK
  });
});
