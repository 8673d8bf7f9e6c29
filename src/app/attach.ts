// `tsnet attach`: takes a TAP in the target namespace, runs the stack on it
// and stays until told to stop — SIGINT/SIGTERM, the --exit-fd hanging up,
// the target process exiting (PID mode) or the TAP going away. This file is
// the shell's wiring: launcher (fd, configuration) → ports → stack → exit.

import fs from 'node:fs';
import { createRequire } from 'node:module';
import { disableLoopIdleMetrics, onPidExit, sharedPoller } from '../../native/index.js';
import { confine, restartSandboxed } from './confine.js';
import { PrereqError, fileError } from '../launcher/errors.js';
import { checkTarget, parseTarget, sandboxUserns, type NetnsType, type Target } from '../launcher/target.js';
import { makeTap, oneHelperWillDo, openTap, type OpenedTap } from '../launcher/tap.js';
import { configureInterface, createTap, removeTap } from '../launcher/configure.js';
import { makeConfig, type StackConfig } from '../stack/config.js';
import { ipv4ToString, ipv6ToString } from '../wire/address.js';
import { FaultPort, type FaultSpec } from '../host/fault.js';
import { alwaysLogger, makeLogger, type LogFormat, type LogLevel, type Logger } from '../host/log.js';
import { PcapPort } from '../host/pcap-port.js';
import { PcapWriter } from '../host/pcap.js';
import type { Port } from '../host/port.js';
import { ApiServer, ForwardTable, LateBackend, type ForwardEntry } from '../host/api.js';
import { Forwarder } from '../host/forward.js';
import type { ForwardSpec } from '../host/forward-spec.js';
import { Runtime } from '../host/runtime.js';
import { installProcessGuard } from '../host/guard.js';
import { TapPort } from '../host/tap-port.js';
import { startupPages } from '../host/startup-pages.js';
import { TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6, TUN_F_USO4 } from '../../native/index.js';

export interface AttachOptions {
  target: string;
  tapName: string;
  netnsType: NetnsType;
  usernsPath?: string;
  configure: boolean;
  mtu: number;
  cidr: string;
  macAddress?: string;
  disableHostLoopback: boolean;
  /** IPv6 on the guest link (src/stack/ipv6.ts). */
  enableIpv6?: boolean;
  readyFd?: number;
  exitFd?: number;
  pcap?: string;
  fault?: FaultSpec;
  /**
   * TAP offloads (checksum, TSO, USO through a virtio-net header); default
   * on. Off with --no-offload, and whenever --pcap or --fault is given: the
   * capture then holds the frames as the wire carries them (MTU-sized, real
   * checksums) and faults hit single frames.
   */
  offload?: boolean;
  logLevel: LogLevel;
  /** --log-format: text for people (default), json for machines. */
  logFormat?: LogFormat;
  resolvConf?: string;
  disableDns?: boolean;
  outboundAddr?: string;
  /** --outbound-addr6: local address of IPv6 host sockets. */
  outboundAddr6?: string;
  udpIdleMs?: number;
  publish?: ForwardSpec[];
  apiSocket?: string;
  /** Budgets: --max-flows, --max-half-open, --memory-budget (bytes). */
  maxFlows?: number;
  maxHalfOpen?: number;
  memoryBudget?: number;
  /**
   * The slirp4netns launcher made tapName ahead of time (and with -c
   * configured it: `configured`); `attached` is set once tsnet holds it.
   */
  tapPrecreated?: { attached: boolean; configured: boolean };
  /** --enable-seccomp: the filter in native/seccomp.ts, installed once everything is open. */
  enableSeccomp?: boolean;
  /** --enable-sandbox: native/sandbox.ts's root and capability drop (the launcher made the namespace). */
  enableSandbox?: boolean;
  /** Called once everything is open and configured, just before the TAP starts moving frames. */
  beforeStart?: () => void;
}

