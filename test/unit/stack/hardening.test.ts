// A hostile guest against the pure core: port 0, the one flow cap and what
// it evicts, the half-open cap, the memory budget under 200 stalled
// connections, a flow whose host side throws, and forwarded UDP clients
// that look alike to the guest. Frames are built here; the host side is a
// recording fake.

import { describe, expect, it } from 'vitest';
import { MemoryBudget } from '../../../src/stack/budget.js';
import { routeFor, routeFor6 } from '../../../src/stack/nat.js';
import { ipv6FromString } from '../../../src/wire/address.js';
import { makeConfig } from '../../../src/stack/config.js';
import { Stack, type StackOptions } from '../../../src/stack/stack.js';
import type { TcpFlow, TcpHooks } from '../../../src/stack/tcp-flows.js';
import type { UdpHooks } from '../../../src/stack/udp.js';
import { ipv4FromString as ip, macFromString as mac } from '../../../src/wire/address.js';
import { pseudoV4 } from '../../../src/wire/checksum.js';
import { EtherType, EthernetFrame, EthernetRepr, ETH_HEADER_LEN } from '../../../src/wire/ethernet.js';
import { Icmpv4Packet, Icmpv4Repr } from '../../../src/wire/icmpv4.js';
import { IpProtocol, Ipv4Packet, Ipv4Repr } from '../../../src/wire/ipv4.js';
import { TcpFlags, TcpPacket, TcpRepr } from '../../../src/wire/tcp.js';
import { UdpPacket, UdpRepr } from '../../../src/wire/udp.js';

const GUEST_MAC = mac('02:00:00:00:00:64');
const GUEST = ip('10.0.2.100');
const GW = ip('10.0.2.2');
const GW_MAC = mac('52:55:0a:00:02:02');
const OUTSIDE = ip('192.0.2.10');

function ipFrame(src: number, dst: number, protocol: IpProtocol, l4len: number, fill: (payload: Buffer) => void): Buffer {
  const ipr = new Ipv4Repr({ src, dst, protocol, payloadLen: l4len });
  const f = Buffer.alloc(ETH_HEADER_LEN + ipr.bufferLen());
  new EthernetRepr({ src: GUEST_MAC, dst: GW_MAC, ethertype: EtherType.IPv4 }).emit(f);
  ipr.emit(f.subarray(ETH_HEADER_LEN));
  fill(f.subarray(ETH_HEADER_LEN + ipr.headerLen()));
  return f;
}

function tcpFrame(t: { src?: number; dst?: number; srcPort: number; dstPort: number; seq?: number; ack?: number; flags: number; window?: number; payload?: Buffer }): Buffer {
  const src = t.src ?? GUEST;
  const dst = t.dst ?? OUTSIDE;
  const r = new TcpRepr({ srcPort: t.srcPort, dstPort: t.dstPort, seq: t.seq ?? 1000, ack: t.ack ?? 0, flags: t.flags, window: t.window ?? 65535, payload: t.payload });
  const len = r.bufferLen();
  return ipFrame(src, dst, IpProtocol.TCP, len, (p) => r.emit(p, pseudoV4(src, dst, IpProtocol.TCP, len)));
}

function udpFrame(dst: number, srcPort: number, dstPort: number, payload = Buffer.from('x')): Buffer {
  const r = new UdpRepr({ srcPort, dstPort, payload });
  const len = r.bufferLen();
  return ipFrame(GUEST, dst, IpProtocol.UDP, len, (p) => r.emit(p, pseudoV4(GUEST, dst, IpProtocol.UDP, len)));
}

function parse(f: Buffer) {
  const eth = EthernetFrame.newChecked(f);
  const ipp = Ipv4Packet.newChecked(eth.payload);
  const ipr = Ipv4Repr.parse(ipp);
  return {
    ipr,
    tcp: ipr.protocol === IpProtocol.TCP ? TcpRepr.parse(TcpPacket.newChecked(ipp.payload)) : undefined,
    icmp: ipr.protocol === IpProtocol.ICMP ? Icmpv4Repr.parse(Icmpv4Packet.newChecked(ipp.payload)) : undefined,
  };
}

interface Rig {
  stack: Stack;
  out: Buffer[];
  drops: Map<string, number>;
  opened: TcpFlow[];
  udpSent: Array<{ addr: number; port: number }>;
}

