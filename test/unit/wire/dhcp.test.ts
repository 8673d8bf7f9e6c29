// DHCP wire format (RFC 2131 / RFC 2132, BOOTP RFC 951): the view, the Repr,
// byte-for-byte round trips of real messages, and malformed input.
//
// The fixtures are real: busybox 1.35.0 `udhcpc -i vA -n -q -f -x
// hostname:tsguest` on one end of a veth pair inside a throw-away network
// namespace (`unshare -n`), MAC 52:54:00:12:34:56, with `busybox udhcpd`
// (pool 10.0.2.15–30, router 10.0.2.2, DNS 10.0.2.3, lease 86400) on the
// other end, 52:55:0a:00:02:02 / 10.0.2.2; captured with tcpdump -w on the
// server end. udhcpc builds its frames on a packet socket, so the UDP
// checksums are complete as captured.

import { describe, expect, it } from 'vitest';
import { ipv4FromString as ip, macFromString as mac } from '../../../src/wire/address.js';
import {
  BOOTP_MIN_LEN,
  BootpOp,
  DHCP_FLAG_BROADCAST,
  DHCP_OPTIONS,
  DhcpMessageType,
  DhcpOption,
  DhcpPacket,
  DhcpRepr,
} from '../../../src/wire/dhcp.js';
import { WireError } from '../../../src/wire/errors.js';
import { EthernetFrame } from '../../../src/wire/ethernet.js';
import { Ipv4Packet } from '../../../src/wire/ipv4.js';
import { UdpPacket } from '../../../src/wire/udp.js';
import { expectWireError, hex, prng } from './fixtures.js';

/** n zero bytes, as fixture text. */
const z = (n: number): string => '00 '.repeat(n);

const CLIENT_MAC = mac('52:54:00:12:34:56');

/** udhcpc's first DHCPDISCOVER (real; frame 1 of the no-server capture). */
const UDHCPC_DISCOVER = hex(`
  ff ff ff ff ff ff   # eth dst: broadcast
  52 54 00 12 34 56   # eth src: client
  08 00               # ethertype: IPv4
  45 00               # version 4, IHL 5, TOS 0
  01 48               # total length 328
  00 00               # identification 0
  00 00               # no flags (DF clear), offset 0
  40 11               # TTL 64, protocol UDP
  79 a6               # header checksum
  00 00 00 00         # src 0.0.0.0 (no address yet)
  ff ff ff ff         # dst 255.255.255.255
  00 44               # UDP src port 68 (client)
  00 43               # UDP dst port 67 (server)
  01 34               # UDP length 308
  7e 8b               # UDP checksum (complete)
  01                  # op: BOOTREQUEST
  01                  # htype: Ethernet
  06                  # hlen: 6
  00                  # hops: 0
  55 6f 63 32         # xid 0x556f6332
  00 00               # secs 0
  00 00               # flags: broadcast bit clear
  00 00 00 00         # ciaddr 0.0.0.0
  00 00 00 00         # yiaddr
  00 00 00 00         # siaddr
  00 00 00 00         # giaddr
  52 54 00 12 34 56 ${z(10)}  # chaddr: the MAC, padded to 16 bytes
  ${z(64)}            # sname: unused
  ${z(128)}           # file: unused
  63 82 53 63         # magic cookie 99.130.83.99
  35 01 01            # option 53 message type: DISCOVER
  39 02 02 40         # option 57 max message size: 576
  37 07 01 03 06 0c 0f 1c 2a   # option 55 parameter request list: 1 3 6 12 15 28 42
  0c 07 74 73 67 75 65 73 74   # option 12 host name: "tsguest"
  3c 0c 75 64 68 63 70 20 31 2e 33 35 2e 30   # option 60 vendor class: "udhcp 1.35.0" (unknown to tsnet)
  3d 07 01 52 54 00 12 34 56   # option 61 client id: type 1 (Ethernet) + MAC
  ff                  # END
  ${z(11)}            # padding to the 300-byte BOOTP minimum
`);

