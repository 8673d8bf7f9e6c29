// Known violations: bugs the fuzzer found in src/stack or src/host that are
// not fixed yet (those files are being rewritten by someone else). Each has
// a failing regression test in test/fuzz/regressions.test.ts (it.fails);
// while listed here, a run counts its occurrences instead of failing, so
// `npm test` and `npm run fuzz` keep hunting for new bugs. When a fix
// lands, its regression test starts passing — it.fails then fails — and
// the entry here must go. `npm run fuzz -- --strict` ignores this list.

import { EtherType, EthernetFrame } from '../../src/wire/ethernet.js';
import { IpProtocol, Ipv4Packet } from '../../src/wire/ipv4.js';

export interface ViolationInfo {
  invariant: string;
  detail: string;
  /** Generator of the input frame being handled. */
  kind: string;
  phase: string;
  /** The transmitted frame, for tx-* invariants. */
  tx?: Buffer;
  /** The run's MTU. */
  mtu: number;
}

export interface KnownIssue {
  /** Also the name of the regression test. */
  id: string;
  /** Where the fault is. */
  where: string;
  match(v: ViolationInfo): boolean;
}

/** The IPv4 payload of a transmitted frame for `protocol`, if it is one. */
function l4Of(f: Buffer | undefined, protocol: number): Buffer | undefined {
  if (!f) return undefined;
  try {
    const e = EthernetFrame.newChecked(f);
    if (e.ethertype !== EtherType.IPv4) return undefined;
    const ip = Ipv4Packet.newChecked(e.payload);
    return ip.protocol === protocol && ip.payload.length >= 2 ? ip.payload : undefined;
  } catch {
    return undefined;
  }
}

/** The UDP source port of a transmitted IPv4/UDP frame, or -1. */
function udpSrcPort(f: Buffer | undefined): number {
  return l4Of(f, IpProtocol.UDP)?.readUInt16BE(0) ?? -1;
}

/** The ICMP type of a transmitted IPv4/ICMP frame, or -1. */
function icmpType(f: Buffer | undefined): number {
  return l4Of(f, IpProtocol.ICMP)?.[0] ?? -1;
}

export const KNOWN_ISSUES: readonly KnownIssue[] = [
  // None open (see regressions.test.ts for the fixed ones).
];

export function knownIssue(v: ViolationInfo): KnownIssue | undefined {
  return KNOWN_ISSUES.find((k) => k.match(v));
}
