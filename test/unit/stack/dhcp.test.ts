// The DHCP server driven message by message with injected time: the
// DISCOVER/OFFER/REQUEST/ACK exchange, lease bookkeeping (same client same
// address, pool exhaustion, expiry, release, decline), NAKs, INFORM, reply
// addressing (RFC 2131 §4.1), and what is dropped.

import { describe, expect, it } from 'vitest';
import { makeConfig, type ConfigInput } from '../../../src/stack/config.js';
import { Counters } from '../../../src/stack/counters.js';
import {
  DEFAULT_DECLINE_HOLD_MS,
  DEFAULT_OFFER_HOLD_MS,
  DhcpServer,
  isForDhcpServer,
  processDhcp,
  type DhcpContext,
  type DhcpServerOptions,
} from '../../../src/stack/dhcp.js';
import { NeighborTable } from '../../../src/stack/neighbors.js';
import { ipv4FromString as ip, macFromString as mac, MAC_BROADCAST } from '../../../src/wire/address.js';
import { pseudoV4 } from '../../../src/wire/checksum.js';
import {
  BOOTP_MIN_LEN,
  BootpOp,
  DHCP_FLAG_BROADCAST,
  DhcpMessageType as T,
  DhcpPacket,
  DhcpRepr,
  type DhcpFields,
} from '../../../src/wire/dhcp.js';
import { WireError } from '../../../src/wire/errors.js';
import { EtherType, EthernetFrame, EthernetRepr, ETH_HEADER_LEN } from '../../../src/wire/ethernet.js';
import { IpProtocol, Ipv4Packet, Ipv4Repr } from '../../../src/wire/ipv4.js';
import { UdpPacket, UdpRepr } from '../../../src/wire/udp.js';

const GW = ip('10.0.2.2');
const DNS = ip('10.0.2.3');
const GW_MAC = mac('52:55:0a:00:02:02');
const MAC_A = mac('52:54:00:12:34:56');
const MAC_B = mac('52:54:00:ab:cd:ef');
const BCAST = 0xffffffff;
const DAY_MS = 86400 * 1000;

/** busybox udhcpc's first DISCOVER, as captured (see test/unit/wire/dhcp.test.ts for the annotated bytes). */
const REAL_DISCOVER = Buffer.from(
  'ffffffffffff52540012345608004500014800000000401179a600000000ffffffff0044004301347e8b01010600556f6332' +
    '00'.repeat(20) +
    '525400123456' +
    '00'.repeat(10 + 192) +
    '638253633501013902024037070103060c0f1c2a0c07747367756573743c0c756468637020312e33352e303d0701525400123456ff' +
    '00'.repeat(11),
  'hex',
);

function setup(opts?: DhcpServerOptions, cfgIn?: ConfigInput) {
  const config = makeConfig(cfgIn);
  const out: Buffer[] = [];
  const drops: string[] = [];
  const events: string[] = [];
  const counters = new Counters();
  const neighbors = new NeighborTable();
  const ctx: DhcpContext = {
    config,
    counters,
    neighbors,
    learnNeighbor: (a, mac, now) => void neighbors.learn(a, mac, now),
    sendToGuest: () => {
      throw new Error('DHCP replies never wait for ARP');
    },
    dhcp: new DhcpServer(opts),
    transmit: (f) => out.push(Buffer.from(f)),
    drop: (r) => {
      counters.drop(r);
      drops.push(r);
    },
    event: (name) => events.push(name),
    inNetwork: (a) => ((a & config.netmask) >>> 0) === config.network,
    isOwnAddress: (a) => a === config.gateway || a === config.dns,
    ownMac: (a) => (a === config.gateway ? config.gatewayMac : a === config.dns ? config.dnsMac : undefined),
  };
  /** Feeds one client frame (as the stack's UDP dispatch would). */
  const send = (now: number, frame: Buffer) => {
    const eth = EthernetFrame.newChecked(frame);
    const ipp = Ipv4Packet.newChecked(eth.payload);
    const udp = UdpPacket.newChecked(ipp.payload);
    expect(isForDhcpServer(config, ipp.dst, udp.dstPort)).toBe(true);
    processDhcp(ctx, now, eth, ipp, udp);
  };
  /** Sends a client message and returns the parsed reply (or undefined when there is none). */
  const ask = (now: number, m: DhcpFields, via?: Via) => {
    const before = out.length;
    send(now, clientFrame(m, via));
    expect(out.length - before).toBeLessThanOrEqual(1);
    return out.length > before ? parseReply(out[out.length - 1]!) : undefined;
  };
  /** DISCOVER then REQUEST (selecting): the bound address. */
  const lease = (now: number, m: Partial<DhcpFields> = {}) => {
    const offer = ask(now, { ...DISCOVER, ...m })!;
    expect(offer.dhcp.messageType).toBe(T.Offer);
    const ack = ask(now, { ...REQUEST, ...m, requestedIp: offer.dhcp.yiaddr, serverId: GW })!;
    expect(ack.dhcp.messageType).toBe(T.Ack);
    return ack.dhcp.yiaddr;
  };
  return { ctx, config, out, drops, events, counters, server: ctx.dhcp, send, ask, lease };
}

