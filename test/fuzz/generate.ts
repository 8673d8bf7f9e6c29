// Frame generators and mutators: where every fuzz input comes from. One call
// to next() yields one Ethernet frame and the name of the generator that
// made it. The mix: mutations of every pcaps/ capture; frames built to lie
// at one layer (truncations at every layer boundary, IPv4 total length/IHL,
// UDP length, TCP data offset); IPv4 options and fragments; odd TCP flag
// combinations and malformed TCP options; every special address class as
// source and destination; port 0; DHCP with malformed options; ARP with bad
// lengths; IPv6, unknown ethertypes, 802.1Q/802.1ad tags; random bytes —
// and, for a large share, the guest TCP model's conversations (guest-tcp.ts)
// so connection state machines are reached. Generated frames mostly carry
// correct checksums (computed after the lie, as the stack verifies them);
// a fraction are spoiled on purpose.

import { MAC_BROADCAST } from '../../src/wire/address.js';
import { ArpOperation } from '../../src/wire/arp.js';
import { DHCP_CLIENT_PORT, DHCP_SERVER_PORT, DhcpMessageType, DhcpRepr, BootpOp } from '../../src/wire/dhcp.js';
import { EtherType } from '../../src/wire/ethernet.js';
import { Icmpv4Type } from '../../src/wire/icmpv4.js';
import { IpProtocol } from '../../src/wire/ipv4.js';
import { TcpFlags, type TcpFields } from '../../src/wire/tcp.js';
import { GUEST_MAC, type AddressPlan } from './addresses.js';
import { arp, breakChecksum, eth, fixChecksums, icmp, ipv4, layers, tcp, udp, type Ipv4Spec } from './build.js';
import { GuestTcp } from './guest-tcp.js';
import type { Rng } from './rng.js';
import type { SeedFrame } from './seeds.js';

export interface Generated {
  kind: string;
  frame: Buffer;
  /** A checksum was spoiled on purpose. */
  badChecksum?: boolean;
}

type Gen = () => Generated;

/** Guest ports the non-model generators use (the model owns 20000–59999). */
const FUZZ_PORT_HI = 19999;

export class FrameGenerator {
  private readonly table: ReadonlyArray<readonly [number, string, Gen]>;
  /** 4-tuples this generator opened with a SYN (odd segments follow on them). */
  private readonly recent: Array<[number, number, number, number]> = [];
  private now = 0;

  constructor(
    private readonly r: Rng,
    private readonly plan: AddressPlan,
    private readonly seeds: readonly SeedFrame[],
    readonly guest: GuestTcp,
    private readonly mtu: number,
  ) {
    this.table = [
      [30, 'tcp-conversation', () => this.guest.next(this.now)],
      [2, 'pcap-replay', () => this.pcapReplay()],
      [14, 'pcap-mutate', () => this.pcapMutate()],
      [6, 'truncate', () => this.truncate()],
      [4, 'ipv4-lying-length', () => this.ipv4LyingLength()],
      [3, 'ipv4-options', () => this.ipv4Options()],
      [3, 'ipv4-fragment', () => this.ipv4Fragment()],
      [5, 'tcp-flags', () => this.tcpFlags()],
      [5, 'tcp-options', () => this.tcpOptions()],
      [2, 'tcp-data-offset', () => this.tcpDataOffset()],
      [6, 'udp', () => this.udpGen()],
      [2, 'udp-length', () => this.udpLength()],
      [1, 'port-zero', () => this.portZero()],
      [5, 'icmp', () => this.icmpGen()],
      [5, 'dhcp', () => this.dhcp()],
      [4, 'arp', () => this.arpGen()],
      [2, 'ipv6', () => this.ipv6()],
      [2, 'ethertype', () => this.ethertype()],
      [2, 'vlan', () => this.vlan()],
      [1, 'random-bytes', () => this.randomBytes()],
    ];
  }

  /** The next input frame. */
  next(now: number): Generated {
    this.now = now;
    const r = this.r;
    let total = 0;
    for (const [w] of this.table) total += w;
    let x = r.float() * total;
    let gen: Gen = this.table[0]![2];
    for (const [w, , g] of this.table) {
      x -= w;
      if (x < 0) {
        gen = g;
        break;
      }
    }
    const g = gen();
    if (g.kind.startsWith('tcp-conv') || g.kind === 'arp-answer' || g.kind === 'tcp-rst-for-stray') return g;
    // Oversized now and then (jumbo frames from a guest with a bigger MTU).
    if (r.chance(0.005)) g.frame = Buffer.concat([g.frame, r.bytes(r.int(9000))]);
    this.noteForeign(g.frame);
    return g;
  }

