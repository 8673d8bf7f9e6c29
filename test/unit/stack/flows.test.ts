// The flow layer (src/stack/tcp-flows.ts, udp.ts) scenario by scenario,
// through the Stack with recording host hooks and a clock the test moves:
// what the guest sends, what the host side is asked to do, what the guest
// gets back. Sequence numbers are checked against the ISS the stack chose.
// (Eviction at the flow cap, the half-open cap and port 0 are in
// hardening.test.ts.)

import { describe, expect, it } from 'vitest';
import { makeConfig } from '../../../src/stack/config.js';
import { Stack } from '../../../src/stack/stack.js';
import type { TcpFlow, TcpHooks } from '../../../src/stack/tcp-flows.js';
import type { UdpFlow, UdpHooks } from '../../../src/stack/udp.js';
import { ArpOperation } from '../../../src/wire/arp.js';
import { MAC_BROADCAST } from '../../../src/wire/address.js';
import { EtherType, EthernetFrame } from '../../../src/wire/ethernet.js';
import { Icmpv4Packet } from '../../../src/wire/icmpv4.js';
import { IpProtocol, Ipv4Packet } from '../../../src/wire/ipv4.js';
import { TcpFlags as F, TcpPacket, TcpRepr, type TcpFields } from '../../../src/wire/tcp.js';
import { GUEST_MAC } from '../../fuzz/addresses.js';
import { ipv6FromString, ipv6ToString } from '../../../src/wire/address.js';
import { pseudoV6 } from '../../../src/wire/checksum.js';
import { EthernetRepr } from '../../../src/wire/ethernet.js';
import { Ipv6Packet, Ipv6Repr } from '../../../src/wire/ipv6.js';
import { arp, eth, ipv4, tcp, udp } from '../../fuzz/build.js';
import { UdpPacket, UdpRepr } from '../../../src/wire/udp.js';
import { Icmpv6Repr, Icmpv6Type } from '../../../src/wire/icmpv6.js';

const GUEST_PORT = 40000;
const GUEST_ISS = 1000;

