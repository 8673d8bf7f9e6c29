// IPv6 on the guest link (src/stack/ipv6.ts), frame by frame with injected
// time: neighbor discovery for tsnet's addresses, router advertisements
// (solicited and periodic) carrying what SLAAC and the resolver need, echo,
// fail-fast errors for what IPv6 does not serve yet, and drops counted.

import { describe, expect, it } from 'vitest';
import { makeConfig } from '../../../src/stack/config.js';
import { Stack } from '../../../src/stack/stack.js';
import { ipv6FromString as v6, ipv6ToString, macFromString as mac } from '../../../src/wire/address.js';
import { EtherType, EthernetFrame, EthernetRepr, ETH_HEADER_LEN } from '../../../src/wire/ethernet.js';
import { Icmpv6Packet, Icmpv6Repr, Icmpv6Type, NA_FLAG_OVERRIDE, NA_FLAG_ROUTER, NA_FLAG_SOLICITED, type Icmpv6Fields, type NdpOption } from '../../../src/wire/icmpv6.js';
import { IpProtocol } from '../../../src/wire/ipv4.js';
import { IPV6_HEADER_LEN, Ipv6Packet, Ipv6Repr } from '../../../src/wire/ipv6.js';
import { pseudoV6 } from '../../../src/wire/checksum.js';

const GUEST_MAC = mac('02:00:00:00:00:64');
const ROUTER_MAC = mac('52:56:00:00:00:02');
const DNS_MAC = mac('52:56:00:00:00:03');
const GUEST_LL = v6('fe80::ff:fe00:64');
const GUEST = v6('fd00::ff:fe00:64');
const ALL_NODES_MAC = mac('33:33:00:00:00:01');

function setup(enableIpv6 = true) {
  const out: Buffer[] = [];
  const drops: string[] = [];
  const stack = new Stack(makeConfig({ enableIpv6 }), { transmit: (f) => out.push(Buffer.from(f)), onDrop: (r) => drops.push(r) });
  return { stack, out, drops };
}

function frame(src: Buffer, dst: Buffer, nextHeader: number, payload: Buffer, o: { hopLimit?: number; dstMac?: number } = {}): Buffer {
  const f = Buffer.alloc(ETH_HEADER_LEN + IPV6_HEADER_LEN + payload.length);
  const dstMac = o.dstMac ?? (dst[0] === 0xff ? 0x3333 * 2 ** 32 + dst.readUInt32BE(12) : ROUTER_MAC);
  new EthernetRepr({ src: GUEST_MAC, dst: dstMac, ethertype: EtherType.IPv6 }).emit(f);
  new Ipv6Repr({ src, dst, nextHeader, payloadLen: payload.length, hopLimit: o.hopLimit ?? 64 }).emit(f.subarray(ETH_HEADER_LEN));
  payload.copy(f, ETH_HEADER_LEN + IPV6_HEADER_LEN);
  return f;
}

function icmpFrame(src: Buffer, dst: Buffer, m: Icmpv6Fields, hopLimit = 255): Buffer {
  const r = new Icmpv6Repr(m);
  const b = Buffer.alloc(r.bufferLen());
  r.emit(b, src, dst);
  return frame(src, dst, IpProtocol.ICMPv6, b, { hopLimit });
}

function parse(f: Buffer) {
  const eth = EthernetFrame.newChecked(f);
  expect(eth.ethertype).toBe(EtherType.IPv6);
  const ip = Ipv6Packet.newChecked(eth.payload);
  const pkt = Icmpv6Packet.newChecked(ip.payload);
  expect(pkt.verifyChecksum(ip.src, ip.dst), 'ICMPv6 checksum').toBe(true);
  return { eth, ip, src: ipv6ToString(ip.src), dst: ipv6ToString(ip.dst), msg: Icmpv6Repr.parse(pkt, ip.src, ip.dst) };
}

const option = <K extends NdpOption['kind']>(m: Icmpv6Repr, kind: K) => m.options.find((o) => o.kind === kind) as Extract<NdpOption, { kind: K }> | undefined;