  /** A fuzz frame that happens to be TCP on a model 4-tuple: the model stops checking that stream. */
  private noteForeign(f: Buffer): void {
    const L = layers(f);
    if (L.protocol !== IpProtocol.TCP || L.l4 < 0 || L.l4 + 4 > f.length) return;
    const sport = f.readUInt16BE(L.l4);
    if (!GuestTcp.isModelPort(sport)) return;
    this.guest.taint(f.readUInt32BE(L.l3 + 12), sport, f.readUInt32BE(L.l3 + 16), f.readUInt16BE(L.l4 + 2));
  }

  // ------------------------------------------------------------------ helpers

  private fuzzPort(): number {
    const p = this.plan.port(this.r);
    return p > FUZZ_PORT_HI && p < 65535 ? 1025 + (p % 18000) : p;
  }

  /** Ethernet around an L3 packet, with the usual variations (tags, padding, odd MACs). */
  private frameOf(ethertype: number, l3: Buffer, dstIp?: number): Buffer {
    const r = this.r;
    const tags: Array<[number, number]> = [];
    if (r.chance(0.03)) {
      tags.push([r.chance(0.8) ? EtherType.VLAN : EtherType.QinQ, r.u16()]);
      if (r.chance(0.3)) tags.push([EtherType.VLAN, r.u16()]);
    }
    let f = eth(this.plan.srcMac(r), this.plan.dstMac(r, dstIp), ethertype, l3, tags);
    if (r.chance(0.05) && f.length < 60) f = Buffer.concat([f, r.chance(0.5) ? Buffer.alloc(60 - f.length) : r.bytes(60 - f.length)]);
    else if (r.chance(0.02)) f = Buffer.concat([f, r.bytes(1 + r.int(64))]);
    return f;
  }

  /** Correct checksums mostly; spoiled ones sometimes. */
  private finish(kind: string, f: Buffer, pBad = 0.12): Generated {
    fixChecksums(f);
    if (this.r.chance(pBad)) {
      breakChecksum(f, this.r);
      return { kind, frame: f, badChecksum: true };
    }
    return { kind, frame: f };
  }

  private ipSpec(protocol: number, dst?: number): Ipv4Spec {
    const r = this.r;
    return {
      src: this.plan.src(r),
      dst: dst ?? this.plan.dst(r),
      protocol,
      ttl: r.chance(0.9) ? 64 : r.pick([0, 1, 255]),
      ident: r.u16(),
      dontFrag: r.chance(0.8),
      tos: r.chance(0.9) ? 0 : r.u8(),
    };
  }

  private payload(max: number): Buffer {
    return this.r.bytes(this.r.length(max));
  }

  private tcpFields(flags: number, payload?: Buffer): TcpFields {
    const r = this.r;
    return {
      srcPort: this.fuzzPort(),
      dstPort: this.plan.port(r),
      seq: r.interesting32(),
      ack: r.interesting32(),
      flags,
      window: r.interesting16(),
      urgent: r.chance(0.1) ? r.interesting16() : 0,
      payload,
    };
  }

  /** Some valid L4 packet + its IPv4 spec, for generators that then break one thing. */
  private anyIpv4(): { spec: Ipv4Spec; l4: Buffer } {
    const r = this.r;
    const kind = r.int(3);
    if (kind === 0) {
      const spec = this.ipSpec(IpProtocol.TCP);
      const f = this.tcpFields(r.pick([TcpFlags.SYN, TcpFlags.ACK, TcpFlags.ACK | TcpFlags.PSH, TcpFlags.FIN | TcpFlags.ACK]), r.chance(0.5) ? this.payload(200) : undefined);
      return { spec, l4: tcp(spec.src, spec.dst, { ...f, mss: r.chance(0.5) ? 1460 : undefined }) };
    }
    if (kind === 1) {
      const spec = this.ipSpec(IpProtocol.UDP);
      return { spec, l4: udp(spec.src, spec.dst, this.fuzzPort(), this.plan.port(r), this.payload(300)) };
    }
    const spec = this.ipSpec(IpProtocol.ICMP);
    return { spec, l4: icmp(Icmpv4Type.EchoRequest, 0, r.u32(), this.payload(300)) };
  }

  // ------------------------------------------------------------------ pcaps

  private seed(): Buffer {
    return Buffer.from(this.r.pick(this.seeds).data);
  }

  private pcapReplay(): Generated {
    return { kind: 'pcap-replay', frame: this.seed() };
  }

