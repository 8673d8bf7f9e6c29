#!/usr/bin/env -S node --max-semi-space-size=1 --max-old-space-size=1024 --v8-pool-size=1
// The `slirp4netns` entry point: slirp4netns's command-line contract, so
// podman and rootlesskit can run tsnet unmodified. getopt_long-style parsing
// (long options with =VALUE or a separate VALUE, short options grouped or
// with attached values), the same option names, usage on bad arguments with
// exit status 1, --help text listing every option (engines grep it), and -v
// in slirp4netns's line format. Everything then runs as `tsnet attach`.

import './early.js'; // first: tunes malloc before other threads allocate
import { reportFatal } from './fatal.js';
import { checkEnv } from './env.js';
import { VERSION } from './version.js';
import { ConfigError, DEFAULT_CIDR, DEFAULT_MTU, parseCidr, parseMac, parseMtu } from '../stack/config.js';
import type { NetnsType } from '../app/specs.js';



export const USAGE = `Usage: slirp4netns [OPTION]... PID|PATH|FD [TAPNAME]
User-mode networking for unprivileged network namespaces, provided by tsnet
(a userspace network stack in TypeScript) with slirp4netns's command line.

-c, --configure          bring up the interface (10.0.2.100/24, default route via 10.0.2.2)
-e, --exit-fd=FD         exit when FD is closed by the other side
-r, --ready-fd=FD        write "1" to FD when the network is configured
-m, --mtu=MTU            specify MTU (default=${DEFAULT_MTU}, max=65521)
-6, --enable-ipv6        enable IPv6: fd00::/64 by router advertisement, fd00::2 (the host)
                         and fd00::3 (DNS); TCP, UDP and ping over IPv6
-a, --api-socket=PATH    specify API socket path
--cidr=CIDR              specify network address CIDR (default=${DEFAULT_CIDR})
--disable-host-loopback  prohibit connecting to 127.0.0.1:* on the host namespace
--netns-type=TYPE        specify network namespace type ([path|pid|tapfd], default=pid)
--userns-path=PATH       specify user namespace path
--enable-sandbox         create a new mount namespace (and drop all caps except CAP_NET_BIND_SERVICE if running as the root)
--enable-seccomp         enable seccomp to block some syscalls (execve, mount, setns, unshare, ptrace, ...)
--outbound-addr=IPv4     bind outgoing TCP/UDP sockets to this address (or interface)
--outbound-addr6=IPv6    bind outgoing IPv6 TCP/UDP sockets to this address (or interface)
--disable-dns            disables 10.0.2.3 (or configured internal ip) to host dns redirect
--macaddress=MAC         specify the MAC address of the TAP (only valid with -c)
--target-type=TYPE       specify the target type ([netns], default=netns; bess is not supported)
--no-host-loopback       deprecated alias of --disable-host-loopback
--create-sandbox         deprecated alias of --enable-sandbox
-h, --help               show this help and exit
-v, --version            show version and exit

Environment: TSNET_LOG_LEVEL (e.g. debug), TSNET_LOG_FORMAT (text or json),
TSNET_RESOLV_CONF (nameservers for 10.0.2.3; default /etc/resolv.conf).

Examples:
  $ unshare -Urn sleep infinity & tsnet-slirp4netns -c $! tap0
      serve a rootless namespace, configured (10.0.2.100/24 via 10.0.2.2)
  $ tsnet-slirp4netns -c -6 -a /tmp/api.sock -r 3 $PID tap0 3>ready
      with IPv6, a JSON API socket for port forwards, "1" in ready when up
  $ podman --network-cmd-path=$(command -v tsnet-slirp4netns) run --network slirp4netns IMAGE
      as podman's slirp4netns (or network_cmd_path in containers.conf)
`;

/**
 * slirp4netns's -v lines. Engines parse them, so the numbers are the
 * slirp4netns/libslirp level whose behaviour tsnet provides (1.2.0 / 4.7.0);
 * the version's build metadata and the commit line name tsnet itself.
 */
export function versionText(): string {
  return [
    `slirp4netns version 1.2.0+tsnet.${VERSION}`,
    `commit: tsnet-${VERSION}`,
    'libslirp: 4.7.0',
    'SLIRP_CONFIG_VERSION_MAX: 4',
    'libseccomp: 0.0.0',
    '',
  ].join('\n');
}

/** A usage error: the message, then the usage text, exit 1 (as slirp4netns). */
export class UsageError extends Error {}

