// Building frames the stack originates: one allocation per frame, Ethernet
// and IPv4 headers written by the wire Reprs, the payload region returned
// for the protocol to fill.

import { EtherType, EthernetRepr, ETH_HEADER_LEN } from '../wire/ethernet.js';
import { Ipv4Repr } from '../wire/ipv4.js';

export interface Ipv4FrameParts {
  frame: Buffer;
  /** The IP payload region (after the IPv4 header). */
  payload: Buffer;
}

/** Allocates an Ethernet+IPv4 frame with `payloadLen` bytes of payload; headers are filled. */
export function ipv4Frame(srcMac: number, dstMac: number, ip: Ipv4Repr): Ipv4FrameParts {
  const ipLen = ip.bufferLen();
  const frame = Buffer.allocUnsafe(ETH_HEADER_LEN + ipLen);
  new EthernetRepr({ src: srcMac, dst: dstMac, ethertype: EtherType.IPv4 }).emit(frame);
  const ipBuf = frame.subarray(ETH_HEADER_LEN);
  ip.emit(ipBuf);
  return { frame, payload: ipBuf.subarray(ip.headerLen()) };
}
