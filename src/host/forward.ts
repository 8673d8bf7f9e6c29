// Port forwarding's host side: a listener per forward (-p, add_hostfwd). For
// TCP, each accepted client becomes a connection tsnet opens *into* the
// guest; for UDP, each client address a conversation with the guest port
// (replies go back to that client; idle ones expire). Either way with
// the client's real IPv4 address and port as the source the guest sees
// (as slirp4netns's API forwards do; rootlesskit's builtin driver before
// v3 loses it). A client on the host loopback appears as the gateway.
// IPv6 (with --enable-ipv6): an IPv6 client reaches the guest over
// IPv6 — at the forward's IPv6 guest_addr, else at the address the guest
// took by SLAAC — as itself (::1 as fd00::2); a guest server that listens
// on IPv4 only refuses that, and the client is then carried over IPv4
// (TcpHost.adoptWhenEstablished holds it until the guest answers). UDP
// likewise: a guest that answers an IPv6 client's datagram with port
// unreachable gets it again over IPv4, and that client stays on IPv4.
// Without IPv6 for the guest an IPv6 client appears as 10.0.2.2, over IPv4.
// Removing a forward closes its listener; connections already open go on.

import dgram from 'node:dgram';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { ipv4FromString, ipv6FromString } from '../wire/address.js';
import type { ForwardBackend } from './api.js';
import type { ForwardSpec } from './forward-spec.js';
import type { Logger } from './log.js';
import type { Runtime } from './runtime.js';
import type { InboundUdpFlow } from '../stack/udp.js';

/** Ephemeral range for re-mapping a client port that collides with an existing flow. */
const EPHEMERAL_LOW = 49152;
const EPHEMERAL_SPAN = 16384;

interface Listener {
  spec: ForwardSpec & { guestAddr: string };
  server: net.Server;
  accepted: number;
}

/** A UDP forward: one socket on the host port, conversations by client address. */
interface UdpListener {
  spec: ForwardSpec & { guestAddr: string };
  socket: dgram.Socket;
  /** client "addr|port" → the peer port the guest sees (re-mapped on collision). */
  peerPorts: Map<string, number>;
  /** IPv6 clients the guest refused over IPv6 (its server listens on IPv4 only): carried over IPv4. */
  over4: Set<string>;
  datagrams: number;
}

/**
 * Opens a forwarded flow from the client's own port, else (that source is
 * taken: two clients that map to the same address and port, as 127.0.0.1
 * and ::1 both appearing as the gateway) from up to 32 random ephemeral
 * ports. `open` gives undefined for a taken source, null when a budget
 * refuses (then no other port is tried).
 */
function withPeerPort<T>(first: number, open: (port: number) => T | undefined | null): { flow: T | undefined | null; port: number } {
  let port = first;
  let flow = port > 0 ? open(port) : undefined;
  for (let i = 0; flow === undefined && i < 32; i++) {
    port = EPHEMERAL_LOW + Math.floor(Math.random() * EPHEMERAL_SPAN);
    flow = open(port);
  }
  return { flow, port };
}