  private pcapMutate(): Generated {
    const r = this.r;
    let f = this.seed();
    const n = r.weighted<number>([
      [50, 1],
      [30, 2],
      [15, 3],
      [5, 8],
    ]);
    for (let i = 0; i < n; i++) f = this.mutate(f);
    const x = r.float();
    if (x < 0.75) return this.finish('pcap-mutate', f, 0);
    if (x < 0.87) return { kind: 'pcap-mutate', frame: breakChecksum(fixChecksums(f), r), badChecksum: true };
    return { kind: 'pcap-mutate', frame: f };
  }

  /** One structural or byte-level mutation. */
  private mutate(f: Buffer): Buffer {
    const r = this.r;
    if (f.length === 0) return r.bytes(r.int(60));
    const L = layers(f);
    const hdrOff = () => (r.chance(0.7) ? r.int(Math.min(f.length, 80)) : r.int(f.length));
    switch (r.int(13)) {
      case 0: {
        const o = hdrOff();
        f[o] = f[o]! ^ (1 << r.int(8));
        return f;
      }
      case 1: {
        const o = hdrOff();
        f[o] = r.pick([0, 1, 0x7f, 0x80, 0xff, r.u8()]);
        return f;
      }
      case 2: {
        const o = hdrOff() & ~1;
        if (o + 2 <= f.length) f.writeUInt16BE(r.interesting16(), o);
        return f;
      }
      case 3:
        return f.subarray(0, r.int(f.length));
      case 4:
        return Buffer.concat([f, r.bytes(1 + r.int(64))]);
      case 5: {
        const o = r.int(f.length + 1);
        return Buffer.concat([f.subarray(0, o), r.bytes(1 + r.int(16)), f.subarray(o)]);
      }
      case 6: {
        const o = r.int(f.length);
        return Buffer.concat([f.subarray(0, o), f.subarray(o + 1 + r.int(16))]);
      }
      case 7: {
        // Splice: our head, another capture's tail.
        const other = this.seed();
        const a = r.int(f.length);
        return Buffer.concat([f.subarray(0, a), other.subarray(r.int(other.length))]);
      }
      case 8:
        if (L.l3 >= 0 && L.ethertype === EtherType.IPv4 && f.length >= L.l3 + 20) {
          f.writeUInt32BE(this.plan.src(r), L.l3 + 12);
          f.writeUInt32BE(this.plan.dst(r), L.l3 + 16);
        }
        return f;
      case 9:
        if (f.length >= 12) {
          f.writeUIntBE(this.plan.dstMac(r), 0, 6);
          f.writeUIntBE(this.plan.srcMac(r), 6, 6);
        }
        return f;
      case 10:
        // A length field lies: IPv4 total length, IHL, UDP length or TCP data offset.
        if (L.ethertype === EtherType.IPv4 && f.length >= L.l3 + 20) {
          const which = r.int(3);
          if (which === 0) f.writeUInt16BE(r.interesting16(), L.l3 + 2);
          else if (which === 1) f[L.l3] = 0x40 | r.int(16);
          else if (L.l4 >= 0 && L.l4 + 14 <= f.length) {
            if (L.protocol === IpProtocol.UDP) f.writeUInt16BE(r.interesting16(), L.l4 + 4);
            else if (L.protocol === IpProtocol.TCP) f[L.l4 + 12] = (r.int(16) << 4) | (f[L.l4 + 12]! & 0xf);
          }
        }
        return f;
      case 11:
        // Ports: 0, the edges, or into the model's range (which then taints).
        if (L.l4 >= 0 && L.l4 + 4 <= f.length && (L.protocol === IpProtocol.TCP || L.protocol === IpProtocol.UDP)) {
          f.writeUInt16BE(this.plan.port(r), L.l4 + (r.chance(0.5) ? 0 : 2));
        }
        return f;
      default:
        if (L.l4 >= 0 && L.l4 + 14 <= f.length && L.protocol === IpProtocol.TCP) {
          f[L.l4 + 13] = r.u8();
          if (r.chance(0.3)) f[L.l4 + 12] = (f[L.l4 + 12]! & 0xf0) | r.int(16);
        }
        return f;
    }
  }

  // ------------------------------------------------------------------ lies

  private truncate(): Generated {
    const r = this.r;
    const src = r.pick<Gen>([() => this.udpGen(), () => this.tcpFlags(), () => this.icmpGen(), () => this.arpGen(), () => this.dhcp(), () => this.tcpOptions()]);
    const g = src();
    const f = fixChecksums(g.frame);
    const L = layers(f);
    const cuts = [0, 6, 12, 13, 14, 15, 17, 18];
    if (L.l3 >= 0) cuts.push(L.l3, L.l3 + 1, L.l3 + 8, L.l3 + 19, L.l3 + 20);
    if (L.l4 >= 0) cuts.push(L.l4, L.l4 + 1, L.l4 + 4, L.l4 + 7, L.l4 + 8, L.l4 + 12, L.l4 + 19, L.l4 + 20, L.l4 + 21);
    cuts.push(f.length - 1, r.int(f.length));
    const at = Math.max(0, Math.min(f.length, r.pick(cuts) + (r.chance(0.2) ? r.range(-2, 2) : 0)));
    let out = f.subarray(0, at);
    if (r.chance(0.2)) out = Buffer.concat([out, Buffer.alloc(Math.max(0, 60 - out.length))]); // padded after the cut
    return { kind: 'truncate', frame: Buffer.from(out) };
  }