describe('IPv6 on the guest link', () => {
  it('answers a router solicitation with an advertisement SLAAC and the resolver can use', () => {
    const { stack, out } = setup();
    stack.receive(0, icmpFrame(GUEST_LL, v6('ff02::2'), { type: Icmpv6Type.RouterSolicit, options: [{ kind: 'source-lla', linkAddr: GUEST_MAC }] }));
    expect(out).toHaveLength(1);
    const ra = parse(out[0]!);
    expect([ra.eth.src, ra.eth.dst, ra.src, ra.dst, ra.ip.hopLimit]).toEqual([ROUTER_MAC, GUEST_MAC, 'fe80::2', ipv6ToString(GUEST_LL), 255]);
    expect(ra.msg.type).toBe(Icmpv6Type.RouterAdvert);
    expect([ra.msg.curHopLimit, ra.msg.flags, ra.msg.routerLifetime]).toEqual([64, 0, 1800]);
    const prefix = option(ra.msg, 'prefix-info')!;
    expect([ipv6ToString(prefix.prefix), prefix.prefixLen, prefix.flags, prefix.validLifetime, prefix.preferredLifetime]).toEqual(['fd00::', 64, 0xc0, 86400, 14400]);
    expect(option(ra.msg, 'mtu')!.mtu).toBe(1500);
    expect(option(ra.msg, 'rdnss')!.servers.map((s) => ipv6ToString(s))).toEqual(['fd00::3']);
    expect(option(ra.msg, 'source-lla')!.linkAddr).toBe(ROUTER_MAC);
  });

  it('answers a solicitation from :: (no address yet) to all-nodes', () => {
    const { stack, out } = setup();
    stack.receive(0, icmpFrame(v6('::'), v6('ff02::2'), { type: Icmpv6Type.RouterSolicit }));
    const ra = parse(out[0]!);
    expect([ra.dst, ra.eth.dst]).toEqual(['ff02::1', ALL_NODES_MAC]);
  });

  it('advertises unsolicited: at start, twice more 4 s apart, then every 5 min', () => {
    const { stack, out } = setup();
    const times: number[] = [];
    for (let t = 0, guard = 0; t <= 700_000 && guard < 20; guard++) {
      t = stack.pollAt();
      if (t > 700_000) break;
      stack.poll(t);
      times.push(t);
    }
    expect(times).toEqual([0, 4000, 8000, 308_000, 608_000]);
    expect(out.map((f) => parse(f).dst)).toEqual(Array(5).fill('ff02::1'));
  });

  it('neighbor solicitations for fd00::2, fd00::3 and fe80::2 get solicited advertisements with the router MAC', () => {
    const { stack, out } = setup();
    for (const target of ['fd00::2', 'fd00::3', 'fe80::2']) {
      const t = v6(target);
      const sn = v6(`ff02::1:ff00:${target.endsWith('3') ? '3' : '2'}`);
      stack.receive(0, icmpFrame(target.startsWith('fe80') ? GUEST_LL : GUEST, sn, { type: Icmpv6Type.NeighborSolicit, target: t, options: [{ kind: 'source-lla', linkAddr: GUEST_MAC }] }));
    }
    expect(out).toHaveLength(3);
    for (const [i, target] of ['fd00::2', 'fd00::3', 'fe80::2'].entries()) {
      const na = parse(out[i]!);
      expect(na.msg.type).toBe(Icmpv6Type.NeighborAdvert);
      expect(ipv6ToString(na.msg.target)).toBe(target);
      expect(na.src).toBe(target);
      expect(na.msg.flags).toBe(NA_FLAG_ROUTER | NA_FLAG_SOLICITED | NA_FLAG_OVERRIDE);
      // As slirp4netns: fd00::3 has a MAC of its own.
      const mac = target === 'fd00::3' ? DNS_MAC : ROUTER_MAC;
      expect(option(na.msg, 'target-lla')!.linkAddr).toBe(mac);
      expect([na.eth.src, na.eth.dst, na.ip.hopLimit]).toEqual([mac, GUEST_MAC, 255]);
    }
  });

  it('leaves the guest\'s duplicate address detection alone, and defends its own addresses', () => {
    const { stack, out } = setup();
    // DAD for the guest's SLAAC address: not ours, no answer.
    stack.receive(0, icmpFrame(v6('::'), v6('ff02::1:ff00:64'), { type: Icmpv6Type.NeighborSolicit, target: GUEST }));
    expect(out).toHaveLength(0);
    // DAD for fd00::2: it is taken — an unsolicited advertisement to all-nodes.
    stack.receive(0, icmpFrame(v6('::'), v6('ff02::1:ff00:2'), { type: Icmpv6Type.NeighborSolicit, target: v6('fd00::2') }));
    const na = parse(out[0]!);
    expect([na.dst, na.msg.flags & NA_FLAG_SOLICITED]).toEqual(['ff02::1', 0]);
  });

  it('drops neighbor discovery that did not come from the link (hop limit below 255)', () => {
    const { stack, out, drops } = setup();
    stack.receive(0, icmpFrame(GUEST, v6('ff02::1:ff00:2'), { type: Icmpv6Type.NeighborSolicit, target: v6('fd00::2') }, 64));
    stack.receive(0, icmpFrame(GUEST_LL, v6('ff02::2'), { type: Icmpv6Type.RouterSolicit }, 1));
    expect(out).toHaveLength(0);
    expect(drops).toEqual(['ndp-invalid', 'ndp-invalid']);
  });

  it('answers echo to its addresses and to all-nodes (from fe80::2), with identifier, sequence and data unchanged', () => {
    const { stack, out } = setup();
    const data = Buffer.from('0123456789abcdef');
    for (const dst of ['fd00::2', 'fd00::3', 'fe80::2', 'ff02::1']) {
      stack.receive(0, icmpFrame(dst.startsWith('f') && !dst.startsWith('fd') ? GUEST_LL : GUEST, v6(dst), { type: Icmpv6Type.EchoRequest, ident: 0x3b91, seq: 7, data }, 64));
    }
    expect(out.map((f) => parse(f).src)).toEqual(['fd00::2', 'fd00::3', 'fe80::2', 'fe80::2']);
    for (const f of out) {
      const r = parse(f);
      expect([r.msg.type, r.msg.ident, r.msg.seq, r.msg.data.equals(data), r.eth.dst]).toEqual([Icmpv6Type.EchoReply, 0x3b91, 7, true, GUEST_MAC]);
    }
  });

  it('fails fast what it does not serve over IPv6 yet: port unreachable from fd00::2, no route elsewhere; never about multicast or ::', () => {
    const { stack, out, drops } = setup();
    const syn = Buffer.alloc(20);
    syn.writeUInt16BE(40000, 0);
    syn.writeUInt16BE(80, 2);
    syn[12] = 0x50;
    syn[13] = 0x02;
    stack.receive(0, frame(GUEST, v6('fd00::2'), IpProtocol.TCP, syn));
    const udp = Buffer.alloc(12);
    udp.writeUInt16BE(40001, 0);
    udp.writeUInt16BE(53, 2);
    udp.writeUInt16BE(12, 4);
    udp.writeUInt16BE(pseudoV6(GUEST, v6('2001:db8::1'), IpProtocol.UDP, 12) ^ 0xffff || 0xffff, 6);
    stack.receive(0, frame(GUEST, v6('2001:db8::1'), IpProtocol.UDP, udp));
    stack.receive(0, frame(v6('::'), v6('2001:db8::1'), IpProtocol.UDP, udp));
    stack.receive(0, frame(GUEST, v6('ff02::fb'), IpProtocol.UDP, udp));
    expect(out).toHaveLength(2);
    const [a, b] = out.map(parse);
    expect([a!.src, a!.msg.type, a!.msg.code]).toEqual(['fd00::2', Icmpv6Type.DstUnreachable, 4]);
    expect([b!.src, b!.msg.type, b!.msg.code]).toEqual(['fd00::2', Icmpv6Type.DstUnreachable, 0]);
    // The invoking packet, from its IPv6 header on.
    expect(ipv6ToString(Ipv6Packet.newChecked(a!.msg.data).dst)).toBe('fd00::2');
    expect(drops).toEqual(['ipv6-port-unreachable', 'ipv6-no-route', 'ipv6-no-route', 'ipv6-multicast-ignored']);
  });

  it('rate-limits answers to a flood of solicitations', () => {
    const { stack, out, drops } = setup();
    for (let i = 0; i < 50; i++) stack.receive(0, icmpFrame(GUEST_LL, v6('ff02::2'), { type: Icmpv6Type.RouterSolicit }));
    expect(out).toHaveLength(10);
    expect(drops.filter((d) => d === 'ndp-rs-rate-limited')).toHaveLength(40);
    stack.receive(1000, icmpFrame(GUEST_LL, v6('ff02::2'), { type: Icmpv6Type.RouterSolicit }));
    expect(out).toHaveLength(11);
  });

  it('counts and drops fragments, bad checksums and multicast sources; ignores MLD; off unless enabled', () => {
    const { stack, out, drops } = setup();
    const frag = Buffer.alloc(16);
    frag[0] = IpProtocol.ICMPv6; // next header after the fragment header
    stack.receive(0, frame(GUEST, v6('fd00::2'), IpProtocol.IPv6Frag, frag));
    const bad = icmpFrame(GUEST, v6('fd00::2'), { type: Icmpv6Type.EchoRequest, ident: 1, seq: 1 }, 64);
    bad[bad.length - 1] ^= 0xff;
    bad[ETH_HEADER_LEN + IPV6_HEADER_LEN + 2] ^= 0x01;
    stack.receive(0, bad);
    stack.receive(0, icmpFrame(v6('ff02::9'), v6('fd00::2'), { type: Icmpv6Type.EchoRequest, ident: 1, seq: 1 }, 64));
    stack.receive(0, icmpFrame(GUEST_LL, v6('ff02::16'), { type: 143, data: Buffer.alloc(4) }, 1));
    expect(out).toHaveLength(0);
    expect(drops).toEqual(['ipv6-fragment', 'icmpv6-bad-checksum', 'ipv6-multicast-source']);
    expect(stack.counters.events.get('mld-ignored')).toBe(1);

    const off = setup(false);
    off.stack.receive(0, icmpFrame(GUEST_LL, v6('ff02::2'), { type: Icmpv6Type.RouterSolicit }));
    expect(off.out).toHaveLength(0);
    expect(off.drops).toEqual(['ipv6-disabled']);
    expect(off.stack.pollAt()).toBe(Infinity);
  });
});