function rig(opts: { udpIdleMs?: number; onEvent?: (name: string) => void; flowEvents?: boolean } = {}) {
  const cfg = makeConfig();
  const out: Buffer[] = [];
  const events: string[] = [];
  let flow: TcpFlow | undefined;
  let udpFlow: UdpFlow | undefined;
  let now = 0;
  const tcpHooks: TcpHooks = {
    open: (f, route) => {
      flow = f;
      events.push(`open ${route.kind}`);
    },
    data: (f, d) => {
      events.push(`data ${d.toString()}`);
      stack.tcp!.consumed(f.id, d.length);
    },
    eof: () => events.push('eof'),
    established: () => events.push('established'),
    sendSpace: () => {},
    reset: (_f, reason) => events.push(`reset ${reason}`),
    closed: () => events.push('closed'),
  };
  const udpHooks: UdpHooks = {
    send: (f, _addr, port, payload) => {
      udpFlow = f;
      events.push(`udp send ${port} ${payload.toString()}`);
    },
    sendDns: () => events.push('dns'),
    close: (_f, reason) => events.push(`udp close ${reason}`),
  };
  const stack = new Stack(
    cfg,
    { transmit: (f) => out.push(Buffer.from(f)), tcp: tcpHooks, udp: udpHooks, onEvent: opts.onEvent, flowEvents: opts.flowEvents },
    { udpIdleMs: opts.udpIdleMs },
  );
  const guest = cfg.guest;
  const gw = cfg.gateway;
  const r = {
    stack,
    cfg,
    events,
    flow: () => flow!,
    udpFlow: () => udpFlow!,
    at: (t: number) => {
      now = t;
      stack.poll(now);
      stack.flush(now);
    },
    /** A TCP segment from the guest (port 40000) to 10.0.2.2:8080. */
    guestTcp: (f: Partial<TcpFields>) => {
      const fields: TcpFields = { srcPort: GUEST_PORT, dstPort: 8080, seq: GUEST_ISS, ack: 0, flags: F.ACK, window: 64240, ...f };
      stack.receive(now, eth(GUEST_MAC, cfg.gatewayMac, EtherType.IPv4, ipv4({ src: guest, dst: gw, protocol: IpProtocol.TCP }, tcp(guest, gw, fields))));
      stack.flush(now);
    },
    guestUdp: (port: number, text: string) => {
      stack.receive(now, eth(GUEST_MAC, cfg.gatewayMac, EtherType.IPv4, ipv4({ src: guest, dst: gw, protocol: IpProtocol.UDP }, udp(guest, gw, GUEST_PORT, port, Buffer.from(text)))));
      stack.flush(now);
    },
    guestArp: () => {
      stack.receive(now, eth(GUEST_MAC, MAC_BROADCAST, EtherType.ARP, arp({ operation: ArpOperation.Request, senderMac: GUEST_MAC, senderIp: guest, targetMac: 0, targetIp: gw })));
    },
    /** Destination MAC and ethertype of everything sent since the last call. */
    sentLinks: (): Array<{ dst: number; type: number }> =>
      out.splice(0).map((f) => {
        const e = EthernetFrame.newChecked(f);
        return { dst: e.dst, type: e.ethertype };
      }),
    /** A gratuitous ARP from the guest: it now has MAC `mac`. */
    guestMoves: (mac: number) => {
      stack.receive(now, eth(mac, MAC_BROADCAST, EtherType.ARP, arp({ operation: ArpOperation.Request, senderMac: mac, senderIp: guest, targetMac: 0, targetIp: guest })));
    },
    guestArpReply: () => {
      stack.receive(now, eth(GUEST_MAC, cfg.gatewayMac, EtherType.ARP, arp({ operation: ArpOperation.Reply, senderMac: GUEST_MAC, senderIp: guest, targetMac: cfg.gatewayMac, targetIp: gw })));
    },
    /** Everything sent to the guest since the last call, as TCP Reprs (others skipped). */
    sentTcp: (): TcpRepr[] =>
      out.splice(0).flatMap((f) => {
        const e = EthernetFrame.newChecked(f);
        if (e.ethertype !== EtherType.IPv4) return [];
        const ip = Ipv4Packet.newChecked(e.payload);
        return ip.protocol === IpProtocol.TCP ? [TcpRepr.parse(TcpPacket.newChecked(ip.payload))] : [];
      }),
    sentIcmp: (): Array<{ type: number; code: number }> =>
      out.splice(0).flatMap((f) => {
        const e = EthernetFrame.newChecked(f);
        if (e.ethertype !== EtherType.IPv4) return [];
        const ip = Ipv4Packet.newChecked(e.payload);
        if (ip.protocol !== IpProtocol.ICMP) return [];
        const icmp = Icmpv4Packet.newChecked(ip.payload);
        return [{ type: icmp.type, code: icmp.code }];
      }),
  };
  return r;
}

/** Guest SYN, host connect accepted, guest ACK: an established outbound flow and our ISS. */
function established() {
  const r = rig();
  r.guestTcp({ flags: F.SYN, mss: 1460 });
  expect(r.events).toEqual(['open host']);
  r.stack.tcp!.accepted(0, r.flow().id);
  r.at(0);
  const [synAck] = r.sentTcp();
  expect(synAck!.flags & (F.SYN | F.ACK)).toBe(F.SYN | F.ACK);
  expect(synAck!.ack).toBe(GUEST_ISS + 1);
  const iss = synAck!.seq;
  r.guestTcp({ seq: GUEST_ISS + 1, ack: iss + 1 });
  return { ...r, iss };
}