  private ipv4LyingLength(): Generated {
    const r = this.r;
    const { spec, l4 } = this.anyIpv4();
    const ip = ipv4(spec, l4);
    const actual = ip.length;
    if (r.chance(0.6)) {
      ip.writeUInt16BE(r.pick([0, 1, 19, 20, 21, actual - 1, actual + 1, actual + 100, 65535, r.u16()]) & 0xffff, 2);
    } else {
      ip[0] = 0x40 | r.pick([0, 1, 4, 5, 6, 7, 15, r.int(16)]);
    }
    if (r.chance(0.1)) ip[0] = (r.pick([0, 6, 15]) << 4) | (ip[0]! & 0xf); // version lies too
    return this.finish('ipv4-lying-length', this.frameOf(EtherType.IPv4, ip, spec.dst));
  }

  private ipv4Options(): Generated {
    const r = this.r;
    const { spec, l4 } = this.anyIpv4();
    const parts: Buffer[] = [];
    const n = 1 + r.int(4);
    for (let i = 0; i < n; i++) {
      parts.push(
        r.pick([
          Buffer.from([1]), // NOP
          Buffer.from([0]), // EOL
          Buffer.from([148, 4, 0, 0]), // Router Alert
          Buffer.from([7, 7, 4, 0, 0, 0, 0]), // Record Route, one slot
          Buffer.from([68, 12, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0]), // Timestamp
          Buffer.from([131, 7, 4, 10, 0, 2, 2]), // LSRR via the gateway
          Buffer.from([137, 3, 4]), // SSRR, empty
          Buffer.from([130, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0]), // Security
          Buffer.from([r.u8(), 0]), // length 0
          Buffer.from([r.u8(), 1]), // length 1
          Buffer.from([r.u8(), 40]), // overruns
          r.bytes(1 + r.int(12)),
        ]),
      );
    }
    spec.options = Buffer.concat(parts).subarray(0, 40);
    return this.finish('ipv4-options', this.frameOf(EtherType.IPv4, ipv4(spec, l4), spec.dst));
  }

  private ipv4Fragment(): Generated {
    const r = this.r;
    const { spec, l4 } = this.anyIpv4();
    const v = r.int(5);
    spec.moreFrags = v !== 1;
    spec.fragOffset = v === 0 ? 0 : v === 4 ? 0x1fff * 8 : 8 * (1 + r.int(200));
    if (v === 3) spec.dontFrag = true;
    const ip = ipv4(spec, l4);
    if (r.chance(0.1)) ip[6] = ip[6]! | 0x80; // the reserved ("evil") bit
    return this.finish('ipv4-fragment', this.frameOf(EtherType.IPv4, ip, spec.dst));
  }

  // ------------------------------------------------------------------ TCP

  /** A 4-tuple: one this generator used recently (so odd segments hit a flow), or a new one. */
  private tuple(): [number, number, number, number] {
    const r = this.r;
    if (this.recent.length > 0 && r.chance(0.5)) return r.pick(this.recent);
    return [this.plan.src(r), this.fuzzPort(), this.plan.dst(r), this.plan.port(r)];
  }

  private remember(t: [number, number, number, number]): void {
    this.recent.push(t);
    if (this.recent.length > 32) this.recent.shift();
  }

  private tcpFrame(kind: string, t: [number, number, number, number], f: TcpFields, rawOptions?: Buffer): Generated {
    const [src, sport, dst, dport] = t;
    const seg = tcp(src, dst, { ...f, srcPort: sport, dstPort: dport }, rawOptions);
    return this.finish(kind, this.frameOf(EtherType.IPv4, ipv4({ ...this.ipSpec(IpProtocol.TCP, dst), src }, seg), dst));
  }