function rig(opts: StackOptions = {}, tcp: Partial<TcpHooks> = {}, udp: Partial<UdpHooks> = {}): Rig {
  const r: Rig = { stack: undefined as unknown as Stack, out: [], drops: new Map(), opened: [], udpSent: [] };
  const tcpHooks: TcpHooks = {
    open: (flow) => r.opened.push(flow),
    data: () => {},
    eof: () => {},
    established: () => {},
    sendSpace: () => {},
    reset: () => {},
    closed: () => {},
    ...tcp,
  };
  const udpHooks: UdpHooks = {
    send: (_flow, addr, port) => r.udpSent.push({ addr, port }),
    sendDns: () => {},
    close: () => {},
    ...udp,
  };
  r.stack = new Stack(
    makeConfig({ mtu: 65520 }),
    {
      transmit: (f) => r.out.push(Buffer.from(f)),
      onDrop: (reason) => r.drops.set(reason, (r.drops.get(reason) ?? 0) + 1),
      tcp: tcpHooks,
      udp: udpHooks,
    },
    opts,
  );
  return r;
}

describe('port 0 and the stack never throwing', () => {
  it('answers UDP to the gateway port 0 with ICMP port unreachable and opens no host socket', () => {
    const r = rig();
    r.stack.receive(0, udpFrame(GW, 40000, 0));
    expect(r.udpSent).toHaveLength(0);
    expect(r.drops.get('dst-port-zero')).toBe(1);
    const reply = parse(r.out.at(-1)!);
    expect(reply.icmp).toMatchObject({ type: 3, code: 3 });
  });

  it('answers a SYN to port 0 with RST and opens no flow', () => {
    const r = rig();
    r.stack.receive(0, tcpFrame({ srcPort: 40000, dstPort: 0, flags: TcpFlags.SYN }));
    expect(r.opened).toHaveLength(0);
    expect(parse(r.out.at(-1)!).tcp!.flags & TcpFlags.RST).toBeTruthy();
  });
});

describe('where each destination class goes (nat.ts)', () => {
  const cfg = makeConfig();
  const closed = makeConfig({ disableHostLoopback: true });
  const cases: Array<[string, string, unknown, unknown]> = [
    ['gateway', '10.0.2.2', { kind: 'host', addr: ip('127.0.0.1') }, { kind: 'unreachable', code: 0 }],
    ['127/8', '127.0.0.1', { kind: 'drop', reason: 'dst-loopback' }, { kind: 'drop', reason: 'dst-loopback' }],
    ['0/8', '0.1.2.3', { kind: 'drop', reason: 'dst-this-network' }, { kind: 'drop', reason: 'dst-this-network' }],
    ['224/4', '224.0.0.1', { kind: 'drop', reason: 'dst-multicast' }, { kind: 'drop', reason: 'dst-multicast' }],
    ['240/4', '240.0.0.1', { kind: 'drop', reason: 'dst-reserved' }, { kind: 'drop', reason: 'dst-reserved' }],
    ['limited broadcast', '255.255.255.255', { kind: 'drop', reason: 'dst-reserved' }, { kind: 'drop', reason: 'dst-reserved' }],
    ['subnet broadcast', '10.0.2.255', { kind: 'drop', reason: 'dst-broadcast' }, { kind: 'drop', reason: 'dst-broadcast' }],
    ['other virtual address', '10.0.2.77', { kind: 'unreachable', code: 1 }, { kind: 'unreachable', code: 1 }],
    ['link-local', '169.254.169.254', { kind: 'host', addr: ip('169.254.169.254') }, { kind: 'host', addr: ip('169.254.169.254') }],
    ['outside', '192.0.2.10', { kind: 'host', addr: ip('192.0.2.10') }, { kind: 'host', addr: ip('192.0.2.10') }],
  ];
  for (const [name, addr, open, shut] of cases) {
    it(`${name} (${addr}): the same with and without --disable-host-loopback, but for the gateway`, () => {
      expect(routeFor(cfg, ip(addr), 80, 'tcp')).toEqual(open);
      expect(routeFor(closed, ip(addr), 80, 'tcp')).toEqual(shut);
    });
  }
});

