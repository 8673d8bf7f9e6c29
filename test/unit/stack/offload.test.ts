// Segmentation and checksum offload through the Stack (src/host/port.ts
// says what `gso` and `csumTrusted` mean): a TCP super-segment from the guest
// with a partial checksum is one segment to the stack; with offload on, data
// toward the guest leaves as super-segments with partial checksums and the
// MSS to cut at; without it, nothing changes. The TAP side of the same
// contract (the virtio header) is in test/unit/wire/gso.test.ts, the real
// kernel in test/integration/nat.test.ts.

import { describe, expect, it } from 'vitest';
import { makeConfig } from '../../../src/stack/config.js';
import { Stack } from '../../../src/stack/stack.js';
import type { TcpFlow, TcpHooks } from '../../../src/stack/tcp-flows.js';
import { EtherType, EthernetFrame } from '../../../src/wire/ethernet.js';
import { IpProtocol, Ipv4Packet } from '../../../src/wire/ipv4.js';
import { TcpFlags as F, TcpPacket, TcpRepr, type TcpFields } from '../../../src/wire/tcp.js';
import { pseudoV4 } from '../../../src/wire/checksum.js';
import { completeChecksum } from '../../../src/wire/virtio-net.js';
import { GUEST_MAC } from '../../fuzz/addresses.js';
import { eth, ipv4, tcp } from '../../fuzz/build.js';

const GUEST_ISS = 1000;

function rig(offload: boolean, mtu = 1500, parts = false) {
  const cfg = makeConfig({ mtu });
  const out: Array<{ frame: Buffer; gso: number | undefined }> = [];
  /** Head lengths of the frames that came in two pieces. */
  const heads: number[] = [];
  const received: Buffer[] = [];
  let flow: TcpFlow | undefined;
  let now = 0;
  const hooks: TcpHooks = {
    open: (f) => (flow = f),
    data: (f, d) => {
      received.push(Buffer.from(d));
      stack.tcp!.consumed(f.id, d.length);
    },
    eof: () => {},
    established: () => {},
    sendSpace: () => {},
    reset: () => {},
    closed: () => {},
  };
  const stack = new Stack(
    cfg,
    {
      transmit: (frame, gso) => out.push({ frame: Buffer.from(frame), gso }),
      // A link taking frames in two pieces (Port.sendParts): recorded joined, with where the head ended.
      transmitParts: parts
        ? (head, payload, gso) => {
            heads.push(head.length);
            out.push({ frame: Buffer.concat([head, payload]), gso });
          }
        : undefined,
      tcp: hooks,
    },
    { offload },
  );
  const frameOf = (f: Partial<TcpFields>) =>
    eth(GUEST_MAC, cfg.gatewayMac, EtherType.IPv4, ipv4({ src: cfg.guest, dst: cfg.gateway, protocol: IpProtocol.TCP }, tcp(cfg.guest, cfg.gateway, { srcPort: 40000, dstPort: 8080, seq: GUEST_ISS, ack: 0, flags: F.ACK, window: 65535, ...f })));
  const r = {
    stack,
    cfg,
    out,
    heads,
    received,
    flow: () => flow!,
    frameOf,
    guest: (f: Partial<TcpFields>, trusted = false, frame = frameOf(f)) => {
      stack.receive(now, frame, trusted);
      stack.flush(now);
    },
    at: (t: number) => {
      now = t;
      stack.poll(now);
      stack.flush(now);
    },
    tcpOut: () =>
      out.splice(0).map(({ frame, gso }) => {
        const ip = Ipv4Packet.newChecked(EthernetFrame.newChecked(frame).payload);
        return { frame, gso, ip, seg: TcpRepr.parse(TcpPacket.newChecked(ip.payload)) };
      }),
    /** The host side sends `data`; the data segments the stack emits at time 1. */
    hostSends: (data: Buffer) => {
      out.splice(0);
      const n = stack.tcp!.send(flow!.id, data);
      r.at(1);
      return { accepted: n, segs: r.tcpOut().filter((x) => x.seg.payload.length > 0) };
    },
  };
  // SYN (the MSS of the MTU, timestamps), host accepts, ACK.
  r.guest({ flags: F.SYN, mss: mtu - 40, tsVal: 1, tsEcr: 0 });
  stack.tcp!.accepted(0, r.flow().id);
  r.at(0);
  const synAck = r.tcpOut()[0]!.seg;
  const iss = synAck.seq;
  r.guest({ seq: GUEST_ISS + 1, ack: iss + 1, tsVal: 2, tsEcr: synAck.tsVal });
  return { ...r, iss, tsEcr: synAck.tsVal! };
}

/** A guest data segment of n bytes whose checksum field holds only the pseudo-header sum (CHECKSUM_PARTIAL). */
function partialSegment(r: ReturnType<typeof rig>, n: number): Buffer {
  const payload = Buffer.alloc(n, 0x61);
  const frame = r.frameOf({ seq: GUEST_ISS + 1, ack: r.iss + 1, flags: F.ACK | F.PSH, payload, tsVal: 3, tsEcr: r.tsEcr });
  const at = 14 + 20;
  frame.writeUInt16BE(pseudoV4(r.cfg.guest, r.cfg.gateway, IpProtocol.TCP, frame.length - at), at + 16);
  return frame;
}