export interface Slirp4netnsArgs {
  help: boolean;
  version: boolean;
  configure: boolean;
  exitFd?: number;
  readyFd?: number;
  mtu: number;
  enableIpv6: boolean;
  apiSocket?: string;
  cidr: string;
  disableHostLoopback: boolean;
  netnsType: NetnsType;
  usernsPath?: string;
  enableSandbox: boolean;
  enableSeccomp: boolean;
  outboundAddr?: string;
  outboundAddr6?: string;
  disableDns: boolean;
  macAddress?: string;
  targetType: string;
  target?: string;
  tapName: string;
}

type Spec = { takes: boolean; set: (a: Slirp4netnsArgs, v: string) => void };

function fd(name: string, v: string): number {
  if (!/^\d+$/.test(v)) throw new UsageError(`${name} must be a file descriptor number, got "${v}"`);
  return Number(v);
}

function checked<T>(f: (v: string) => T, v: string): T {
  try {
    return f(v);
  } catch (e) {
    if (e instanceof ConfigError) throw new UsageError(e.message);
    throw e;
  }
}

const LONG: Record<string, Spec> = {
  configure: { takes: false, set: (a) => (a.configure = true) },
  'exit-fd': { takes: true, set: (a, v) => (a.exitFd = fd('exit-fd', v)) },
  'ready-fd': { takes: true, set: (a, v) => (a.readyFd = fd('ready-fd', v)) },
  mtu: { takes: true, set: (a, v) => (a.mtu = checked(parseMtu, v)) },
  'enable-ipv6': { takes: false, set: (a) => (a.enableIpv6 = true) },
  'api-socket': { takes: true, set: (a, v) => (a.apiSocket = v) },
  cidr: {
    takes: true,
    set: (a, v) => {
      checked(parseCidr, v);
      a.cidr = v;
    },
  },
  'disable-host-loopback': { takes: false, set: (a) => (a.disableHostLoopback = true) },
  'no-host-loopback': { takes: false, set: (a) => (a.disableHostLoopback = true) },
  'netns-type': {
    takes: true,
    set: (a, v) => {
      if (v !== 'pid' && v !== 'path' && v !== 'tapfd') throw new UsageError(`netns-type must be pid, path or tapfd, got "${v}"`);
      a.netnsType = v;
    },
  },
  'userns-path': { takes: true, set: (a, v) => (a.usernsPath = v) },
  'enable-sandbox': { takes: false, set: (a) => (a.enableSandbox = true) },
  'create-sandbox': { takes: false, set: (a) => (a.enableSandbox = true) },
  'enable-seccomp': { takes: false, set: (a) => (a.enableSeccomp = true) },
  'outbound-addr': { takes: true, set: (a, v) => (a.outboundAddr = v) },
  'outbound-addr6': { takes: true, set: (a, v) => (a.outboundAddr6 = v) },
  'disable-dns': { takes: false, set: (a) => (a.disableDns = true) },
  macaddress: {
    takes: true,
    set: (a, v) => {
      checked(parseMac, v);
      a.macAddress = v;
    },
  },
  'target-type': { takes: true, set: (a, v) => (a.targetType = v) },
  help: { takes: false, set: (a) => (a.help = true) },
  version: { takes: false, set: (a) => (a.version = true) },
};

const SHORT: Record<string, string> = { c: 'configure', e: 'exit-fd', r: 'ready-fd', m: 'mtu', '6': 'enable-ipv6', a: 'api-socket', h: 'help', v: 'version' };

/** The long option `given` names, exactly or as an unambiguous prefix, with getopt_long's messages. */
function longName(given: string): string {
  if (LONG[given]) return given;
  const matches = Object.keys(LONG).filter((k) => k.startsWith(given));
  if (given !== '' && matches.length === 1) return matches[0]!;
  if (given !== '' && matches.length > 1) {
    throw new UsageError(`option '--${given}' is ambiguous; possibilities: ${matches.map((m) => `'--${m}'`).join(' ')}`);
  }
  throw new UsageError(`unrecognized option '--${given}'`);
}