describe('where each IPv6 destination class goes (nat.ts routeFor6)', () => {
  const cfg = makeConfig({ enableIpv6: true });
  const closed = makeConfig({ enableIpv6: true, disableHostLoopback: true });
  const cases: Array<[string, string, unknown, unknown]> = [
    ['gateway', 'fd00::2', { kind: 'host6', addr: '::1' }, { kind: 'unreachable', code: 0 }],
    ['router link-local', 'fe80::2', { kind: 'host6', addr: '::1' }, { kind: 'unreachable', code: 0 }],
    ['DNS, port 80', 'fd00::3', { kind: 'unreachable', code: 3 }, { kind: 'unreachable', code: 3 }],
    ['rest of the prefix', 'fd00::77', { kind: 'unreachable', code: 1 }, { kind: 'unreachable', code: 1 }],
    ['other link-local', 'fe80::9', { kind: 'unreachable', code: 1 }, { kind: 'unreachable', code: 1 }],
    ['::', '::', { kind: 'drop', reason: 'dst-this-network' }, { kind: 'drop', reason: 'dst-this-network' }],
    ['::1', '::1', { kind: 'drop', reason: 'dst-loopback' }, { kind: 'drop', reason: 'dst-loopback' }],
    ['multicast', 'ff02::1', { kind: 'drop', reason: 'dst-multicast' }, { kind: 'drop', reason: 'dst-multicast' }],
    ['v4-mapped', '::ffff:10.0.2.2', { kind: 'drop', reason: 'dst-v4-mapped' }, { kind: 'drop', reason: 'dst-v4-mapped' }],
    ['outside', '2001:db8::10', { kind: 'host6', addr: '2001:db8::10' }, { kind: 'host6', addr: '2001:db8::10' }],
  ];
  for (const [name, addr, open, shut] of cases) {
    it(`${name} (${addr}): --disable-host-loopback closes only the way to the host's ::1`, () => {
      expect(routeFor6(cfg, ipv6FromString(addr), 80, 'tcp')).toEqual(open);
      expect(routeFor6(closed, ipv6FromString(addr), 80, 'tcp')).toEqual(shut);
    });
  }
  it('port 0 is refused like a closed port; DNS port 53 goes to the forwarder', () => {
    expect(routeFor6(cfg, ipv6FromString('2001:db8::10'), 0, 'udp')).toEqual({ kind: 'unreachable', code: 3, reason: 'dst-port-zero' });
    expect(routeFor6(cfg, ipv6FromString('fd00::3'), 53, 'udp')).toEqual({ kind: 'dns' });
  });
});