function checkFd(fd: number, flag: string): void {
  try {
    fs.fstatSync(fd);
  } catch {
    throw new PrereqError(`${flag}: ${fd} is not an open file descriptor (EBADF) (pass one the caller opened, e.g. ${flag} 3 with 3>&1 or a pipe)`);
  }
}

/** Builds the port chain tap → fault → pcap; returns its top. */
function buildPorts(tap: TapPort, o: Pick<AttachOptions, 'fault' | 'pcap'>, log: Logger): { top: Port; pcap?: PcapWriter; fault?: FaultPort } {
  let top: Port = tap;
  let fault: FaultPort | undefined;
  let pcap: PcapWriter | undefined;
  if (o.fault) {
    fault = new FaultPort(top, o.fault);
    top = fault;
    log.warn({ fault: o.fault }, 'fault injection is on');
  }
  if (o.pcap) {
    try {
      pcap = new PcapWriter(o.pcap);
    } catch (e) {
      throw fileError('--pcap', o.pcap, 'create', e, 'name a file in a directory you can write');
    }
    const file = o.pcap;
    pcap.onFailure = (err) => log.error({ file, err: err.message }, 'pcap capture stopped: writing the file failed (the network goes on)');
    top = new PcapPort(top, pcap);
  }
  return { top, pcap, fault };
}

/** Offloads unless turned off, or a capture or fault injection must see real frames. */
function wantsOffload(o: Pick<AttachOptions, 'offload' | 'pcap' | 'fault'>): boolean {
  return o.offload !== false && o.pcap === undefined && o.fault === undefined;
}

/** TUN_F_* bits as words for the log. */
function offloadNames(bits: number): string {
  const names: string[] = [];
  if (bits & TUN_F_CSUM) names.push('csum');
  if (bits & TUN_F_TSO4) names.push('tso4');
  if (bits & TUN_F_TSO6) names.push('tso6');
  if (bits & TUN_F_USO4) names.push('uso');
  return names.length ? names.join(',') : 'none';
}

/**
 * The device, attached: made, configured (-c) and attached by one helper
 * (makeTap) unless the launcher already made it; where the helper cannot
 * run ip as itself (keep-id), made persistent (and configured) by one
 * nsenter, then attached with its persistence dropped, and removed again if
 * attaching fails.
 * A device that existed before us (rootlesskit makes tap0 itself), a tapfd
 * target or a name pattern (tap%d) is attached as it is, and left as it was.
 */
async function attachDevice(o: NetworkOptions, cfg: StackConfig, target: Target, log: Logger): Promise<TapPort> {
  let made = o.tapPrecreated !== undefined;
  let configured = o.tapPrecreated?.configured ?? false;
  let opened: OpenedTap | undefined;
  if (!made && target.type !== 'tapfd' && !o.tapName.includes('%')) {
    if (oneHelperWillDo(target)) {
      // Undefined: the name is taken; attach to that device below.
      opened = await makeTap(target, o.tapName, o.configure ? cfg : undefined, wantsOffload(o));
      configured = opened !== undefined && o.configure;
    } else {
      made = await createTap(target, o.tapName, o.configure ? cfg : undefined);
      configured = made && o.configure;
    }
  }
  if (!opened) {
    try {
      opened = await openTap(target, o.tapName, made, wantsOffload(o));
    } catch (e) {
      if (made && !o.tapPrecreated) removeTap(target, o.tapName);
      throw e;
    }
  }
  if (o.tapPrecreated) o.tapPrecreated.attached = true;
  log.debug({ tap: opened.name, fd: opened.fd, offloads: offloadNames(opened.offloads) }, 'TAP device attached');
  if (o.offload !== false && !wantsOffload(o)) log.debug('TAP offloads off: --pcap/--fault see single frames with real checksums');
  const tap = new TapPort(opened.fd, opened.name, { vnetHdr: opened.vnetHdr });
  if (!o.configure) return tap;
  try {
    if (!configured) await configureInterface(target, cfg, opened.name);
  } catch (e) {
    await tap.close();
    throw e;
  }
  log.debug(
    { tap: opened.name, addr: `${ipv4ToString(cfg.guest)}/${cfg.prefixLen}`, gw: ipv4ToString(cfg.gateway), mtu: cfg.mtu },
    'interface configured',
  );
  return tap;
}