  private tcpFlags(): Generated {
    const r = this.r;
    const F = TcpFlags;
    const flags = r.pick([
      F.SYN,
      F.SYN,
      F.SYN | F.FIN,
      F.SYN | F.RST,
      F.SYN | F.ACK,
      F.SYN | F.URG,
      0,
      F.FIN,
      F.RST,
      F.RST | F.ACK,
      F.ACK,
      F.PSH,
      F.URG,
      F.URG | F.ACK | F.PSH,
      F.FIN | F.ACK,
      F.FIN | F.PSH | F.URG,
      0xff,
      0x1ff,
      F.ECE | F.CWR | F.SYN,
      F.AE | F.SYN,
      0xe00 | F.SYN,
      r.int(0x1000),
    ]);
    const t = this.tuple();
    if (flags === F.SYN) this.remember(t);
    const f = this.tcpFields(flags, r.chance(0.3) ? this.payload(1460) : undefined);
    return this.tcpFrame('tcp-flags', t, { ...f, mss: flags & F.SYN && r.chance(0.7) ? 1460 : undefined, windowScale: r.chance(0.3) ? r.int(20) : undefined });
  }

  private tcpOptions(): Generated {
    const r = this.r;
    const pieces: Buffer[] = [];
    const n = 1 + r.int(6);
    const u16 = (v: number) => [v >>> 8, v & 0xff];
    for (let i = 0; i < n; i++) {
      pieces.push(
        r.pick<Buffer>([
          Buffer.from([2, 4, ...u16(r.pick([0, 1, 48, 88, 536, 1460, 65535]))]), // MSS
          Buffer.from([2, r.pick([0, 1, 2, 3, 5, 255])]), // MSS, bad length
          Buffer.from([3, 3, r.pick([0, 7, 14, 15, 16, 100, 255])]), // window scale (> 14 too)
          Buffer.from([3, r.pick([2, 4, 0])]),
          Buffer.from([4, 2]), // SACK-permitted
          Buffer.from([4, r.pick([0, 1, 3])]),
          Buffer.concat([Buffer.from([5, 10]), r.bytes(8)]), // SACK, garbage edges
          Buffer.concat([Buffer.from([5, 34]), r.bytes(32)]),
          Buffer.concat([Buffer.from([5, r.pick([2, 9, 11, 42, 255])]), r.bytes(8)]),
          Buffer.concat([Buffer.from([8, 10]), r.bytes(8)]), // timestamps
          Buffer.concat([Buffer.from([8, r.pick([8, 12, 0])]), r.bytes(8)]),
          Buffer.concat([Buffer.from([r.pick([30, 34, 253, 254, 99]), 2 + r.int(10)]), r.bytes(10)]),
          Buffer.from([r.u8(), 0]), // length 0: a parser that loops on it hangs
          Buffer.from([r.u8(), 1]),
          Buffer.from([1, 1, 1]),
          Buffer.from([0]), // EOL, then whatever follows
          r.bytes(1 + r.int(8)),
        ]),
      );
    }
    const raw = Buffer.concat(pieces).subarray(0, 40);
    const flags = r.pick([TcpFlags.SYN, TcpFlags.SYN, TcpFlags.ACK, TcpFlags.SYN | TcpFlags.ACK, TcpFlags.ACK | TcpFlags.PSH]);
    const t = this.tuple();
    if (flags === TcpFlags.SYN) this.remember(t);
    return this.tcpFrame('tcp-options', t, this.tcpFields(flags, r.chance(0.2) ? this.payload(200) : undefined), raw);
  }

  private tcpDataOffset(): Generated {
    const r = this.r;
    const t = this.tuple();
    const seg = tcp(t[0], t[2], { ...this.tcpFields(r.pick([TcpFlags.SYN, TcpFlags.ACK]), r.chance(0.5) ? this.payload(100) : undefined), srcPort: t[1], dstPort: t[3], mss: r.chance(0.5) ? 1460 : undefined });
    seg[12] = (r.int(16) << 4) | (seg[12]! & 0x0f);
    return this.finish('tcp-data-offset', this.frameOf(EtherType.IPv4, ipv4({ ...this.ipSpec(IpProtocol.TCP, t[2]), src: t[0] }, seg), t[2]));
  }

  // ------------------------------------------------------------------ UDP

  private dnsQuery(): Buffer {
    const r = this.r;
    const name = r.pick(['example.com', 'tsnet.test', 'a', 'x'.repeat(63)]);
    const labels = name.split('.').flatMap((l) => [l.length, ...Buffer.from(l)]);
    return Buffer.from([r.u8(), r.u8(), 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, ...labels, 0, 0, r.pick([1, 28, 255]), 0, 1]);
  }