/** udhcpc's DHCPREQUEST (SELECTING) after udhcpd's offer (real). */
const UDHCPC_REQUEST = hex(`
  ffffffffffff 525400123456 0800                        # Ethernet, broadcast
  4500 0148 0000 0000 4011 79a6 00000000 ffffffff       # IPv4 0.0.0.0 → 255.255.255.255
  0044 0043 0134 aa1e                                   # UDP 68 → 67, length 308
  01 01 06 00         # BOOTREQUEST, Ethernet, hlen 6, hops 0
  4e d5 db 1d         # xid 0x4ed5db1d
  00 02               # secs 2
  00 00               # flags 0
  ${z(16)}            # ciaddr yiaddr siaddr giaddr: all 0
  52 54 00 12 34 56 ${z(10)}  # chaddr
  ${z(192)}           # sname, file
  63 82 53 63         # magic cookie
  35 01 03            # option 53: REQUEST
  32 04 0a 00 02 15   # option 50 requested IP: 10.0.2.21
  36 04 0a 00 02 02   # option 54 server id: 10.0.2.2
  39 02 02 40         # option 57 max message size: 576
  37 07 01 03 06 0c 0f 1c 2a   # option 55
  3c 0c 75 64 68 63 70 20 31 2e 33 35 2e 30   # option 60 vendor class
  3d 07 01 52 54 00 12 34 56   # option 61 client id
  ff ${z(8)}          # END, padding
`);

/** busybox udhcpd's DHCPOFFER to it (real; a server's layout). */
const UDHCPD_OFFER = hex(`
  ffffffffffff 52550a000202 0800                        # Ethernet, broadcast, from the server
  4500 0148 0000 0000 4011 6da4 0a000202 ffffffff       # IPv4 10.0.2.2 → 255.255.255.255
  0043 0044 0134 9f6a                                   # UDP 67 → 68
  02 01 06 00         # BOOTREPLY
  4e d5 db 1d         # xid
  00 00 00 00         # secs 0, flags 0
  00 00 00 00         # ciaddr
  0a 00 02 15         # yiaddr 10.0.2.21
  00 00 00 00 00 00 00 00   # siaddr, giaddr
  52 54 00 12 34 56 ${z(10)}  # chaddr
  ${z(192)}           # sname, file
  63 82 53 63         # magic cookie
  35 01 02            # option 53: OFFER
  36 04 0a 00 02 02   # option 54 server id 10.0.2.2
  33 04 00 01 51 80   # option 51 lease time 86400
  01 04 ff ff ff 00   # option 1 subnet mask /24
  03 04 0a 00 02 02   # option 3 router 10.0.2.2
  06 04 0a 00 02 03   # option 6 DNS 10.0.2.3
  ff ${z(26)}         # END, padding
`);

const ETH_IP_UDP = 14 + 20 + 8;
const dhcpOf = (frame: Buffer): Buffer => Buffer.from(frame.subarray(ETH_IP_UDP));

