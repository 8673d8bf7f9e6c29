// `tsnet replay`: plays the guest's side of a capture into a fresh stack —
// no namespaces, no root, no sockets — and reports (or writes to a pcap)
// what the stack sends back. Frames whose source MAC is one of the stack's
// own virtual MACs are the old peer's answers and are skipped; everything
// else is the guest speaking. Time inside the stack follows the capture's
// timestamps, so timer behaviour replays faithfully too.

import { makeConfig, type StackConfig } from '../stack/config.js';
import { Stack } from '../stack/stack.js';
import { makeLogger, type LogLevel } from '../host/log.js';
import { PcapWriter, readPcap, type PcapRecord } from '../host/pcap.js';

export interface ReplayOptions {
  input: string;
  out?: string;
  mtu: number;
  cidr: string;
  disableHostLoopback: boolean;
  logLevel: LogLevel;
}

export interface ReplayResult {
  /** Frames fed to the stack (guest side). */
  input: PcapRecord[];
  /** Frames the stack emitted, stamped with the time of the frame that caused them. */
  output: PcapRecord[];
  stack: Stack;
}

function srcMac(frame: Buffer): number {
  if (frame.length < 12) return -1;
  return frame.readUIntBE(6, 6);
}

export function isFromStack(cfg: StackConfig, frame: Buffer): boolean {
  const mac = srcMac(frame);
  return mac === cfg.gatewayMac || mac === cfg.dnsMac;
}

/** Replays records through a new stack; pure apart from what the caller passes in. */
export function replayRecords(records: PcapRecord[], cfg: StackConfig, onDrop?: (reason: string, detail?: unknown) => void): ReplayResult {
  const output: PcapRecord[] = [];
  const input: PcapRecord[] = [];
  let nowUs = 0;
  const stack = new Stack(cfg, {
    transmit: (frame) => output.push({ timeUs: nowUs, data: Buffer.from(frame) }),
    onDrop,
  });
  const t0 = records[0]?.timeUs ?? 0;
  for (const r of records) {
    if (isFromStack(cfg, r.data)) continue;
    input.push(r);
    nowUs = r.timeUs;
    stack.receive((r.timeUs - t0) / 1000, r.data);
  }
  return { input, output, stack };
}

export async function runReplay(o: ReplayOptions): Promise<number> {
  const log = makeLogger(o.logLevel);
  const cfg = makeConfig({ cidr: o.cidr, mtu: o.mtu, disableHostLoopback: o.disableHostLoopback });
  const records = await readPcap(o.input);
  const result = replayRecords(records, cfg, (reason, detail) => log.debug({ reason, detail }, 'frame dropped'));
  if (o.out) {
    const w = new PcapWriter(o.out);
    for (const r of result.output) w.write(r.data, r.timeUs);
    w.close();
  }
  const c = result.stack.counters.snapshot();
  const drops = Object.entries(c.drops)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  process.stdout.write(
    `${o.input}: ${records.length} frames, ${result.input.length} from the guest; stack sent ${result.output.length}` +
      (o.out ? ` (written to ${o.out})` : '') +
      `; dropped ${result.stack.counters.totalDrops()}${drops ? ` (${drops})` : ''}\n`,
  );
  return 0;
}
