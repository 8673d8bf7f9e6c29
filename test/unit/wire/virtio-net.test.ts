import { describe, it, expect } from 'vitest';
import {
  VIRTIO_NET_HDR_LEN,
  VIRTIO_NET_HDR_MRG_LEN,
  VirtioGsoType,
  VirtioNetFlags,
  VirtioNetHdr,
  VirtioNetRepr,
  completeChecksum,
} from '../../../src/wire/virtio-net.js';
import { TCP_SYN, TCP_SYN_PARTIAL, VNET_HDR_TSO4, expectWireError } from './fixtures.js';

describe('virtio_net_hdr', () => {
  it('parses the 12-byte mrg_rxbuf header of a TSO super-frame', () => {
    const h = VirtioNetHdr.newChecked(VNET_HDR_TSO4, true);
    expect(h.headerLen).toBe(VIRTIO_NET_HDR_MRG_LEN);
    const r = VirtioNetRepr.parse(h);
    expect(r).toMatchObject({
      flags: VirtioNetFlags.NEEDS_CSUM,
      gsoType: VirtioGsoType.TCPV4,
      hdrLen: 66,
      gsoSize: 1448,
      csumStart: 34,
      csumOffset: 16,
      numBuffers: 1,
    });
    const out = Buffer.alloc(r.bufferLen());
    r.emit(out);
    expect(out).toEqual(VNET_HDR_TSO4);
  });

  it('reads the 10-byte form from the same bytes (no num_buffers)', () => {
    const h = VirtioNetHdr.newChecked(VNET_HDR_TSO4.subarray(0, 10));
    expect(h.numBuffers).toBe(0);
    const r = VirtioNetRepr.parse(h);
    expect(r.numBuffers).toBeUndefined();
    expect(r.bufferLen()).toBe(VIRTIO_NET_HDR_LEN);
    const out = Buffer.alloc(10);
    r.emit(out);
    expect(out).toEqual(VNET_HDR_TSO4.subarray(0, 10));
  });

  it('exposes the frame after the header', () => {
    const buf = Buffer.concat([VNET_HDR_TSO4, TCP_SYN]);
    expect(new VirtioNetHdr(buf, true).frame).toEqual(TCP_SYN);
  });

  it('accepts the ECN bit on a TCP gso type', () => {
    const b = Buffer.from(VNET_HDR_TSO4);
    b[1] = VirtioGsoType.TCPV6 | VirtioGsoType.ECN;
    expect(VirtioNetRepr.parse(VirtioNetHdr.newChecked(b, true)).gsoType).toBe(0x84);
  });

  it('rejects a short header (virtio-truncated)', () => {
    expectWireError(() => VirtioNetHdr.newChecked(VNET_HDR_TSO4.subarray(0, 11), true), 'virtio-truncated');
    expectWireError(() => VirtioNetHdr.newChecked(VNET_HDR_TSO4.subarray(0, 9)), 'virtio-truncated');
  });

  it('rejects an unknown gso_type (virtio-bad-gso-type)', () => {
    const b = Buffer.from(VNET_HDR_TSO4);
    b[1] = 2;
    expectWireError(() => VirtioNetRepr.parse(VirtioNetHdr.newChecked(b, true)), 'virtio-bad-gso-type');
  });

  it('completes a NEEDS_CSUM frame as a NIC would (the captured SYN)', () => {
    const frame = Buffer.from(TCP_SYN_PARTIAL);
    expect(completeChecksum(frame, 34, 16)).toBe(true);
    expect(frame).toEqual(TCP_SYN);
    expect(completeChecksum(frame, 70, 16)).toBe(false);
  });
});
