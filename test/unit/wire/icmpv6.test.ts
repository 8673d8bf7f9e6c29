import { describe, it, expect } from 'vitest';
import {
  Icmpv6Packet,
  Icmpv6Repr,
  Icmpv6Type,
  NA_FLAG_OVERRIDE,
  NA_FLAG_ROUTER,
  NA_FLAG_SOLICITED,
  PREFIX_FLAG_AUTONOMOUS,
  PREFIX_FLAG_ON_LINK,
  type NdpOption,
} from '../../../src/wire/icmpv6.js';
import { Ipv6Packet, walkIpv6Ext } from '../../../src/wire/ipv6.js';
import { ipv6FromString, ipv6ToString } from '../../../src/wire/address.js';
import {
  ICMPV6_ECHO_REQUEST,
  MLD_REPORT_HBH,
  NDP_NA,
  NDP_NS,
  NDP_RA,
  NDP_RS,
  expectWireError,
  slice,
} from './fixtures.js';

/** Splits a frame into its addresses and its ICMPv6 message (a copy). */
function split(frame: Buffer): { src: Buffer; dst: Buffer; msg: Buffer } {
  const ip = Ipv6Packet.newChecked(slice(frame, 14));
  const x = walkIpv6Ext(ip);
  return { src: ip.src, dst: ip.dst, msg: ip.buffer.subarray(x.offset, ip.end) };
}

function roundTrip(frame: Buffer): Icmpv6Repr {
  const { src, dst, msg } = split(frame);
  const r = Icmpv6Repr.parse(Icmpv6Packet.newChecked(msg), src, dst);
  const out = Buffer.alloc(r.bufferLen());
  r.emit(out, src, dst);
  expect(out).toEqual(msg);
  return r;
}

