// The stack core driven frame by frame with injected time: ARP for the
// virtual addresses, ICMP echo, guest learning, and drops counted by reason
// without ever throwing.

import { describe, expect, it } from 'vitest';
import { makeConfig } from '../../../src/stack/config.js';
import { Stack } from '../../../src/stack/stack.js';
import { ArpOperation, ArpPacket, ArpRepr } from '../../../src/wire/arp.js';
import { ipv4FromString as ip, macFromString as mac, MAC_BROADCAST } from '../../../src/wire/address.js';
import { EtherType, EthernetFrame, EthernetRepr, ETH_HEADER_LEN } from '../../../src/wire/ethernet.js';
import { Icmpv4Packet, Icmpv4Repr, Icmpv4Type } from '../../../src/wire/icmpv4.js';
import { IpProtocol, Ipv4Packet, Ipv4Repr } from '../../../src/wire/ipv4.js';

const GUEST_MAC = mac('02:00:00:00:00:64');
const GUEST_IP = ip('10.0.2.100');
const GW = ip('10.0.2.2');
const DNS = ip('10.0.2.3');
const GW_MAC = mac('52:55:0a:00:02:02');
const DNS_MAC = mac('52:55:0a:00:02:03');

function setup() {
  const out: Buffer[] = [];
  const drops: string[] = [];
  const stack = new Stack(makeConfig(), {
    transmit: (f) => out.push(Buffer.from(f)),
    onDrop: (r) => drops.push(r),
  });
  return { stack, out, drops };
}

const WHO_HAS = { operation: ArpOperation.Request, senderMac: GUEST_MAC, senderIp: GUEST_IP, targetMac: 0, targetIp: GW };

function arpFrame(a: typeof WHO_HAS, dst = MAC_BROADCAST): Buffer {
  const f = Buffer.alloc(ETH_HEADER_LEN + 28);
  new EthernetRepr({ src: a.senderMac, dst, ethertype: EtherType.ARP }).emit(f);
  new ArpRepr(a).emit(f.subarray(ETH_HEADER_LEN));
  return f;
}

const ECHO = { src: GUEST_IP, dst: GW, ident: 0x1f14, seq: 1, data: Buffer.from('abcdefghijklmnopqrstuvwxyz012345'), dstMac: GW_MAC };

function icmpFrame(e: typeof ECHO): Buffer {
  const icmp = new Icmpv4Repr({ type: Icmpv4Type.EchoRequest, ident: e.ident, seq: e.seq, data: e.data });
  const ipr = new Ipv4Repr({ src: e.src, dst: e.dst, protocol: IpProtocol.ICMP, payloadLen: icmp.bufferLen() });
  const f = Buffer.alloc(ETH_HEADER_LEN + ipr.bufferLen());
  new EthernetRepr({ src: GUEST_MAC, dst: e.dstMac, ethertype: EtherType.IPv4 }).emit(f);
  ipr.emit(f.subarray(ETH_HEADER_LEN));
  icmp.emit(f.subarray(ETH_HEADER_LEN + ipr.headerLen()));
  return f;
}

function parseReply(f: Buffer) {
  const eth = EthernetFrame.newChecked(f);
  const ipp = Ipv4Packet.newChecked(eth.payload);
  const ipr = Ipv4Repr.parse(ipp);
  const icmp = Icmpv4Repr.parse(Icmpv4Packet.newChecked(ipp.payload));
  return { eth, ipr, icmp };
}