/** What serveNetwork needs: the stack and port options shared by attach and run. */
export type NetworkOptions = Omit<AttachOptions, 'target' | 'netnsType' | 'usernsPath' | 'readyFd' | 'exitFd'>;

/** A running stack on a TAP in some namespace; close() releases everything it holds. */
export interface Served {
  readonly runtime: Runtime;
  readonly tap: TapPort;
  stats(): Record<string, unknown>;
  close(): Promise<void>;
}

/**
 * Takes the TAP in target's namespace, configures it (-c), starts the stack
 * with its ports, forwards (-p) and API socket. onFailure is called if the
 * TAP later fails. On error everything opened so far is released.
 */
export async function serveNetwork(o: NetworkOptions, cfg: StackConfig, target: Target, log: Logger, onFailure: (err: Error) => void): Promise<Served> {
  // The API socket listens before the device exists, and the device appears
  // already configured: a script that waits for tap0 finds everything ready,
  // as with slirp4netns. Requests that come before the stack is built wait.
  const backend = new LateBackend();
  const forwards = new ForwardTable(backend, ipv4ToString(cfg.guest), cfg.ipv6 !== undefined);
  let api: ApiServer | undefined;
  if (o.apiSocket !== undefined) {
    api = new ApiServer(o.apiSocket, forwards, log);
    await api.start().catch((e: Error) => {
      throw new PrereqError(`--api-socket: ${e.message} (name a path in a directory you can write)`);
    });
  }
  let tap: TapPort;
  try {
    tap = await attachDevice(o, cfg, target, log);
  } catch (e) {
    await api?.close();
    throw e;
  }

  let ports: ReturnType<typeof buildPorts>;
  try {
    ports = buildPorts(tap, o, log);
  } catch (e) {
    await tap.close();
    await api?.close();
    throw e;
  }
  const { top, pcap, fault } = ports;
  const runtime = new Runtime(top, {
    config: cfg,
    log,
    resolvConf: o.resolvConf,
    disableDns: o.disableDns,
    outboundAddr: o.outboundAddr,
    outboundAddr6: o.outboundAddr6,
    udpIdleMs: o.udpIdleMs,
    limits: { maxFlows: o.maxFlows, maxHalfOpen: o.maxHalfOpen, memoryBudget: o.memoryBudget },
    // The stack builds super-segments only when nothing between it and the TAP looks at frames.
    offload: tap.offload && top === tap,
  });
  tap.onBatchEnd = () => runtime.onBatchEnd();

  const forwarder = new Forwarder(runtime, log);
  backend.bind(forwarder);
  // What escapes every guard is counted and logged; only a runaway loop of
  // such errors stops tsnet (guard.ts states the policy).
  const removeProcessGuard = installProcessGuard(runtime.guard, (err) =>
    onFailure(new Error(`internal errors keep escaping (last: ${err instanceof Error ? err.message : String(err)})`)),
  );
  // Opened before beforeStart, which may take /proc away (--enable-sandbox).
  const pages = startupPages(log);
  const release = async () => {
    pages.cancel();
    removeProcessGuard();
    await api?.close();
    forwarder.closeAll();
    runtime.stop();
    await tap.close();
    pcap?.close();
  };
  try {
    for (const spec of o.publish ?? []) {
      await forwards.add(spec).catch((e: Error) => {
        throw new PrereqError(`--publish: cannot publish ${spec.hostAddr.includes(':') ? `[${spec.hostAddr}]` : spec.hostAddr}:${spec.hostPort} -> ${spec.guestPort}/${spec.proto}: ${e.message} (pick another host port or address, or stop what holds it)`);
      });
    }
    o.beforeStart?.();
  } catch (e) {
    await release();
    throw e;
  }
  tap.onFailure = onFailure;
  // Two system calls fewer per blocking wait (native/loop.ts).
  const idleMetrics = disableLoopIdleMetrics();
  tap.start();
  pages.release();
  log.debug({ engine: tap.engine, idleMetrics }, 'stack serving');
  log.info(`network up: ${networkSummary(o, cfg, tap, forwards.list())}`);
  return {
    runtime,
    tap,
    stats: () => ({ ...runtime.stats(), tap: tap.stats, fault: fault?.counters, process: processMemory() }),
    close: release,
  };
}