describe('ICMPv6 (RFC 4443) and NDP (RFC 4861)', () => {
  it('parses and round-trips a real echo request', () => {
    const { src, dst, msg } = split(ICMPV6_ECHO_REQUEST);
    expect(new Icmpv6Packet(msg).verifyChecksum(src, dst)).toBe(true);
    const r = roundTrip(ICMPV6_ECHO_REQUEST);
    expect(r.type).toBe(Icmpv6Type.EchoRequest);
    expect(r.ident).toBe(0x2659);
    expect(r.seq).toBe(1);
    expect(r.data.length).toBe(56);
  });

  it('parses a real Neighbor Solicitation with its source link-layer option', () => {
    const r = roundTrip(NDP_NS);
    expect(r.type).toBe(Icmpv6Type.NeighborSolicit);
    expect(ipv6ToString(r.target)).toBe('fd00::2');
    expect(r.options).toEqual([{ kind: 'source-lla', linkAddr: 0x525400123456 }]);
    expect(r.sourceLinkAddr).toBe(0x525400123456);
    expect(r.targetLinkAddr).toBe(-1);
  });

  it('parses a real Neighbor Advertisement (R, S, O) with its target link-layer option', () => {
    const r = roundTrip(NDP_NA);
    expect(r.type).toBe(Icmpv6Type.NeighborAdvert);
    expect(r.flags).toBe(NA_FLAG_ROUTER | NA_FLAG_SOLICITED | NA_FLAG_OVERRIDE);
    expect(ipv6ToString(r.target)).toBe('fd00::2');
    expect(r.targetLinkAddr).toBe(0x52550a000202);
  });

  it('answers the real NS with the exact NA Linux sent', () => {
    const ns = split(NDP_NS);
    const req = Icmpv6Repr.parse(Icmpv6Packet.newChecked(ns.msg), ns.src, ns.dst);
    const na = new Icmpv6Repr({
      type: Icmpv6Type.NeighborAdvert,
      flags: NA_FLAG_ROUTER | NA_FLAG_SOLICITED | NA_FLAG_OVERRIDE,
      target: req.target,
      options: [{ kind: 'target-lla', linkAddr: 0x52550a000202 }],
    });
    const out = Buffer.alloc(na.bufferLen());
    na.emit(out, req.target, ns.src); // from fd00::2 back to the soliciting fd00::100
    expect(out).toEqual(split(NDP_NA).msg);
  });

  it('parses a real Router Solicitation', () => {
    const r = roundTrip(NDP_RS);
    expect(r.type).toBe(Icmpv6Type.RouterSolicit);
    expect(r.sourceLinkAddr).toBe(0x525400123456);
  });

  it('parses a Router Advertisement with SLLA, MTU, prefix and RDNSS options', () => {
    const r = roundTrip(NDP_RA);
    expect(r.type).toBe(Icmpv6Type.RouterAdvert);
    expect(r.curHopLimit).toBe(64);
    expect(r.flags).toBe(0);
    expect(r.routerLifetime).toBe(1800);
    expect(r.reachableTime).toBe(0);
    expect(r.retransTimer).toBe(0);
    expect(r.options.map((o) => o.kind)).toEqual(['source-lla', 'mtu', 'prefix-info', 'rdnss']);
    const pi = r.options[2] as Extract<NdpOption, { kind: 'prefix-info' }>;
    expect(pi.prefixLen).toBe(64);
    expect(pi.flags).toBe(PREFIX_FLAG_ON_LINK | PREFIX_FLAG_AUTONOMOUS);
    expect(pi.validLifetime).toBe(86400);
    expect(pi.preferredLifetime).toBe(14400);
    expect(ipv6ToString(pi.prefix)).toBe('fd00::');
    expect(r.options[1]).toEqual({ kind: 'mtu', mtu: 1500 });
    const rd = r.options[3] as Extract<NdpOption, { kind: 'rdnss' }>;
    expect(rd.lifetime).toBe(1800);
    expect(rd.servers.map((s) => ipv6ToString(s))).toEqual(['fd00::3']);
  });

  it('builds the gateway RA from plain fields', () => {
    const { src, dst, msg } = split(NDP_RA);
    const ra = new Icmpv6Repr({
      type: Icmpv6Type.RouterAdvert,
      curHopLimit: 64,
      routerLifetime: 1800,
      options: [
        { kind: 'source-lla', linkAddr: 0x52550a000202 },
        { kind: 'mtu', mtu: 1500 },
        {
          kind: 'prefix-info',
          prefixLen: 64,
          flags: PREFIX_FLAG_ON_LINK | PREFIX_FLAG_AUTONOMOUS,
          validLifetime: 86400,
          preferredLifetime: 14400,
          prefix: ipv6FromString('fd00::'),
        },
        { kind: 'rdnss', lifetime: 1800, servers: [ipv6FromString('fd00::3')] },
      ],
    });
    const out = Buffer.alloc(ra.bufferLen());
    ra.emit(out, src, dst);
    expect(out).toEqual(msg);
  });

  it('parses an MLDv2 report (after Hop-by-Hop) generically and round-trips it', () => {
    const r = roundTrip(MLD_REPORT_HBH);
    expect(r.type).toBe(143);
    expect(r.rest).toBe(2); // reserved + number of records
    expect(r.data.length).toBe(40);
  });

  it('round-trips a Packet Too Big with its MTU', () => {
    const src = ipv6FromString('fd00::2');
    const dst = ipv6FromString('fd00::100');
    const r = new Icmpv6Repr({ type: Icmpv6Type.PacketTooBig, rest: 1280, data: slice(ICMPV6_ECHO_REQUEST, 14) });
    const out = Buffer.alloc(r.bufferLen());
    r.emit(out, src, dst);
    const p = Icmpv6Packet.newChecked(out);
    expect(p.mtu).toBe(1280);
    const back = Icmpv6Repr.parse(p, src, dst);
    expect(back.mtu).toBe(1280);
    expect(back.data).toEqual(ICMPV6_ECHO_REQUEST.subarray(14));
  });

  it('rejects a corrupted checksum (icmpv6-bad-checksum) or the wrong pseudo-header', () => {
    const { src, dst, msg } = split(NDP_NS);
    const other = ipv6FromString('fd00::101');
    expectWireError(() => Icmpv6Repr.parse(Icmpv6Packet.newChecked(msg), other, dst), 'icmpv6-bad-checksum');
    msg[30] ^= 0x80;
    expectWireError(() => Icmpv6Repr.parse(Icmpv6Packet.newChecked(msg), src, dst), 'icmpv6-bad-checksum');
  });

  it('rejects messages shorter than their type requires (icmpv6-truncated)', () => {
    const { msg } = split(NDP_NS);
    expectWireError(() => Icmpv6Packet.newChecked(msg.subarray(0, 20)), 'icmpv6-truncated');
    expectWireError(() => Icmpv6Packet.newChecked(msg.subarray(0, 7)), 'icmpv6-truncated');
  });

  /** Re-checksums after a mutation so only the option check can fail. */
  function parseMutated(frame: Buffer, mutate: (msg: Buffer) => Buffer): () => Icmpv6Repr {
    const { src, dst, msg } = split(frame);
    const m = mutate(Buffer.from(msg));
    new Icmpv6Packet(m).fillChecksum(src, dst);
    return () => Icmpv6Repr.parse(Icmpv6Packet.newChecked(m), src, dst);
  }

  it('rejects an option of length 0 (ndp-bad-option-len)', () => {
    expectWireError(parseMutated(NDP_NS, (m) => ((m[25] = 0), m)), 'ndp-bad-option-len');
  });

  it('rejects an option overrunning the message (ndp-bad-option-len)', () => {
    expectWireError(parseMutated(NDP_NS, (m) => ((m[25] = 2), m)), 'ndp-bad-option-len');
    expectWireError(parseMutated(NDP_NS, (m) => m.subarray(0, 25)), 'ndp-bad-option-len');
  });

  it('rejects a prefix option whose length is not 4 (ndp-bad-option-len)', () => {
    // The RA's prefix option starts at 16 + 8 + 8 = 32.
    expectWireError(parseMutated(NDP_RA, (m) => ((m[33] = 3), m)), 'ndp-bad-option-len');
  });

  it('rejects an RDNSS option with an even length (ndp-bad-option-len)', () => {
    expectWireError(parseMutated(NDP_RA, (m) => ((m[65] = 2), m.subarray(0, 80))), 'ndp-bad-option-len');
  });

  it('rejects NDP with a non-zero code (ndp-bad-code)', () => {
    expectWireError(parseMutated(NDP_NS, (m) => ((m[1] = 1), m)), 'ndp-bad-code');
  });

  it('keeps unknown options raw and re-emits them in place', () => {
    const { src, dst, msg } = split(NDP_NS);
    const m = Buffer.concat([msg, Buffer.from([0x0e, 0x01, 1, 2, 3, 4, 5, 6])]); // nonce option
    new Icmpv6Packet(m).fillChecksum(src, dst);
    const r = Icmpv6Repr.parse(Icmpv6Packet.newChecked(m), src, dst);
    expect(r.options[1].kind).toBe('other');
    const out = Buffer.alloc(r.bufferLen());
    r.emit(out, src, dst);
    expect(out).toEqual(m);
  });
});
