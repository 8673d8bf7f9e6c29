// The fuzz harness: one seed → one Stack (with TCP, UDP and echo hooks from
// the fake host), N generated frames fed through it in virtual time the way
// the shell does (frames in batches through a reused receive buffer, then
// flush; host events between batches, each followed by a flush as kick()
// does; poll whenever pollAt() is due), and after every step the
// invariants:
//   - no exception escapes receive/flush/poll, nor a host call into a table;
//   - hooks.onError is never called and the "internal-error" drop counter
//     stays 0 (the Stack turns unexpected exceptions into those);
//   - every transmitted frame passes the OutputChecker (invariants.ts);
//   - flow counts stay within the flow cap (or, on stacks without one,
//     within fixed bounds); pollAt() is never NaN;
//   - no single receive/flush/poll sends one TCP connection more segments
//     than the TAP queue holds (txqueuelen 1000, which tcp-flows.ts sizes
//     windows for): the rest of such a burst is dropped by the kernel;
//   - the TCP streams the guest model and the fake host check (streams.ts);
//   - every parser of src/wire, run on each input frame directly, rejects
//     with WireError only and round-trips what it accepts (wire-contract.ts);
//   - after the last frame: with the guest silent for 4 h of virtual time
//     every flow is gone, and shutdown (abortAll/closeAll) leaves nothing.
// The first violation stops the run (with keepGoing: the first of each
// invariant is recorded and the run goes on) and is reported with the seed,
// the frame index, the phase and the frame (see FuzzFailure). Violations
// matching a known issue (known.ts) are counted instead, unless strict.

import { createHash } from 'node:crypto';
import { makeConfig, type StackConfig } from '../../src/stack/config.js';
import { Stack, type StackOptions } from '../../src/stack/stack.js';
import { ETH_HEADER_LEN } from '../../src/wire/ethernet.js';
import { txOffloadHeader } from '../../src/wire/gso.js';
import { completeChecksum, VirtioNetHdr, VirtioNetRepr, VIRTIO_NET_HDR_LEN } from '../../src/wire/virtio-net.js';
import { AddressPlan } from './addresses.js';
import { FakeHost, Scheduler } from './fake-host.js';
import { FrameGenerator, type Generated } from './generate.js';
import { GuestTcp } from './guest-tcp.js';
import { OutputChecker } from './invariants.js';
import { knownIssue } from './known.js';
import { Rng } from './rng.js';
import type { SeedFrame } from './seeds.js';
import { StreamOracle } from './streams.js';
import { checkWireContract } from './wire-contract.js';

/** The stack configuration a seed runs with (also derived from the seed). */
export interface RunConfig {
  mtu: number;
  disableHostLoopback: boolean;
  disableDns: boolean;
  udpIdleMs: number;
  /** Stack options newer stacks understand (flow cap, half-open cap, memory budget). */
  maxFlows: number | undefined;
  maxHalfOpen: number | undefined;
  memoryBudget: number | undefined;
  /** IPv6 on the guest link (needs an MTU of 1280 or more). */
  enableIpv6: boolean;
  /**
   * TAP offloads (src/host/port.ts): the stack may send super-segments with
   * partial checksums, and some guest frames arrive with their checksum
   * vouched for — as a hostile guest's packet socket can claim.
   */
  offload: boolean;
}

export function configFor(seed: number): RunConfig {
  const r = new Rng(seed).fork(0xc0f1);
  const rc: RunConfig = {
    mtu: r.weighted<number>([
      [75, 1500],
      [8, 576],
      [8, 9000],
      [4, 65520],
      [5, 68],
    ]),
    disableHostLoopback: r.chance(0.15),
    disableDns: r.chance(0.1),
    udpIdleMs: r.pick([60_000, 60_000, 5_000, 1_000]),
    maxFlows: r.weighted<number | undefined>([
      [70, undefined],
      [20, 256],
      [10, 16],
    ]),
    maxHalfOpen: r.weighted<number | undefined>([
      [80, undefined],
      [20, 8],
    ]),
    memoryBudget: r.weighted<number | undefined>([
      [80, undefined],
      [20, 2 * 1024 * 1024],
    ]),
    enableIpv6: false,
    offload: false,
  };
  // IPv6 for half the seeds, drawn apart so older seeds keep their other settings.
  rc.enableIpv6 = rc.mtu >= 1280 && new Rng(seed).fork(0x1b6).chance(0.5);
  rc.offload = new Rng(seed).fork(0x0ff1).chance(0.5);
  return rc;
}

