// The running stack: the pure Stack wired to its host side — TCP and UDP
// sockets, the DNS forwarder's nameservers — with one timer for all
// protocol deadlines and flushes coalesced per event-loop turn. attach (and
// later run) build one of these around a Port.
//
// Scheduling:
//   frames from the guest → stack.receive(...) ×N → end of batch → flush
//   host socket reads,   → stack tables → flush at once (one read per
//   connects, EOFs         socket per loop turn: nothing to batch with)
//   other host events    → stack tables → kick() → setImmediate flush
//   timer at stack.pollAt() → stack.poll(now) → re-arm
//
// Every one of these entries runs under the runtime's Guard (guard.ts): an
// exception is counted and logged, never the end of the process.

import { performance } from 'node:perf_hooks';
import { randomFill } from '../../native/index.js';
import type { StackConfig } from '../stack/config.js';
import { Stack, type StackOptions } from '../stack/stack.js';
import { Guard } from './guard.js';
import type { Logger } from './log.js';
import type { Port } from './port.js';
import { PingHost } from './ping-host.js';
import { Resolvers } from './resolv.js';
import { TcpHost } from './tcp-host.js';
import { UdpHost } from './udp-host.js';
import { monotonicClock, type Clock } from './clock.js';

export interface RuntimeOptions {
  config: StackConfig;
  log: Logger;
  resolvConf?: string;
  disableDns?: boolean;
  outboundAddr?: string;
  outboundAddr6?: string;
  udpIdleMs?: number;
  /** Budgets (README "Limits and hardening"); defaults in the stack. */
  limits?: Pick<StackOptions, 'maxFlows' | 'maxHalfOpen' | 'memoryBudget'>;
  /** Where "now" comes from (monotonicClock unless a test or replay says otherwise). */
  clock?: Clock;
  /** The port segments and checksums for the stack (a TapPort with offloads; src/host/port.ts). */
  offload?: boolean;
}

/**
 * Initial sequence numbers from the kernel's CSPRNG (RFC 6528, getrandom),
 * four bytes at a time from a pool refilled 1024 numbers at once.
 */
function issSource(): () => number {
  const pool = Buffer.allocUnsafe(4096);
  let at = pool.length;
  return () => {
    if (at === pool.length) {
      randomFill(pool);
      at = 0;
    }
    const v = pool.readUInt32BE(at);
    at += 4;
    return v;
  };
}

export class Runtime {
  readonly stack: Stack;
  readonly tcpHost: TcpHost;
  readonly udpHost: UdpHost;
  readonly pingHost: PingHost | undefined;
  readonly resolvers: Resolvers;
  readonly guard: Guard;
  /** The timer's callback, guarded: one function for every arm (no closures per arm). */
  private readonly onTimer: () => void;
  readonly clock: Clock;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private flushQueued = false;
  private stopped = false;

  constructor(
    private readonly port: Port,
    private readonly opts: RuntimeOptions,
  ) {
    const log = opts.log;
    const clock = (this.clock = opts.clock ?? monotonicClock);
    const guard = (this.guard = new Guard(log, clock));
    this.onTimer = guard.wrap('timer', () => this.fire());
    this.resolvers = new Resolvers(opts.resolvConf ?? '/etc/resolv.conf');
    const nameservers = () => this.resolvers.get();
    if (!opts.disableDns && nameservers().length === 0) {
      log.warn(`--resolv-conf: no nameservers in ${JSON.stringify(this.resolvers.path)}: DNS queries to the DNS address will fail (name a resolv.conf with nameserver lines)`);
    }
    const outbound = { outboundAddr: opts.outboundAddr, outboundAddr6: opts.outboundAddr6 };
    this.tcpHost = new TcpHost({ ...outbound, nameservers, log, guard, clock }, () => this.kick(), () => this.flushNow());
    this.udpHost = new UdpHost({ ...outbound, nameservers, log, guard, clock }, () => this.kick());
    this.pingHost = PingHost.available(log) ? new PingHost(log, guard, () => this.kick(), clock) : undefined;
    const debug = log.isLevelEnabled('debug');
    this.stack = new Stack(
      opts.config,
      {
        transmit: (frame, gso) => port.send(frame, gso),
        // Only a port that takes frames in two pieces gets them (the TAP;
        // pcap and fault middleware are given whole frames).
        transmitParts: port.sendParts ? (head, payload, gso) => port.sendParts!(head, payload, gso) : undefined,
        onDrop: debug ? (reason, detail) => log.debug({ reason, detail }, 'frame dropped') : undefined,
        onEvent: (event, detail) => {
          if (event.startsWith('guest')) log.info(detail, event);
          else if (debug) log.debug(detail, event);
        },
        // Per-flow events are logged at debug only: otherwise not even formatted.
        flowEvents: debug,
        onError: (err) => guard.report('stack', err),
        tcp: this.tcpHost,
        udp: this.udpHost,
        echo: this.pingHost,
      },
      {
        nat: { disableDns: opts.disableDns },
        udpIdleMs: opts.udpIdleMs,
        // RFC 6528: unpredictable initial sequence numbers.
        iss: issSource(),
        ...opts.limits,
        offload: opts.offload,
      },
    );
    this.tcpHost.bind(this.stack.tcp!);
    this.udpHost.bind(this.stack.udp!);
    if (this.pingHost) this.pingHost.bind(this.stack.echo!);
    // stack.receive guards itself (drops by reason); flushes and timers are guarded here.
    port.setReceiver((frame, trusted) => this.stack.receive(this.clock(), frame, trusted));
  }