interface Via {
  src?: number;
  dst?: number;
  ethDst?: number;
}

/** Client messages as udhcpc sends them (templates; spread and override). */
const DISCOVER: DhcpFields = {
  op: BootpOp.Request,
  xid: 0x556f6332,
  chaddr: MAC_A,
  messageType: T.Discover,
  maxMessageSize: 576,
  parameterRequestList: [1, 3, 6, 12, 15, 28, 42],
  clientId: Buffer.from('01525400123456', 'hex'),
};
const REQUEST: DhcpFields = { ...DISCOVER, messageType: T.Request };

/** A client frame: 0.0.0.0 → 255.255.255.255 broadcast unless told otherwise. */
function clientFrame(m: DhcpFields, via: Via = {}): Buffer {
  const src = via.src ?? 0;
  const dst = via.dst ?? BCAST;
  const r = new DhcpRepr(m);
  const payload = Buffer.alloc(r.bufferLen());
  r.emit(payload);
  const udp = new UdpRepr({ srcPort: 68, dstPort: 67, payload });
  const ipr = new Ipv4Repr({ src, dst, protocol: IpProtocol.UDP, payloadLen: udp.bufferLen(), dontFrag: false });
  const f = Buffer.alloc(ETH_HEADER_LEN + ipr.bufferLen());
  new EthernetRepr({ src: m.chaddr, dst: via.ethDst ?? MAC_BROADCAST, ethertype: EtherType.IPv4 }).emit(f);
  ipr.emit(f.subarray(ETH_HEADER_LEN));
  udp.emit(f.subarray(ETH_HEADER_LEN + ipr.headerLen()), pseudoV4(src, dst, IpProtocol.UDP, udp.bufferLen()));
  return f;
}

function parseReply(f: Buffer) {
  const eth = EthernetFrame.newChecked(f);
  const ipp = Ipv4Packet.newChecked(eth.payload);
  expect(ipp.verifyChecksum()).toBe(true);
  const ipr = Ipv4Repr.parse(ipp);
  const udpp = UdpPacket.newChecked(ipp.payload);
  expect(udpp.checksum).not.toBe(0);
  expect(udpp.verifyChecksumV4(ipp.src, ipp.dst)).toBe(true);
  const udp = UdpRepr.parse(udpp);
  const dhcp = DhcpRepr.parse(DhcpPacket.newChecked(udp.payload));
  return { eth, ipr, udp, dhcp };
}

const inPool = (a: number) => a >= ip('10.0.2.15') && a <= ip('10.0.2.30');