export interface FuzzFailure {
  seed: number;
  /** Index of the last frame handed to the stack (the offending one for phase "receive"). */
  index: number;
  phase: string;
  invariant: string;
  detail: string;
  /** Generator of the frame at `index`. */
  kind: string;
  frameHex: string;
  /** Stack trace of the exception, when there was one. */
  stack: string | undefined;
  config: RunConfig;
  /** Found with keepGoing (an earlier violation of another invariant may precede it). */
  keepGoing: boolean;
}

/** The command that replays a failure's run up to its frame. */
export function replayCommand(f: FuzzFailure): string {
  return `npm run fuzz -- --seed ${f.seed} --frames ${f.index + 1}${f.keepGoing ? ' --keep-going' : ''}`;
}

export interface FuzzReport {
  seed: number;
  config: RunConfig;
  frames: number;
  ms: number;
  kinds: Map<string, number>;
  badChecksum: number;
  drops: Map<string, number>;
  events: Map<string, number>;
  txFrames: number;
  txByKind: Map<string, number>;
  peak: { tcp: number; udp: number; echo: number };
  virtualMs: number;
  guest: GuestTcp['stats'];
  host: FakeHost['stats'];
  streamBytesChecked: number;
  /** SHA-256 over every input frame, in order: equal digests, equal frame sequences. */
  inputDigest: string;
  /** The first violation (the one a plain run stops at). */
  failure: FuzzFailure | undefined;
  /** With keepGoing: the first violation of each invariant, in order. */
  failures: FuzzFailure[];
  /** Occurrences of each invariant, including repeats keepGoing skipped. */
  violations: Map<string, number>;
  /** Known issues (known.ts) seen, by id: counted, not failures. */
  known: Map<string, number>;
}

export interface FuzzOptions {
  seed: number;
  frames: number;
  corpus: readonly SeedFrame[];
  /** Drain and shutdown checks after the last frame (default true). */
  drain?: boolean;
  /** Called every 50k frames. */
  progress?: (done: number) => void;
  /** Record the first violation of each invariant and go on (default: stop at the first). */
  keepGoing?: boolean;
  /** Known issues (known.ts) fail too (default: counted only). */
  strict?: boolean;
  /**
   * For debugging a failure: sees every frame in ('rx', with its generator),
   * every frame out ('tx', with the phase), every drop and event of the stack
   * ('drop'/'event': frame empty, info = reason and detail).
   */
  trace?: (dir: 'rx' | 'tx' | 'drop' | 'event', index: number, frame: Buffer, info: string, now: number) => void;
}

/** Fallback bounds for stacks without a flow cap. */
const MAX_TCP_FLOWS = 100_000;
const MAX_UDP_FLOWS = 2 * 4096;
const MAX_ECHO_FLOWS = 1024;
const DRAIN_MS = 4 * 3600_000;
/** The TAP device's queue (txqueuelen), see MAX_SEGMENTS_IN_FLIGHT in src/stack/tcp-flows.ts. */
const TAP_QUEUE = 1000;

const EMPTY = Buffer.alloc(0);

/** Thrown to end a run at its first violation (plain mode) or one it cannot go past. */
const STOP = new Error('fuzz run stopped');

class Violation extends Error {
  constructor(
    readonly invariant: string,
    readonly detail: string,
    readonly trace?: string,
    /** The transmitted frame, for tx-* invariants. */
    readonly tx?: Buffer,
  ) {
    super(`${invariant}: ${detail}`);
  }
}

export function stackOptions(rc: RunConfig, iss: () => number): StackOptions {
  // A variable, not a literal: options a given Stack does not know are ignored.
  const opts: StackOptions & { maxFlows?: number; maxHalfOpen?: number; memoryBudget?: number } = {
    nat: { disableDns: rc.disableDns },
    udpIdleMs: rc.udpIdleMs,
    iss,
    maxFlows: rc.maxFlows,
    maxHalfOpen: rc.maxHalfOpen,
    memoryBudget: rc.memoryBudget,
    offload: rc.offload,
  };
  return opts;
}

/**
 * A frame sent with `gso` as the kernel would pass it on: a copy with the
 * TCP/UDP checksum completed — or what is wrong with the request (gso without
 * offload, on a frame the header cannot describe, pieces above the MTU).
 */
