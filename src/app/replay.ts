// `tsnet replay`: plays the guest's side of a capture into a fresh, whole
// stack — ARP, ICMP, DHCP, DNS, UDP, TCP — against a simulated host
// (src/host/sim-host.ts) that answers from the capture's host side: no
// namespaces, no root, no sockets. Frames whose source MAC is one of the
// stack's own virtual MACs are the recorded peer's and are not fed; the
// rest is the guest speaking.
//
// Time is the capture's: before each frame, every timer due by its
// timestamp fires (retransmissions, delayed ACKs, ARP retries, expiry), and
// after the last one the stack runs on for a settle period. tsnet gets the
// recorded peer's initial sequence number for each connection and the
// guest's SYN offers only what the recorded peer accepted (window scaling,
// timestamps, SACK), so the guest's recorded ACK numbers and windows mean to
// tsnet what they meant to the recorded peer. Where the recorded peer sent
// faster than tsnet, the guest's ACK (and SACK blocks) are cut back to what
// tsnet has sent: the guest can only have received that.

import { IPV6_DNS_MAC, IPV6_ROUTER_MAC, makeConfig, type StackConfig } from '../stack/config.js';
import { Stack } from '../stack/stack.js';
import type { TcpFlow } from '../stack/tcp-flows.js';
import { seqGt, seqLt } from '../stack/tcp/seq.js';
import { makeLogger, type LogFormat, type LogLevel } from '../host/log.js';
import { PcapFormatError, PcapWriter, readPcap, type PcapRecord } from '../host/pcap.js';
import { PrereqError, fileError } from '../launcher/errors.js';
import { SimHost, readRecording, type CapturedFrame } from '../host/sim-host.js';
import { replayDiff } from './replay-diff.js';
import { pseudoV4, pseudoV6 } from '../wire/checksum.js';
import { IPV6_HEADER_LEN, Ipv6Packet, Ipv6Repr } from '../wire/ipv6.js';
import { EtherType, EthernetFrame, EthernetRepr, ETH_HEADER_LEN } from '../wire/ethernet.js';
import { IpProtocol, Ipv4Packet, Ipv4Repr } from '../wire/ipv4.js';
import { TcpFlags, TcpPacket, TcpRepr } from '../wire/tcp.js';

export interface ReplayOptions {
  input: string;
  out?: string;
  /** Print where tsnet and the recorded peer differ (src/app/replay-diff.ts). */
  diff?: boolean;
  mtu: number;
  cidr: string;
  disableHostLoopback: boolean;
  enableIpv6?: boolean;
  logLevel: LogLevel;
  logFormat?: LogFormat;
}

export interface ReplayResult {
  /** Frames fed to the stack (guest side, SYNs as rewritten). */
  input: PcapRecord[];
  /** Frames the stack emitted, stamped with the virtual time they were sent. */
  output: PcapRecord[];
  stack: Stack;
  host: SimHost;
}

/** How long the stack runs on after the last frame (timers, the host's last bytes). */
const SETTLE_MS = 5000;

function srcMac(frame: Buffer): number {
  if (frame.length < 12) return -1;
  return frame.readUIntBE(6, 6);
}

/** A frame of the recorded peer: from one of the stack's virtual MACs (IPv6's router MAC too, as slirp4netns uses it). */
export function isFromStack(cfg: StackConfig, frame: Buffer): boolean {
  const mac = srcMac(frame);
  return mac === cfg.gatewayMac || mac === cfg.dnsMac || mac === IPV6_ROUTER_MAC || mac === IPV6_DNS_MAC;
}

interface GuestTcp {
  eth: EthernetFrame;
  /** Source and destination: IPv4 numbers, or IPv6 bytes. */
  src: number | Buffer;
  dst: number | Buffer;
  /** IPv4 header fields kept when the segment is written again. */
  v4?: { ttl: number; ident: number };
  /** IPv6 hop limit, likewise. */
  hopLimit?: number;
  seg: TcpRepr;
}