describe('DhcpPacket (view)', () => {
  it('reads the header fields of the real udhcpc DISCOVER', () => {
    const p = DhcpPacket.newChecked(dhcpOf(UDHCPC_DISCOVER));
    expect(p.op).toBe(BootpOp.Request);
    expect(p.htype).toBe(1);
    expect(p.hlen).toBe(6);
    expect(p.hops).toBe(0);
    expect(p.xid).toBe(0x556f6332);
    expect(p.secs).toBe(0);
    expect(p.flags).toBe(0);
    expect(p.broadcast).toBe(false);
    expect([p.ciaddr, p.yiaddr, p.siaddr, p.giaddr]).toEqual([0, 0, 0, 0]);
    expect(p.chaddr).toBe(CLIENT_MAC);
    expect(p.magicCookie).toBe(0x63825363);
    expect(p.messageType).toBe(DhcpMessageType.Discover);
    expect(p.option(DhcpOption.HostName)?.toString()).toBe('tsguest');
    expect(p.option(DhcpOption.RequestedIp)).toBeUndefined();
  });

  it('the fixture is a valid frame (IPv4 and UDP checksums verify)', () => {
    for (const f of [UDHCPC_DISCOVER, UDHCPC_REQUEST, UDHCPD_OFFER]) {
      const ipp = Ipv4Packet.newChecked(EthernetFrame.newChecked(f).payload);
      expect(ipp.verifyChecksum()).toBe(true);
      const udp = UdpPacket.newChecked(ipp.payload);
      expect(udp.checksum).not.toBe(0);
      expect(udp.verifyChecksumV4(ipp.src, ipp.dst)).toBe(true);
      expect(udp.payload.length).toBe(BOOTP_MIN_LEN);
    }
  });

  it('sees the broadcast flag (RFC 2131 §2)', () => {
    const b = dhcpOf(UDHCPC_DISCOVER);
    b.writeUInt16BE(0x8000, 10);
    expect(DhcpPacket.newChecked(b).broadcast).toBe(true);
  });
});