function offloadOf(frame: Buffer, gso: number, offload: boolean, mtu: number): Buffer | string {
  if (!offload) return `gso ${gso} passed with offload off`;
  const hdr = Buffer.alloc(VIRTIO_NET_HDR_LEN);
  try {
    txOffloadHeader(frame, gso, hdr);
  } catch (e) {
    return `gso ${gso} on a frame the virtio header cannot describe (${(e as Error).message})`;
  }
  const h = VirtioNetRepr.parse(new VirtioNetHdr(hdr));
  if (gso > 0) {
    if (h.hdrLen + gso > ETH_HEADER_LEN + mtu) return `gso ${gso} cuts pieces of ${h.hdrLen + gso} bytes, above the MTU`;
    if (frame.length - h.hdrLen <= gso) return `gso ${gso} on a segment of ${frame.length - h.hdrLen} payload bytes (it fits: no GSO needed)`;
  }
  const copy = Buffer.from(frame);
  if (!completeChecksum(copy, h.csumStart, h.csumOffset)) return 'checksum offsets outside the frame';
  return copy;
}

export function stackConfig(rc: RunConfig): StackConfig {
  return makeConfig({ mtu: rc.mtu, disableHostLoopback: rc.disableHostLoopback, enableIpv6: rc.enableIpv6 });
}

export function fuzz(o: FuzzOptions): FuzzReport {
  return new Run(o).run();
}

class Run {
  private readonly rc: RunConfig;
  private readonly cfg: StackConfig;
  private readonly stack: Stack;
  private readonly host: FakeHost;
  private readonly gen: FrameGenerator;
  private readonly guest: GuestTcp;
  private readonly oracle = new StreamOracle();
  private readonly checker: OutputChecker;
  private readonly time: Rng;
  private readonly kinds = new Map<string, number>();
  private readonly txByKind = new Map<string, number>();
  private readonly rx = Buffer.allocUnsafeSlow(65536 + 128);
  private now: number;
  private index = -1;
  private current: Generated = { kind: '(none)', frame: Buffer.alloc(0) };
  private phase = 'start';
  private maxTx: number;
  private pending: Violation | undefined;
  private readonly failures: FuzzFailure[] = [];
  private readonly violations = new Map<string, number>();
  private readonly known = new Map<string, number>();
  private onErrorCalls = 0;
  private readonly digest = createHash('sha256');
  /** TCP segments sent per connection during the current stack call. */
  private readonly burst = new Map<number, number>();
  private badChecksum = 0;
  private readonly trustRng: Rng;
  private readonly peak = { tcp: 0, udp: 0, echo: 0 };

  constructor(private readonly o: FuzzOptions) {
    const seed = o.seed >>> 0;
    const root = new Rng(seed);
    this.rc = configFor(seed);
    this.cfg = stackConfig(this.rc);
    const plan = new AddressPlan(this.cfg);
    this.time = root.fork(1);
    this.trustRng = root.fork(6);
    const issRng = root.fork(2);
    this.oracle.report = (inv, detail) => this.violate(new Violation(inv, detail));
    this.host = new FakeHost(root.fork(3), plan, this.oracle, new Scheduler());
    this.guest = new GuestTcp(root.fork(4), plan, this.oracle);
    this.gen = new FrameGenerator(root.fork(5), plan, o.corpus, this.guest, this.cfg.mtu);
    this.checker = new OutputChecker(this.cfg);
    this.maxTx = ETH_HEADER_LEN + this.cfg.mtu;
    this.now = 1000 + this.time.int(1_000_000);
    this.stack = new Stack(
      this.cfg,
      {
        transmit: (f, gso) => this.onTransmit(f, gso),
        onDrop: o.trace ? (reason, detail) => o.trace!('drop', this.index, EMPTY, `${reason} ${detail ?? ''}`, this.now) : undefined,
        onEvent: o.trace ? (name, detail) => o.trace!('event', this.index, EMPTY, `${name} ${JSON.stringify(detail)}`, this.now) : undefined,
        onError: (e) => {
          this.onErrorCalls++;
          this.violate(new Violation('stack-onError', e instanceof Error ? e.message : String(e), e instanceof Error ? e.stack : undefined));
        },
        tcp: this.host.tcpHooks,
        udp: this.host.udpHooks,
        echo: this.host.echoHooks,
      },
      stackOptions(this.rc, () => issRng.u32()),
    );
    this.host.bind(this.stack);
  }

