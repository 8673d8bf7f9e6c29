// Port forwarding's host side: a listener per forward (-p, add_hostfwd), and
// for each accepted client a connection tsnet opens *into* the guest, with
// the client's real IPv4 address and port as the source the guest sees
// (rootlesskit's builtin driver loses it; slirp4netns shows 10.0.2.2). A
// client on the host loopback, or an IPv6 client, appears as the gateway.
// Removing a forward closes its listener; connections already open go on.

import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { ipv4FromString } from '../wire/address.js';
import type { ForwardBackend } from './api.js';
import type { ForwardSpec } from './forward-spec.js';
import type { Logger } from './log.js';
import type { Runtime } from './runtime.js';

/** Ephemeral range for re-mapping a client port that collides with an existing flow. */
const EPHEMERAL_LOW = 49152;
const EPHEMERAL_SPAN = 16384;

interface Listener {
  spec: ForwardSpec & { guestAddr: string };
  server: net.Server;
  accepted: number;
}

function bindError(e: NodeJS.ErrnoException, addr: string, port: number): Error {
  const where = `${addr.includes(':') ? `[${addr}]` : addr}:${port}`;
  switch (e.code) {
    case 'EADDRINUSE':
      return new Error(`EADDRINUSE ${where} is already in use`);
    case 'EACCES':
      return new Error(`EACCES binding ${where}: ports below net.ipv4.ip_unprivileged_port_start need privileges`);
    case 'EADDRNOTAVAIL':
      return new Error(`EADDRNOTAVAIL ${addr} is not an address of this host`);
    default:
      return new Error(`${e.code ?? 'error'} binding ${where}: ${e.message}`);
  }
}

export class Forwarder implements ForwardBackend {
  private readonly listeners = new Map<number, Listener>();
  private connections = 0;

  constructor(
    private readonly runtime: Runtime,
    private readonly log: Logger,
  ) {}

  async add(spec: ForwardSpec & { guestAddr: string }, id: number): Promise<{ hostPort: number }> {
    if (spec.proto === 'udp') throw new Error('UDP port forwarding is not implemented yet');
    const l: Listener = { spec, server: net.createServer({ allowHalfOpen: true, pauseOnConnect: true }), accepted: 0 };
    l.server.on('connection', (socket) => this.accept(l, socket));
    await new Promise<void>((resolve, reject) => {
      l.server.once('error', (e: NodeJS.ErrnoException) => reject(bindError(e, spec.hostAddr, spec.hostPort)));
      l.server.listen({ host: spec.hostAddr, port: spec.hostPort, ipv6Only: spec.hostAddr.includes(':') && spec.hostAddr !== '::' }, () => resolve());
    });
    l.server.on('error', (e) => this.log.warn({ id, err: e.message }, 'forward listener error'));
    this.listeners.set(id, l);
    const hostPort = (l.server.address() as net.AddressInfo).port;
    this.log.info({ id, proto: spec.proto, host: `${spec.hostAddr}:${hostPort}`, guest: `${spec.guestAddr}:${spec.guestPort}` }, 'forward added');
    return { hostPort };
  }

  remove(id: number): void {
    const l = this.listeners.get(id);
    if (!l) return;
    this.listeners.delete(id);
    l.server.close();
    this.log.info({ id }, 'forward removed');
  }

  stats(): Record<string, unknown> {
    return {
      forwards: [...this.listeners.entries()].map(([id, l]) => ({ id, proto: l.spec.proto, accepted: l.accepted })),
      forwardedConnections: this.connections,
      ...this.runtime.stats(),
    };
  }

  closeAll(): void {
    for (const id of [...this.listeners.keys()]) this.remove(id);
  }

  /** The client's address as the guest sees it: its IPv4 address, or the gateway. */
  private peerAddress(socket: net.Socket): number {
    const cfg = this.runtime.stack.config;
    let addr = socket.remoteAddress ?? '';
    if (addr.startsWith('::ffff:')) addr = addr.slice(7);
    if (!net.isIPv4(addr) || addr.startsWith('127.')) return cfg.gateway;
    return ipv4FromString(addr);
  }

  private accept(l: Listener, socket: net.Socket): void {
    const tcp = this.runtime.stack.tcp!;
    const now = performance.now();
    const peer = this.peerAddress(socket);
    const guest = ipv4FromString(l.spec.guestAddr);
    let port = socket.remotePort ?? 0;
    let flow = port > 0 ? tcp.connectInbound(now, peer, port, guest, l.spec.guestPort) : undefined;
    // Two clients that map to the same address and port (127.0.0.1 and ::1
    // both appear as the gateway): give the later one another source port.
    for (let i = 0; !flow && i < 32; i++) {
      port = EPHEMERAL_LOW + Math.floor(Math.random() * EPHEMERAL_SPAN);
      flow = tcp.connectInbound(now, peer, port, guest, l.spec.guestPort);
    }
    if (!flow) {
      socket.resetAndDestroy();
      return;
    }
    l.accepted++;
    this.connections++;
    this.runtime.tcpHost.adopt(flow.id, socket);
    socket.resume();
  }
}