describe('DISCOVER → OFFER', () => {
  it('answers the real udhcpc DISCOVER with an OFFER carrying the slirp4netns plan', () => {
    const { send, out, counters } = setup();
    send(0, REAL_DISCOVER);
    expect(out).toHaveLength(1);
    const { eth, ipr, udp, dhcp } = parseReply(out[0]!);
    // RFC 2131 §4.1: broadcast bit clear, ciaddr 0 → unicast to chaddr / yiaddr.
    expect(eth.src).toBe(GW_MAC);
    expect(eth.dst).toBe(MAC_A);
    expect(ipr).toMatchObject({ src: GW, dst: dhcp.yiaddr, protocol: IpProtocol.UDP, ttl: 64 });
    expect(udp).toMatchObject({ srcPort: 67, dstPort: 68 });
    // At least the BOOTP minimum, and within the client's 576-byte maximum (option 57, IP datagram).
    expect(udp.payload.length).toBeGreaterThanOrEqual(BOOTP_MIN_LEN);
    expect(ipr.bufferLen()).toBeLessThanOrEqual(576);
    expect(dhcp).toMatchObject({
      op: BootpOp.Reply,
      xid: 0x556f6332,
      chaddr: MAC_A,
      flags: 0,
      ciaddr: 0,
      yiaddr: ip('10.0.2.15'),
      siaddr: 0,
      giaddr: 0,
      messageType: T.Offer,
      serverId: GW, // 54
      leaseTime: 86400, // 51
      renewalTime: 43200, // 58
      rebindingTime: 75600, // 59
      subnetMask: ip('255.255.255.0'), // 1
      router: [GW], // 3
      dns: [DNS], // 6
      mtu: 1500, // 26
      broadcast: ip('10.0.2.255'), // 28
    });
    // RFC 6842: the client identifier comes back unaltered.
    expect(dhcp.clientId).toEqual(Buffer.from('01525400123456', 'hex'));
    expect(counters.events.get('dhcp-offer-sent')).toBe(1);
  });

  it('follows --cidr and --mtu', () => {
    const { ask } = setup(undefined, { cidr: '192.168.7.0/25', mtu: 65520 });
    const { ipr, dhcp } = ask(0, DISCOVER)!;
    expect(ipr.src).toBe(ip('192.168.7.2'));
    expect(dhcp).toMatchObject({
      yiaddr: ip('192.168.7.15'),
      serverId: ip('192.168.7.2'),
      subnetMask: ip('255.255.255.128'),
      broadcast: ip('192.168.7.127'),
      router: [ip('192.168.7.2')],
      dns: [ip('192.168.7.3')],
      mtu: 65520,
    });
  });

  it('broadcasts the reply when the client sets the broadcast bit (RFC 2131 §4.1)', () => {
    const { ask } = setup();
    const { eth, ipr, dhcp } = ask(0, { ...DISCOVER, flags: DHCP_FLAG_BROADCAST })!;
    expect(eth.dst).toBe(MAC_BROADCAST);
    expect(ipr.dst).toBe(BCAST);
    expect(dhcp.flags).toBe(DHCP_FLAG_BROADCAST);
  });

  it('offers the address the client asks for when it is free (RFC 2131 §4.3.1)', () => {
    const { ask } = setup();
    expect(ask(0, { ...DISCOVER, requestedIp: ip('10.0.2.21') })!.dhcp.yiaddr).toBe(ip('10.0.2.21'));
  });

  it('ignores a requested address outside the pool', () => {
    const { ask } = setup();
    expect(ask(0, { ...DISCOVER, requestedIp: ip('10.0.2.100') })!.dhcp.yiaddr).toBe(ip('10.0.2.15'));
  });

  it('holds an offered address for a while, then lets it go', () => {
    const { ask } = setup();
    expect(ask(0, DISCOVER)!.dhcp.yiaddr).toBe(ip('10.0.2.15'));
    const other = { ...DISCOVER, chaddr: MAC_B, clientId: undefined };
    expect(ask(1000, other)!.dhcp.yiaddr).toBe(ip('10.0.2.16'));
  });
});