  private udpGen(): Generated {
    const r = this.r;
    if (r.chance(0.1)) {
      // The guest answering a port-forwarded client (see FakeHost.forwardUdp).
      const src = r.chance(0.9) ? this.plan.guest : this.plan.guest2;
      const dst = r.chance(0.7) ? this.plan.gateway : this.plan.of('outside', r);
      const d = udp(src, dst, r.pick([53, 5353, 9999, 0]), 30000 + r.int(16), this.payload(this.mtu - 28));
      return this.finish('udp', this.frameOf(EtherType.IPv4, ipv4({ ...this.ipSpec(IpProtocol.UDP, dst), src }, d), dst), 0.05);
    }
    const spec = this.ipSpec(IpProtocol.UDP);
    const dport = spec.dst === this.plan.dns && r.chance(0.7) ? 53 : this.plan.port(r);
    const body = dport === 53 && r.chance(0.7) ? this.dnsQuery() : this.payload(this.mtu - 28);
    const d = udp(spec.src, spec.dst, this.fuzzPort(), dport, body, r.chance(0.1));
    return this.finish('udp', this.frameOf(EtherType.IPv4, ipv4(spec, d), spec.dst), 0.08);
  }

  private udpLength(): Generated {
    const r = this.r;
    const spec = this.ipSpec(IpProtocol.UDP);
    const d = udp(spec.src, spec.dst, this.fuzzPort(), this.plan.port(r), this.payload(200));
    d.writeUInt16BE(r.pick([0, 1, 7, 8, 9, d.length - 1, d.length, d.length + 1, 65535, r.u16()]) & 0xffff, 4);
    return this.finish('udp-length', this.frameOf(EtherType.IPv4, ipv4(spec, d), spec.dst));
  }

  private portZero(): Generated {
    const r = this.r;
    const dst = this.plan.dst(r);
    const src = this.plan.src(r);
    const sport = r.chance(0.5) ? 0 : this.fuzzPort();
    const dport = sport !== 0 && r.chance(0.8) ? 0 : r.chance(0.5) ? 0 : this.plan.port(r);
    const isTcp = r.chance(0.5);
    const l4 = isTcp
      ? tcp(src, dst, { ...this.tcpFields(TcpFlags.SYN), srcPort: sport, dstPort: dport, mss: 1460 })
      : udp(src, dst, sport, dport, this.payload(100));
    const proto = isTcp ? IpProtocol.TCP : IpProtocol.UDP;
    return this.finish('port-zero', this.frameOf(EtherType.IPv4, ipv4({ ...this.ipSpec(proto, dst), src }, l4), dst), 0.05);
  }

  // ------------------------------------------------------------------ ICMP

  private embedded(): Buffer {
    const r = this.r;
    const { spec, l4 } = this.anyIpv4();
    const ip = ipv4(spec, l4);
    const v = r.int(5);
    if (v === 0) return r.bytes(r.int(40)); // garbage
    if (v === 1) return ip.subarray(0, r.int(28)); // short
    if (v === 2) {
      ip[0] = 0x40 | r.int(16); // lying IHL
      return ip.subarray(0, 28 + r.int(20));
    }
    return ip.subarray(0, Math.min(ip.length, 28 + r.int(500)));
  }

  private icmpGen(): Generated {
    const r = this.r;
    const spec = this.ipSpec(IpProtocol.ICMP);
    const T = Icmpv4Type;
    const type = r.weighted<number>([
      [60, T.EchoRequest],
      [5, T.EchoReply],
      [8, T.DstUnreachable],
      [4, T.TimeExceeded],
      [3, T.Redirect],
      [3, T.ParamProblem],
      [3, T.SourceQuench],
      [3, T.Timestamp],
      [3, T.RouterSolicit],
      [3, r.u8()],
    ]);
    const isErr = type === T.DstUnreachable || type === T.TimeExceeded || type === T.Redirect || type === T.ParamProblem || type === T.SourceQuench;
    const data = isErr ? this.embedded() : this.payload(this.mtu - 28);
    const code = r.chance(0.8) ? 0 : r.u8();
    const msg = icmp(type, code, r.chance(0.5) ? r.u32() : r.pick([0, 0x00010001, 0xffffffff]), data);
    return this.finish('icmp', this.frameOf(EtherType.IPv4, ipv4(spec, msg), spec.dst), 0.08);
  }

  // ------------------------------------------------------------------ DHCP