/** A guest TCP segment over IPv4 or IPv6 (no extension headers), parsed; undefined for anything else. */
function guestTcp(frame: Buffer): GuestTcp | undefined {
  try {
    const eth = EthernetFrame.newChecked(frame);
    if (eth.ethertype === EtherType.IPv6) {
      const ip6 = Ipv6Packet.newChecked(eth.payload);
      if (ip6.nextHeader !== IpProtocol.TCP) return undefined;
      const seg = TcpRepr.parse(TcpPacket.newChecked(ip6.payload));
      return { eth, src: Buffer.from(ip6.src), dst: Buffer.from(ip6.dst), hopLimit: ip6.hopLimit, seg };
    }
    if (eth.ethertype !== EtherType.IPv4) return undefined;
    const ip = Ipv4Packet.newChecked(eth.payload);
    if (ip.protocol !== IpProtocol.TCP) return undefined;
    return { eth, src: ip.src, dst: ip.dst, v4: { ttl: ip.ttl, ident: ip.ident }, seg: TcpRepr.parse(TcpPacket.newChecked(ip.payload)) };
  } catch {
    return undefined;
  }
}

/** The segment written out again (after its Repr was changed), checksums made anew. */
function reemit(t: GuestTcp): Buffer {
  const tcpLen = t.seg.bufferLen();
  if (typeof t.src !== 'number' && typeof t.dst !== 'number') {
    const ip6 = new Ipv6Repr({ src: t.src, dst: t.dst, nextHeader: IpProtocol.TCP, payloadLen: tcpLen, hopLimit: t.hopLimit });
    const frame = Buffer.alloc(ETH_HEADER_LEN + ip6.bufferLen());
    new EthernetRepr({ src: t.eth.src, dst: t.eth.dst, ethertype: EtherType.IPv6 }).emit(frame);
    ip6.emit(frame.subarray(ETH_HEADER_LEN));
    t.seg.emit(frame.subarray(ETH_HEADER_LEN + IPV6_HEADER_LEN), pseudoV6(t.src, t.dst, IpProtocol.TCP, tcpLen));
    return frame;
  }
  const src = t.src as number;
  const dst = t.dst as number;
  const ipr = new Ipv4Repr({ src, dst, protocol: IpProtocol.TCP, payloadLen: tcpLen, ttl: t.v4!.ttl, ident: t.v4!.ident });
  const frame = Buffer.alloc(ETH_HEADER_LEN + ipr.bufferLen());
  new EthernetRepr({ src: t.eth.src, dst: t.eth.dst, ethertype: EtherType.IPv4 }).emit(frame);
  const ipBuf = frame.subarray(ETH_HEADER_LEN);
  ipr.emit(ipBuf);
  t.seg.emit(ipBuf.subarray(ipr.headerLen()), pseudoV4(src, dst, IpProtocol.TCP, tcpLen));
  return frame;
}

/** The flow a guest segment belongs to, if any (IPv6 addresses through their handles). */
function flowOf(stack: Stack, t: GuestTcp): TcpFlow | undefined {
  const v6 = stack.flows.v6;
  const g = typeof t.src === 'number' ? t.src : v6.find(t.src);
  const p = typeof t.dst === 'number' ? t.dst : v6.find(t.dst);
  if (g === undefined || p === undefined) return undefined;
  return stack.flows.lookup('tcp', g, t.seg.srcPort, p, t.seg.dstPort) as TcpFlow | undefined;
}

/** The guest's SYN, offering only what the recorded peer's SYN-ACK accepted. */
function narrowSyn(t: GuestTcp, accepted: { windowScale: boolean; timestamps: boolean; sackPermitted: boolean }): Buffer {
  const seg = t.seg;
  if (!accepted.windowScale) seg.windowScale = undefined;
  if (!accepted.timestamps) {
    seg.tsVal = undefined;
    seg.tsEcr = undefined;
  }
  if (!accepted.sackPermitted) seg.sackPermitted = false;
  return reemit(t);
}

/**
 * The guest acknowledged (or SACKed) bytes the recorded peer had sent and
 * tsnet has not sent yet (the recorded peer sent faster): it can only have
 * received what tsnet sent, so the ACK and SACK blocks are cut back to
 * SND.MAX. Undefined when nothing needs changing.
 */
function clampAck(t: GuestTcp, sentUpTo: number): Buffer | undefined {
  const seg = t.seg;
  let changed = false;
  if (seg.flags & TcpFlags.ACK && seqGt(seg.ack, sentUpTo)) {
    seg.ack = sentUpTo;
    changed = true;
  }
  if (seg.sackBlocks) {
    const kept = seg.sackBlocks.filter(([l]) => seqLt(l, sentUpTo)).map(([l, r]): [number, number] => [l, seqGt(r, sentUpTo) ? sentUpTo : r]);
    if (kept.length !== seg.sackBlocks.length || kept.some(([, r], i) => r !== seg.sackBlocks![i]![1])) {
      seg.sackBlocks = kept.length > 0 ? kept : undefined;
      changed = true;
    }
  }
  return changed ? reemit(t) : undefined;
}