describe('REQUEST → ACK', () => {
  it('acknowledges the offered address (selecting) with the full configuration', () => {
    const { ask, ctx, events } = setup();
    const offer = ask(0, DISCOVER)!;
    const { eth, ipr, dhcp } = ask(5, { ...REQUEST, requestedIp: offer.dhcp.yiaddr, serverId: GW })!;
    expect(eth.dst).toBe(MAC_A);
    expect(ipr.dst).toBe(ip('10.0.2.15'));
    expect(dhcp).toMatchObject({
      messageType: T.Ack,
      xid: DISCOVER.xid,
      yiaddr: ip('10.0.2.15'),
      ciaddr: 0,
      serverId: GW,
      leaseTime: 86400,
      subnetMask: ip('255.255.255.0'),
      router: [GW],
      dns: [DNS],
      mtu: 1500,
    });
    const l = ctx.dhcp.boundLease(ip('10.0.2.15'), 5)!;
    expect(l).toMatchObject({ mac: MAC_A, state: 'bound', expiresAt: 5 + DAY_MS });
    // The binding teaches the neighbor table, as a router would.
    expect(ctx.neighbors.lookup(ip('10.0.2.15'))).toBe(MAC_A);
    expect(events).toContain('dhcp lease bound');
  });

  it('gives the same client the same address on every DISCOVER', () => {
    const { ask, lease } = setup();
    const a = lease(0);
    expect(ask(10, DISCOVER)!.dhcp.yiaddr).toBe(a);
    expect(lease(20)).toBe(a);
  });

  it('gives the same MAC without a client identifier (dhclient) the same address', () => {
    const { lease } = setup();
    const m = { clientId: undefined };
    expect(lease(0, m)).toBe(lease(100, m));
  });

  it('gives a second client a different address', () => {
    const { lease } = setup();
    const a = lease(0);
    const b = lease(0, { chaddr: MAC_B, clientId: Buffer.from('01525400abcdef', 'hex') });
    expect(a).toBe(ip('10.0.2.15'));
    expect(b).toBe(ip('10.0.2.16'));
  });

  it('renews (ciaddr, unicast to the server): ACK to ciaddr, lease extended', () => {
    const { ask, lease, ctx } = setup();
    const a = lease(0);
    const t = DAY_MS / 2;
    const { eth, ipr, dhcp } = ask(t, { ...REQUEST, ciaddr: a }, { src: a, dst: GW, ethDst: GW_MAC })!;
    expect(dhcp).toMatchObject({ messageType: T.Ack, ciaddr: a, yiaddr: a });
    expect(ipr.dst).toBe(a);
    expect(eth.dst).toBe(MAC_A);
    expect(ctx.dhcp.boundLease(a, t)!.expiresAt).toBe(t + DAY_MS);
  });

  it('acknowledges INIT-REBOOT for a free pool address it has no record of (authoritative)', () => {
    const { ask } = setup();
    const { dhcp } = ask(0, { ...REQUEST, requestedIp: ip('10.0.2.20') })!;
    expect(dhcp).toMatchObject({ messageType: T.Ack, yiaddr: ip('10.0.2.20') });
  });

  it('NAKs a REQUEST for an address outside the pool, broadcast, without configuration', () => {
    const { ask, counters } = setup();
    const { eth, ipr, dhcp } = ask(0, { ...REQUEST, requestedIp: ip('10.0.2.100') })!;
    // RFC 2131 §4.1: a NAK is broadcast when giaddr is 0.
    expect(eth.dst).toBe(MAC_BROADCAST);
    expect(ipr.dst).toBe(BCAST);
    expect(dhcp).toMatchObject({
      messageType: T.Nak,
      serverId: GW,
      yiaddr: 0,
      ciaddr: 0,
      leaseTime: undefined,
      router: undefined,
      subnetMask: undefined,
    });
    expect(dhcp.message).toBe('requested address not available');
    expect(counters.events.get('dhcp-nak-sent')).toBe(1);
  });

  it("NAKs a REQUEST for another client's address", () => {
    const { ask, lease } = setup();
    const a = lease(0);
    const { dhcp } = ask(1, { ...REQUEST, chaddr: MAC_B, clientId: undefined, requestedIp: a })!;
    expect(dhcp.messageType).toBe(T.Nak);
  });

  it('NAKs a renewal from a foreign network (ciaddr outside the subnet)', () => {
    const { ask } = setup();
    const { dhcp } = ask(0, { ...REQUEST, ciaddr: ip('192.168.1.50') }, { src: ip('192.168.1.50'), dst: GW, ethDst: GW_MAC })!;
    expect(dhcp.messageType).toBe(T.Nak);
  });

  it('stays silent when the client selected another server, and withdraws the offer', () => {
    const { ask, drops, ctx } = setup();
    const offer = ask(0, DISCOVER)!;
    expect(ask(1, { ...REQUEST, requestedIp: ip('10.0.2.50'), serverId: ip('10.0.2.1') })).toBeUndefined();
    expect(drops).toEqual(['dhcp-for-other-server']);
    expect(ctx.dhcp.isFreeFor(offer.dhcp.yiaddr, 'someone-else', 1)).toBe(true);
  });
});