/**
 * The one line that says what the guest got: device, addresses, gateway,
 * DNS, MTU, IPv6, offloads, forwards, API socket. The guest address is the
 * one -c configures (without -c, the one DHCP hands out first is .15).
 */
export function networkSummary(o: NetworkOptions, cfg: StackConfig, tap: TapPort, fwds: ForwardEntry[]): string {
  const parts = [
    `${tap.name} ${o.configure ? `${ipv4ToString(cfg.guest)}/${cfg.prefixLen}` : `(not configured by tsnet; DHCP or ${ipv4ToString(cfg.guest)}/${cfg.prefixLen})`}`,
    `gateway ${ipv4ToString(cfg.gateway)}${cfg.disableHostLoopback ? ' (host loopback closed)' : ' (host 127.0.0.1)'}`,
    `dns ${o.disableDns ? 'off' : ipv4ToString(cfg.dns)}`,
    `mtu ${cfg.mtu}`,
  ];
  if (cfg.ipv6) parts.push(`ipv6 ${ipv6ToString(cfg.ipv6.prefix)}/${cfg.ipv6.prefixLen} by SLAAC, gateway ${ipv6ToString(cfg.ipv6.gateway)}, dns ${ipv6ToString(cfg.ipv6.dns)}`);
  parts.push(`offloads ${tap.offload ? 'on' : 'off'}`);
  if (fwds.length) parts.push(`forwards ${fwds.map((f) => `${f.host_addr.includes(':') ? `[${f.host_addr}]` : f.host_addr}:${f.host_port}->${f.guest_port}/${f.proto}`).join(' ')}`);
  if (o.apiSocket !== undefined) parts.push(`api ${o.apiSocket}`);
  return parts.join(', ');
}

/**
 * The process's memory in MiB (RSS and its peak, V8's heap, buffers outside
 * it). Sandboxed, /proc is out of reach: then only what V8 itself knows.
 */
function processMemory(): Record<string, number> {
  const mib = (n: number) => Math.round((n / 1048576) * 10) / 10;
  // node:v8 only when asked (its load costs start-up time no run needs).
  const h = (createRequire(import.meta.url)('node:v8') as typeof import('node:v8')).getHeapStatistics();
  const out: Record<string, number> = { heapUsedMiB: mib(h.used_heap_size), heapTotalMiB: mib(h.total_heap_size), externalMiB: mib(h.external_memory) };
  try {
    const status = fs.readFileSync('/proc/self/status', 'utf8');
    out.rssMiB = mib(Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024);
    out.peakRssMiB = mib(Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024);
  } catch {
    // sandboxed: no /proc
  }
  return out;
}

/**
 * SIGUSR1: one log line of counters (flows, bytes, drops by reason) through
 * the logger, whatever --log-level says (it was asked for): `tsnet: stats
 * counters={...}` as text, `"msg":"stats","counters":{...}` as JSON.
 * Returns the remover.
 */
export function statsOnSignal(served: Served, log: Logger): () => void {
  const out = alwaysLogger(log);
  const onStats = () => out.info({ counters: served.stats() }, 'stats');
  process.on('SIGUSR1', onStats);
  return () => process.off('SIGUSR1', onStats);
}

/**
 * --enable-sandbox asked of a process the launcher did not start in its
 * namespace (tsnet attach run directly): start again, same PID and
 * arguments, through src/cli/sandbox.sh. Never returns.
 */
