// `npm run bench`: tsnet side by side with slirp4netns and pasta (when
// installed) and the kernel's veth ceiling (when run as root), in one run,
// as ratios. Every stack gets a fresh rootless namespace (`unshare -Urn`)
// and is driven by the same clients inside it; servers listen on the host
// loopback only. Speed is measured here, never asserted in `npm test`.
//
// Metrics per stack: iperf3 container→host and host→container (-R) at MTU
// 65520 and 1500 with the stack process's CPU seconds (user + system, from
// /proc/PID/stat) per GB moved, the same over IPv6 at 65520 (fd00::2 to the host's ::1;
// tsnet -6 and slirp4netns --enable-ipv6), iperf3 through a port forward added with the
// slirp4netns-style API (tsnet and slirp4netns), 1-byte TCP
// request/response latency p50/p99 and
// connect+request+close rate (bench/rr.py), launch-to-ready time, peak RSS of
// the stack process and the memory it holds privately at the end of each run
// (RSS less the pages shared with other processes), and (tsnet's drop-in bin and slirp4netns) exec to tap0
// and exec to the ready fd as a script starting it with -c sees them; and,
// beside tsnet, the floor Node.js itself sets (start time and idle RSS). Prints a table and writes JSON (--out).
// Each stack's turn also records the share of the machine's CPU time the
// hypervisor took for other guests meanwhile (steal, /proc/stat): on a
// shared virtual machine a turn with much steal runs slower for reasons
// that are not the stack's, which the spreads alone do not tell.
//
// --repeat N runs everything N times, the stacks taking turns within each
// round (so a noisy minute hits them all), and reports each figure as the
// median of the N with its spread (min–max); ratios are of medians.
// --load runs CPU hogs (one per two CPUs, plain busy loops as the
// unprivileged user) for the whole run: the busy-host case, where CPU per
// byte decides who keeps up.
//
// Usage: npm run bench -- [--secs N] [--stacks tsnet,slirp4netns,pasta]
//                         [--mtus 65520,1500] [--out FILE] [--no-veth]
//                         [--repeat N] [--load]

import { execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { apiCall } from '../test/support/api-client.js';
import { collect, killAll, run, spawnAs, stop, waitFor } from '../test/support/proc.js';
import { prepareTun, stagePackage, unprivilegedUser, type RunAs } from '../test/support/stage.js';

interface Args {
  secs: number;
  stacks: string[];
  mtus: number[];
  out: string;
  veth: boolean;
  repeat: number;
  load: boolean;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { secs: 5, stacks: ['tsnet', 'slirp4netns', 'pasta'], mtus: [65520, 1500], out: 'bench-results.json', veth: true, repeat: 1, load: false };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const v = () => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${k} needs a value`);
      return x;
    };
    if (k === '--secs') a.secs = Number(v());
    else if (k === '--stacks') a.stacks = v().split(',');
    else if (k === '--mtus') a.mtus = v().split(',').map(Number);
    else if (k === '--out') a.out = v();
    else if (k === '--no-veth') a.veth = false;
    else if (k === '--repeat') {
      a.repeat = Number(v());
      if (!Number.isInteger(a.repeat) || a.repeat < 1 || a.repeat > 50) throw new Error('--repeat: a whole number from 1 to 50');
    } else if (k === '--load') a.load = true;
    else throw new Error(`unknown argument ${k} (see the header of bench/run.ts)`);
  }
  return a;
}

function has(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const root = fileURLToPath(new URL('../..', import.meta.url));
let runAs: RunAs | null = null;
let stage = '';

interface Attached {
  proc: ChildProcess | undefined;
  pid: number;
  dst: string;
  /** The host's ::1 as the guest reaches it over IPv6 (stacks started with IPv6). */
  dst6?: string;
  readyMs: number;
  /** The slirp4netns-style API socket, for stacks that have one. */
  api?: string;
  cleanup: () => Promise<void>;
}

/** A temp dir the unprivileged user can write an API socket into. */
function userDir(prefix: string): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.chmodSync(d, 0o777);
  return d;
}

/** A fresh rootless namespace held by `sleep`. */
async function namespace(): Promise<ChildProcess> {
  const ns = spawnAs(runAs, 'unshare', ['-Urn', 'sleep', '3600'], { stdio: 'ignore' });
  await waitFor(() => {
    try {
      return fs.readFileSync(`/proc/${ns.pid}/comm`, 'utf8').trim() === 'sleep';
    } catch {
      return false;
    }
  }, 5000, 'unshare');
  return ns;
}

function readyFd(proc: ChildProcess, t0: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = proc.stdio[3] as NodeJS.ReadableStream;
    s.once('data', () => resolve(performance.now() - t0));
    proc.once('exit', (c) => reject(new Error(`exited with ${c} before ready`)));
  });
}

/**
 * Start-up as scripts see it, through the slirp4netns command line (tsnet's
 * drop-in bin, or slirp4netns): exec to tap0 existing in the namespace
 * (/proc/NSPID/net/dev read in a tight loop) and exec to the ready fd, with
 * -c and no API socket, as slirp4netns's own tests start it. Medians of `n`.
 */
async function startup(stack: string, n = 5): Promise<{ tapMs: number; readyMs: number }> {
  const bin = stack === 'tsnet' ? path.join(stage, 'dist/src/cli/slirp4netns') : 'slirp4netns';
  const taps: number[] = [];
  const readies: number[] = [];
  for (let i = 0; i < n; i++) {
    const ns = await namespace();
    const t0 = performance.now();
    const proc = spawnAs(runAs, bin, ['-c', '-r', '3', String(ns.pid), 'tap0'], { stdio: ['ignore', 'ignore', 'ignore', 'pipe'] });
    try {
      const ready = readyFd(proc, t0);
      const devs = `/proc/${ns.pid}/net/dev`;
      let tapMs = NaN;
      while (performance.now() - t0 < 5000) {
        if (fs.readFileSync(devs, 'utf8').includes('tap0:')) {
          tapMs = performance.now() - t0;
          break;
        }
      }
      taps.push(tapMs);
      readies.push(await ready);
    } finally {
      await stop(proc);
      await stop(ns);
    }
  }
  const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
  return { tapMs: median(taps), readyMs: median(readies) };
}

function hostDefaultGateway(): string | undefined {
  const out = execFileSync('ip', ['-4', 'route', 'show', 'default'], { encoding: 'utf8' });
  return /default via (\S+)/.exec(out)?.[1];
}

async function attach(stack: string, mtu: number, nsPid: number): Promise<Attached> {
  const t0 = performance.now();
  if (stack === 'tsnet' || stack === 'slirp4netns') {
    const dir = userDir('tsnet-bench-api-');
    const api = path.join(dir, 'api.sock');
    const args =
      stack === 'tsnet'
        ? [path.join(stage, 'dist/src/cli/main.cjs'), 'attach', '-c', '-6', '--mtu', String(mtu), '-r', '3', '--api-socket', api, String(nsPid)]
        : ['slirp4netns', '--configure', '--enable-ipv6', `--mtu=${mtu}`, '-r', '3', '--api-socket', api, String(nsPid), 'tap0'];
    const proc = spawnAs(runAs, args[0]!, args.slice(1), { stdio: ['ignore', 'ignore', 'pipe', 'pipe'] });
    const readyMs = await readyFd(proc, t0);
    return {
      proc,
      pid: proc.pid!,
      dst: '10.0.2.2',
      dst6: 'fd00::2',
      readyMs,
      api,
      cleanup: async () => {
        await stop(proc);
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  // pasta daemonizes once the namespace is configured; its PID comes from -P.
  const gw = hostDefaultGateway();
  if (!gw) throw new Error('pasta needs a default route on the host (its gateway address maps to the host)');
  // The stage dir is root's; the pid file must be writable by the user pasta runs as.
  const pidDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsnet-bench-pasta-'));
  fs.chmodSync(pidDir, 0o777);
  const pidFile = path.join(pidDir, 'pasta.pid');
  const r = await run(runAs, 'pasta', ['--config-net', '--mtu', String(mtu), '-T', 'none', '-U', 'none', '-t', 'none', '-u', 'none', '-P', pidFile, String(nsPid)], {
    timeoutMs: 20_000,
  });
  if (r.code !== 0) throw new Error(`pasta exited with ${r.code}: ${r.stderr.trim().split('\n').pop()}`);
  const readyMs = performance.now() - t0;
  const pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
  fs.rmSync(pidDir, { recursive: true, force: true });
  return {
    proc: undefined,
    pid,
    dst: gw,
    readyMs,
    cleanup: async () => {
      try {
        process.kill(pid, 'SIGTERM');
        await waitFor(() => !fs.existsSync(`/proc/${pid}`), 5000, 'pasta to exit');
      } catch {
        // already gone
      }
    },
  };
}

/**
 * Memory the process holds for itself (Private_Clean + Private_Dirty from
 * /proc/PID/smaps_rollup): RSS without the pages it shares with other
 * processes — for Node.js, the ~40 MiB of its own executable.
 */
function privateMiB(pid: number): number | undefined {
  try {
    const t = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(t)?.[1] ?? 0);
    return (kb('Private_Clean') + kb('Private_Dirty')) / 1024;
  } catch {
    return undefined;
  }
}

function peakRssMiB(pid: number): number | undefined {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

let nextPort = 25201;

/** CPU seconds (user + system) process pid has used so far, from /proc/PID/stat; undefined when it cannot be read. */
function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command (which may hold spaces) start at the last ')'.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

/** Linux's USER_HZ: /proc/PID/stat counts CPU time in these ticks. */
const TICKS_PER_SECOND = 100;

/**
 * iperf() with the stack process's CPU time per GB moved (user + system
 * seconds over the bytes received): the figure that holds on a busy host,
 * where throughput moves with what else runs.
 */
async function iperfCpu(
  exec: (args: string[], t: number) => Promise<string>,
  pid: number,
  dst: string,
  secs: number,
  reverse: boolean,
  bind = '127.0.0.1',
): Promise<{ gbps: number; cpuPerGB: number | undefined }> {
  const c0 = cpuSeconds(pid);
  const { gbps, bytes } = await iperfBytes(exec, dst, secs, reverse, bind);
  const c1 = cpuSeconds(pid);
  return { gbps, cpuPerGB: c0 === undefined || c1 === undefined || bytes === 0 ? undefined : (c1 - c0) / (bytes / 1e9) };
}

/** iperf3 client in `exec` against a one-off server on the host loopback; Gbit/s received. */
async function iperf(exec: (args: string[], t: number) => Promise<string>, dst: string, secs: number, reverse: boolean, bind = '127.0.0.1'): Promise<number> {
  return (await iperfBytes(exec, dst, secs, reverse, bind)).gbps;
}

async function iperfBytes(
  exec: (args: string[], t: number) => Promise<string>,
  dst: string,
  secs: number,
  reverse: boolean,
  bind = '127.0.0.1',
): Promise<{ gbps: number; bytes: number }> {
  const port = nextPort++;
  const server = spawnAs(runAs, 'iperf3', ['-s', '-1', '-p', String(port), '-B', bind], { stdio: ['ignore', 'pipe', 'pipe'] });
  const done = collect(server, (secs + 30) * 1000);
  await new Promise((r) => setTimeout(r, 300));
  try {
    const out = await exec(['iperf3', '-c', dst, '-p', String(port), '-t', String(secs), '-J', ...(reverse ? ['-R'] : [])], (secs + 30) * 1000);
    const j = JSON.parse(out);
    return { gbps: j.end.sum_received.bits_per_second / 1e9, bytes: j.end.sum_received.bytes };
  } finally {
    await done.catch(() => {});
  }
}

interface Rr {
  p50: number;
  p99: number;
  crr: number;
}

async function rr(exec: (args: string[], t: number) => Promise<string>, dst: string, bind = '127.0.0.1'): Promise<Rr> {
  const port = nextPort++;
  const rrPy = path.join(stage, 'bench/rr.py');
  const server = spawnAs(runAs, '/usr/bin/python3', [rrPy, 'server', String(port), bind], { stdio: ['ignore', 'pipe', 'ignore'] });
  await new Promise<void>((resolve) => server.stdout!.once('data', () => resolve()));
  try {
    const out = await exec(['/usr/bin/python3', rrPy, 'client', dst, String(port)], 60_000);
    const m = /rr_p50_us=(\d+) rr_p99_us=(\d+) crr_per_s=(\d+)/.exec(out);
    if (!m) throw new Error(`rr.py: ${out}`);
    return { p50: Number(m[1]), p99: Number(m[2]), crr: Number(m[3]) };
  } finally {
    await stop(server);
  }
}

type Row = Record<string, number | string | undefined>;

/**
 * iperf3 through a port forward added with the API (add_hostfwd): the
 * server runs inside the namespace, the client on the host connects to the
 * forwarded loopback port. Gbit/s host→container and container→host (-R).
 */
async function forwardedIperf(api: string, nsPid: number, secs: number): Promise<{ in: number; out: number }> {
  const guestPort = 5201;
  const add = await apiCall(api, { execute: 'add_hostfwd', arguments: { proto: 'tcp', host_addr: '127.0.0.1', host_port: nextPort, guest_port: guestPort } });
  if (!add.return) throw new Error(`add_hostfwd: ${JSON.stringify(add)}`);
  const hostPort = nextPort++;
  const result = { in: 0, out: 0 };
  for (const reverse of [false, true]) {
    const server = spawnAs(runAs, 'nsenter', ['--preserve-credentials', '-U', '-n', '-t', String(nsPid), 'iperf3', '-s', '-1', '-p', String(guestPort)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const done = collect(server, (secs + 30) * 1000);
    await new Promise((r) => setTimeout(r, 400));
    const r = await run(runAs, 'iperf3', ['-c', '127.0.0.1', '-p', String(hostPort), '-t', String(secs), '-J', ...(reverse ? ['-R'] : [])], {
      timeoutMs: (secs + 30) * 1000,
    });
    await done.catch(() => {});
    const gbps = JSON.parse(r.stdout).end.sum_received.bits_per_second / 1e9;
    if (reverse) result.out = gbps;
    else result.in = gbps;
  }
  return result;
}

/**
 * What Node.js itself costs on this machine, the floor under tsnet's
 * start-up and memory: the median wall time of `node -e 0` (5 runs) and the
 * resident memory of an idle `node` (its peak over 300 ms).
 */
async function nodeFloor(): Promise<{ startMs: number; rssMiB: number }> {
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    await run(runAs, process.execPath, ['-e', '0'], { timeoutMs: 10_000 });
    times.push(performance.now() - t0);
  }
  const r = await run(runAs, process.execPath, ['-e', "setTimeout(() => console.log(/VmHWM:\\s+(\\d+)/.exec(require('fs').readFileSync('/proc/self/status', 'utf8'))[1]), 300)"], {
    timeoutMs: 10_000,
  });
  return { startMs: median(times), rssMiB: Number(r.stdout.trim()) / 1024 };
}

async function benchStack(stack: string, args: Args): Promise<Row> {
  const row: Row = {};
  if (stack === 'tsnet') {
    const floor = await nodeFloor();
    row.nodeStartMs = floor.startMs;
    row.nodeRssMiB = floor.rssMiB;
  }
  if (stack === 'tsnet' || stack === 'slirp4netns') {
    try {
      const st = await startup(stack);
      row.tapMs = st.tapMs;
      row.dropReadyMs = st.readyMs;
    } catch (e) {
      row.errorStartup = (e as Error).message.split('\n')[0];
    }
  }
  for (const mtu of args.mtus) {
    const ns = await namespace();
    let att: Attached | undefined;
    try {
      att = await attach(stack, mtu, ns.pid!);
      const a = att;
      const exec = async (cmd: string[], t: number) => {
        const r = await run(runAs, 'nsenter', ['--preserve-credentials', '-U', '-n', '-t', String(ns.pid), ...cmd], { timeoutMs: t });
        if (r.code !== 0) throw new Error(`${cmd.join(' ')}: ${r.stderr.trim() || r.stdout.trim()}`);
        return r.stdout;
      };
      if (mtu === args.mtus[0]) row.readyMs = a.readyMs;
      const up = await iperfCpu(exec, a.pid, a.dst, args.secs, false);
      const down = await iperfCpu(exec, a.pid, a.dst, args.secs, true);
      row[`up${mtu}`] = up.gbps;
      row[`down${mtu}`] = down.gbps;
      row[`cpuUp${mtu}`] = up.cpuPerGB;
      row[`cpuDown${mtu}`] = down.cpuPerGB;
      if (mtu === 65520 && a.dst6) {
        // The same over IPv6 (fd00::2 is the host's ::1), once the guest's SLAAC address is usable.
        for (let i = 0; i < 100; i++) {
          const addrs = await exec(['ip', '-6', 'addr', 'show', 'dev', 'tap0', 'scope', 'global'], 5000);
          if (/inet6 fd00::/.test(addrs) && !/tentative/.test(addrs)) break;
          await new Promise((r) => setTimeout(r, 100));
        }
        row[`up6_${mtu}`] = await iperf(exec, a.dst6, args.secs, false, '::1');
        row[`down6_${mtu}`] = await iperf(exec, a.dst6, args.secs, true, '::1');
      }
      if (mtu === 65520) {
        const r = await rr(exec, a.dst);
        row.rrP50 = r.p50;
        row.rrP99 = r.p99;
        row.crr = r.crr;
        if (a.api) {
          const f = await forwardedIperf(a.api, ns.pid!, args.secs);
          row.fwdIn = f.in;
          row.fwdOut = f.out;
        }
      }
      const rss = peakRssMiB(a.pid);
      if (rss !== undefined) row[`rss${mtu}`] = rss;
      const priv = privateMiB(a.pid);
      if (priv !== undefined) row[`priv${mtu}`] = priv;
    } catch (e) {
      row[`error${mtu}`] = (e as Error).message.split('\n')[0];
    } finally {
      await att?.cleanup();
      await stop(ns);
    }
  }
  return row;
}

/** The machine's CPU time so far (/proc/stat's first line), in ticks: all of it, and what the hypervisor stole. */
function cpuTicks(): { steal: number; total: number } {
  // user nice system idle iowait irq softirq steal [guest guest_nice: already counted in user and nice]
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
  return { steal: f[7] ?? 0, total: f.reduce((a, b) => a + b, 0) };
}

/** Percent of the machine's CPU time stolen between two cpuTicks() readings. */
function stealPct(a: { steal: number; total: number }, b: { steal: number; total: number }): number {
  const dt = b.total - a.total;
  return dt > 0 ? (100 * (b.steal - a.steal)) / dt : 0;
}

/** The kernel's own veth between a namespace and the host: the ceiling (root only). */
async function benchVeth(args: Args): Promise<Row> {
  const row: Row = {};
  const ns = `tsnet-bench-${process.pid}`;
  const ip = (...a: string[]) => execFileSync('ip', a, { stdio: 'ignore' });
  for (const mtu of args.mtus) {
    try {
      ip('netns', 'add', ns);
      ip('link', 'add', 'tsb-h', 'type', 'veth', 'peer', 'name', 'tsb-c');
      ip('link', 'set', 'tsb-c', 'netns', ns);
      ip('addr', 'add', '10.203.0.1/24', 'dev', 'tsb-h');
      ip('link', 'set', 'tsb-h', 'mtu', String(mtu), 'up');
      ip('-n', ns, 'addr', 'add', '10.203.0.2/24', 'dev', 'tsb-c');
      ip('-n', ns, 'link', 'set', 'tsb-c', 'mtu', String(mtu), 'up');
      ip('-n', ns, 'link', 'set', 'lo', 'up');
      const saved = runAs;
      runAs = null; // ip netns exec needs root; servers bind the veth address
      try {
        const exec = async (cmd: string[], t: number) => {
          const r = await run(null, 'ip', ['netns', 'exec', ns, ...cmd], { timeoutMs: t });
          if (r.code !== 0) throw new Error(r.stderr);
          return r.stdout;
        };
        row[`up${mtu}`] = await iperf(exec, '10.203.0.1', args.secs, false, '10.203.0.1');
        row[`down${mtu}`] = await iperf(exec, '10.203.0.1', args.secs, true, '10.203.0.1');
        if (mtu === 65520) {
          const r = await rr(exec, '10.203.0.1', '10.203.0.1');
          row.rrP50 = r.p50;
          row.rrP99 = r.p99;
          row.crr = r.crr;
        }
      } finally {
        runAs = saved;
      }
    } catch (e) {
      row[`error${mtu}`] = (e as Error).message.split('\n')[0];
    } finally {
      try {
        ip('link', 'del', 'tsb-h');
      } catch {
        // gone with the namespace
      }
      try {
        ip('netns', 'del', ns);
      } catch {
        // never created
      }
    }
  }
  return row;
}

/** Busy loops as the unprivileged user, one process each (killed by PID at the end). */
function startHogs(n: number): ChildProcess[] {
  const hogs: ChildProcess[] = [];
  for (let i = 0; i < n; i++) hogs.push(spawnAs(runAs, '/bin/sh', ['-c', 'while :; do :; done'], { stdio: 'ignore' }));
  return hogs;
}

function fmt(v: number | string | undefined, digits = 2): string {
  if (v === undefined) return '—';
  if (typeof v === 'string') return v;
  return v.toFixed(digits);
}

/** Per stack and metric: the median of the runs and their min–max. */
interface Summary {
  median: Row;
  spread: Record<string, string>;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Folds the rounds' rows into medians and spreads (errors: the first one seen). */
function summarize(runs: Array<Record<string, Row>>): Record<string, Summary> {
  const out: Record<string, Summary> = {};
  for (const stack of new Set(runs.flatMap((r) => Object.keys(r)))) {
    const rows = runs.map((r) => r[stack]).filter((r): r is Row => r !== undefined);
    const median_: Row = {};
    const spread: Record<string, string> = {};
    for (const key of new Set(rows.flatMap((r) => Object.keys(r)))) {
      const nums = rows.map((r) => r[key]).filter((v): v is number => typeof v === 'number');
      if (nums.length > 0) {
        median_[key] = median(nums);
        if (nums.length > 1) spread[key] = `${Math.min(...nums)}–${Math.max(...nums)}`;
      } else {
        median_[key] = rows.map((r) => r[key]).find((v) => v !== undefined);
      }
    }
    out[stack] = { median: median_, spread };
  }
  return out;
}

function table(summaries: Record<string, Summary>, args: Args): string {
  const results: Record<string, Row> = Object.fromEntries(Object.entries(summaries).map(([k, v]) => [k, v.median]));
  const spreadOf = (stack: string, key: string, digits: number): string => {
    const sp = summaries[stack]?.spread[key];
    if (!sp) return '';
    const [lo, hi] = sp.split('–').map(Number);
    return ` (${lo!.toFixed(digits)}–${hi!.toFixed(digits)})`;
  };
  const cols = Object.keys(results);
  const metrics: Array<[string, string, number, boolean]> = [];
  for (const mtu of args.mtus) {
    metrics.push([`up${mtu}`, `container→host Gbit/s, MTU ${mtu}`, 2, true]);
    metrics.push([`down${mtu}`, `host→container Gbit/s, MTU ${mtu}`, 2, true]);
  }
  for (const mtu of args.mtus) {
    metrics.push([`cpuUp${mtu}`, `CPU s per GB container→host, MTU ${mtu}`, 2, false]);
    metrics.push([`cpuDown${mtu}`, `CPU s per GB host→container, MTU ${mtu}`, 2, false]);
  }
  metrics.push(['up6_65520', 'container→host Gbit/s over IPv6, MTU 65520', 2, true]);
  metrics.push(['down6_65520', 'host→container Gbit/s over IPv6, MTU 65520', 2, true]);
  metrics.push(['fwdIn', 'forwarded port host→container Gbit/s (65520)', 2, true]);
  metrics.push(['fwdOut', 'forwarded port container→host Gbit/s (65520)', 2, true]);
  metrics.push(['rrP50', 'TCP RR p50 µs (MTU 65520)', 0, false]);
  metrics.push(['rrP99', 'TCP RR p99 µs (MTU 65520)', 0, false]);
  metrics.push(['crr', 'connect+1B+close per s', 0, true]);
  metrics.push(['readyMs', 'launch to ready, ms', 0, false]);
  metrics.push(['nodeStartMs', 'Node.js floor: `node -e 0`, ms', 0, false]);
  metrics.push(['tapMs', 'drop-in exec to tap0, ms (-c)', 0, false]);
  metrics.push(['dropReadyMs', 'drop-in exec to ready fd, ms (-c)', 0, false]);
  for (const mtu of args.mtus) metrics.push([`rss${mtu}`, `peak RSS MiB (MTU ${mtu} run)`, 1, false]);
  metrics.push(['nodeRssMiB', 'Node.js floor: idle `node` RSS MiB', 1, false]);
  for (const mtu of args.mtus) metrics.push([`priv${mtu}`, `private MiB at the end (MTU ${mtu} run)`, 1, false]);
  metrics.push(['stealPct', 'CPU stolen by the hypervisor during the turn, %', 0, false]);
  const header = ['metric', ...cols, 'tsnet/slirp4netns'];
  const lines = [header];
  for (const [key, label, digits] of metrics) {
    const vals = cols.map((c) => fmt(results[c]![key] as number | undefined, digits) + spreadOf(c, key, digits));
    const t = results.tsnet?.[key];
    const s = results.slirp4netns?.[key];
    // Steal is the machine's, not the stack's: no ratio.
    const ratio = key !== 'stealPct' && typeof t === 'number' && typeof s === 'number' && s > 0 ? `${(t / s).toFixed(2)}×` : '—';
    lines.push([label, ...vals, ratio]);
  }
  const widths = header.map((_, i) => Math.max(...lines.map((l) => l[i]!.length)));
  const render = (l: string[]) => '| ' + l.map((c, i) => c.padEnd(widths[i]!)).join(' | ') + ' |';
  return [render(lines[0]!), '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|', ...lines.slice(1).map(render)].join('\n');
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  for (const tool of ['iperf3', 'unshare', 'nsenter', 'python3']) {
    if (!has(tool)) throw new Error(`${tool} is required (apt-get install iperf3 util-linux python3)`);
  }
  runAs = unprivilegedUser();
  const tunProblem = prepareTun();
  if (tunProblem) throw new Error(tunProblem);
  stage = stagePackage(root, ['bench']);
  const runs: Array<Record<string, Row>> = [];
  const hogs = args.load ? startHogs(Math.max(1, Math.floor(os.cpus().length / 2))) : [];
  try {
    for (let round = 0; round < args.repeat; round++) {
      const results: Record<string, Row> = {};
      const tag = args.repeat > 1 ? ` (run ${round + 1} of ${args.repeat})` : '';
      for (const stack of args.stacks) {
        if (stack !== 'tsnet' && !has(stack)) {
          if (round === 0) process.stderr.write(`bench: ${stack} not installed, skipped\n`);
          continue;
        }
        process.stderr.write(`bench: ${stack}${tag}...\n`);
        const t0 = cpuTicks();
        results[stack] = await benchStack(stack, args);
        results[stack].stealPct = stealPct(t0, cpuTicks());
      }
      if (args.veth && process.getuid!() === 0) {
        process.stderr.write(`bench: kernel veth${tag}...\n`);
        const t0 = cpuTicks();
        results['kernel veth'] = await benchVeth(args);
        results['kernel veth'].stealPct = stealPct(t0, cpuTicks());
      }
      runs.push(results);
    }
  } finally {
    for (const h of hogs) h.kill('SIGKILL');
    await killAll();
    fs.rmSync(stage, { recursive: true, force: true });
  }
  const summaries = summarize(runs);
  const results = Object.fromEntries(Object.entries(summaries).map(([k, v]) => [k, v.median]));
  const errors = Object.entries(results).flatMap(([s, r]) =>
    Object.entries(r)
      .filter(([k]) => k.startsWith('error'))
      .map(([k, v]) => `${s} (${k.slice(5)}): ${v}`),
  );
  const doc = {
    date: new Date().toISOString(),
    host: { cpus: os.cpus().length, kernel: os.release(), node: process.version },
    secs: args.secs,
    repeat: args.repeat,
    load: args.load ? hogs.length : 0,
    results,
    spread: Object.fromEntries(Object.entries(summaries).map(([k, v]) => [k, v.spread])),
    runs,
  };
  fs.writeFileSync(args.out, JSON.stringify(doc, null, 2) + '\n');
  const what = [args.repeat > 1 ? `median of ${args.repeat} runs (min–max)` : 'one run', args.load ? `${hogs.length} CPU hog(s) running` : 'no load'];
  process.stdout.write(`${what.join(', ')}\n${table(summaries, args)}\n`);
  if (errors.length) process.stdout.write(`\nerrors:\n${errors.map((e) => `  ${e}`).join('\n')}\n`);
  process.stdout.write(`\nJSON written to ${args.out}\n`);
}

main().catch(async (e) => {
  process.stderr.write(`bench: ${(e as Error).message}\n`);
  await killAll();
  process.exitCode = 1;
});
