#!/usr/bin/env -S node --max-semi-space-size=1 --max-old-space-size=1024 --v8-pool-size=1
// tsnet's command line: commander definitions for every subcommand. Parses
// flags into one typed options object per command and hands it to src/host;
// nothing else happens here. Errors that are the user's or the machine's
// (bad flags, missing prerequisites) end with one line in the style of
// src/cli/errors.ts and exit 1 (`tsnet run`: 125, so they cannot be taken
// for the workload's own status).

import './early.js'; // first: tunes malloc before other threads allocate
import { Command, Option } from 'commander';
import {
  cidrOption,
  countOption,
  mebibytesOption,
  faultOption,
  fdOption,
  logFormatOption,
  logLevelOption,
  macOption,
  mtuOption,
  netnsTypeOption,
  outboundAddrOption,
  outboundAddr6Option,
  publishOption,
  secondsOption,
} from './options.js';
import { DEFAULT_CIDR, DEFAULT_MTU } from '../stack/config.js';
import { DEFAULT_MAX_FLOWS } from '../stack/stack.js';
import { DEFAULT_MAX_HALF_OPEN } from '../stack/tcp-flows.js';
import { DEFAULT_MEMORY_BUDGET } from '../stack/budget.js';

/** tsnet run's default MTU, as podman and rootlesskit use. */
const RUN_DEFAULT_MTU = 65520;
import { checkEnv } from './env.js';
import { commanderMessage } from './errors.js';
import { reportFatal, RUN_FAILED } from './fatal.js';
import { VERSION } from './version.js';

/** The subcommand being parsed (for the exit code and the --help hint of its errors). */
let current = '';

const program = new Command()
  .name('tsnet')
  .description('Userspace network stack for rootless containers (a slirp4netns/pasta alternative)')
  .version(VERSION, '-V, --version')
  .configureOutput({ outputError: (str, write) => write(`${commanderMessage(str, current)}\n`) })
  .exitOverride((err) => {
    // --help and --version end here too, with 0.
    process.exit(err.exitCode === 0 ? 0 : current === 'run' ? RUN_FAILED : err.exitCode);
  })
  .hook('preSubcommand', (_cmd, sub) => {
    current = sub.name();
    checkEnv();
    // An empty variable counts as unset (commander would parse it as a value).
    for (const v of ['TSNET_LOG_LEVEL', 'TSNET_LOG_FORMAT', 'TSNET_RESOLV_CONF']) if (process.env[v] === '') delete process.env[v];
  });
program.addHelpText(
  'after',
  examples([
    ['tsnet run -- sh', 'a shell in new rootless namespaces with a working network'],
    ['tsnet attach -c $PID', 'serve the network namespace of an existing process'],
    ['podman --network-cmd-path=$(command -v tsnet-slirp4netns) run --network slirp4netns IMAGE', 'tsnet as podman\'s slirp4netns'],
  ]) +
    '\nEnvironment: TSNET_LOG_LEVEL, TSNET_LOG_FORMAT, TSNET_RESOLV_CONF (defaults for --log-level, --log-format, --resolv-conf; the drop-in\'s only way to set them).\n' +
    'Signals: SIGINT, SIGTERM, SIGHUP stop tsnet (run: forwarded to CMD); SIGUSR1 logs one line of counters.\n' +
    'More: man tsnet, or the README.\n',
);

/** The "Examples:" section that ends each command's --help. */
function examples(list: Array<[string, string]>): string {
  return `\nExamples:\n${list.map(([cmd, what]) => `  $ ${cmd}\n      ${what}`).join('\n')}\n`;
}

/** --log-level and --log-format, with their environment variables as defaults (TSNET_LOG_LEVEL, TSNET_LOG_FORMAT). */
function logOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent').argParser(logLevelOption).env('TSNET_LOG_LEVEL').default('warn'))
    .addOption(
      new Option('--log-format <format>', 'text (lines for people) or json (one object per line, for machines)')
        .argParser(logFormatOption)
        .env('TSNET_LOG_FORMAT')
        .default('text'),
    );
}