describe('DhcpRepr', () => {
  it('parses the real udhcpc DISCOVER into typed fields, keeping option 60 raw', () => {
    const r = DhcpRepr.parse(DhcpPacket.newChecked(dhcpOf(UDHCPC_DISCOVER)));
    expect(r).toMatchObject({
      op: BootpOp.Request,
      xid: 0x556f6332,
      chaddr: CLIENT_MAC,
      hops: 0,
      secs: 0,
      flags: 0,
      ciaddr: 0,
      messageType: DhcpMessageType.Discover,
      maxMessageSize: 576,
      parameterRequestList: [1, 3, 6, 12, 15, 28, 42],
      hostname: 'tsguest',
      requestedIp: undefined,
      serverId: undefined,
    });
    expect(r.clientId).toEqual(Buffer.from('01525400123456', 'hex'));
    expect(r.otherOptions).toEqual([{ code: 60, data: Buffer.from('udhcp 1.35.0') }]);
    expect(r.order).toEqual([53, 57, 55, 12, 60, 61]);
  });

  it('parses the REQUEST (selecting): requested IP and server identifier', () => {
    const r = DhcpRepr.parse(DhcpPacket.newChecked(dhcpOf(UDHCPC_REQUEST)));
    expect(r).toMatchObject({
      messageType: DhcpMessageType.Request,
      xid: 0x4ed5db1d,
      secs: 2,
      requestedIp: ip('10.0.2.21'),
      serverId: ip('10.0.2.2'),
      ciaddr: 0,
    });
  });

  it("parses udhcpd's OFFER: yiaddr and the server's options", () => {
    const r = DhcpRepr.parse(DhcpPacket.newChecked(dhcpOf(UDHCPD_OFFER)));
    expect(r).toMatchObject({
      op: BootpOp.Reply,
      messageType: DhcpMessageType.Offer,
      yiaddr: ip('10.0.2.21'),
      serverId: ip('10.0.2.2'),
      leaseTime: 86400,
      subnetMask: ip('255.255.255.0'),
      router: [ip('10.0.2.2')],
      dns: [ip('10.0.2.3')],
    });
  });

  it('round-trips all three real messages byte for byte', () => {
    for (const f of [UDHCPC_DISCOVER, UDHCPC_REQUEST, UDHCPD_OFFER]) {
      const b = dhcpOf(f);
      const r = DhcpRepr.parse(DhcpPacket.newChecked(b));
      expect(r.bufferLen()).toBe(b.length);
      const out = Buffer.alloc(r.bufferLen(), 0xee);
      r.emit(out);
      expect(out.toString('hex')).toBe(b.toString('hex'));
    }
  });

  it('emits a hand-built reply in server order, padded to 300 bytes, and parses it back', () => {
    const r = new DhcpRepr({
      op: BootpOp.Reply,
      xid: 0xdeadbeef,
      chaddr: CLIENT_MAC,
      flags: DHCP_FLAG_BROADCAST,
      yiaddr: ip('10.0.2.15'),
      messageType: DhcpMessageType.Ack,
      serverId: ip('10.0.2.2'),
      leaseTime: 86400,
      renewalTime: 43200,
      rebindingTime: 75600,
      subnetMask: ip('255.255.255.0'),
      broadcast: ip('10.0.2.255'),
      router: [ip('10.0.2.2')],
      dns: [ip('10.0.2.3'), ip('10.0.2.4')],
      mtu: 65520,
    });
    expect(r.bufferLen()).toBe(BOOTP_MIN_LEN);
    const out = Buffer.alloc(r.bufferLen());
    r.emit(out);
    expect(out.subarray(DHCP_OPTIONS).toString('hex')).toBe(
      [
        '350105', // 53 message type: ACK
        '36040a000202', // 54 server id
        '330400015180', // 51 lease 86400
        '3a040000a8c0', // 58 T1 43200
        '3b0400012750', // 59 T2 75600
        '0104ffffff00', // 1 subnet mask
        '1c040a0002ff', // 28 broadcast
        '03040a000202', // 3 router
        '06080a0002030a000204', // 6 DNS ×2
        '1a02fff0', // 26 MTU 65520
        'ff', // END
      ].join('') + '00'.repeat(BOOTP_MIN_LEN - DHCP_OPTIONS - 60),
    );
    const back = DhcpRepr.parse(DhcpPacket.newChecked(out));
    expect(back).toMatchObject({
      op: BootpOp.Reply,
      xid: 0xdeadbeef,
      chaddr: CLIENT_MAC,
      flags: DHCP_FLAG_BROADCAST,
      yiaddr: ip('10.0.2.15'),
      messageType: DhcpMessageType.Ack,
      leaseTime: 86400,
      renewalTime: 43200,
      rebindingTime: 75600,
      broadcast: ip('10.0.2.255'),
      dns: [ip('10.0.2.3'), ip('10.0.2.4')],
      mtu: 65520,
    });
    expect(back.order).toEqual([53, 54, 51, 58, 59, 1, 28, 3, 6, 26]);
    expect(out.subarray(0, 4).toString('hex')).toBe('02010600'); // op, htype 1, hlen 6, hops
  });

  it('grows past 300 bytes when the options need it', () => {
    const r = new DhcpRepr({ op: 1, xid: 1, chaddr: CLIENT_MAC, messageType: 1, hostname: 'h'.repeat(200) });
    expect(r.bufferLen()).toBe(DHCP_OPTIONS + 3 + 202 + 1);
  });

  it('splits data over 255 bytes into several instances and joins them on parse (RFC 3396)', () => {
    const name = 'x'.repeat(300);
    const r = new DhcpRepr({ op: 1, xid: 7, chaddr: CLIENT_MAC, messageType: 1, hostname: name });
    const out = Buffer.alloc(r.bufferLen());
    r.emit(out);
    // 53 (3 bytes), then 12/255 and 12/45.
    expect(out[DHCP_OPTIONS + 3]).toBe(12);
    expect(out[DHCP_OPTIONS + 4]).toBe(255);
    expect(out[DHCP_OPTIONS + 3 + 257]).toBe(12);
    expect(out[DHCP_OPTIONS + 3 + 258]).toBe(45);
    expect(DhcpRepr.parse(DhcpPacket.newChecked(out)).hostname).toBe(name);
  });

  it('keeps unknown options in order, duplicates included, and skips interior padding', () => {
    const b = dhcpOf(UDHCPC_DISCOVER);
    // Replace the options with: 53=DISCOVER, PAD, 250="a", 55=[1], 250="b", END.
    b.fill(0, DHCP_OPTIONS);
    Buffer.from('350101' + '00' + 'fa0161' + '370101' + 'fa0162' + 'ff', 'hex').copy(b, DHCP_OPTIONS);
    const r = DhcpRepr.parse(DhcpPacket.newChecked(b));
    expect(r.otherOptions.map((o) => [o.code, o.data.toString()])).toEqual([
      [250, 'a'],
      [250, 'b'],
    ]);
    expect(r.order).toEqual([53, 250, 55]);
    const out = Buffer.alloc(r.bufferLen());
    r.emit(out);
    // Both 250s come out where the first one was (the PAD is not kept).
    expect(out.subarray(DHCP_OPTIONS, DHCP_OPTIONS + 13).toString('hex')).toBe('350101' + 'fa0161' + 'fa0162' + '370101' + 'ff');
  });

  it('parse → emit → parse is a fixed point when unknown codes interleave (found by the frame fuzzer)', () => {
    // npm run fuzz -- --seed 203 --frames 407929 --keep-going (wire-round-trip):
    // a REQUEST whose unknown options come 52 (4 bytes), 76, 52 (empty). emit()
    // groups the two 52s where the first was; parse listed them 52, 76, 52, so
    // parsing what emit() wrote gave another Repr.
    const frame = hex(`
      ff ff ff ff ff ff  02 00 00 00 00 64  08 00                     # Ethernet
      45 00 01 1a 4c d8 00 00 40 11 2c fc 00 00 00 00 ff ff ff ff     # IPv4 0.0.0.0 → 255.255.255.255
      00 44 00 43 01 06 a9 8a                                         # UDP 68 → 67
      01 01 06 00  b4 e8 51 b8  00 00 00 00  0a 00 02 64              # op, htype, hlen, hops, xid, secs, flags, ciaddr
      ${z(12)} 02 00 00 00 00 64 ${z(10)}                             # yiaddr, siaddr, giaddr, chaddr
      ${z(192)}                                                       # sname, file
      63 82 53 63                                                     # magic cookie
      35 01 03  34 04 6c 36 3c d8  4c 01 57  34 00                    # 53=REQUEST, 52, 76, 52 (no END)
    `);
    const first = DhcpRepr.parse(DhcpPacket.newChecked(dhcpOf(frame)));
    expect(first.otherOptions.map((o) => [o.code, o.data.toString('hex')])).toEqual([
      [52, '6c363cd8'],
      [52, ''],
      [76, '57'],
    ]);
    const out = Buffer.alloc(first.bufferLen());
    first.emit(out);
    expect(out.subarray(DHCP_OPTIONS, DHCP_OPTIONS + 15).toString('hex')).toBe('350103' + '34046c363cd8' + '3400' + '4c0157' + 'ff');
    expect(DhcpRepr.parse(DhcpPacket.newChecked(out))).toEqual(first);
  });

  it('tolerates a missing END option', () => {
    const b = dhcpOf(UDHCPC_DISCOVER).subarray(0, DHCP_OPTIONS + 3); // just 35 01 01
    expect(DhcpRepr.parse(DhcpPacket.newChecked(b)).messageType).toBe(DhcpMessageType.Discover);
  });

  it('ignores whatever follows END', () => {
    const b = dhcpOf(UDHCPC_DISCOVER);
    b[b.length - 2] = 0x35; // junk in the padding
    b[b.length - 1] = 0x7f; // that would overrun if walked
    expect(DhcpRepr.parse(DhcpPacket.newChecked(b)).hostname).toBe('tsguest');
  });
});