/** IPv6 UDP clients remembered as refused over IPv6, per forward (the oldest forgotten first). */
const MAX_OVER4 = 4096;

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
  private readonly udpListeners = new Map<number, UdpListener>();
  /** Where replies of each forwarded UDP conversation go: flow id → client. */
  private readonly udpClients = new Map<number, { socket: dgram.Socket; addr: string; port: number; listener: UdpListener; key: string; last?: Buffer }>();
  private connections = 0;

  constructor(
    private readonly runtime: Runtime,
    private readonly log: Logger,
  ) {
    runtime.udpHost.forward = {
      reply: (flow, payload) => this.udpReply(flow, payload),
      closed: (flow) => {
        // The conversation is over: forget its client and any re-mapped port.
        const c = this.udpClients.get(flow.id);
        this.udpClients.delete(flow.id);
        c?.listener.peerPorts.delete(c.key);
      },
      refused: (flow) => this.udpRefused(flow),
    };
  }

  async add(spec: ForwardSpec & { guestAddr: string }, id: number): Promise<{ hostPort: number }> {
    if (spec.proto === 'udp') return this.addUdp(spec, id);
    const l: Listener = { spec, server: net.createServer({ allowHalfOpen: true, pauseOnConnect: true }), accepted: 0 };
    l.server.on(
      'connection',
      (socket: net.Socket) => this.runtime.guard.run('forward-accept', () => this.accept(l, socket), () => socket.resetAndDestroy()),
    );
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

  private async addUdp(spec: ForwardSpec & { guestAddr: string }, id: number): Promise<{ hostPort: number }> {
    const v6 = spec.hostAddr.includes(':');
    const socket = dgram.createSocket({ type: v6 ? 'udp6' : 'udp4', ipv6Only: v6 && spec.hostAddr !== '::' });
    const l: UdpListener = { spec, socket, peerPorts: new Map(), over4: new Set(), datagrams: 0 };
    await new Promise<void>((resolve, reject) => {
      socket.once('error', (e: NodeJS.ErrnoException) => reject(bindError(e, spec.hostAddr, spec.hostPort)));
      socket.bind(spec.hostPort, spec.hostAddr, () => resolve());
    });
    socket.on('error', (e) => this.log.debug({ id, err: e.message }, 'udp forward socket error'));
    socket.on('message', this.runtime.guard.wrap('forward-udp', (msg: Buffer, rinfo: dgram.RemoteInfo) => this.udpIn(id, l, msg, rinfo)));
    this.udpListeners.set(id, l);
    const hostPort = socket.address().port;
    this.log.info({ id, proto: 'udp', host: `${spec.hostAddr}:${hostPort}`, guest: `${spec.guestAddr}:${spec.guestPort}` }, 'forward added');
    return { hostPort };
  }

  private udpIn(id: number, l: UdpListener, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    // Over IPv6 to the guest: when the forward names an IPv6 guest address,
    // or for an IPv6 client while the guest has IPv6 — unless the guest
    // refused that client over IPv6 (udpRefused) and it goes over IPv4.
    const key = `${rinfo.address}|${rinfo.port}`;
    if (net.isIPv6(l.spec.guestAddr) || (!l.over4.has(key) && this.over6(l, rinfo.address))) {
      this.udpIn6(id, l, msg, rinfo);
      return;
    }
    const udp = this.runtime.stack.udp!;
    const now = this.runtime.clock();
    const peer = this.peerOf(rinfo.address);
    const guest = ipv4FromString(l.spec.guestAddr);
    // One conversation per real client address and port: two clients that
    // look the same to the guest (127.0.0.1 and ::1 both appear as the
    // gateway) get different peer ports, as TCP forwarding does.
    const clientKey = `${rinfo.address}|${rinfo.port}`;
    const { flow, port } = withPeerPort(l.peerPorts.get(clientKey) ?? rinfo.port, (p) => udp.forwardIn(now, id, clientKey, peer, p, guest, l.spec.guestPort, msg));
    if (!flow) {
      if (flow === undefined) this.runtime.stack.drop('udp-forward-no-port', clientKey);
      return;
    }
    if (port !== rinfo.port) l.peerPorts.set(clientKey, port);
    l.datagrams++;
    this.udpClients.set(flow.id, { socket: l.socket, addr: rinfo.address, port: rinfo.port, listener: l, key: clientKey });
    this.runtime.kick();
  }

  /** udpIn to an IPv6 guest address: the client as itself (::1 and IPv4 clients as fd00::2). */
  private udpIn6(id: number, l: UdpListener, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const v6 = this.over6(l, rinfo.address);
    if (!v6) {
      this.runtime.stack.drop('udp-forward-no-ipv6', l.spec.guestAddr);
      return;
    }
    const udp = this.runtime.stack.udp!;
    const now = this.runtime.clock();
    const clientKey = `${rinfo.address}|${rinfo.port}`;
    const { flow, port } = withPeerPort(l.peerPorts.get(clientKey) ?? rinfo.port, (p) => udp.forwardIn6(now, id, clientKey, v6.peer, p, v6.guest, l.spec.guestPort, msg));
    if (!flow) {
      if (flow === undefined) this.runtime.stack.drop('udp-forward-no-port', clientKey);
      return;
    }
    if (port !== rinfo.port) l.peerPorts.set(clientKey, port);
    l.datagrams++;
    // The last datagram is kept: if the guest refuses it over IPv6, it goes again over IPv4.
    const last = net.isIPv6(l.spec.guestAddr) ? undefined : Buffer.from(msg);
    this.udpClients.set(flow.id, { socket: l.socket, addr: rinfo.address, port: rinfo.port, listener: l, key: clientKey, last });
    this.runtime.kick();
  }

  /**
   * The guest answered a forwarded IPv6 conversation with port unreachable:
   * its server listens on IPv4 only. From now on that client goes over IPv4
   * (as 10.0.2.2), starting with the datagram that was refused.
   */
  private udpRefused(flow: InboundUdpFlow): void {
    const c = this.udpClients.get(flow.id);
    if (!c || !c.last || !this.udpListeners.has(flow.forwardId)) return;
    const over4 = c.listener.over4;
    // Bounded: clients are the host side's, and may be many.
    if (over4.size >= MAX_OVER4) over4.delete(over4.values().next().value!);
    over4.add(c.key);
    const last = c.last;
    this.udpClients.delete(flow.id);
    c.listener.peerPorts.delete(c.key);
    this.runtime.stack.udp!.closeInbound(flow.id);
    this.udpIn(flow.forwardId, c.listener, last, { address: c.addr, port: c.port, family: 'IPv6', size: last.length });
  }

  private udpReply(flow: InboundUdpFlow, payload: Buffer): void {
    const c = this.udpClients.get(flow.id);
    if (!c) return;
    // payload is a view into the TAP's read buffer: copy before the async send.
    try {
      c.socket.send(Buffer.from(payload), c.port, c.addr, (err) => {
        if (err) this.log.debug({ err: err.message }, 'udp forward reply failed');
      });
    } catch {
      // The forward was removed (socket closed): the reply has nowhere to go.
      this.udpClients.delete(flow.id);
    }
  }

  remove(id: number): void {
    const u = this.udpListeners.get(id);
    if (u) {
      this.udpListeners.delete(id);
      u.socket.close();
      this.log.info({ id }, 'forward removed');
      return;
    }
    const l = this.listeners.get(id);
    if (!l) return;
    this.listeners.delete(id);
    l.server.close();
    this.log.info({ id }, 'forward removed');
  }

  stats(): Record<string, unknown> {
    return {
      forwards: [
        ...[...this.listeners.entries()].map(([id, l]) => ({ id, proto: l.spec.proto, accepted: l.accepted })),
        ...[...this.udpListeners.entries()].map(([id, l]) => ({ id, proto: 'udp', datagrams: l.datagrams })),
      ],
      forwardedConnections: this.connections,
      ...this.runtime.stats(),
    };
  }

  closeAll(): void {
    for (const id of [...this.listeners.keys(), ...this.udpListeners.keys()]) this.remove(id);
  }

  /** A client's address as the guest sees it: its IPv4 address, or the gateway (loopback, IPv6). */
  private peerOf(address: string): number {
    let addr = address;
    if (addr.startsWith('::ffff:')) addr = addr.slice(7);
    if (!net.isIPv4(addr) || addr.startsWith('127.')) return this.runtime.stack.config.gateway;
    return ipv4FromString(addr);
  }

  /**
   * Over IPv6 to the guest, when the guest has an IPv6 address (the
   * forward's own guest_addr if it is one, else the address the guest
   * configured by SLAAC) and either the client is an IPv6 one or the
   * forward names an IPv6 guest address: the client appears as itself (a
   * loopback or IPv4 client as fd00::2). Undefined: use IPv4.
   */
  private over6(l: { spec: { guestAddr: string } }, address: string): { guest: Buffer; peer: Buffer } | undefined {
    const cfg = this.runtime.stack.config;
    const ipv6 = this.runtime.stack.ipv6;
    if (!cfg.ipv6 || !ipv6) return undefined;
    const explicit = net.isIPv6(l.spec.guestAddr);
    const client = address.startsWith('::ffff:') ? address.slice(7) : address;
    if (!explicit && !net.isIPv6(client)) return undefined;
    const guest = explicit ? ipv6FromString(l.spec.guestAddr) : ipv6.guestAddress();
    if (!guest) return undefined;
    const peer = net.isIPv6(client) && client !== '::1' ? ipv6FromString(client.split('%')[0]!) : cfg.ipv6.gateway;
    return { guest, peer };
  }

  private accept(l: Listener, socket: net.Socket): void {
    const v6 = this.over6(l, socket.remoteAddress ?? '');
    if (v6) {
      const tcp = this.runtime.stack.tcp!;
      const now = this.runtime.clock();
      const { flow } = withPeerPort(socket.remotePort ?? 0, (p) => tcp.connectInbound6(now, v6.peer, p, v6.guest, l.spec.guestPort));
      if (flow) {
        socket.pause();
        l.accepted++;
        this.connections++;
        // A guest server listening on IPv4 only refuses: try it over IPv4 then.
        this.runtime.tcpHost.adoptWhenEstablished(flow.id, socket, () => {
          l.accepted--;
          this.connections--;
          if (!net.isIPv6(l.spec.guestAddr)) this.accept4(l, socket);
          else socket.resetAndDestroy();
        });
        this.runtime.kick();
        return;
      }
    }
    this.accept4(l, socket);
  }

  private accept4(l: Listener, socket: net.Socket): void {
    if (!net.isIPv4(l.spec.guestAddr)) {
      socket.resetAndDestroy(); // an IPv6 guest address the stack cannot reach now
      return;
    }
    const tcp = this.runtime.stack.tcp!;
    const now = this.runtime.clock();
    const peer = this.peerOf(socket.remoteAddress ?? '');
    const guest = ipv4FromString(l.spec.guestAddr);
    const { flow } = withPeerPort(socket.remotePort ?? 0, (p) => tcp.connectInbound(now, peer, p, guest, l.spec.guestPort));
    if (!flow) {
      socket.resetAndDestroy();
      return;
    }
    l.accepted++;
    this.connections++;
    this.runtime.tcpHost.adopt(flow.id, socket);
  }
}