describe('offload through the stack', () => {
  it('a 20000-byte TCP super-segment from the guest (MTU 1500) with a partial checksum is taken whole when the port vouches for it', () => {
    const r = rig(true);
    r.guest({}, true, partialSegment(r, 20000));
    expect(r.received.map((b) => b.length)).toEqual([20000]);
    expect(r.stack.counters.snapshot().drops).toEqual({});
  });

  it('the same frame without the port vouching is a bad checksum, dropped', () => {
    const r = rig(true);
    r.guest({}, false, partialSegment(r, 20000));
    expect(r.received).toEqual([]);
    expect(r.stack.counters.snapshot().drops).toEqual({ 'tcp-bad-checksum': 1 });
  });

  it('with offload, 50000 host bytes leave as one super-segment: partial checksum, cut at the MSS less the timestamp option', () => {
    const r = rig(true);
    const { accepted, segs: data } = r.hostSends(Buffer.alloc(50000, 7));
    expect(accepted).toBe(50000);
    // The initial window (10 × 1448) is what may go first: one frame holding it.
    expect(data).toHaveLength(1);
    const first = data[0]!;
    expect(first.seg.payload.length).toBe(10 * 1448);
    expect(first.gso).toBe(1460 - 12);
    // The field holds the pseudo-header sum; completed, the checksum verifies.
    const tcpAt = 14 + 20;
    const tcpLen = first.frame.length - tcpAt;
    expect(first.frame.readUInt16BE(tcpAt + 16)).toBe(pseudoV4(r.cfg.gateway, r.cfg.guest, IpProtocol.TCP, tcpLen));
    expect(completeChecksum(first.frame, tcpAt, 16)).toBe(true);
    expect(TcpPacket.newChecked(first.frame.subarray(tcpAt)).verifyChecksumV4(r.cfg.gateway, r.cfg.guest)).toBe(true);
    // Acked, slow start doubles the window (bytes, not frames): 20 MSS more, still in frames above the MSS.
    r.guest({ seq: GUEST_ISS + 1, ack: r.iss + 1 + 10 * 1448, tsVal: 4, tsEcr: first.seg.tsVal });
    r.at(2);
    const rest = r.tcpOut().filter((s) => s.seg.payload.length > 0);
    expect(rest.reduce((n, s) => n + s.seg.payload.length, 0)).toBe(20 * 1448);
    expect(rest.every((s) => s.seg.payload.length <= 1448 || s.gso === 1448)).toBe(true);
    expect(rest.some((s) => s.seg.payload.length > 1448)).toBe(true);
  });

  it('a segment that fits the MSS still has a partial checksum and no GSO (gso 0)', () => {
    const r = rig(true);
    const [s] = r.hostSends(Buffer.from('small')).segs;
    expect(s!.gso).toBe(0);
    expect(completeChecksum(s!.frame, 34, 16)).toBe(true);
    expect(TcpPacket.newChecked(s!.frame.subarray(34)).verifyChecksumV4(r.cfg.gateway, r.cfg.guest)).toBe(true);
  });

  it('super-segments hold whole MSS-sized pieces: at MTU 65520 no frame is handed over for cutting (it would leave a runt)', () => {
    const data = rig(true, 65520).hostSends(Buffer.alloc(200000, 7)).segs;
    expect(data.length).toBeGreaterThan(0);
    for (const s of data) {
      expect(s.gso).toBe(0);
      expect(s.seg.payload.length).toBeLessThanOrEqual(65480 - 12);
    }
  });

  for (const offload of [true, false]) {
    it(`a link taking frames in two pieces gets large payloads beside their headers, frames identical (offload ${offload})`, () => {
      const data = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 13) & 0xff));
      const whole = rig(offload, 65520);
      const split = rig(offload, 65520, true);
      const a = whole.hostSends(data);
      const b = split.hostSends(data);
      expect(b.accepted).toBe(a.accepted);
      expect(b.segs.length).toBe(a.segs.length);
      for (let i = 0; i < a.segs.length; i++) {
        expect(b.segs[i]!.frame.equals(a.segs[i]!.frame)).toBe(true);
        expect(b.segs[i]!.gso).toBe(a.segs[i]!.gso);
      }
      // Every data segment here is large: each came as headers (Ethernet,
      // IPv4, TCP with timestamps) beside its payload; the SYN-ACK came whole.
      expect(split.heads).toEqual(b.segs.map(() => 14 + 20 + 32));
      const sent = Buffer.concat(b.segs.map((x) => x.seg.payload));
      expect(sent.length).toBeGreaterThan(60_000);
      expect(sent.equals(data.subarray(0, sent.length))).toBe(true);
    });
  }

  it('without offload nothing changes: segments of at most the MSS, full checksums, no gso', () => {
    const r = rig(false);
    const data = r.hostSends(Buffer.alloc(50000, 7)).segs;
    expect(data.length).toBe(10);
    for (const s of data) {
      expect(s.gso).toBeUndefined();
      expect(s.seg.payload.length).toBeLessThanOrEqual(1448);
      expect(TcpPacket.newChecked(s.ip.payload).verifyChecksumV4(r.cfg.gateway, r.cfg.guest)).toBe(true);
    }
  });
});
