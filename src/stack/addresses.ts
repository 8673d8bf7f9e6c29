// Addresses as flows hold them: one number per address, IPv4 or IPv6.
//
// Read this first: an IPv4 address is its 32-bit value (0 … 2^32-1), as
// everywhere in the stack. An IPv6 address is a handle of at least 2^32
// given out by Ipv6Handles: flow keys (address × 65536 + port) stay exact
// integers (handles stay below 2^37), lookups stay numeric, and code that
// only compares addresses needs no change. Whoever builds a frame asks
// isIpv6() and, for IPv6, the handles table for the 16 bytes.
// - A handle lives while a flow refers to it: FlowTable.insert retains the
//   flow's addresses and remove releases them; a handle no flow holds is
//   forgotten, and its number is given out again later. So a guest spraying
//   addresses can only hold as many handles as it holds flows (budgeted).
// - find() never creates: a segment for a flow that does not exist must not
//   leave a handle behind; intern() is called right before a flow is inserted.

import { ipv6ToString } from '../wire/address.js';

export const IPV6_HANDLE_BASE = 2 ** 32;

export function isIpv6(a: number): boolean {
  return a >= IPV6_HANDLE_BASE;
}

interface Entry {
  readonly handle: number;
  readonly addr: Buffer;
  refs: number;
}

export class Ipv6Handles {
  private readonly byKey = new Map<string, Entry>();
  private readonly byHandle = new Map<number, Entry>();
  private readonly free: number[] = [];
  private next = IPV6_HANDLE_BASE;

  private static key(addr: Uint8Array): string {
    return Buffer.from(addr.buffer, addr.byteOffset, 16).toString('latin1');
  }

  get size(): number {
    return this.byHandle.size;
  }

  /** The handle of an address some flow holds, or undefined. */
  find(addr: Uint8Array): number | undefined {
    return this.byKey.get(Ipv6Handles.key(addr))?.handle;
  }

  /** The handle for addr, made if needed (unreferenced until a flow is inserted with it). */
  intern(addr: Uint8Array): number {
    const key = Ipv6Handles.key(addr);
    let e = this.byKey.get(key);
    if (!e) {
      e = { handle: this.free.pop() ?? this.next++, addr: Buffer.from(addr.subarray(0, 16)), refs: 0 };
      this.byKey.set(key, e);
      this.byHandle.set(e.handle, e);
    }
    return e.handle;
  }

  /** The 16 bytes behind a handle (do not modify). */
  addr(handle: number): Buffer {
    const e = this.byHandle.get(handle);
    if (!e) throw new Error(`no IPv6 address behind handle ${handle}`);
    return e.addr;
  }

  retain(handle: number): void {
    const e = this.byHandle.get(handle);
    if (e) e.refs++;
  }

  release(handle: number): void {
    const e = this.byHandle.get(handle);
    if (!e || --e.refs > 0) return;
    this.byHandle.delete(handle);
    this.byKey.delete(Ipv6Handles.key(e.addr));
    this.free.push(handle);
  }

  /** For logs: dotted IPv4 or IPv6 text. */
  text(a: number, v4text: (a: number) => string): string {
    return isIpv6(a) ? ipv6ToString(this.addr(a)) : v4text(a);
  }
}