describe('the flow layer, scenario by scenario', () => {
  it('open: SYN asks the host to connect; accepted gives SYN-ACK; data flows both ways with the right numbers', () => {
    const r = established();
    r.guestTcp({ seq: GUEST_ISS + 1, ack: r.iss + 1, flags: F.ACK | F.PSH, payload: Buffer.from('hello') });
    expect(r.events).toEqual(['open host', 'established', 'data hello']);
    expect(r.stack.tcp!.send(r.flow().id, Buffer.from('world'))).toBe(5);
    r.at(10);
    const segs = r.sentTcp().filter((s) => s.payload.length > 0);
    expect(segs).toHaveLength(1);
    expect(segs[0]!.payload.toString()).toBe('world');
    expect(segs[0]!.seq).toBe(r.iss + 1);
    expect(segs[0]!.ack).toBe(GUEST_ISS + 1 + 5);
  });

  it('refuse: a refused host connect answers the SYN with RST|ACK and the flow is gone', () => {
    const r = rig();
    r.guestTcp({ flags: F.SYN });
    r.stack.tcp!.refused(0, r.flow().id);
    r.at(0);
    const [rst] = r.sentTcp();
    expect(rst!.flags).toBe(F.RST | F.ACK);
    expect(rst!.ack).toBe(GUEST_ISS + 1);
    expect(r.events).toEqual(['open host', 'closed']);
    expect(r.stack.tcp!.get(r.flow().id)).toBeUndefined();
  });

  it('ICMP errors: an unreachable host connect answers the SYN with ICMP host unreachable', () => {
    const r = rig();
    r.guestTcp({ flags: F.SYN });
    r.stack.tcp!.unreachable(0, r.flow().id, 1);
    r.at(0);
    expect(r.sentIcmp()).toEqual([{ type: 3, code: 1 }]);
    expect(r.events).toContain('closed');
  });

  it('half-close: the guest FIN reaches the host as eof; the host side closing sends FIN; the last ACK ends the flow', () => {
    const r = established();
    r.guestTcp({ seq: GUEST_ISS + 1, ack: r.iss + 1, flags: F.FIN | F.ACK });
    expect(r.events).toEqual(['open host', 'established', 'eof']);
    // Its ACK waits for the host side to answer (delayed ACK), then goes alone.
    r.at(5);
    expect(r.sentTcp()).toEqual([]);
    r.at(12);
    expect(r.sentTcp().some((s) => s.ack === GUEST_ISS + 2)).toBe(true);
    // The host still sends before it closes: half-closed, data flows the other way.
    r.stack.tcp!.send(r.flow().id, Buffer.from('bye'));
    r.stack.tcp!.close(10, r.flow().id);
    r.at(10);
    const out = r.sentTcp();
    const fin = out.find((s) => s.flags & F.FIN)!;
    expect(fin).toBeDefined();
    expect(fin.seq).toBe(r.iss + 1 + (out.find((s) => s.payload.length > 0) === fin ? 0 : 3));
    r.guestTcp({ seq: GUEST_ISS + 2, ack: r.iss + 1 + 3 + 1 });
    expect(r.events.at(-1)).toBe('closed');
  });

  it('RST: a guest reset resets the host side and removes the flow', () => {
    const r = established();
    r.guestTcp({ seq: GUEST_ISS + 1, ack: r.iss + 1, flags: F.RST });
    expect(r.events).toEqual(['open host', 'established', 'reset peer-reset', 'closed']);
    expect(r.stack.tcp!.get(r.flow().id)).toBeUndefined();
  });

  it('forward in: a host client connects into the guest; its SYN-ACK establishes the flow', () => {
    const r = rig();
    r.guestArp(); // the guest is known: no ARP wait
    const f = r.stack.tcp!.connectInbound(0, r.cfg.gateway, 50000, r.cfg.guest, 80);
    expect(f).toBeTruthy();
    r.at(0);
    const [syn] = r.sentTcp();
    expect(syn!.flags).toBe(F.SYN);
    expect([syn!.srcPort, syn!.dstPort]).toEqual([50000, 80]);
    r.stack.receive(0, eth(GUEST_MAC, r.cfg.gatewayMac, EtherType.IPv4, ipv4({ src: r.cfg.guest, dst: r.cfg.gateway, protocol: IpProtocol.TCP },
      tcp(r.cfg.guest, r.cfg.gateway, { srcPort: 80, dstPort: 50000, seq: 7000, ack: syn!.seq + 1, flags: F.SYN | F.ACK, window: 64240 }))));
    r.at(1);
    expect(r.events).toEqual(['established']);
    expect(r.sentTcp().some((s) => s.flags === F.ACK && s.ack === 7001)).toBe(true);
  });

  it('idle expiry: a UDP flow that stays silent past its idle time is closed (idle), one that talks is kept', () => {
    const r = rig({ udpIdleMs: 1000 });
    r.guestUdp(9999, 'ping');
    expect(r.events).toEqual(['udp send 9999 ping']);
    r.at(900);
    r.guestUdp(9999, 'again'); // activity moves the deadline
    r.at(1800);
    expect(r.events).not.toContain('udp close idle');
    r.at(3000);
    expect(r.events).toContain('udp close idle');
    expect(r.stack.flows.size).toBe(0);
  });

  it('link layer: frames of a flow follow the neighbor table when the guest\'s MAC changes', () => {
    const r = established();
    r.sentLinks();
    const NEW_MAC = 0x02aabbccddee;
    r.guestMoves(NEW_MAC);
    r.stack.tcp!.send(r.flow().id, Buffer.from('to the new MAC'));
    r.at(10);
    const links = r.sentLinks();
    expect(links.length).toBeGreaterThan(0);
    expect(links.every((l) => l.dst === NEW_MAC)).toBe(true);
  });

  it('forward into a silent guest: ARP first, the SYN when it answers; an unanswered ARP drops the frame after 3 s, counted', () => {
    const r = rig();
    expect(r.stack.tcp!.connectInbound(0, r.cfg.gateway, 50000, r.cfg.guest, 80)).toBeTruthy();
    r.at(0);
    expect(r.sentLinks()).toEqual([{ dst: MAC_BROADCAST, type: EtherType.ARP }]);
    r.guestArpReply();
    const [syn] = r.sentTcp();
    expect(syn!.flags).toBe(F.SYN);

    const q = rig();
    q.stack.tcp!.connectInbound(0, q.cfg.gateway, 50001, q.cfg.guest, 81);
    q.at(0);
    q.at(1000);
    q.at(3000);
    expect(q.stack.counters.drops.get('arp-unresolved')).toBeGreaterThan(0);
  });
});