function reexecInSandbox(o: AttachOptions, target: Target): never {
  const { userns, creds } = sandboxUserns(target);
  const keep = [o.readyFd, o.exitFd, target.type === 'tapfd' ? target.fd : undefined].filter((f): f is number => f !== undefined);
  restartSandboxed(userns, creds, keep);
}

/** Writes "1" to the --ready-fd and closes it; a descriptor that cannot take it is a prerequisite error. */
function signalReady(fd: number): void {
  try {
    fs.writeSync(fd, '1');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    throw new PrereqError(`--ready-fd: cannot write to fd ${fd} (${code}) (pass the write end of a pipe)`);
  } finally {
    try {
      fs.closeSync(fd);
    } catch {
      // already closed: nothing to release
    }
  }
}

export async function runAttach(o: AttachOptions): Promise<number> {
  const log = makeLogger(o.logLevel, o.logFormat);
  if (o.macAddress !== undefined && !o.configure) {
    throw new PrereqError('--macaddress: can only be used with --configure (add -c)');
  }
  if (o.readyFd !== undefined) checkFd(o.readyFd, '--ready-fd');
  if (o.exitFd !== undefined) checkFd(o.exitFd, '--exit-fd');
  const cfg = makeConfig({ cidr: o.cidr, mtu: o.mtu, macAddress: o.macAddress, disableHostLoopback: o.disableHostLoopback, enableIpv6: o.enableIpv6 });
  const target = parseTarget(o.target, o.netnsType, o.usernsPath);
  checkTarget(target);
  if (o.enableSandbox && process.env.TSNET_SANDBOX_NS !== '1') reexecInSandbox(o, target);

  let stopReason: string | undefined;
  let exitCode = 0;
  let wake: () => void = () => {};
  const stopped = new Promise<void>((resolve) => (wake = resolve));
  const stop = (reason: string, code = 0) => {
    if (stopReason !== undefined) return;
    stopReason = reason;
    exitCode = code;
    wake();
  };

  // Watch the target from the start, so a target that dies while we set up is noticed.
  let cancelPidWatch: (() => Promise<void>) | undefined;
  if (target.type === 'pid') {
    try {
      cancelPidWatch = onPidExit(target.pid, () => stop(`target process ${target.pid} exited`));
    } catch {
      throw new PrereqError(`<target>: process ${target.pid} does not exist (ESRCH) (start the container process first, or pass its current PID)`);
    }
  }

  let served: Served;
  try {
    const beforeStart = () =>
      confine({ sandbox: !!o.enableSandbox, seccomp: !!o.enableSeccomp, resolvConf: o.resolvConf, onUnavailable: 'exit', announce: true }, log);
    served = await serveNetwork({ ...o, beforeStart }, cfg, target, log, (err) => stop(`TAP device failed: ${err.message}`, 1));
  } catch (e) {
    await cancelPidWatch?.();
    await sharedPoller().close();
    throw e;
  }

  const onSignal = (sig: NodeJS.Signals) => stop(`received ${sig}`);
  const offStats = statsOnSignal(served, log);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);

  // From here on the network is up: whatever fails still takes the whole
  // shutdown path below, so no error leaves a half-served namespace behind.
  let failure: unknown;
  try {
    if (o.exitFd !== undefined) {
      const exitFd = o.exitFd;
      sharedPoller().add(exitFd, () => {
        void sharedPoller().remove(exitFd);
        stop(`exit fd ${exitFd} hung up`);
      });
    }
    if (o.readyFd !== undefined) signalReady(o.readyFd);
    await stopped;
    log.info({ reason: stopReason }, 'stopping');
  } catch (e) {
    failure = e;
  }
  offStats();
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  process.off('SIGHUP', onSignal);
  await served.close();
  await cancelPidWatch?.();
  if (o.exitFd !== undefined) await sharedPoller().remove(o.exitFd);
  await sharedPoller().close();
  if (failure !== undefined) throw failure;
  log.debug({ counters: served.stats() }, 'final counters');
  return exitCode;
}