  private violate(v: Violation): void {
    if (!this.o.strict) {
      const k = knownIssue({ invariant: v.invariant, detail: v.detail, kind: this.current.kind, phase: this.phase, tx: v.tx, mtu: this.cfg.mtu });
      if (k) {
        this.known.set(k.id, (this.known.get(k.id) ?? 0) + 1);
        return;
      }
    }
    const seen = this.violations.get(v.invariant) ?? 0;
    this.violations.set(v.invariant, seen + 1);
    if (seen === 0 || !this.o.keepGoing) {
      if (this.pending === undefined) this.failures.push(this.failure(v));
      if (!this.o.keepGoing) this.pending ??= v;
    }
  }

  private onTransmit(sent: Buffer, gso?: number): void {
    this.o.trace?.('tx', this.index, sent, this.phase, this.now);
    let f = sent;
    let maxTx = this.maxTx;
    if (gso !== undefined) {
      // What the kernel would make of it: the checksum completed (and, for a
      // super-segment, cut into pieces no larger than the MTU).
      const off = offloadOf(sent, gso, this.rc.offload, this.cfg.mtu);
      if (typeof off === 'string') {
        this.violate(new Violation('tx-bad-offload', `${off}; transmitted frame: ${sent.toString('hex')}`, undefined, Buffer.from(sent)));
        return;
      }
      f = off;
      if (gso > 0) maxTx = ETH_HEADER_LEN + 65535 + 40;
    }
    const v = this.checker.check(f, maxTx);
    if (v) this.violate(new Violation(v.invariant, `${v.detail}; transmitted frame: ${f.toString('hex')}`, undefined, Buffer.from(f)));
    else this.countBurst(f);
    this.guest.observe(f);
  }

  /** Counts a (valid, so untagged, option-less IPv4) TCP segment against its connection's burst. */
  private countBurst(f: Buffer): void {
    if (f.length < 54 || f.readUInt16BE(12) !== 0x0800 || f[23] !== 6 || f[14] !== 0x45) return;
    // Guest address (its last byte: the stack talks to one /24 at most) and both ports.
    const key = f[33]! * 2 ** 32 + f.readUInt16BE(34) * 65536 + f.readUInt16BE(36);
    const n = (this.burst.get(key) ?? 0) + 1;
    this.burst.set(key, n);
    if (n === TAP_QUEUE + 1) {
      this.violate(
        new Violation(
          'tcp-burst-over-tap-queue',
          `one ${this.phase} sent more than ${TAP_QUEUE} segments to ${f.readUInt8(30)}.${f.readUInt8(31)}.${f.readUInt8(32)}.${f.readUInt8(33)}:${f.readUInt16BE(36)} from port ${f.readUInt16BE(34)} (last: ${f.length - 54} bytes of payload)`,
        ),
      );
    }
  }

  /** Calls into the stack; anything thrown is a violation. */
  private call(phase: string, f: () => void): void {
    this.phase = phase;
    this.burst.clear();
    try {
      f();
    } catch (e) {
      const name = phase.startsWith('host:') ? 'host-call-threw' : 'exception-escaped';
      this.violate(new Violation(name, e instanceof Error ? e.message : String(e), e instanceof Error ? e.stack : undefined));
    }
    this.checkState();
    if (this.pending) throw STOP;
  }

  private checkState(): void {
    const s = this.stack;
    // Every internal-error drop comes with an onError call (itself a violation);
    // one without is an error the stack swallowed unreported.
    const ie = s.counters.drops.get('internal-error') ?? 0;
    if (ie > this.onErrorCalls) {
      this.violate(new Violation('internal-error-drop', `the stack counted ${ie} internal error(s), onError was called ${this.onErrorCalls} time(s)`));
      this.onErrorCalls = ie;
    }
    const at = s.pollAt();
    if (Number.isNaN(at)) this.violate(new Violation('pollAt-NaN', 'stack.pollAt() is NaN'));
    const tcp = s.tcp?.size ?? 0;
    const udp = s.udp?.size ?? 0;
    const echo = s.echo?.size ?? 0;
    if (tcp > this.peak.tcp) this.peak.tcp = tcp;
    if (udp > this.peak.udp) this.peak.udp = udp;
    if (echo > this.peak.echo) this.peak.echo = echo;
    const cap = (s as unknown as { maxFlows?: number }).maxFlows;
    if (cap !== undefined) {
      if (tcp + udp + echo > cap) this.violate(new Violation('flows-over-cap', `${tcp} TCP + ${udp} UDP + ${echo} echo flows, cap ${cap}`));
    } else if (tcp > MAX_TCP_FLOWS || udp > MAX_UDP_FLOWS || echo > MAX_ECHO_FLOWS) {
      this.violate(new Violation('flows-unbounded', `${tcp} TCP, ${udp} UDP, ${echo} echo flows`));
    }
  }