  /** End of an I/O batch from the TAP: send what became due, flush the ports. */
  onBatchEnd(): void {
    this.flushNow();
  }

  /** Host-side events made output due: flush once, later in this loop turn. */
  kick(): void {
    if (this.flushQueued || this.stopped) return;
    this.flushQueued = true;
    setImmediate(this.kicked);
  }

  /** kick()'s deferred flush (one function for every kick: no closure per call). */
  private readonly kicked = (): void => {
    this.flushQueued = false;
    this.flushNow();
  };

  /** Flushes the stack and the port, then re-arms the timer; guarded (a failure is counted, never thrown). */
  private flushNow(): void {
    if (this.stopped) return;
    try {
      this.stack.flush(this.clock());
      this.port.flush();
    } catch (e) {
      this.guard.report('flush', e);
    }
    try {
      this.arm();
    } catch (e) {
      this.guard.report('flush', e);
    }
  }

  /**
   * Keeps one timer at or before the stack's next deadline. Deadlines move
   * on nearly every segment (delayed ACKs, RTO restarts); re-creating the
   * timer each time costs more than letting an early timer fire and
   * re-arm, so the timer is only moved earlier, never later.
   */
  private arm(): void {
    const at = this.stack.pollAt();
    if (at === Infinity || (this.timer && at >= this.timerAt)) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    // Whole milliseconds (libuv's timers have no finer grain): Node.js keeps
    // one list per distinct duration, and a fractional one makes a new list
    // nearly every time.
    this.timer = setTimeout(this.onTimer, Math.ceil(Math.max(0, at - this.clock())));
  }

  private fire(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    if (this.stopped) return;
    try {
      this.stack.poll(this.clock());
      this.port.flush();
    } finally {
      this.arm(); // a failed poll must not leave the stack without a timer
    }
  }

  /** Resets every connection, closes every host socket, stops the timer. */
  stop(): void {
    if (this.stopped) return;
    const now = this.clock();
    this.stack.tcp?.abortAll(now);
    this.stack.udp?.closeAll();
    this.stack.echo?.closeAll();
    this.port.flush();
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.tcpHost.closeAll();
    this.udpHost.closeAll();
    this.pingHost?.closeAll();
  }

  stats(): Record<string, unknown> {
    return {
      ...this.stack.counters.snapshot(),
      flows: this.stack.flowCount,
      maxFlows: this.stack.maxFlows,
      flowsEvicted: this.stack.flows.evictions,
      tcpFlows: this.stack.tcp?.size ?? 0,
      tcpOpening: this.stack.tcp?.opening ?? 0,
      memory: { used: this.stack.budget.used, peak: this.stack.budget.peak, limit: this.stack.budget.limit, refusals: this.stack.budget.refusals },
      errors: this.guard.snapshot(),
      tcp: this.stack.tcp?.stats(),
      udpFlows: this.stack.udp?.size ?? 0,
      hostTcpSockets: this.tcpHost.size,
      hostFdRefusals: this.tcpHost.fdRefusals,
      hostUdpSockets: this.udpHost.sockets,
      echoFlows: this.stack.echo?.size ?? 0,
      /** IPv6 addresses flows hold (src/stack/addresses.ts): back to 0 when no IPv6 flow is left. */
      ipv6Addresses: this.stack.flows.v6.size,
    };
  }
}