/** The network flags attach and run share (run defaults the MTU to 65520, like podman). */
function networkOptions(cmd: Command, defaultMtu: number, ipv6Flag: boolean): Command {
  logOptions(cmd)
    .option('-m, --mtu <mtu>', 'MTU of the TAP (68-65521)', mtuOption, defaultMtu)
    .option('--cidr <cidr>', 'virtual network (prefix 1-25); gateway=.2, DNS=.3, guest=.100', cidrOption, DEFAULT_CIDR)
    .option('--macaddress <mac>', 'MAC address of the TAP (attach: requires --configure)', macOption)
    .option('--disable-host-loopback', 'TCP/UDP to the gateway get ICMP net unreachable instead of reaching host 127.0.0.1', false);
  // run has IPv6 on by default (--disable-ipv6 there).
  if (ipv6Flag) {
    cmd.option(
      '-6, --enable-ipv6',
      'IPv6 on the guest link: router advertisements for fd00::/64 (SLAAC, default route via fe80::2, DNS fd00::3), neighbor discovery, ping, TCP and UDP over IPv6 (fd00::2 is the host, fd00::3 the DNS)',
      false,
    );
  }
  return cmd
    .option('--disable-dns', 'drop DNS queries to the DNS address (10.0.2.3)', false)
    .addOption(new Option('--resolv-conf <file>', 'nameservers for the DNS address, tried in order').env('TSNET_RESOLV_CONF').default('/etc/resolv.conf'))
    .option('--outbound-addr <addr>', 'local IPv4 address (or interface name) for outgoing TCP/UDP sockets', outboundAddrOption)
    .option('--outbound-addr6 <addr>', 'local IPv6 address (or interface name) for outgoing TCP/UDP sockets over IPv6 (with -6)', outboundAddr6Option)
    .option('--udp-idle-timeout <seconds>', 'close a UDP flow after this long without traffic', secondsOption, 60)
    .option('--max-flows <n>', 'cap on flows of every kind (TCP, UDP, forwarded, ICMP echo); at the cap idle UDP is evicted, else a new TCP flow gets RST and UDP/ICMP an ICMP error', countOption(16, 1 << 20), DEFAULT_MAX_FLOWS)
    .option('--max-half-open <n>', 'TCP flows opening at once (host connect or handshake in progress); beyond it the oldest unanswered one is reset, else the new SYN is dropped', countOption(1, 1 << 20), DEFAULT_MAX_HALF_OPEN)
    .addOption(
      new Option('--memory-budget <MiB>', 'what tsnet may buffer for all flows together; windows shrink to fair shares under pressure')
        .argParser(mebibytesOption)
        .default(DEFAULT_MEMORY_BUDGET, String(DEFAULT_MEMORY_BUDGET / 1024 / 1024)),
    )
    .option(
      '-p, --publish <spec>',
      'publish a guest port on the host: [HOSTADDR:]HOSTPORT:GUESTPORT[/tcp|/udp], HOSTADDR IPv4 or [IPv6], ranges 8000-8010:8000-8010; repeatable',
      publishOption,
      [],
    )
    .option('-a, --api-socket <path>', 'slirp4netns-compatible JSON API socket (add_hostfwd, list_hostfwd, remove_hostfwd, get_stats)')
    .option('--no-offload', 'no TAP offloads: the guest sends MTU-sized frames with full checksums (by default it hands tsnet TCP/UDP super-segments and leaves checksums to it; --pcap and --fault turn offloads off)')
    .option('--pcap <file>', 'write every frame, both directions, to a pcap file (tshark -r reads it; turns TAP offloads off so it holds wire-sized frames)')
    .option(
      '--fault <spec>',
      'inject faults at the TAP boundary, both directions: comma list of drop=P,duplicate=P,reorder=P,corrupt=P,seed=N (P a probability)',
      faultOption,
    );
}