  private dhcp(): Generated {
    const r = this.r;
    const plan = this.plan;
    const M = DhcpMessageType;
    const mt = r.weighted<number | undefined>([
      [30, M.Discover],
      [30, M.Request],
      [6, M.Decline],
      [6, M.Release],
      [6, M.Inform],
      [6, r.pick([M.Offer, M.Ack, M.Nak])],
      [3, r.pick([0, 9, 18, 255])],
      [3, undefined],
    ]);
    const pool = (): number => (plan.cfg.dhcpStart + r.int(plan.cfg.dhcpEnd - plan.cfg.dhcpStart + 1)) >>> 0;
    const addr = (): number => r.weighted<number>([
      [60, pool()],
      [10, 0],
      [10, plan.guest],
      [10, plan.gateway],
      [10, plan.dst(r)],
    ]);
    const clientIdLen = r.weighted<number>([
      [60, 0],
      [25, 7],
      [10, 1 + r.int(300)],
      // Requests that still fit the MTU, whose replies (the identifier echoed) may not.
      [4, Math.max(1, this.mtu - 28 - 240 - 60 - r.int(200))],
      [1, 600 + r.int(900)],
    ]);
    const repr = new DhcpRepr({
      op: r.chance(0.95) ? BootpOp.Request : BootpOp.Reply,
      xid: r.u32(),
      chaddr: r.chance(0.7) ? GUEST_MAC : plan.srcMac(r),
      flags: r.chance(0.3) ? 0x8000 : r.chance(0.05) ? r.u16() : 0,
      ciaddr: r.chance(0.7) ? 0 : addr(),
      giaddr: r.chance(0.95) ? 0 : r.u32(),
      messageType: mt,
      requestedIp: r.chance(0.6) ? addr() : undefined,
      serverId: r.chance(0.5) ? (r.chance(0.8) ? plan.gateway : addr()) : undefined,
      clientId: clientIdLen > 0 ? Buffer.concat([Buffer.from([1]), r.bytes(clientIdLen - 1)]) : undefined,
      hostname: r.chance(0.3) ? 'guest-' + r.int(1000) : undefined,
      parameterRequestList: r.chance(0.6) ? [1, 3, 6, 15, 26, 28, 51, 58, 59, 119] : undefined,
      maxMessageSize: r.chance(0.3) ? r.pick([576, 1500, 0, 65535]) : undefined,
    });
    let body = Buffer.alloc(repr.bufferLen());
    repr.emit(body);
    // Malformed on purpose, often.
    const v = r.int(12);
    if (v === 0) body = body.subarray(0, r.int(300)); // truncated (cookie, options)
    else if (v === 1) body.writeUInt32BE(r.u32(), 236); // wrong cookie
    else if (v === 2 || v === 3) {
      // Raw options: bad lengths, overruns, no END, option 53 with a wrong length.
      const opts: number[] = [];
      const k = 1 + r.int(6);
      for (let i = 0; i < k; i++) {
        const code = r.pick([53, 50, 54, 61, 12, 55, 52, 1, 3, 6, 51, 0, 255, r.u8()]);
        const len = r.pick([0, 1, 2, 3, 4, 5, 255, r.u8()]);
        opts.push(code, len, ...r.bytes(Math.min(len, r.int(len + 2))));
      }
      if (r.chance(0.5)) opts.push(255);
      body = Buffer.concat([body.subarray(0, 240), Buffer.from([53, 1, mt ?? 1]), Buffer.from(opts)]);
    } else if (v === 4) {
      body[1] = r.pick([0, 6, 255]); // htype
      body[2] = r.pick([0, 16, 255]); // hlen
    } else if (v === 5) {
      // RFC 3396: the same option several times (concatenated by the parser).
      body = Buffer.concat([body.subarray(0, 240), Buffer.from([53, 1, mt ?? 1, 61, 4, 1, 2, 3, 4, 61, 3, 5, 6, 7, 50, 2, 10, 0, 50, 2, 2, 20, 255])]);
    }
    const src = r.chance(0.7) ? 0 : plan.src(r);
    const dst = r.weighted<number>([
      [70, 0xffffffff],
      [15, plan.gateway],
      [10, plan.broadcast],
      [5, plan.dst(r)],
    ]);
    const d = udp(src, dst, r.chance(0.95) ? DHCP_CLIENT_PORT : r.pick([DHCP_SERVER_PORT, 0, 1234]), DHCP_SERVER_PORT, body, r.chance(0.1));
    const ip = ipv4({ src, dst, protocol: IpProtocol.UDP, ttl: r.chance(0.9) ? 64 : 1, ident: r.u16(), dontFrag: false }, d);
    const f = eth(r.chance(0.8) ? GUEST_MAC : plan.srcMac(r), r.chance(0.8) ? MAC_BROADCAST : plan.dstMac(r, dst), EtherType.IPv4, ip);
    return this.finish('dhcp', f, 0.05);
  }

  // ------------------------------------------------------------------ ARP