/** Parses argv (without node and script) the way getopt_long does for slirp4netns. */
export function parseSlirp4netnsArgs(argv: string[]): Slirp4netnsArgs {
  const a: Slirp4netnsArgs = {
    help: false,
    version: false,
    configure: false,
    mtu: DEFAULT_MTU,
    enableIpv6: false,
    cidr: DEFAULT_CIDR,
    disableHostLoopback: false,
    netnsType: 'pid',
    enableSandbox: false,
    enableSeccomp: false,
    disableDns: false,
    targetType: 'netns',
    tapName: 'tap0',
  };
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const given = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      // getopt_long takes any unambiguous prefix (--disable-host, --conf).
      const name = longName(given);
      const spec = LONG[name]!;
      if (!spec.takes) {
        if (eq >= 0) throw new UsageError(`option '--${name}' doesn't allow an argument`);
        spec.set(a, '');
      } else if (eq >= 0) {
        spec.set(a, arg.slice(eq + 1));
      } else {
        const v = argv[++i];
        if (v === undefined) throw new UsageError(`option '--${name}' requires an argument`);
        spec.set(a, v);
      }
      continue;
    }
    if (arg.startsWith('-') && arg.length > 1) {
      for (let j = 1; j < arg.length; j++) {
        const long = SHORT[arg[j]!];
        if (!long) throw new UsageError(`invalid option -- '${arg[j]}'`);
        const spec = LONG[long]!;
        if (!spec.takes) {
          spec.set(a, '');
          continue;
        }
        let v = arg.slice(j + 1);
        if (v === '') {
          const next = argv[++i];
          if (next === undefined) throw new UsageError(`option requires an argument -- '${arg[j]}'`);
          v = next;
        }
        spec.set(a, v);
        break;
      }
      continue;
    }
    positional.push(arg);
  }
  if (a.help || a.version) return a;
  if (positional.length < 1) throw new UsageError('missing PID|PATH|FD');
  if (positional.length > 2) throw new UsageError(`too many arguments: ${positional.slice(2).join(' ')}`);
  a.target = positional[0];
  if (positional[1] !== undefined) a.tapName = positional[1];
  if (a.macAddress !== undefined && !a.configure) throw new UsageError('--macaddress can only be used with --configure (-c)');
  return a;
}

export async function main(argv: string[]): Promise<number> {
  // The launcher (slirp4netns.sh) may have made the TAP already: whatever
  // ends this run before tsnet attaches to it removes it again.
  const { takePrecreatedTap, removePrecreatedTap } = await import('../launcher/tap.js');
  const pre = takePrecreatedTap();
  const held = { attached: false, configured: pre?.configured ?? false };
  try {
    return await run(argv, pre === undefined ? undefined : held, pre?.name);
  } finally {
    if (pre && !held.attached) removePrecreatedTap(pre);
  }
}

async function run(argv: string[], precreated: { attached: boolean; configured: boolean } | undefined, precreatedName: string | undefined): Promise<number> {
  let a: Slirp4netnsArgs;
  try {
    a = parseSlirp4netnsArgs(argv);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`slirp4netns: ${e.message}\n${USAGE}`);
      return 1;
    }
    throw e;
  }
  if (a.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (a.version) {
    process.stdout.write(versionText());
    return 0;
  }
  if (a.targetType !== 'netns') {
    process.stderr.write(`slirp4netns: --target-type=${a.targetType} is not supported by tsnet (only netns)\n`);
    return 1;
  }
  // Engines cannot pass tsnet's own flags; these environment variables can.
  const env = checkEnv();
  const { outboundAddrOption, outboundAddr6Option } = await import('./options.js');
  let outboundAddr: string | undefined;
  try {
    outboundAddr = a.outboundAddr === undefined ? undefined : outboundAddrOption(a.outboundAddr);
  } catch (e) {
    process.stderr.write(`slirp4netns: --outbound-addr: ${(e as Error).message}\n${USAGE}`);
    return 1;
  }
  let outboundAddr6: string | undefined;
  try {
    outboundAddr6 = a.outboundAddr6 === undefined ? undefined : outboundAddr6Option(a.outboundAddr6);
  } catch (e) {
    process.stderr.write(`slirp4netns: --outbound-addr6: ${(e as Error).message}\n${USAGE}`);
    return 1;
  }
  const { runAttach } = await import('../app/attach.js');
  return runAttach({
    target: a.target!,
    tapName: a.tapName,
    netnsType: a.netnsType,
    usernsPath: a.usernsPath,
    configure: a.configure,
    mtu: a.mtu,
    cidr: a.cidr,
    macAddress: a.macAddress,
    disableHostLoopback: a.disableHostLoopback,
    enableIpv6: a.enableIpv6,
    readyFd: a.readyFd,
    exitFd: a.exitFd,
    disableDns: a.disableDns,
    outboundAddr,
    outboundAddr6,
    apiSocket: a.apiSocket,
    enableSeccomp: a.enableSeccomp,
    enableSandbox: a.enableSandbox,
    tapPrecreated: precreatedName === a.tapName ? precreated : undefined,
    udpIdleMs: 60_000,
    resolvConf: env.resolvConf ?? '/etc/resolv.conf',
    logLevel: env.logLevel ?? 'warn',
    logFormat: env.logFormat,
  });
}

// Run only as the entry point (the module is also imported by tests).
if (process.argv[1] && /slirp4netns(\.c?js)?$/.test(process.argv[1])) {
  main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (e) => reportFatal(e),
  );
}