  private step(): number {
    const r = this.time;
    return r.weighted<number>([
      [85, r.float() * 5],
      [10, 5 + r.float() * 300],
      [4, 300 + r.float() * 5000],
      [1, 5000 + r.float() * 150_000],
    ]);
  }

  /** Host events due by `now`, each followed (usually) by the flush kick() would cause. */
  private hostEvents(now: number): void {
    for (let n = 0; n < 100_000; n++) {
      const ev = this.host.sched.popDue(now);
      if (!ev) return;
      this.host.now = now;
      this.call(`host:${ev.name}`, ev.fn);
      if (this.time.chance(0.7)) this.call('flush', () => this.stack.flush(now));
    }
    this.violate(new Violation('host-event-storm', 'more than 100000 host events due at one instant'));
    throw STOP;
  }

  private maybePoll(now: number): void {
    if (now >= this.stack.pollAt() || this.time.chance(0.02)) this.call('poll', () => this.stack.poll(now));
  }

  run(): FuzzReport {
    const t0 = performance.now();
    try {
      this.frames();
      if (this.o.drain !== false) this.drainAndShutdown();
    } catch (e) {
      if (e !== STOP) throw e;
    }
    const failure = this.failures[0];
    const ms = performance.now() - t0;
    const c = this.stack.counters;
    return {
      seed: this.o.seed >>> 0,
      config: this.rc,
      frames: this.index + 1,
      ms,
      kinds: this.kinds,
      badChecksum: this.badChecksum,
      drops: new Map(c.drops),
      events: new Map(c.events),
      txFrames: c.txFrames,
      txByKind: this.checker.counts,
      peak: this.peak,
      virtualMs: this.now,
      guest: this.guest.stats,
      host: this.host.stats,
      streamBytesChecked: this.oracle.checkedBytes,
      inputDigest: this.digest.digest('hex'),
      failure,
      failures: this.failures,
      violations: this.violations,
      known: this.known,
    };
  }

  private frames(): void {
    const stack = this.stack;
    const total = this.o.frames;
    while (this.index + 1 < total) {
      this.now += this.step();
      const now = this.now;
      this.host.now = now;
      this.hostEvents(now);
      if (this.time.chance(0.03)) this.call('host:spontaneous', () => this.host.spontaneous());
      const batch = this.time.weighted<number>([
        [60, 1],
        [30, 1 + this.time.int(8)],
        [10, 1 + this.time.int(64)],
      ]);
      for (let j = 0; j < batch && this.index + 1 < total; j++) {
        const g = this.gen.next(now);
        this.index++;
        this.current = g;
        this.kinds.set(g.kind, (this.kinds.get(g.kind) ? this.kinds.get(g.kind)! + 1 : 1));
        if (g.badChecksum) this.badChecksum++;
        this.digest.update(g.frame);
        this.o.trace?.('rx', this.index, g.frame, g.kind, now);
        if (!g.kind.startsWith('tcp-conv')) {
          const breach = checkWireContract(g.frame);
          if (breach) this.violate(new Violation(breach.invariant, breach.detail, breach.stack));
        }
        // Like TapPort: the frame sits in one reused buffer, overwritten after receive().
        const len = g.frame.length;
        const view = len <= this.rx.length ? this.rx.subarray(0, len) : Buffer.allocUnsafe(len);
        g.frame.copy(view);
        this.maxTx = Math.max(ETH_HEADER_LEN + this.cfg.mtu, len);
        // Offload: some frames come vouched for (as the guest's kernel, or a
        // packet socket with PACKET_VNET_HDR, may claim) — bad checksums too.
        const trusted = this.rc.offload && this.trustRng.chance(0.3);
        this.call('receive', () => stack.receive(now, view, trusted));
        view.fill(0xee);
        this.maxTx = ETH_HEADER_LEN + this.cfg.mtu;
        if (this.o.progress && (this.index + 1) % 50_000 === 0) this.o.progress(this.index + 1);
      }
      this.call('flush', () => stack.flush(now));
      this.maybePoll(now);
    }
  }