describe('one flow table, one cap', () => {
  it('at the cap a new TCP flow gets RST (flow-table-full); nothing else is touched', () => {
    const r = rig({ maxFlows: 4 });
    for (let i = 0; i < 4; i++) r.stack.receive(0, tcpFrame({ srcPort: 40000 + i, dstPort: 80, flags: TcpFlags.SYN }));
    expect(r.stack.flowCount).toBe(4);
    r.out.length = 0;
    r.stack.receive(0, tcpFrame({ srcPort: 41000, dstPort: 80, flags: TcpFlags.SYN }));
    expect(r.drops.get('flow-table-full')).toBe(1);
    expect(r.stack.flowCount).toBe(4);
    expect(parse(r.out.at(-1)!).tcp).toMatchObject({ srcPort: 80, dstPort: 41000 });
    expect(parse(r.out.at(-1)!).tcp!.flags & TcpFlags.RST).toBeTruthy();
  });

  it('evicts the least recently active UDP flow before refusing TCP', () => {
    const closed: string[] = [];
    const r = rig({ maxFlows: 3 }, {}, { close: (_f, reason) => closed.push(reason) });
    r.stack.receive(0, udpFrame(OUTSIDE, 5000, 53));
    r.stack.receive(1, udpFrame(OUTSIDE, 5001, 53));
    r.stack.receive(2, tcpFrame({ srcPort: 40000, dstPort: 80, flags: TcpFlags.SYN }));
    r.stack.receive(3, tcpFrame({ srcPort: 40001, dstPort: 80, flags: TcpFlags.SYN }));
    expect(closed).toEqual(['evicted']);
    expect(r.stack.tcp!.size).toBe(2);
    expect(r.stack.udp!.size).toBe(1);
    expect(r.stack.flows.evictions).toBe(1);
  });

  it('a new UDP flow with only TCP in the table gets ICMP host unreachable', () => {
    const r = rig({ maxFlows: 2 });
    r.stack.receive(0, tcpFrame({ srcPort: 40000, dstPort: 80, flags: TcpFlags.SYN }));
    r.stack.receive(0, tcpFrame({ srcPort: 40001, dstPort: 80, flags: TcpFlags.SYN }));
    r.stack.receive(0, udpFrame(OUTSIDE, 5000, 53));
    expect(r.udpSent).toHaveLength(0);
    expect(r.drops.get('flow-table-full')).toBe(1);
    expect(parse(r.out.at(-1)!).icmp).toMatchObject({ type: 3, code: 1 });
  });

  it('a spoofed SYN flood is held to maxHalfOpen host connects; the rest are dropped, counted', () => {
    const r = rig({ maxHalfOpen: 8 });
    for (let i = 0; i < 1000; i++) {
      r.stack.receive(0, tcpFrame({ src: ip(`10.0.2.${100 + (i % 100)}`), srcPort: 10000 + i, dstPort: 80, flags: TcpFlags.SYN }));
    }
    expect(r.opened).toHaveLength(8);
    expect(r.stack.tcp!.opening).toBe(8);
    expect(r.drops.get('tcp-half-open-full')).toBe(992);
    // A refused connect frees its slot.
    r.stack.tcp!.refused(1, r.opened[0]!.id);
    expect(r.stack.tcp!.opening).toBe(7);
    r.stack.receive(2, tcpFrame({ srcPort: 30000, dstPort: 80, flags: TcpFlags.SYN }));
    expect(r.opened).toHaveLength(9);
  });

  it('at the half-open cap the oldest unanswered SYN-ACK makes room for the guest\'s real connect', () => {
    const resets: number[] = [];
    const r = rig({ maxHalfOpen: 4 }, { reset: (f) => resets.push(f.id) });
    for (let i = 0; i < 4; i++) r.stack.receive(0, tcpFrame({ src: ip('198.18.0.1'), srcPort: 10000 + i, dstPort: 80, flags: TcpFlags.SYN }));
    // The host accepted them all: SYN-ACKs went out, the spoofed sources never answer.
    for (const f of r.opened) r.stack.tcp!.accepted(0, f.id);
    // A SYN-ACK only just sent is young: not evicted (its guest may be about to answer).
    r.stack.receive(500, tcpFrame({ srcPort: 30000, dstPort: 80, flags: TcpFlags.SYN }));
    expect(r.drops.get('tcp-half-open-full')).toBe(1);
    expect(r.opened).toHaveLength(4);
    // Nor one retransmitted a moment ago (at 1 s): a guest whose handshake
    // ACK was lost answers the retransmission, which may take a while.
    r.stack.receive(1500, tcpFrame({ srcPort: 30000, dstPort: 80, flags: TcpFlags.SYN }));
    expect(r.drops.get('tcp-half-open-full')).toBe(2);
    expect(r.drops.get('tcp-half-open-evicted')).toBeUndefined();
    r.stack.receive(3500, tcpFrame({ srcPort: 30000, dstPort: 80, flags: TcpFlags.SYN }));
    expect(r.drops.get('tcp-half-open-evicted')).toBe(1);
    expect(resets).toEqual([r.opened[0]!.id]);
    expect(r.opened).toHaveLength(5);
    expect(r.stack.tcp!.opening).toBe(4);
  });
});

describe('the memory budget', () => {
  it('shares shrink with the number of flows and never exceed what is free', () => {
    const b = new MemoryBudget(100);
    expect(b.share(1, 0)).toBe(100);
    expect(b.share(4, 0)).toBe(25);
    expect(b.take(90)).toBe(true);
    expect(b.share(4, 0)).toBe(10);
    expect(b.take(20)).toBe(false);
    expect(b.used).toBe(90);
    b.release(80);
    expect(b.relieved()).toBe(true);
    expect(b.relieved()).toBe(false);
  });

  it('200 stalled connections (zero window) hold no more than the budget host->guest', () => {
    const budget = 16 * 1024 * 1024;
    const r = rig({ memoryBudget: budget, maxHalfOpen: 1000 });
    const tcp = r.stack.tcp!;
    const chunk = Buffer.alloc(1024 * 1024, 7);
    const flows: TcpFlow[] = [];
    for (let i = 0; i < 200; i++) {
      r.stack.receive(0, tcpFrame({ srcPort: 20000 + i, dstPort: 80, seq: 5000, flags: TcpFlags.SYN, window: 0 }));
      const flow = r.opened.at(-1)!;
      tcp.accepted(0, flow.id);
      flows.push(flow);
    }
    r.stack.flush(0);
    // The guest completes each handshake advertising a zero window, then
    // never reads: everything the host sends stays buffered in tsnet.
    for (const f of r.out.splice(0)) {
      const p = parse(f);
      if (!p.tcp || !(p.tcp.flags & TcpFlags.SYN)) continue;
      r.stack.receive(1, tcpFrame({ srcPort: p.tcp.dstPort, dstPort: 80, seq: 5001, ack: (p.tcp.seq + 1) >>> 0, flags: TcpFlags.ACK, window: 0 }));
    }
    let taken = 0;
    for (let round = 0; round < 8; round++) for (const f of flows) taken += tcp.send(f.id, chunk);
    r.stack.flush(2);
    expect(r.stack.budget.used).toBeLessThanOrEqual(budget);
    expect(r.stack.budget.peak).toBeLessThanOrEqual(budget);
    // The budget is usable in full (blocks are filled, not just taken).
    expect(taken).toBeGreaterThan(budget * 0.9);
    expect(flows.every((f) => tcp.get(f.id) !== undefined)).toBe(true);
  });

  it('a single flow still gets the full per-connection buffer (4 MiB) when alone', () => {
    const r = rig({});
    r.stack.receive(0, tcpFrame({ srcPort: 20000, dstPort: 80, seq: 5000, flags: TcpFlags.SYN }));
    const flow = r.opened[0]!;
    r.stack.tcp!.accepted(0, flow.id);
    expect(r.stack.tcp!.sendSpace(flow.id)).toBe(4 * 1024 * 1024);
  });
});

