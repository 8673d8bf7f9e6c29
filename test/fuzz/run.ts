// `npm run fuzz`: the frame fuzzer from the command line.
//
//   npm run fuzz                                  1,000,000 frames, seed 1
//   npm run fuzz -- --seed 7 --frames 200000      one seed, fewer frames
//   npm run fuzz -- --seeds 8                     seeds 1..8, 1,000,000 frames each
//
// Every seed runs to the end (or to its first violation); the figures for
// all of them are printed at the end. A violation prints the seed, the frame
// index, the invariant, the offending frame as one hex string and the
// command that replays exactly that seed up to that frame; the exit status
// is then 1.

import { formatFailure, fuzz, replayCommand, type FuzzFailure, type FuzzReport } from './harness.js';
import { loadSeeds } from './seeds.js';

interface Args {
  seed: number;
  frames: number;
  seeds: number;
  drain: boolean;
  keepGoing: boolean;
  strict: boolean;
}

function usage(msg?: string): never {
  if (msg) process.stderr.write(`fuzz: ${msg}\n`);
  process.stderr.write(
    'usage: npm run fuzz -- [--seed N] [--frames N] [--seeds K] [--keep-going] [--strict] [--no-drain]\n' +
      '  --seed N      first seed (default 1)\n' +
      '  --frames N    frames per seed (default 1000000)\n' +
      '  --seeds K     run seeds N..N+K-1 (default 1)\n' +
      '  --keep-going  report the first violation of each invariant and go on, instead of stopping at the first\n' +
      '  --strict      known issues (test/fuzz/known.ts) fail too\n' +
      '  --no-drain    skip the end-of-run checks (4 h of guest silence, then shutdown)\n',
  );
  process.exit(2);
}

function parseArgs(argv: string[]): Args {
  const a: Args = { seed: 1, frames: 1_000_000, seeds: 1, drain: true, keepGoing: false, strict: false };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const num = (): number => {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 0) usage(`${k} needs a non-negative integer`);
      return v;
    };
    if (k === '--seed') a.seed = num();
    else if (k === '--frames') a.frames = num();
    else if (k === '--seeds') a.seeds = Math.max(1, num());
    else if (k === '--no-drain') a.drain = false;
    else if (k === '--keep-going') a.keepGoing = true;
    else if (k === '--strict') a.strict = true;
    else if (k === '--help' || k === '-h') usage();
    else usage(`unknown argument ${k}`);
  }
  return a;
}

function add(into: Map<string, number>, from: Map<string, number>): void {
  for (const [k, v] of from) into.set(k, (into.get(k) ?? 0) + v);
}

function table(m: Map<string, number>, limit = Infinity): string {
  const rows = [...m.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, limit);
  const w = Math.max(0, ...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `    ${k.padEnd(w)}  ${v.toLocaleString('en-US')}`).join('\n');
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const corpus = await loadSeeds();
  const reports: FuzzReport[] = [];
  const failures: FuzzFailure[] = [];
  process.stdout.write(`fuzz: ${corpus.length} seed frames from pcaps/; ${args.seeds} seed(s) from ${args.seed}, ${args.frames.toLocaleString('en-US')} frames each\n`);
  for (let k = 0; k < args.seeds; k++) {
    const seed = args.seed + k;
    const rep = fuzz({
      seed,
      frames: args.frames,
      corpus,
      drain: args.drain,
      keepGoing: args.keepGoing,
      strict: args.strict,
      progress: (n) => {
        if (process.stdout.isTTY) process.stdout.write(`\r  seed ${seed}: ${n.toLocaleString('en-US')} frames`);
      },
    });
    if (process.stdout.isTTY) process.stdout.write('\r\x1b[K');
    reports.push(rep);
    const known = [...rep.known.entries()].map(([id, n]) => `${id} ×${n}`).join(', ');
    process.stdout.write(
      `  seed ${seed}: ${rep.frames.toLocaleString('en-US')} frames in ${(rep.ms / 1000).toFixed(1)} s (mtu ${rep.config.mtu}${rep.config.enableIpv6 ? ', ipv6' : ''}${rep.config.offload ? ', offload' : ''}${rep.config.maxFlows ? `, max ${rep.config.maxFlows} flows` : ''}): ` +
        `${rep.failures.length > 0 ? `FAILED (${rep.failures.map((f) => f.invariant).join(', ')})` : 'ok'}${known ? `; known issues: ${known}` : ''}\n`,
    );
    for (const f of rep.failures) {
      failures.push(f);
      process.stdout.write(formatFailure(f) + '\n');
    }
  }
  process.stdout.write(summary(reports) + '\n');
  if (failures.length > 0) {
    process.stdout.write(`\n${failures.length} of ${reports.length} seed(s) failed:\n`);
    for (const f of failures) process.stdout.write(`  ${replayCommand(f)}   # ${f.invariant}\n`);
    process.exitCode = 1;
  }
}

