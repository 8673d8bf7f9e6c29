// src/wire/virtio-net.ts — the virtio_net_hdr that prefixes every frame on a
// TAP opened with IFF_VNET_HDR (Linux include/uapi/linux/virtio_net.h;
// virtio spec v1.2 §5.1.6 "Device Operation").
//
// Read this first:
// - The header is little-endian (virtio 1.0+, and what TUNSETVNETLE selects;
//   on x86/arm64 it is also the legacy native order).
// - Two sizes: the 10-byte struct virtio_net_hdr, and the 12-byte
//   virtio_net_hdr_mrg_rxbuf with num_buffers (TUNSETVNETHDRSZ 12).
// - NEEDS_CSUM means "the L4 checksum field holds only the pseudo-header sum;
//   sum from csum_start to the end and store at csum_start + csum_offset"
//   (see completeChecksum). DATA_VALID means the checksum was already checked.
// - gso_type ≠ NONE marks a super-frame to be cut into gso_size segments.

import { WireError } from './errors.js';
import { checksum } from './checksum.js';

/** virtio_net.h: VIRTIO_NET_HDR_F_* flags. */
export const VirtioNetFlags = {
  NEEDS_CSUM: 1,
  DATA_VALID: 2,
  /** VIRTIO_NET_HDR_F_RSC_INFO (virtio 1.1 §5.1.6.4). */
  RSC_INFO: 4,
} as const;

/** virtio_net.h: VIRTIO_NET_HDR_GSO_* types. */
export const VirtioGsoType = {
  NONE: 0,
  TCPV4: 1,
  /** UFO: IPv4/IPv6 UDP fragmentation offload (deprecated). */
  UDP: 3,
  TCPV6: 4,
  /** USO: UDP segmentation (Linux 6.2+). */
  UDP_L4: 5,
  /** Flag ORed into the type: the TCP segments carry ECN CWR. */
  ECN: 0x80,
} as const;

export const VNET_FLAGS = 0;
export const VNET_GSO_TYPE = 1;
export const VNET_HDR_LEN_FIELD = 2;
export const VNET_GSO_SIZE = 4;
export const VNET_CSUM_START = 6;
export const VNET_CSUM_OFFSET = 8;
export const VNET_NUM_BUFFERS = 10;
/** sizeof(struct virtio_net_hdr). */
export const VIRTIO_NET_HDR_LEN = 10;
/** sizeof(struct virtio_net_hdr_mrg_rxbuf). */
export const VIRTIO_NET_HDR_MRG_LEN = 12;

function le16(b: Uint8Array, o: number): number {
  return (b[o] ?? 0) | ((b[o + 1] ?? 0) << 8);
}
function setLe16(b: Uint8Array, o: number, v: number): void {
  b[o] = v;
  b[o + 1] = v >>> 8;
}

function knownGso(t: number): boolean {
  const base = t & ~VirtioGsoType.ECN;
  return (
    base === VirtioGsoType.NONE ||
    base === VirtioGsoType.TCPV4 ||
    base === VirtioGsoType.UDP ||
    base === VirtioGsoType.TCPV6 ||
    base === VirtioGsoType.UDP_L4
  );
}

export class VirtioNetHdr {
  /** 10, or 12 for the mrg_rxbuf variant. */
  readonly headerLen: number;

  constructor(
    readonly buffer: Buffer,
    mrgRxbuf = false,
  ) {
    this.headerLen = mrgRxbuf ? VIRTIO_NET_HDR_MRG_LEN : VIRTIO_NET_HDR_LEN;
  }

  static newChecked(buf: Buffer, mrgRxbuf = false): VirtioNetHdr {
    const h = new VirtioNetHdr(buf, mrgRxbuf);
    if (buf.length < h.headerLen) throw new WireError('virtio-truncated');
    return h;
  }