  /**
   * The guest falls silent: host events and timers run for DRAIN_MS of
   * virtual time, after which every flow must have ended (RTO, keepalive,
   * idle expiry); then shutdown must leave nothing behind.
   */
  private drainAndShutdown(): void {
    const stack = this.stack;
    this.current = { kind: '(drain)', frame: Buffer.alloc(0) };
    const end = this.now + DRAIN_MS;
    for (let n = 0; n < 1_000_000 && this.now < end; n++) {
      const next = Math.min(stack.pollAt(), this.host.sched.nextAt(), end);
      this.now = Math.max(this.now + 0.001, next);
      this.host.now = this.now;
      this.hostEvents(this.now);
      this.call('flush', () => stack.flush(this.now));
      this.call('poll', () => stack.poll(this.now));
    }
    const left = (stack.tcp?.size ?? 0) + (stack.udp?.size ?? 0) + (stack.echo?.size ?? 0);
    if (left > 0) {
      const states = stack.tcp ? [...stack.tcp.all()].slice(0, 5).map((f) => `${f.id}:${f.direction}:${(f.conn as unknown as { state?: unknown }).state}`) : [];
      this.violate(new Violation('flows-leaked-after-drain', `${stack.tcp?.size ?? 0} TCP, ${stack.udp?.size ?? 0} UDP, ${stack.echo?.size ?? 0} echo flows alive after ${DRAIN_MS / 3600_000} h of guest silence (e.g. ${states.join(', ')})`));
      if (this.pending) throw STOP;
    }
    const now = this.now;
    this.call('shutdown', () => {
      stack.tcp?.abortAll(now);
      stack.udp?.closeAll();
      stack.echo?.closeAll();
    });
  }

  private failure(v: Violation): FuzzFailure {
    return {
      seed: this.o.seed >>> 0,
      index: this.index,
      phase: this.phase,
      invariant: v.invariant,
      detail: v.detail,
      kind: this.current.kind,
      frameHex: this.current.frame.toString('hex'),
      stack: v.trace,
      config: this.rc,
      keepGoing: this.o.keepGoing === true,
    };
  }
}

/**
 * Does `frame` alone, received by a fresh stack of the same configuration
 * (hooks that accept nothing), trip an invariant? For failure reports: a
 * frame that does can be pasted into a unit test as it is.
 */
export function aloneTrips(rc: RunConfig, frameHex: string): string | undefined {
  const cfg = stackConfig(rc);
  const checker = new OutputChecker(cfg);
  const frame = Buffer.from(frameHex, 'hex');
  let found: string | undefined;
  const nop = () => {};
  const stack = new Stack(
    cfg,
    {
      transmit: (f) => {
        const v = checker.check(f, Math.max(ETH_HEADER_LEN + cfg.mtu, frame.length));
        if (v) found ??= v.invariant;
      },
      onError: (e) => (found ??= `stack-onError: ${e instanceof Error ? e.message : String(e)}`),
      tcp: { open: nop, data: nop, eof: nop, established: nop, sendSpace: nop, reset: nop, closed: nop },
      udp: { send: nop, send6: nop, sendDns: nop, close: nop },
      echo: { send: nop, send6: nop, close: nop },
    },
    stackOptions(rc, () => 0x12345678),
  );
  try {
    stack.receive(1000, frame);
    stack.flush(1000);
    stack.poll(1000);
  } catch (e) {
    found ??= `exception-escaped: ${e instanceof Error ? e.message : String(e)}`;
  }
  if ((stack.counters.drops.get('internal-error') ?? 0) > 0) found ??= 'internal-error-drop';
  return found;
}

/** A failure as the CLI and the tests print it: everything needed to replay it. */
export function formatFailure(f: FuzzFailure): string {
  const alone = f.phase === 'receive' ? aloneTrips(f.config, f.frameHex) : undefined;
  return [
    `FUZZ FAILURE  seed ${f.seed}  frame #${f.index}  phase ${f.phase}`,
    `  invariant: ${f.invariant}`,
    `  detail:    ${f.detail}`,
    `  generator: ${f.kind}`,
    `  config:    ${JSON.stringify(f.config)}`,
    `  frame:     ${f.frameHex || '(none)'}`,
    f.phase === 'receive'
      ? `  alone:     ${alone ? `this frame alone trips a fresh stack (${alone})` : 'the frame alone does not trip a fresh stack: the state before it matters'}`
      : undefined,
    f.stack ? `  stack trace:\n${f.stack.split('\n').map((l) => '    ' + l).join('\n')}` : undefined,
    `  replay:    ${replayCommand(f)}`,
  ]
    .filter((l) => l !== undefined)
    .join('\n');
}