function summary(reports: FuzzReport[]): string {
  const kinds = new Map<string, number>();
  const drops = new Map<string, number>();
  const events = new Map<string, number>();
  const tx = new Map<string, number>();
  let frames = 0;
  let ms = 0;
  let txFrames = 0;
  let bad = 0;
  let checked = 0;
  const peak = { tcp: 0, udp: 0, echo: 0 };
  const guest = new Map<string, number>();
  const host = new Map<string, number>();
  const known = new Map<string, number>();
  for (const r of reports) {
    frames += r.frames;
    ms += r.ms;
    txFrames += r.txFrames;
    bad += r.badChecksum;
    checked += r.streamBytesChecked;
    add(kinds, r.kinds);
    add(drops, r.drops);
    add(events, r.events);
    add(tx, r.txByKind);
    add(known, r.known);
    add(guest, new Map(Object.entries(r.guest)));
    add(host, new Map(Object.entries(r.host)));
    peak.tcp = Math.max(peak.tcp, r.peak.tcp);
    peak.udp = Math.max(peak.udp, r.peak.udp);
    peak.echo = Math.max(peak.echo, r.peak.echo);
  }
  const opened = (k: string) => (events.get(k) ?? 0).toLocaleString('en-US');
  const n = (v: number) => v.toLocaleString('en-US');
  return [
    '',
    `frames:            ${n(frames)} in ${(ms / 1000).toFixed(1)} s = ${n(Math.round(frames / (ms / 1000)))} frames/s (${reports.length} seed(s))`,
    `with a bad checksum on purpose: ${n(bad)}`,
    'frames by generator kind:',
    table(kinds),
    'drops by reason (top 20):',
    table(drops, 20),
    `flows opened:      TCP ${opened('tcp-flow-opened')}, UDP ${opened('udp-flow-opened')}, UDP forwarded ${opened('udp-forward-flow-opened')}, ICMP echo ${opened('icmp-echo-flow-opened')}`,
    `peak flows:        TCP ${n(peak.tcp)}, UDP ${n(peak.udp)}, ICMP echo ${n(peak.echo)}`,
    `frames transmitted: ${n(txFrames)} (${[...tx.entries()].map(([k, v]) => `${k} ${n(v)}`).join(', ')})`,
    `guest TCP model:   ${[...guest.entries()].map(([k, v]) => `${k} ${n(v)}`).join(', ')}`,
    `fake host:         ${[...host.entries()].map(([k, v]) => `${k} ${n(v)}`).join(', ')}`,
    `stream bytes checked: ${n(checked)}`,
    `input digest${reports.length > 1 ? 's' : ''}:      ${reports.map((r) => `seed ${r.seed} ${r.inputDigest.slice(0, 16)}`).join(', ')}`,
    `known issues hit (test/fuzz/known.ts): ${known.size === 0 ? 'none' : [...known.entries()].map(([k, v]) => `${k} ×${n(v)}`).join(', ')}`,
  ].join('\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`fuzz: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(2);
});