describe('lease table', () => {
  const client = (i: number): Partial<DhcpFields> => ({
    chaddr: 0x020000000000 + i,
    clientId: undefined,
    xid: 1000 + i,
  });

  it('runs out after 16 clients: no offer, counted as dhcp-pool-exhausted', () => {
    const { lease, ask, drops } = setup();
    const got = new Set<number>();
    for (let i = 0; i < 16; i++) got.add(lease(i, client(i)));
    expect(got.size).toBe(16);
    for (const a of got) expect(inPool(a)).toBe(true);
    expect(ask(100, { ...DISCOVER, ...client(16) })).toBeUndefined();
    expect(drops).toEqual(['dhcp-pool-exhausted']);
  });

  it('counts outstanding offers against the pool until they lapse', () => {
    const { ask, drops } = setup();
    for (let i = 0; i < 16; i++) expect(ask(0, { ...DISCOVER, ...client(i) })).toBeDefined();
    expect(ask(1, { ...DISCOVER, ...client(16) })).toBeUndefined();
    expect(drops).toEqual(['dhcp-pool-exhausted']);
    expect(ask(DEFAULT_OFFER_HOLD_MS + 1, { ...DISCOVER, ...client(16) })!.dhcp.yiaddr).toBe(ip('10.0.2.15'));
  });

  it('expires leases by lease time (injected time): the oldest expired address is reused', () => {
    const { lease, ask } = setup();
    for (let i = 0; i < 16; i++) lease(i * 1000, client(i));
    expect(ask(DAY_MS - 1, { ...DISCOVER, ...client(16) })).toBeUndefined();
    // At DAY_MS + 500 only client 0's lease (bound at t=0) has expired.
    const { dhcp } = ask(DAY_MS + 500, { ...DISCOVER, ...client(16) })!;
    expect(dhcp.yiaddr).toBe(ip('10.0.2.15'));
    // Client 0 comes back and gets another address once one frees up.
    expect(ask(DAY_MS + 600, { ...DISCOVER, ...client(0) })).toBeUndefined();
  });

  it('a renewing client keeps its address past the original expiry', () => {
    const { lease, ask } = setup({ leaseTimeS: 60 });
    const a = lease(0);
    ask(30_000, { ...REQUEST, ciaddr: a }, { src: a, dst: GW, ethDst: GW_MAC });
    expect(ask(70_000, { ...DISCOVER, chaddr: MAC_B, clientId: undefined, requestedIp: a })!.dhcp.yiaddr).not.toBe(a);
  });

  it('RELEASE frees the address; the same client gets it back later', () => {
    const { lease, ask, ctx, counters } = setup();
    for (let i = 1; i < 16; i++) lease(0, client(i)); // .15 .. .29
    const a = lease(0); // .30, the last one
    expect(a).toBe(ip('10.0.2.30'));
    expect(ask(1, { ...DISCOVER, chaddr: MAC_B, clientId: undefined })).toBeUndefined();
    expect(ask(2, { ...REQUEST, messageType: T.Release, ciaddr: a, serverId: GW }, { src: a, dst: GW, ethDst: GW_MAC })).toBeUndefined();
    expect(counters.events.get('dhcp-release-received')).toBe(1);
    expect(ctx.dhcp.boundLease(a, 2)).toBeUndefined();
    expect(lease(3)).toBe(a);
  });

  it('RELEASE of an address the client does not hold changes nothing', () => {
    const { lease, ask, drops, ctx } = setup();
    const a = lease(0);
    ask(1, { ...REQUEST, chaddr: MAC_B, clientId: undefined, messageType: T.Release, ciaddr: a }, { src: a, dst: GW, ethDst: GW_MAC });
    expect(drops).toEqual(['dhcp-release-unknown']);
    expect(ctx.dhcp.boundLease(a, 1)).toBeDefined();
  });

  it('DECLINE keeps the address out of the pool for a while', () => {
    const { lease, ask, counters } = setup();
    const a = lease(0);
    expect(ask(1, { ...REQUEST, messageType: T.Decline, requestedIp: a, serverId: GW })).toBeUndefined();
    expect(counters.events.get('dhcp-decline-received')).toBe(1);
    // Same client again: a different address.
    const b = ask(2, DISCOVER)!.dhcp.yiaddr;
    expect(b).not.toBe(a);
    expect(ask(3, { ...REQUEST, requestedIp: a }, {})!.dhcp.messageType).toBe(T.Nak);
    // After the hold the address is usable again.
    expect(ask(DEFAULT_DECLINE_HOLD_MS + 10, { ...REQUEST, chaddr: MAC_B, clientId: undefined, requestedIp: a })!.dhcp.messageType).toBe(T.Ack);
  });

  it('a client that switches client identifier gets its old address once the old lease is released', () => {
    const { lease, ask } = setup();
    const a = lease(0); // udhcpc: client id 01:MAC
    ask(1, { ...REQUEST, messageType: T.Release, ciaddr: a }, { src: a, dst: GW, ethDst: GW_MAC });
    const duid = Buffer.from('ff0000000100020000ab11aabbccddeeff0011', 'hex'); // systemd-networkd style
    expect(lease(2, { clientId: duid })).toBe(a);
  });

  it('stays bounded by the pool however many clients come and go', () => {
    const { ask, server } = setup({ offerHoldMs: 10 });
    for (let i = 0; i < 500; i++) ask(i * 20, { ...DISCOVER, ...client(i) });
    expect(server.leases().length).toBeLessThanOrEqual(16);
  });
});

