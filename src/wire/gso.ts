// src/wire/gso.ts — the two pieces of segmentation offload a TAP with a
// virtio-net header needs (virtio-net.ts has the header itself):
//   - txOffloadHeader(): the header for a frame the stack built with a
//     partial checksum (and, for a TCP super-segment, the MSS to cut at):
//     where the checksum starts and sits, the GSO type, the header length.
//   - splitUdpGso(): a UDP super-datagram from the guest (USO,
//     VIRTIO_NET_HDR_GSO_UDP_L4: an app's UDP_SEGMENT send) cut back into
//     the datagrams it stands for, as Linux's __udp_gso_segment would.
// TCP super-segments from the guest need no cutting: the stack takes one
// as one segment (as GRO would have made it).
//
// Read this first: frames here are Ethernet frames whose L3 header starts at
// byte 14 (no VLAN tags: the stack never sends them and drops them coming
// in). Every length is checked against the frame: the guest controls all of
// it (a packet socket with PACKET_VNET_HDR writes its own virtio header).

import { ETH_HEADER_LEN, EtherType } from './ethernet.js';
import { IpProtocol } from './ipv4.js';
import { checksum } from './checksum.js';
import { WireError } from './errors.js';
import { VirtioGsoType, VirtioNetFlags, VIRTIO_NET_HDR_LEN } from './virtio-net.js';

/** Linux UDP_MAX_SEGMENTS (include/linux/udp.h, since 5.5): more is refused. */
export const UDP_MAX_SEGMENTS = 128;

const IPV6_HEADER_LEN = 40;
const UDP_HEADER_LEN = 8;

/** Where the L4 header starts and which protocol it is; undefined when the frame is not plain IPv4/IPv6. */
function l4Start(frame: Uint8Array): { at: number; proto: number; v6: boolean } | undefined {
  if (frame.length < ETH_HEADER_LEN + 20) return undefined;
  const ethertype = (frame[12]! << 8) | frame[13]!;
  if (ethertype === EtherType.IPv4) {
    const ihl = (frame[ETH_HEADER_LEN]! & 0x0f) * 4;
    if (ihl < 20) return undefined;
    return { at: ETH_HEADER_LEN + ihl, proto: frame[ETH_HEADER_LEN + 9]!, v6: false };
  }
  if (ethertype === EtherType.IPv6) {
    return { at: ETH_HEADER_LEN + IPV6_HEADER_LEN, proto: frame[ETH_HEADER_LEN + 6]!, v6: true };
  }
  return undefined;
}

/**
 * Writes the 10-byte virtio_net_hdr for `frame` into out[0, 10). `gso`
 * undefined: a complete frame (all zero). A number: the TCP/UDP checksum
 * field holds the pseudo-header sum (NEEDS_CSUM); above 0 the frame is a TCP
 * super-segment to be cut into `gso`-byte payloads. Throws WireError
 * ('virtio-offload-unsupported') for a frame the header cannot describe —
 * the stack only asks for TCP and UDP over IPv4/IPv6.
 */
export function txOffloadHeader(frame: Uint8Array, gso: number | undefined, out: Uint8Array): void {
  out.fill(0, 0, VIRTIO_NET_HDR_LEN);
  if (gso === undefined) return;
  const l4 = l4Start(frame);
  if (!l4 || (l4.proto !== IpProtocol.TCP && l4.proto !== IpProtocol.UDP) || l4.at + 8 > frame.length) {
    throw new WireError('virtio-offload-unsupported');
  }
  const csumOffset = l4.proto === IpProtocol.TCP ? 16 : 6;
  out[0] = VirtioNetFlags.NEEDS_CSUM;
  out[6] = l4.at;
  out[7] = l4.at >>> 8;
  out[8] = csumOffset;
  if (gso > 0) {
    if (l4.proto !== IpProtocol.TCP || l4.at + 20 > frame.length) throw new WireError('virtio-offload-unsupported');
    const hdrLen = l4.at + (frame[l4.at + 12]! >>> 4) * 4;
    out[1] = l4.v6 ? VirtioGsoType.TCPV6 : VirtioGsoType.TCPV4;
    out[2] = hdrLen;
    out[3] = hdrLen >>> 8;
    out[4] = gso;
    out[5] = gso >>> 8;
  }
}

/**
 * Cuts a UDP super-datagram (gso_type UDP_L4) into datagrams of `gsoSize`
 * payload bytes (the last may be shorter), each built in `scratch` and
 * handed to `each` (which must copy what it keeps). IPv4 lengths, IDs and
 * header checksums and the UDP lengths are rewritten; the UDP checksums are
 * left as they came (partial: the caller passes the frames on as trusted).
 * Throws WireError when the frame is not a UDP datagram that cuts cleanly.
 */
export function splitUdpGso(frame: Buffer, gsoSize: number, scratch: Buffer, each: (datagram: Buffer) => void): number {
  const l4 = l4Start(frame);
  if (!l4 || l4.proto !== IpProtocol.UDP) throw new WireError('virtio-gso-not-udp');
  const hdr = l4.at + UDP_HEADER_LEN;
  if (hdr > frame.length) throw new WireError('virtio-gso-truncated');
  // The frame's own IP length bounds the payload (the read may carry padding).
  const ipEnd = l4.v6
    ? ETH_HEADER_LEN + IPV6_HEADER_LEN + frame.readUInt16BE(ETH_HEADER_LEN + 4)
    : ETH_HEADER_LEN + frame.readUInt16BE(ETH_HEADER_LEN + 2);
  if (ipEnd > frame.length || ipEnd < hdr) throw new WireError('virtio-gso-truncated');
  const payload = ipEnd - hdr;
  if (gsoSize <= 0) throw new WireError('virtio-gso-bad-size');
  const count = Math.ceil(payload / gsoSize);
  if (count > UDP_MAX_SEGMENTS) throw new WireError('virtio-gso-too-many');
  if (scratch.length < hdr + Math.min(gsoSize, payload)) throw new WireError('buffer-too-small');
  const id = l4.v6 ? 0 : frame.readUInt16BE(ETH_HEADER_LEN + 4);
  for (let i = 0, off = hdr; off < ipEnd; i++, off += gsoSize) {
    const len = Math.min(gsoSize, ipEnd - off);
    frame.copy(scratch, 0, 0, hdr);
    frame.copy(scratch, hdr, off, off + len);
    const udpLen = UDP_HEADER_LEN + len;
    scratch.writeUInt16BE(udpLen, l4.at + 4);
    if (l4.v6) {
      scratch.writeUInt16BE(udpLen, ETH_HEADER_LEN + 4);
    } else {
      scratch.writeUInt16BE(l4.at - ETH_HEADER_LEN + udpLen, ETH_HEADER_LEN + 2);
      scratch.writeUInt16BE((id + i) & 0xffff, ETH_HEADER_LEN + 4);
      scratch.writeUInt16BE(0, ETH_HEADER_LEN + 10);
      scratch.writeUInt16BE(checksum(scratch, ETH_HEADER_LEN, l4.at), ETH_HEADER_LEN + 10);
    }
    each(scratch.subarray(0, hdr + len));
  }
  return count;
}