describe('ARP', () => {
  it('answers who-has for the gateway with 52:55:0a:00:02:02', () => {
    const { stack, out } = setup();
    stack.receive(0, arpFrame(WHO_HAS));
    expect(out).toHaveLength(1);
    const eth = EthernetFrame.newChecked(out[0]!);
    expect(eth.dst).toBe(GUEST_MAC);
    expect(eth.src).toBe(GW_MAC);
    expect(eth.ethertype).toBe(EtherType.ARP);
    const r = ArpRepr.parse(ArpPacket.newChecked(eth.payload));
    expect(r).toMatchObject({ operation: ArpOperation.Reply, senderMac: GW_MAC, senderIp: GW, targetMac: GUEST_MAC, targetIp: GUEST_IP });
  });

  it('answers who-has for the DNS address with its own virtual MAC', () => {
    const { stack, out } = setup();
    stack.receive(0, arpFrame({ ...WHO_HAS, targetIp: DNS }));
    const r = ArpRepr.parse(ArpPacket.newChecked(EthernetFrame.newChecked(out[0]!).payload));
    expect(r.senderMac).toBe(DNS_MAC);
    expect(r.senderIp).toBe(DNS);
  });

  it('stays silent for other addresses, including the guest probing its own (DAD)', () => {
    const { stack, out, drops } = setup();
    stack.receive(0, arpFrame({ ...WHO_HAS, targetIp: ip('10.0.2.50') }));
    stack.receive(0, arpFrame({ ...WHO_HAS, senderIp: 0, targetIp: GUEST_IP }));
    expect(out).toHaveLength(0);
    expect(drops).toEqual(['arp-not-for-us', 'arp-not-for-us']);
  });

  it('learns the guest from its request but not from an RFC 5227 probe', () => {
    const { stack } = setup();
    stack.receive(0, arpFrame({ ...WHO_HAS, senderIp: 0 }));
    expect(stack.guestMac(GUEST_IP)).toBeUndefined();
    stack.receive(5, arpFrame(WHO_HAS));
    expect(stack.guestMac(GUEST_IP)).toBe(GUEST_MAC);
  });

  it('answers an 802.1Q-tagged request with an untagged reply', () => {
    const { stack, out } = setup();
    const plain = arpFrame(WHO_HAS);
    const tagged = Buffer.concat([plain.subarray(0, 12), Buffer.from([0x81, 0x00, 0x00, 0x05]), plain.subarray(12)]);
    stack.receive(0, tagged);
    expect(out).toHaveLength(1);
    expect(EthernetFrame.newChecked(out[0]!).tagged).toBe(false);
  });
});

describe('ICMP echo', () => {
  it('replies to ping to the gateway with identical ident, seq and data', () => {
    const { stack, out } = setup();
    stack.receive(0, icmpFrame(ECHO));
    expect(out).toHaveLength(1);
    const { eth, ipr, icmp } = parseReply(out[0]!);
    expect(eth.dst).toBe(GUEST_MAC);
    expect(eth.src).toBe(GW_MAC);
    expect(ipr).toMatchObject({ src: GW, dst: GUEST_IP, protocol: IpProtocol.ICMP, ttl: 64 });
    expect(icmp).toMatchObject({ type: Icmpv4Type.EchoReply, code: 0, ident: ECHO.ident, seq: ECHO.seq });
    expect(icmp.data.equals(ECHO.data)).toBe(true);
  });

  it('replies to ping to the DNS address from the DNS address', () => {
    const { stack, out } = setup();
    stack.receive(0, icmpFrame({ ...ECHO, dst: DNS, dstMac: DNS_MAC }));
    const { eth, ipr } = parseReply(out[0]!);
    expect(eth.src).toBe(DNS_MAC);
    expect(ipr.src).toBe(DNS);
  });

  it('replies to a 60000-byte echo (jumbo MTU)', () => {
    const { stack, out } = setup();
    stack.receive(0, icmpFrame({ ...ECHO, data: Buffer.alloc(60000, 7) }));
    expect(parseReply(out[0]!).icmp.data.length).toBe(60000);
  });

  it('drops an echo with a bad ICMP checksum', () => {
    const { stack, out, drops } = setup();
    const f = icmpFrame(ECHO);
    f[ETH_HEADER_LEN + 20 + 8] ^= 0xff; // flip a data byte
    stack.receive(0, f);
    expect(out).toHaveLength(0);
    expect(drops).toEqual(['icmpv4-bad-checksum']);
  });

  it('drops a datagram with a bad IPv4 header checksum', () => {
    const { stack, out, drops } = setup();
    const f = icmpFrame(ECHO);
    f[ETH_HEADER_LEN + 8] = 1; // TTL changed, checksum not updated
    stack.receive(0, f);
    expect(out).toHaveLength(0);
    expect(drops).toEqual(['ipv4-bad-checksum']);
  });

  it('does not answer echo to outside addresses yet (counted)', () => {
    const { stack, out, drops } = setup();
    stack.receive(0, icmpFrame({ ...ECHO, dst: ip('192.0.2.1') }));
    expect(out).toHaveLength(0);
    expect(drops).toEqual(['icmp-to-external-unhandled']);
  });
});

