// What the protocol handlers (arp.ts, icmp.ts, ...) may use from the stack:
// configuration, counters, the neighbor table, and the one way out
// (transmit). Keeps each handler a plain function of (ctx, now, packet).

import type { MemoryBudget } from './budget.js';
import type { StackConfig } from './config.js';
import type { FlowTable } from './flow-table.js';
import type { Counters } from './counters.js';
import type { NeighborTable } from './neighbors.js';

export interface StackContext {
  readonly config: StackConfig;
  readonly counters: Counters;
  readonly neighbors: NeighborTable;
  /** Everything buffered for flows is taken from here (src/stack/budget.ts). */
  readonly budget: MemoryBudget;
  /** The one flow table: every TCP, UDP, forwarded and echo flow, one cap. */
  readonly flows: FlowTable;
  /**
   * The link cuts and checksums for us (a TAP with a virtio-net header):
   * TCP may build segments larger than the guest's MSS and leave checksums
   * partial, passing `gso` to transmit (src/host/port.ts says what it means).
   */
  readonly offload: boolean;
  /**
   * The frame being received came with its TCP/UDP checksum vouched for by
   * the guest's kernel (partial or already checked): do not verify it.
   */
  readonly rxCsumTrusted: boolean;
  /** Sends an Ethernet frame toward the guest (`gso`: see src/host/port.ts). */
  transmit(frame: Buffer, gso?: number): void;
  /**
   * The link takes a frame in two pieces (transmitParts, and the `payload`
   * argument of sendToGuest): a TCP payload need not be copied behind its
   * headers.
   */
  readonly partsOk: boolean;
  /** Sends a frame given as `head` then `payload` (only when partsOk). */
  transmitParts(head: Buffer, payload: Buffer, gso?: number): void;
  /**
   * Sends a frame to guest address ip whose destination MAC is not known
   * yet: fills it in from the neighbor table, or queues the frame and asks
   * with ARP (sent when the guest answers). With `payload` (only when
   * partsOk), `frame` holds the headers and the frame goes on with payload.
   */
  sendToGuest(now: number, ip: number, frame: Buffer, gso?: number, payload?: Buffer): void;
  /** The same for an IPv6 guest address (neighbor discovery instead of ARP; needs IPv6 enabled). */
  sendToGuest6(now: number, addr: Uint8Array, frame: Buffer, gso?: number, payload?: Buffer): void;
  /** Reports something worth a log line (flow opened/closed, ...). */
  event?(name: string, detail: Record<string, unknown>): void;
  /** Counts (and reports) a dropped frame. */
  drop(reason: string, detail?: string): void;
  /** Records that ip is at mac (and sends frames waiting for it). */
  learnNeighbor(ip: number, mac: number, now: number): void;
  /** Is ip inside the virtual network? */
  inNetwork(ip: number): boolean;
  /** Is ip one of the stack's own addresses (gateway, DNS)? */
  isOwnAddress(ip: number): boolean;
  /** The virtual MAC answering for ip, or undefined when ip is not ours. */
  ownMac(ip: number): number | undefined;
}