describe('malformed DHCP → WireError', () => {
  it('truncated: shorter than the fixed header plus cookie (dhcp-truncated)', () => {
    expectWireError(() => DhcpPacket.newChecked(dhcpOf(UDHCPC_DISCOVER).subarray(0, 239)), 'dhcp-truncated');
    expectWireError(() => DhcpPacket.newChecked(Buffer.alloc(0)), 'dhcp-truncated');
  });

  it('wrong magic cookie, e.g. plain BOOTP vendor data (dhcp-bad-cookie)', () => {
    const b = dhcpOf(UDHCPC_DISCOVER);
    b[239] = 0x64;
    expectWireError(() => DhcpPacket.newChecked(b), 'dhcp-bad-cookie');
  });

  it('an option overrunning the message (dhcp-bad-option-len)', () => {
    const b = dhcpOf(UDHCPC_DISCOVER).subarray(0, DHCP_OPTIONS + 3 + 4 + 5); // cut inside option 55
    expectWireError(() => DhcpPacket.newChecked(b), 'dhcp-bad-option-len');
  });

  it('an option code with no length byte at the very end (dhcp-bad-option-len)', () => {
    const b = dhcpOf(UDHCPC_DISCOVER).subarray(0, DHCP_OPTIONS + 4); // 35 01 01 39
    expectWireError(() => DhcpPacket.newChecked(b), 'dhcp-bad-option-len');
  });

  it.each([
    ['message type of length 2', '35020101'],
    ['subnet mask of length 3', '350101' + '0103ffffff'],
    ['router list of length 6', '350101' + '03060a0002020a00'],
    ['empty DNS list', '350101' + '0600'],
    ['max message size of length 1', '350101' + '390102'],
    ['empty parameter request list', '350101' + '3700'],
  ])('a typed option with an impossible length: %s (dhcp-bad-option-len)', (_name, opts) => {
    const b = dhcpOf(UDHCPC_DISCOVER);
    b.fill(0, DHCP_OPTIONS);
    Buffer.from(opts + 'ff', 'hex').copy(b, DHCP_OPTIONS);
    const p = DhcpPacket.newChecked(b); // the framing itself is fine
    expectWireError(() => DhcpRepr.parse(p), 'dhcp-bad-option-len');
  });

  it('a non-Ethernet hardware type (dhcp-unsupported-htype)', () => {
    const b = dhcpOf(UDHCPC_DISCOVER);
    b[1] = 32; // InfiniBand
    b[2] = 0;
    expectWireError(() => DhcpRepr.parse(DhcpPacket.newChecked(b)), 'dhcp-unsupported-htype');
  });

  it('emit into a short buffer (buffer-too-small)', () => {
    const r = DhcpRepr.parse(DhcpPacket.newChecked(dhcpOf(UDHCPC_DISCOVER)));
    expectWireError(() => r.emit(Buffer.alloc(299)), 'buffer-too-small');
  });

  it('property: mutated and cut messages parse or throw WireError, and what parses re-emits and re-parses', () => {
    const rnd = prng(2131);
    const bases = [UDHCPC_DISCOVER, UDHCPC_REQUEST, UDHCPD_OFFER].map(dhcpOf);
    for (let i = 0; i < 5000; i++) {
      const b = Buffer.from(bases[i % 3]!);
      const flips = 1 + Math.floor(rnd() * 6);
      for (let k = 0; k < flips; k++) {
        // Mostly hit the option area, where the structure is.
        const at = rnd() < 0.8 ? DHCP_OPTIONS + Math.floor(rnd() * 60) : Math.floor(rnd() * b.length);
        b[at] = Math.floor(rnd() * 256);
      }
      const cut = rnd() < 0.3 ? Math.floor(rnd() * b.length) : b.length;
      try {
        const r = DhcpRepr.parse(DhcpPacket.newChecked(b.subarray(0, cut)));
        const out = Buffer.alloc(r.bufferLen());
        r.emit(out);
        const again = DhcpRepr.parse(DhcpPacket.newChecked(out));
        expect(again.xid).toBe(r.xid);
        expect(again.messageType).toBe(r.messageType);
      } catch (e) {
        if (!(e instanceof WireError)) throw e;
      }
    }
  });
});