describe('INFORM', () => {
  it('answers with an ACK to ciaddr: configuration, no lease, no yiaddr (RFC 2131 §4.3.5)', () => {
    const { ask, ctx, counters } = setup();
    const me = ip('10.0.2.100');
    const { eth, ipr, dhcp } = ask(0, { ...REQUEST, messageType: T.Inform, ciaddr: me }, { src: me, dst: BCAST })!;
    expect(eth.dst).toBe(MAC_A);
    expect(ipr.dst).toBe(me);
    expect(dhcp).toMatchObject({
      messageType: T.Ack,
      ciaddr: me,
      yiaddr: 0,
      serverId: GW,
      leaseTime: undefined,
      renewalTime: undefined,
      subnetMask: ip('255.255.255.0'),
      router: [GW],
      dns: [DNS],
    });
    expect(ctx.dhcp.leases()).toHaveLength(0);
    expect(counters.events.get('dhcp-inform-ack-sent')).toBe(1);
  });
});

describe('drops', () => {
  it('drops BOOTREPLYs, plain BOOTP, relayed messages and server message types, by reason', () => {
    const { ask, drops, out } = setup();
    ask(0, { ...DISCOVER, op: BootpOp.Reply });
    ask(0, { ...DISCOVER, messageType: undefined });
    ask(0, { ...DISCOVER, giaddr: ip('10.0.2.9') });
    ask(0, { ...DISCOVER, messageType: T.Offer });
    ask(0, { ...DISCOVER, messageType: 42 });
    expect(out).toHaveLength(0);
    expect(drops).toEqual([
      'dhcp-not-request',
      'dhcp-bootp-unsupported',
      'dhcp-relayed-unsupported',
      'dhcp-unexpected-type',
      'dhcp-unexpected-type',
    ]);
  });

  it('rejects a bad UDP checksum and a malformed message with a WireError (the stack counts it)', () => {
    const { send } = setup();
    const f = Buffer.from(REAL_DISCOVER);
    f[ETH_HEADER_LEN + 28 + 4] ^= 1; // xid
    expect(() => send(0, f)).toThrow(WireError);
    const g = Buffer.from(REAL_DISCOVER);
    g.writeUInt16BE(0, ETH_HEADER_LEN + 26); // no UDP checksum (legal over IPv4)
    g[ETH_HEADER_LEN + 28 + 239] = 0; // break the cookie
    let err: unknown;
    try {
      send(0, g);
    } catch (e) {
      err = e;
    }
    expect((err as WireError).reason).toBe('dhcp-bad-cookie');
  });

  it('accepts a zero (absent) UDP checksum', () => {
    const { send, out } = setup();
    const g = Buffer.from(REAL_DISCOVER);
    g.writeUInt16BE(0, ETH_HEADER_LEN + 26);
    send(0, g);
    expect(out).toHaveLength(1);
  });
});

describe('isForDhcpServer', () => {
  it('matches port 67 at the limited broadcast, the gateway and the subnet broadcast only', () => {
    const cfg = makeConfig();
    expect(isForDhcpServer(cfg, BCAST, 67)).toBe(true);
    expect(isForDhcpServer(cfg, GW, 67)).toBe(true);
    expect(isForDhcpServer(cfg, ip('10.0.2.255'), 67)).toBe(true);
    expect(isForDhcpServer(cfg, DNS, 67)).toBe(false);
    expect(isForDhcpServer(cfg, ip('192.0.2.1'), 67)).toBe(false);
    expect(isForDhcpServer(cfg, BCAST, 68)).toBe(false);
  });
});