describe('drops', () => {
  it('drops unicast frames for other MACs, unknown EtherTypes and fragments, counting each reason', () => {
    const { stack, drops } = setup();
    const f = icmpFrame(ECHO);
    const other = Buffer.from(f);
    other.writeUIntBE(0x020000000001, 0, 6);
    stack.receive(0, other);
    const lldp = Buffer.from(f);
    lldp.writeUInt16BE(0x88cc, 12);
    stack.receive(0, lldp);
    // A first fragment: MF set. Recompute the header checksum so it passes.
    const frag = Buffer.from(f);
    const ipb = frag.subarray(ETH_HEADER_LEN);
    ipb.writeUInt16BE(0x2000, 6);
    new Ipv4Packet(ipb).fillChecksum();
    stack.receive(0, frag);
    expect(drops).toEqual(['eth-not-for-us', 'eth-unknown-ethertype', 'ipv4-fragment']);
    expect(stack.counters.snapshot().drops).toEqual({ 'eth-not-for-us': 1, 'eth-unknown-ethertype': 1, 'ipv4-fragment': 1 });
  });

  it('never throws on truncated or lying frames; every one is counted', () => {
    const { stack } = setup();
    const good = icmpFrame(ECHO);
    const cases: Buffer[] = [
      Buffer.alloc(0),
      Buffer.alloc(10),
      good.subarray(0, 20), // IPv4 truncated
      arpFrame(WHO_HAS).subarray(0, 30), // ARP truncated
    ];
    const lying = Buffer.from(good);
    lying.writeUInt16BE(5000, ETH_HEADER_LEN + 2); // total length beyond the frame
    cases.push(lying);
    const ihl = Buffer.from(good);
    ihl[ETH_HEADER_LEN] = 0x43; // IHL 3
    cases.push(ihl);
    for (const c of cases) expect(() => stack.receive(0, c)).not.toThrow();
    expect(stack.counters.totalDrops()).toBe(cases.length);
    expect(stack.counters.rxFrames).toBe(cases.length);
  });

  it('survives random garbage (property: no exception, every frame accounted for)', () => {
    const { stack, out } = setup();
    let seed = 12345;
    const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    const base = [icmpFrame(ECHO), arpFrame(WHO_HAS)];
    const N = 3000;
    for (let i = 0; i < N; i++) {
      const f = Buffer.from(base[i % 2]!);
      const flips = 1 + Math.floor(rnd() * 4);
      for (let k = 0; k < flips; k++) f[Math.floor(rnd() * f.length)] = Math.floor(rnd() * 256);
      const cut = rnd() < 0.3 ? Math.floor(rnd() * f.length) : f.length;
      stack.receive(i, f.subarray(0, cut));
    }
    const c = stack.counters;
    expect(c.rxFrames).toBe(N);
    // Each frame was answered, consumed (an ARP reply teaches us a MAC) or
    // dropped with a reason: never silently lost, never counted twice.
    expect(c.totalDrops() + out.length + (c.events.get('arp-reply-received') ?? 0)).toBe(N);
    expect(c.drops.get('internal-error')).toBeUndefined();
  });
});

describe('frames waiting for ARP', () => {
  const isArpRequest = (f: Buffer) => f.readUInt16BE(12) === EtherType.ARP;
  const someFrame = () => Buffer.alloc(ETH_HEADER_LEN + 20, 0xab);

  it('asks again every 250 ms, gives up after 3 s and counts every frame dropped; a late answer sends nothing old', () => {
    const { stack, out, drops } = setup();
    stack.poll(1000);
    stack.sendToGuest(1000, GUEST_IP, someFrame());
    stack.sendToGuest(1000, GUEST_IP, someFrame());
    expect(out.filter(isArpRequest)).toHaveLength(1);
    expect(stack.pollAt()).toBe(1250);
    stack.poll(1250);
    expect(out.filter(isArpRequest)).toHaveLength(2);
    for (let t = 1500; t < 4000; t += 250) stack.poll(t);
    expect(out.filter(isArpRequest).length).toBeLessThanOrEqual(12);
    stack.poll(4000);
    expect(drops.filter((d) => d === 'arp-unresolved')).toHaveLength(2);
    expect(stack.pollAt()).toBe(Infinity);
    out.length = 0;
    // The guest shows up: nothing that waited is sent any more.
    stack.receive(4100, arpFrame(WHO_HAS));
    expect(out.filter((f) => !isArpRequest(f) && f.readUInt16BE(12) === EtherType.IPv4)).toHaveLength(0);
  });

  it('sends what waited as soon as the guest answers', () => {
    const { stack, out } = setup();
    stack.poll(0);
    stack.sendToGuest(0, GUEST_IP, someFrame());
    stack.receive(100, arpFrame(WHO_HAS));
    const sent = out.filter((f) => f.readUInt8(ETH_HEADER_LEN) === 0xab);
    expect(sent).toHaveLength(1);
    expect(sent[0]!.readUIntBE(0, 6)).toBe(GUEST_MAC);
    expect(stack.pollAt()).toBe(Infinity);
  });
});