/** A frame from the guest (GUEST_MAC) over IPv6: `body` after a fixed header from src to dst. */
function guest6Frame(dstMac: number, src: Buffer, dst: Uint8Array, nextHeader: number, body: Buffer): Buffer {
  const frame = Buffer.alloc(14 + 40 + body.length);
  new EthernetRepr({ src: GUEST_MAC, dst: dstMac, ethertype: EtherType.IPv6 }).emit(frame);
  new Ipv6Repr({ src, dst, nextHeader, payloadLen: body.length }).emit(frame.subarray(14));
  body.copy(frame, 54);
  return frame;
}

describe('TCP over IPv6 through the same flow layer', () => {
  const GUEST6 = ipv6FromString('fd00::ff:fe00:64');
  const HOST6 = ipv6FromString('fd00::2');

  function rig6() {
    const cfg = makeConfig({ enableIpv6: true });
    const out: Buffer[] = [];
    const events: string[] = [];
    let flow: TcpFlow | undefined;
    const hooks: TcpHooks = {
      open: (f, route) => {
        flow = f;
        events.push(`open ${route.kind} ${route.kind === 'host6' ? route.addr : ''}`.trim());
      },
      data: (f, d) => {
        events.push(`data ${d.toString()}`);
        stack.tcp!.consumed(f.id, d.length);
      },
      eof: () => events.push('eof'),
      established: () => events.push('established'),
      sendSpace: () => {},
      reset: (_f, reason) => events.push(`reset ${reason}`),
      closed: () => events.push('closed'),
    };
    const stack = new Stack(cfg, { transmit: (f) => out.push(Buffer.from(f)), tcp: hooks });
    const send = (dst: Buffer, f: Partial<TcpFields>, now = 0) => {
      const fields: TcpFields = { srcPort: GUEST_PORT, dstPort: 8080, seq: GUEST_ISS, ack: 0, flags: F.ACK, window: 64240, ...f };
      const seg = new TcpRepr(fields);
      const body = Buffer.alloc(seg.bufferLen());
      seg.emit(body, pseudoV6(GUEST6, dst, IpProtocol.TCP, body.length));
      stack.receive(now, guest6Frame(cfg.ipv6!.mac, GUEST6, dst, IpProtocol.TCP, body));
      stack.flush(now);
    };
    const sent = () =>
      out.splice(0).map((f) => {
        const e = EthernetFrame.newChecked(f);
        const ip = Ipv6Packet.newChecked(e.payload);
        return { dstMac: e.dst, src: ipv6ToString(ip.src), dst: ipv6ToString(ip.dst), next: ip.nextHeader, body: ip.payload, ip };
      });
    return { stack, cfg, events, flow: () => flow!, send, sent };
  }

  it('a SYN to fd00::2 opens a flow routed to the host\'s ::1; data both ways with IPv6 checksums; closing frees the address handles', () => {
    const r = rig6();
    r.send(HOST6, { flags: F.SYN, mss: 1440 });
    expect(r.events).toEqual(['open host6 ::1']);
    expect(r.stack.flows.v6.size).toBe(2);
    r.stack.tcp!.accepted(0, r.flow().id);
    r.stack.flush(0);
    const [synAck] = r.sent();
    expect([synAck!.src, synAck!.dst, synAck!.dstMac]).toEqual(['fd00::2', 'fd00::ff:fe00:64', GUEST_MAC]);
    const sa = TcpRepr.parse(TcpPacket.newChecked(synAck!.body), { pseudoSum: pseudoV6(synAck!.ip.src, synAck!.ip.dst, IpProtocol.TCP, synAck!.body.length) });
    expect(sa.flags).toBe(F.SYN | F.ACK);
    expect(sa.mss).toBe(1500 - 60);
    r.send(HOST6, { seq: GUEST_ISS + 1, ack: sa.seq + 1, flags: F.ACK | F.PSH, payload: Buffer.from('over v6') });
    expect(r.events).toEqual(['open host6 ::1', 'established', 'data over v6']);
    r.stack.tcp!.send(r.flow().id, Buffer.from('back'));
    r.stack.tcp!.close(5, r.flow().id);
    r.stack.flush(5);
    const data = r.sent().map((s) => TcpRepr.parse(TcpPacket.newChecked(s.body), { pseudoSum: pseudoV6(s.ip.src, s.ip.dst, IpProtocol.TCP, s.body.length) }));
    expect(Buffer.concat(data.map((d) => d.payload)).toString()).toBe('back');
    // The guest resets: the flow goes, and with it the handles.
    r.send(HOST6, { seq: GUEST_ISS + 8, flags: F.RST });
    expect(r.events.at(-1)).toBe('closed');
    expect(r.stack.flows.v6.size).toBe(0);
  });

  it('strays get IPv6 resets; a SYN to an empty address of the prefix gets ICMPv6 address unreachable; no handle is left behind', () => {
    const r = rig6();
    r.send(HOST6, { seq: 5, ack: 77, flags: F.ACK });
    const [rst] = r.sent();
    expect(rst!.next).toBe(IpProtocol.TCP);
    const rr = TcpRepr.parse(TcpPacket.newChecked(rst!.body), { pseudoSum: pseudoV6(rst!.ip.src, rst!.ip.dst, IpProtocol.TCP, rst!.body.length) });
    expect([rr.flags, rr.seq]).toEqual([F.RST, 77]);
    r.send(ipv6FromString('fd00::99'), { flags: F.SYN });
    const [icmp] = r.sent();
    expect([icmp!.next, icmp!.body[0], icmp!.body[1], icmp!.src]).toEqual([IpProtocol.ICMPv6, 1, 3, 'fd00::2']);
    expect(r.stack.flows.v6.size).toBe(0);
    expect(r.stack.flows.size).toBe(0);
  });
});