/** Replays records through a new stack and a simulated host; pure apart from what the caller passes in. */
export function replayRecords(records: PcapRecord[], cfg: StackConfig, onDrop?: (reason: string, detail?: unknown) => void): ReplayResult {
  const output: PcapRecord[] = [];
  const input: PcapRecord[] = [];
  const t0 = records[0]?.timeUs ?? 0;
  const frames: CapturedFrame[] = records.map((r) => ({ timeMs: (r.timeUs - t0) / 1000, data: r.data }));
  const host = new SimHost(readRecording(frames, (f) => isFromStack(cfg, f)), cfg);
  let nowMs = 0;
  let nextIss: number | undefined;
  let issCounter = 0x1000;
  const stack = new Stack(
    cfg,
    { transmit: (frame) => output.push({ timeUs: t0 + Math.round(nowMs * 1000), data: Buffer.from(frame) }), onDrop, tcp: host, udp: host },
    { iss: () => nextIss ?? host.takeIss() ?? (issCounter = (issCounter + 0x10000) >>> 0) },
  );
  host.bind(stack.tcp, stack.udp, (ip, mac, now) => stack.learnNeighbor(ip, mac, now));

  const settle = (t: number) => {
    nowMs = t;
    host.step(t);
    stack.flush(t);
  };
  /** Fires every timer due by t, in order, with the host stepping along. */
  const runUntil = (t: number) => {
    for (let guard = 0; guard < 100_000; guard++) {
      const at = stack.pollAt();
      if (!(at <= t) || at < nowMs) break;
      nowMs = at;
      stack.poll(at);
      settle(at);
    }
    settle(t);
  };

  for (const f of frames) {
    runUntil(f.timeMs);
    if (isFromStack(cfg, f.data)) continue;
    let data = f.data;
    const t = guestTcp(data);
    if (t && t.seg.flags & TcpFlags.SYN && !(t.seg.flags & TcpFlags.ACK)) {
      nextIss = host.issFor(t.src, t.seg.srcPort, t.dst, t.seg.dstPort);
      const accepted = host.synAckOf(t.src, t.seg.srcPort, t.dst, t.seg.dstPort);
      if (accepted) data = narrowSyn(t, accepted);
    } else if (t) {
      const flow = flowOf(stack, t);
      if (flow) data = clampAck(t, flow.conn.sentUpTo) ?? data;
    }
    input.push({ timeUs: t0 + Math.round(f.timeMs * 1000), data });
    stack.receive(f.timeMs, data);
    nextIss = undefined;
    settle(f.timeMs);
  }
  runUntil((frames.at(-1)?.timeMs ?? 0) + SETTLE_MS);
  return { input, output, stack, host };
}

export async function runReplay(o: ReplayOptions): Promise<number> {
  const log = makeLogger(o.logLevel, o.logFormat);
  const cfg = makeConfig({ cidr: o.cidr, mtu: o.mtu, disableHostLoopback: o.disableHostLoopback, enableIpv6: o.enableIpv6 });
  const records = await readPcap(o.input).catch((e: unknown) => {
    if (e instanceof PcapFormatError) throw new PrereqError(`<in.pcap>: ${e.message}`);
    throw fileError('<in.pcap>', o.input, 'read', e, 'name an Ethernet pcap, e.g. one written by --pcap or tcpdump -w');
  });
  const result = replayRecords(records, cfg, (reason, detail) => log.debug({ reason, detail }, 'frame dropped'));
  if (o.out) {
    let w: PcapWriter;
    try {
      w = new PcapWriter(o.out);
    } catch (e) {
      throw fileError('--out', o.out, 'create', e, 'name a file in a directory you can write');
    }
    for (const r of result.output) w.write(r.data, r.timeUs);
    w.close();
  }
  const c = result.stack.counters.snapshot();
  const drops = Object.entries(c.drops)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  process.stdout.write(
    `${o.input}: ${records.length} frames, ${result.input.length} from the guest; stack sent ${result.output.length}` +
      (o.out ? ` (written to ${o.out})` : '') +
      `; dropped ${result.stack.counters.totalDrops()}${drops ? ` (${drops})` : ''}\n`,
  );
  if (o.diff) {
    const recordedPeer = records.filter((r) => isFromStack(cfg, r.data));
    process.stdout.write(replayDiff(cfg, recordedPeer, result.input, result.output));
  }
  return 0;
}