describe('a failing flow is closed alone', () => {
  it('a host hook that throws resets that flow; other flows and the stack go on', () => {
    let bomb = -1;
    const resets: number[] = [];
    const r = rig({}, {
      open: (flow) => {
        r.opened.push(flow);
      },
      data: (flow) => {
        if (flow.id === bomb) throw new Error('boom');
      },
      reset: (flow) => resets.push(flow.id),
    });
    const errors: unknown[] = [];
    // Two established flows.
    for (const port of [30000, 30001]) {
      r.stack.receive(0, tcpFrame({ srcPort: port, dstPort: 80, seq: 100, flags: TcpFlags.SYN }));
      r.stack.tcp!.accepted(0, r.opened.at(-1)!.id);
    }
    r.stack.flush(0);
    const synAcks = r.out.splice(0).map(parse).filter((p) => p.tcp && p.tcp.flags & TcpFlags.SYN);
    for (const p of synAcks) r.stack.receive(1, tcpFrame({ srcPort: p.tcp!.dstPort, dstPort: 80, seq: 101, ack: (p.tcp!.seq + 1) >>> 0, flags: TcpFlags.ACK }));
    const [a, b] = r.opened;
    bomb = a!.id;
    const ackA = synAcks.find((p) => p.tcp!.dstPort === a!.guestPort)!.tcp!.seq + 1;
    r.stack.receive(2, tcpFrame({ srcPort: a!.guestPort, dstPort: 80, seq: 101, ack: ackA >>> 0, flags: TcpFlags.ACK | TcpFlags.PSH, payload: Buffer.from('hello') }));
    errors.push(...[...r.drops.entries()].filter(([k]) => k === 'internal-error'));
    expect(r.drops.get('internal-error')).toBe(1);
    expect(r.stack.tcp!.get(a!.id)).toBeUndefined();
    expect(resets).toContain(a!.id);
    expect(r.stack.tcp!.get(b!.id)).toBeDefined();
    // The guest got a RST for the failed flow.
    r.stack.flush(3);
    expect(r.out.map(parse).some((p) => p.tcp && p.tcp.dstPort === a!.guestPort && p.tcp.flags & TcpFlags.RST)).toBe(true);
  });
});

describe('UDP port forwarding', () => {
  it('two host clients that look alike to the guest get separate conversations', () => {
    const r = rig();
    const udp = r.stack.udp!;
    const a = udp.forwardIn(0, 1, '127.0.0.1|5000', GW, 5000, GUEST, 53, Buffer.from('a'));
    const again = udp.forwardIn(0, 1, '::1|5000', GW, 5000, GUEST, 53, Buffer.from('b'));
    expect(a).toBeTruthy();
    // Same guest-visible source, another client: the caller must re-map.
    expect(again).toBeUndefined();
    const b = udp.forwardIn(0, 1, '::1|5000', GW, 50001, GUEST, 53, Buffer.from('b'));
    expect(b).toBeTruthy();
    expect(b!.id).not.toBe(a!.id);
    // The first client keeps its own conversation.
    expect(udp.forwardIn(1, 1, '127.0.0.1|5000', GW, 5000, GUEST, 53, Buffer.from('a'))!.id).toBe(a!.id);
  });
});