describe('UDP over IPv6 through the same flow layer', () => {
  const GUEST6 = ipv6FromString('fd00::ff:fe00:64');

  function rig6() {
    const cfg = makeConfig({ enableIpv6: true });
    const out: Buffer[] = [];
    const calls: string[] = [];
    let last: UdpFlow | undefined;
    const stack = new Stack(
      cfg,
      {
        transmit: (f) => out.push(Buffer.from(f)),
        udp: {
          send: () => calls.push('send v4'),
          send6: (f, addr, port, p) => {
            last = f;
            calls.push(`send6 ${addr} ${port} ${p.toString()}`);
          },
          sendDns: (f, p) => {
            last = f;
            calls.push(`dns ${p.toString()}`);
          },
          close: (_f, reason) => calls.push(`close ${reason}`),
          forwardReply: (f, p) => calls.push(`reply ${f.id} ${p.toString()}`),
          forwardRefused: (f) => calls.push(`refused ${f.id}`),
        },
      },
      { udpIdleMs: 1000 },
    );
    const send = (dst: string, port: number, text: string, now = 0, noChecksum = false) => {
      const d = ipv6FromString(dst);
      const body = Buffer.alloc(8 + text.length);
      new UdpRepr({ srcPort: 40000, dstPort: port, payload: Buffer.from(text) }).emit(body, pseudoV6(GUEST6, d, IpProtocol.UDP, body.length));
      if (noChecksum) body.writeUInt16BE(0, 6);
      stack.receive(now, guest6Frame(cfg.ipv6!.mac, GUEST6, d, IpProtocol.UDP, body));
    };
    const sendFrom = (srcPort: number, dst: string, port: number, text: string) => {
      const d = ipv6FromString(dst);
      const body = Buffer.alloc(8 + text.length);
      new UdpRepr({ srcPort, dstPort: port, payload: Buffer.from(text) }).emit(body, pseudoV6(GUEST6, d, IpProtocol.UDP, body.length));
      stack.receive(0, guest6Frame(cfg.ipv6!.mac, GUEST6, d, IpProtocol.UDP, body));
    };
    const guestIcmp6 = (dst: string, m: Icmpv6Repr) => {
      const d = ipv6FromString(dst);
      const body = Buffer.alloc(m.bufferLen());
      m.emit(body, GUEST6, d);
      stack.receive(0, guest6Frame(cfg.ipv6!.mac, GUEST6, d, IpProtocol.ICMPv6, body));
    };
    const sent = () =>
      out.splice(0).map((f) => {
        const ip = Ipv6Packet.newChecked(EthernetFrame.newChecked(f).payload);
        return { src: ipv6ToString(ip.src), dst: ipv6ToString(ip.dst), next: ip.nextHeader, body: Buffer.from(ip.payload), ip };
      });
    return { stack, calls, send, sendFrom, guestIcmp6, sent, flow: () => last! };
  }

  it('sends to the host over IPv6 and back; ::1 appears as fd00::2, DNS answers as fd00::3:53; host errors become ICMPv6; idle flows go with their handle', () => {
    const r = rig6();
    r.send('fd00::2', 9999, 'hi');
    r.send('fd00::3', 53, 'query');
    r.send('2001:db8::5', 7, 'out');
    expect(r.calls).toEqual(['send6 ::1 9999 hi', 'dns query', 'send6 2001:db8::5 7 out']);
    expect(r.stack.flows.count('udp')).toBe(1); // one flow per guest endpoint
    const id = r.flow().id;
    r.stack.udp!.deliver(0, id, '::1', 9999, Buffer.from('back'));
    r.stack.udp!.deliver(0, id, 0, 53, Buffer.from('answer'), true);
    r.stack.udp!.deliver(0, id, 0x7f000001, 9999, Buffer.from('v4 source'));
    const replies = r.sent();
    expect(replies.map((x) => [x.src, x.body.readUInt16BE(0), UdpPacket.newChecked(x.body).verifyChecksumV6(x.ip.src, x.ip.dst), x.body.subarray(8).toString()])).toEqual([
      ['fd00::2', 9999, true, 'back'],
      ['fd00::3', 53, true, 'answer'],
    ]);
    r.stack.udp!.unreachable(0, id, '::1', 9999, 3);
    const [err] = r.sent();
    expect([err!.next, err!.body[0], err!.body[1], err!.src]).toEqual([IpProtocol.ICMPv6, 1, 4, 'fd00::2']);
    expect(r.stack.flows.v6.size).toBe(1);
    r.stack.poll(5000);
    expect(r.calls.at(-1)).toBe('close idle');
    expect(r.stack.flows.v6.size).toBe(0);
  });

  it('a datagram without a checksum is dropped (RFC 8200 §8.1); to an empty prefix address: ICMPv6 address unreachable', () => {
    const r = rig6();
    r.send('fd00::2', 5, 'no checksum', 0, true);
    expect(r.sent()).toEqual([]);
    expect(r.stack.counters.drops.get('udp-missing-checksum')).toBe(1);
    r.send('fd00::99', 5, 'x');
    const [err] = r.sent();
    expect([err!.body[0], err!.body[1]]).toEqual([1, 3]);
    expect(r.calls).toEqual([]);
  });

  it('a forwarded conversation over IPv6: the datagram reaches the guest; the guest\'s reply goes to the client; its port unreachable tells the shell', () => {
    const r = rig6();
    const peer = ipv6FromString('fd00::2');
    // The guest is known (it spoke once); a client forwarded to its port 5353.
    r.send('fd00::2', 9, 'hello');
    r.sent();
    const flow = r.stack.udp!.forwardIn6(0, 1, '::1|4000', peer, 4000, GUEST6, 5353, Buffer.from('query'))!;
    const [toGuest] = r.sent();
    expect([toGuest!.src, toGuest!.dst, toGuest!.next]).toEqual(['fd00::2', 'fd00::ff:fe00:64', IpProtocol.UDP]);
    // The guest's reply (from 5353 to fd00::2:4000) goes back through the forward.
    r.sendFrom(5353, 'fd00::2', 4000, 'answer');
    expect(r.calls.at(-1)).toBe(`reply ${flow.id} answer`);
    // Nothing listens: the guest's ICMPv6 port unreachable quoting the datagram.
    const quoted = toGuest!.ip.buffer.subarray(0, 48);
    r.guestIcmp6('fd00::2', new Icmpv6Repr({ type: Icmpv6Type.DstUnreachable, code: 4, data: Buffer.from(quoted) }));
    expect(r.calls.at(-1)).toBe(`refused ${flow.id}`);
  });
});

describe('events (StackHooks.onEvent)', () => {
  function withEvents(flowEvents: boolean | undefined): string[] {
    const seen: string[] = [];
    rig({ onEvent: (name) => seen.push(name), flowEvents }).guestTcp({ flags: F.SYN, mss: 1460 });
    return seen;
  }

  it('per-flow events reach onEvent by default; with flowEvents false only the guest\'s own do (nothing formatted per flow)', () => {
    expect(withEvents(undefined)).toEqual(['guest address learned', 'tcp flow opened']);
    expect(withEvents(true)).toEqual(['guest address learned', 'tcp flow opened']);
    expect(withEvents(false)).toEqual(['guest address learned']);
  });
});