/** The typed network options from parsed flags. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
function networkConfig(o: any) {
  return {
    mtu: o.mtu as number,
    cidr: o.cidr as string,
    macAddress: o.macaddress as string | undefined,
    disableHostLoopback: o.disableHostLoopback as boolean,
    enableIpv6: o.enableIpv6 as boolean,
    pcap: o.pcap as string | undefined,
    fault: o.fault,
    offload: o.offload as boolean,
    logLevel: o.logLevel,
    logFormat: o.logFormat,
    resolvConf: o.resolvConf as string,
    disableDns: o.disableDns as boolean,
    outboundAddr: o.outboundAddr as string | undefined,
    outboundAddr6: o.outboundAddr6 as string | undefined,
    udpIdleMs: (o.udpIdleTimeout as number) * 1000,
    maxFlows: o.maxFlows as number,
    maxHalfOpen: o.maxHalfOpen as number,
    memoryBudget: o.memoryBudget as number,
    publish: o.publish,
    apiSocket: o.apiSocket as string | undefined,
  };
}

networkOptions(
  program
    .command('attach')
    .description(
      'attach a TAP device inside an existing network namespace and serve it until SIGINT/SIGTERM, ' +
        'until --exit-fd hangs up, or (PID mode) until the target process exits',
    )
    .argument('<target>', 'PID of a process in the namespace, a netns path (--netns-type=path) or a TAP fd (--netns-type=tapfd)')
    .argument('[tapname]', 'TAP device name inside the namespace', 'tap0')
    .option('-c, --configure', 'bring up lo and the TAP, set MTU/MAC, 10.0.2.100/24 and the default route via 10.0.2.2', false)
    .addOption(
      new Option('--netns-type <type>', 'what <target> names: pid, path or tapfd').argParser(netnsTypeOption).default('pid'),
    )
    .option('--userns-path <path>', 'user namespace to join (default: the target process\'s own; with --netns-type=path: none)')
    .option('--enable-sandbox', 'once everything is open: a root holding only /etc and /run, no capability but cap_net_bind_service, no_new_privs (tsnet starts itself again through its sandbox.sh)', false)
    .option('--enable-seccomp', 'once serving, block syscalls tsnet never needs again (execve, mount, setns, unshare, ptrace, ...) with EPERM, on every thread', false)
    .option('-r, --ready-fd <fd>', 'write "1" to this fd and close it once the stack is serving', fdOption)
    .option('-e, --exit-fd <fd>', 'exit when this fd hangs up (its other end is closed)', fdOption),
  DEFAULT_MTU,
  true,
)
  .addHelpText('after', examples([
    ['unshare -Urn sleep infinity & tsnet attach -c $!', 'serve a rootless namespace held by a process, configured (10.0.2.100/24 via 10.0.2.2)'],
    ['tsnet attach -c -p 8080:80 --api-socket /tmp/api.sock $PID', 'also publish guest port 80 on host port 8080, and take more forwards over the JSON API'],
    ['tsnet attach --netns-type=path /run/user/1000/netns/ns1 tap0', 'a namespace by its path (no -c: the guest can use DHCP)'],
  ]))
  .action(async (target: string, tapname: string, o) => {
  const { runAttach } = await import('../app/attach.js');
  process.exitCode = await runAttach({
    ...networkConfig(o),
    target,
    tapName: tapname,
    netnsType: o.netnsType,
    usernsPath: o.usernsPath,
    configure: o.configure,
    readyFd: o.readyFd,
    exitFd: o.exitFd,
    enableSeccomp: o.enableSeccomp,
    enableSandbox: o.enableSandbox,
  });
});

networkOptions(
  program
    .command('run')
    .description(
      'run CMD in new user (you as root), mount, network, PID and UTS namespaces with tsnet attached and configured ' +
        'before CMD starts; exits with CMD\'s status',
    )
    .argument('<cmd...>', 'the command and its arguments (put -- before it)')
    .option('--hostname <name>', 'hostname inside (also in its /etc/hosts)', 'tsnet')
    .option('--map-auto', 'also map your subordinate uid/gid ranges (/etc/subuid, newuidmap) so other uids exist inside', false)
    .option('--no-sandbox', 'do not sandbox tsnet (on by default: once CMD has started, tsnet\'s root holds only /etc and /run and its capabilities are dropped; off with --map-auto)')
    .option('--no-seccomp', 'do not install the seccomp filter (on by default once CMD has started: execve, mount, setns, unshare, ptrace, ... fail with EPERM in tsnet)')
    .option('--disable-ipv6', 'no IPv6 for CMD (on by default for run: fd00::/64 by SLAAC, as --enable-ipv6 on attach)', false)
    .option('--no-tty', 'no pseudo-terminal for CMD even on a terminal (by default, when stdin and stdout are a terminal, CMD gets a pty and a session of its own, as with podman run -it, so shells have job control)'),
  RUN_DEFAULT_MTU,
  false,
)
  .addHelpText('after', examples([
    ['tsnet run -- sh', 'an interactive shell in new rootless namespaces, with network'],
    ['tsnet run -p 8080:80 -- busybox httpd -f -p 80', 'publish the workload\'s port 80 on the host\'s port 8080'],
    ['tsnet run --log-level info -- curl -sI http://10.0.2.2:8000/', 'reach a server on the host\'s 127.0.0.1 (and see the "network up" line)'],
  ]) + '\nExit status: CMD\'s own (128+N if killed by signal N); 125 if tsnet failed, 126 if CMD cannot be executed, 127 if it is not found.\n')
  .action(async (cmd: string[], o) => {
  const { runWorkload } = await import('../app/run.js');
  process.exitCode = await runWorkload({
    ...networkConfig(o),
    enableIpv6: !o.disableIpv6,
    command: cmd,
    hostname: o.hostname,
    mapAuto: o.mapAuto,
    seccomp: o.seccomp,
    sandbox: o.sandbox,
    tty: o.tty,
  });
});

const replay = program
  .command('replay')
  .description(
    'feed the guest-side frames of a capture to a fresh stack (no namespaces, no root) and report or write what the stack sends back',
  )
  .argument('<in.pcap>', 'an Ethernet pcap, e.g. from --pcap or tcpdump -w')
  .option('-o, --out <file>', 'write the frames the stack emits to this pcap')
  .option('--diff', 'print, per conversation, where tsnet and the recorded peer differ (byte streams, FIN, resets, what was acknowledged)', false)
  .option('-m, --mtu <mtu>', 'MTU of the stack', mtuOption, DEFAULT_MTU)
  .option('--cidr <cidr>', 'virtual network', cidrOption, DEFAULT_CIDR)
  .option('--disable-host-loopback', 'as for attach', false)
  .option('-6, --enable-ipv6', 'as for attach: tsnet answers the guest\'s IPv6 neighbor and router discovery', false);
logOptions(replay)
  .addHelpText('after', examples([
    ['tsnet replay pcaps/http-curl.pcap', 'play a capture\'s guest side into a fresh stack and summarize'],
    ['tsnet replay pcaps/http-download-loss.pcap --diff', 'where tsnet and the recorded peer differ, conversation by conversation'],
    ['tsnet replay in.pcap --out reply.pcap && tshark -r reply.pcap', 'write what tsnet sent'],
  ]))
  .action(async (input: string, o) => {
    const { runReplay } = await import('../app/replay.js');
    process.exitCode = await runReplay({
      input,
      out: o.out,
      diff: o.diff,
      mtu: o.mtu,
      cidr: o.cidr,
      disableHostLoopback: o.disableHostLoopback,
      enableIpv6: o.enableIpv6,
      logLevel: o.logLevel,
    logFormat: o.logFormat,
    });
  });

program
  .command('doctor')
  .addHelpText('after', examples([
    ['tsnet doctor', 'check this machine for the user who will run tsnet'],
    ['sudo -u alice tsnet doctor', 'check it for another user'],
  ]))
  .description('check every prerequisite for rootless networking, one line each with the fix; exit 0 only when tsnet can run')
  .action(async () => {
    const { runChecks, formatChecks } = await import('../app/doctor.js');
    const { text, code } = formatChecks(runChecks());
    process.stdout.write(text);
    process.exitCode = code;
  });

// No top-level await: the command is bundled as CommonJS (scripts/build.sh).
program.parseAsync(process.argv).catch((e: unknown) => reportFatal(e, current === 'run' ? RUN_FAILED : 1));