  private arpGen(): Generated {
    const r = this.r;
    const plan = this.plan;
    const target = r.weighted<number>([
      [40, plan.gateway],
      [20, plan.dns],
      [10, plan.guest],
      [20, plan.dst(r)],
      [10, plan.src(r)],
    ]);
    const senderIp = r.weighted<number>([
      [70, plan.guest],
      [10, 0],
      [5, target],
      [15, plan.src(r)],
    ]);
    const senderMac = plan.srcMac(r);
    const body = arp({
      operation: r.weighted<number>([
        [70, ArpOperation.Request],
        [20, ArpOperation.Reply],
        [10, r.pick([0, 3, 4, 8, 9, 0xffff])],
      ]),
      senderMac,
      senderIp,
      targetMac: r.chance(0.8) ? 0 : plan.dstMac(r),
      targetIp: target,
    });
    let b: Buffer = body;
    const v = r.int(10);
    if (v === 0) b[4] = r.pick([0, 4, 8, 16, 255]); // hlen
    else if (v === 1) b[5] = r.pick([0, 6, 16, 255]); // plen
    else if (v === 2) b.writeUInt16BE(r.pick([0, 6, 0x0806, 0xffff]), 0); // htype
    else if (v === 3) b.writeUInt16BE(r.pick([0x86dd, 0, 0x0806]), 2); // ptype
    else if (v === 4) b = b.subarray(0, r.int(28)); // truncated
    else if (v === 5) b = Buffer.concat([b, Buffer.alloc(18)]); // padded to 60
    const dst = r.chance(0.7) ? MAC_BROADCAST : plan.dstMac(r, target);
    return { kind: 'arp', frame: eth(senderMac, dst, EtherType.ARP, b, r.chance(0.05) ? [[EtherType.VLAN, r.u16()]] : []) };
  }

  // ------------------------------------------------------------------ the rest

  private ipv6(): Generated {
    const r = this.r;
    const ipv6Seeds = this.seeds.filter((s) => s.data.length > 14 && s.data.readUInt16BE(12) === EtherType.IPv6);
    if (ipv6Seeds.length > 0 && r.chance(0.5)) {
      let f: Buffer = Buffer.from(r.pick(ipv6Seeds).data);
      f = this.mutate(f);
      return { kind: 'ipv6', frame: f };
    }
    const len = r.length(200);
    const hdr = Buffer.alloc(40);
    hdr[0] = r.chance(0.9) ? 0x60 : r.u8();
    hdr.writeUInt16BE(r.chance(0.8) ? len : r.u16(), 4);
    hdr[6] = r.pick([0, 6, 17, 58, 43, 44, 59, 60, r.u8()]);
    hdr[7] = r.pick([1, 64, 255]);
    r.bytes(32).copy(hdr, 8);
    const p = Buffer.concat([hdr, r.bytes(len)]).subarray(0, r.chance(0.9) ? undefined : r.int(40 + len));
    return { kind: 'ipv6', frame: eth(this.plan.srcMac(r), r.chance(0.5) ? 0x333300000001 : this.plan.dstMac(r), EtherType.IPv6, p) };
  }

  private ethertype(): Generated {
    const r = this.r;
    const t = r.pick([0x0000, 0x05dc, 0x0600, 0x8035, 0x88cc, 0x888e, 0x8847, 0x88f7, 0x9000, 0xffff, r.u16()]);
    return { kind: 'ethertype', frame: eth(this.plan.srcMac(r), this.plan.dstMac(r), t, this.payload(200)) };
  }

  private vlan(): Generated {
    const r = this.r;
    const inner = r.pick<Gen>([() => this.arpGen(), () => this.icmpGen(), () => this.udpGen(), () => this.tcpFlags()])();
    const f = inner.frame;
    if (f.length < 14) return { kind: 'vlan', frame: f };
    const n = r.weighted<number>([
      [60, 1],
      [30, 2],
      [10, 3],
    ]);
    const tags: Buffer[] = [];
    for (let i = 0; i < n; i++) {
      const t = Buffer.alloc(4);
      t.writeUInt16BE(r.chance(0.7) ? EtherType.VLAN : EtherType.QinQ, 0);
      t.writeUInt16BE(r.u16(), 2);
      tags.push(t);
    }
    let out = Buffer.concat([f.subarray(0, 12), ...tags, f.subarray(12)]);
    if (r.chance(0.1)) out = out.subarray(0, 12 + r.int(4 * n + 2)); // cut inside the tags
    return { kind: 'vlan', frame: out };
  }

  private randomBytes(): Generated {
    const r = this.r;
    const b = r.bytes(r.length(1600));
    if (b.length >= 14 && r.chance(0.5)) {
      b.writeUIntBE(this.plan.dstMac(r), 0, 6);
      b.writeUInt16BE(r.pick([EtherType.IPv4, EtherType.ARP, EtherType.IPv6, EtherType.VLAN]), 12);
      if (b.length > 14 && b.readUInt16BE(12) === EtherType.IPv4) b[14] = 0x45;
      fixChecksums(b);
    }
    return { kind: 'random-bytes', frame: b };
  }
}