  get flags(): number {
    return this.buffer[VNET_FLAGS] ?? 0;
  }
  set flags(v: number) {
    this.buffer[VNET_FLAGS] = v;
  }
  get gsoType(): number {
    return this.buffer[VNET_GSO_TYPE] ?? 0;
  }
  set gsoType(v: number) {
    this.buffer[VNET_GSO_TYPE] = v;
  }
  /** Length of the headers (Ethernet + IP + L4) to replicate per GSO segment. */
  get hdrLen(): number {
    return le16(this.buffer, VNET_HDR_LEN_FIELD);
  }
  set hdrLen(v: number) {
    setLe16(this.buffer, VNET_HDR_LEN_FIELD, v);
  }
  /** Payload bytes per segment (the MSS for TCP). */
  get gsoSize(): number {
    return le16(this.buffer, VNET_GSO_SIZE);
  }
  set gsoSize(v: number) {
    setLe16(this.buffer, VNET_GSO_SIZE, v);
  }
  /** Offset (from the start of the frame, after this header) where checksumming starts. */
  get csumStart(): number {
    return le16(this.buffer, VNET_CSUM_START);
  }
  set csumStart(v: number) {
    setLe16(this.buffer, VNET_CSUM_START, v);
  }
  /** Offset of the checksum field, relative to csumStart. */
  get csumOffset(): number {
    return le16(this.buffer, VNET_CSUM_OFFSET);
  }
  set csumOffset(v: number) {
    setLe16(this.buffer, VNET_CSUM_OFFSET, v);
  }
  /** mrg_rxbuf only: buffers the frame spans (1 on a TAP); 0 for the short form. */
  get numBuffers(): number {
    return this.headerLen === VIRTIO_NET_HDR_MRG_LEN ? le16(this.buffer, VNET_NUM_BUFFERS) : 0;
  }
  set numBuffers(v: number) {
    if (this.headerLen === VIRTIO_NET_HDR_MRG_LEN) setLe16(this.buffer, VNET_NUM_BUFFERS, v);
  }
  /** The Ethernet frame after the header (view). */
  get frame(): Buffer {
    return this.buffer.subarray(this.headerLen);
  }
}

export interface VirtioNetFields {
  /** Default 0. */
  flags?: number;
  /** Default NONE. */
  gsoType?: number;
  hdrLen?: number;
  gsoSize?: number;
  csumStart?: number;
  csumOffset?: number;
  /** Present → the 12-byte mrg_rxbuf layout is emitted. */
  numBuffers?: number;
}

export class VirtioNetRepr implements VirtioNetFields {
  flags: number;
  gsoType: number;
  hdrLen: number;
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
  numBuffers: number | undefined;

  constructor(f: VirtioNetFields = {}) {
    this.flags = f.flags ?? 0;
    this.gsoType = f.gsoType ?? VirtioGsoType.NONE;
    this.hdrLen = f.hdrLen ?? 0;
    this.gsoSize = f.gsoSize ?? 0;
    this.csumStart = f.csumStart ?? 0;
    this.csumOffset = f.csumOffset ?? 0;
    this.numBuffers = f.numBuffers;
  }

  /** Rejects gso types tsnet cannot segment ('virtio-bad-gso-type'). */
  static parse(h: VirtioNetHdr): VirtioNetRepr {
    const gsoType = h.gsoType;
    if (!knownGso(gsoType)) throw new WireError('virtio-bad-gso-type');
    return new VirtioNetRepr({
      flags: h.flags,
      gsoType,
      hdrLen: h.hdrLen,
      gsoSize: h.gsoSize,
      csumStart: h.csumStart,
      csumOffset: h.csumOffset,
      numBuffers: h.headerLen === VIRTIO_NET_HDR_MRG_LEN ? h.numBuffers : undefined,
    });
  }

  bufferLen(): number {
    return this.numBuffers === undefined ? VIRTIO_NET_HDR_LEN : VIRTIO_NET_HDR_MRG_LEN;
  }

  emit(target: VirtioNetHdr | Buffer): void {
    const b = target instanceof VirtioNetHdr ? target.buffer : target;
    if (b.length < this.bufferLen()) throw new WireError('buffer-too-small');
    b[VNET_FLAGS] = this.flags;
    b[VNET_GSO_TYPE] = this.gsoType;
    setLe16(b, VNET_HDR_LEN_FIELD, this.hdrLen);
    setLe16(b, VNET_GSO_SIZE, this.gsoSize);
    setLe16(b, VNET_CSUM_START, this.csumStart);
    setLe16(b, VNET_CSUM_OFFSET, this.csumOffset);
    if (this.numBuffers !== undefined) setLe16(b, VNET_NUM_BUFFERS, this.numBuffers);
  }
}

/**
 * Completes a NEEDS_CSUM frame in place: sums frame[csumStart, end) (the
 * field already holds the pseudo-header sum) and stores the complement at
 * csumStart + csumOffset (0 stored as 0xffff). Returns false (and changes nothing) if the offsets
 * do not fit in the frame.
 */
export function completeChecksum(frame: Buffer, csumStart: number, csumOffset: number): boolean {
  const at = csumStart + csumOffset;
  if (at + 2 > frame.length || csumStart > frame.length) return false;
  // Like Linux skb_checksum_help(): a result of 0 is stored as 0xffff, which
  // is equivalent for TCP and required for UDP (RFC 768).
  const c = checksum(frame, csumStart, frame.length) || 0xffff;
  frame[at] = c >>> 8;
  frame[at + 1] = c;
  return true;
}
