// The host side of TCP flows: one net.Socket per flow, connected to where the
// NAT routed the guest's SYN, with the byte stream relayed both ways and
// backpressure honoured:
//   guest → host: bytes go to socket.write(); they count against the guest's
//     receive window until the write callback says they left for the kernel
//     (consumed), so a slow host peer shrinks the window the guest sees.
//   host → guest: socket 'data' goes into the connection's bounded send
//     buffer; what does not fit waits, with the socket paused, until the guest
//     acknowledges (sendSpace).
// Connect outcome → SYN-ACK (accepted), RST (ECONNREFUSED), or ICMP
// unreachable (ENETUNREACH → net, EHOSTUNREACH/timeout → host).

import net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { TcpFlow, TcpHooks, TcpRoute, TcpTable } from '../stack/tcp-flows.js';
import { ipv4ToString } from '../wire/address.js';
import type { Logger } from './log.js';
import { WriteArena } from './write-arena.js';

export interface TcpHostOptions {
  /** --outbound-addr: local address for outgoing connections. */
  outboundAddr?: string;
  /** Nameservers for connections to the DNS address (tried in order). */
  nameservers: () => string[];
  /** How long a host connect may take before the guest gets host unreachable. */
  connectTimeoutMs?: number;
  log: Logger;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 30_000;
/** Where host sockets read (onread); its contents are copied out before the next read. */
const READ_BUF = Buffer.allocUnsafeSlow(256 * 1024);

interface HostConn {
  socket: net.Socket;
  connected: boolean;
  /** Bytes from the host that did not fit in the send buffer yet. */
  pending: Buffer | undefined;
  /** We told the socket to end (guest FIN) or destroyed it. */
  ended: boolean;
}

export class TcpHost implements TcpHooks {
  private readonly conns = new Map<number, HostConn>();
  private readonly arena = new WriteArena();
  private table!: TcpTable;

  constructor(
    private readonly opts: TcpHostOptions,
    /** Asks the runtime to flush the stack soon (after host events). */
    private readonly kick: () => void,
  ) {}

  bind(table: TcpTable): void {
    this.table = table;
  }

  get size(): number {
    return this.conns.size;
  }

  open(flow: TcpFlow, route: TcpRoute): void {
    const targets = route.kind === 'dns' ? this.opts.nameservers().map((a) => [a, 53] as const) : [[ipv4ToString(route.addr), flow.peerPort] as const];
    if (targets.length === 0) {
      this.opts.log.warn({ flow: flow.id }, 'DNS over TCP: no nameservers configured');
      this.table.refused(performance.now(), flow.id);
      return;
    }
    this.tryConnect(flow, targets, 0);
  }

  private tryConnect(flow: TcpFlow, targets: ReadonlyArray<readonly [string, number]>, i: number): void {
    const [host, port] = targets[i]!;
    // Reads land in one shared buffer (Node's onread) and are copied into the
    // connection's send buffer at once: no ArrayBuffer per read (GC churn).
    let c: HostConn | undefined;
    const socket = net.connect({
      host,
      port,
      localAddress: this.opts.outboundAddr,
      allowHalfOpen: true,
      noDelay: true,
      onread: { buffer: READ_BUF, callback: (n: number) => this.fromHost(flow.id, c!, READ_BUF.subarray(0, n)) },
    });
    c = this.wire(flow.id, socket, false, false);
    socket.setTimeout(this.opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS);
    socket.once('timeout', () => {
      if (c.connected) return;
      socket.destroy();
      this.connectFailed(flow, targets, i, 'ETIMEDOUT');
    });
    socket.once('connect', () => {
      c.connected = true;
      socket.setTimeout(0);
      socket.setKeepAlive(true, 60_000);
      this.opts.log.debug({ flow: flow.id, host, port }, 'host connect ok');
      this.table.accepted(performance.now(), flow.id);
      this.kick();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (!c.connected) this.connectFailed(flow, targets, i, err.code ?? 'EIO');
    });
  }

  /**
   * Port forwarding: a client socket accepted on a host listener, already
   * bound to an inbound flow. Its bytes wait in the connection until the
   * guest completes the handshake.
   */
  adopt(flowId: number, socket: net.Socket): void {
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 60_000);
    this.wire(flowId, socket, true, true);
    this.kick();
  }

  /** Relays a host socket to flow `id` in both directions (see the file header). */
  private wire(id: number, socket: net.Socket, connected: boolean, dataEvents: boolean): HostConn {
    const c: HostConn = { socket, connected, pending: undefined, ended: false };
    this.conns.set(id, c);
    if (dataEvents) socket.on('data', (chunk: Buffer) => void this.fromHost(id, c, chunk));
    socket.on('end', () => {
      // The host peer finished sending: FIN to the guest after queued data.
      if (c.pending) return; // sendSpace() will close after the rest
      this.table.close(id);
      this.kick();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (!c.connected) return; // the connect path handles it
      this.opts.log.debug({ flow: id, err: err.code }, 'host socket error');
      c.ended = true;
      if (this.conns.get(id) === c) this.conns.delete(id);
      this.table.abort(performance.now(), id);
      this.kick();
    });
    return c;
  }

  private connectFailed(flow: TcpFlow, targets: ReadonlyArray<readonly [string, number]>, i: number, code: string): void {
    this.opts.log.debug({ flow: flow.id, target: targets[i], code }, 'host connect failed');
    if (this.conns.get(flow.id)?.socket.destroyed === false) this.conns.get(flow.id)!.socket.destroy();
    this.conns.delete(flow.id);
    if (i + 1 < targets.length) {
      this.tryConnect(flow, targets, i + 1);
      return;
    }
    const now = performance.now();
    switch (code) {
      case 'ECONNREFUSED':
        this.table.refused(now, flow.id);
        break;
      case 'ENETUNREACH':
        this.table.unreachable(now, flow.id, 0);
        break;
      default: // EHOSTUNREACH, ETIMEDOUT, EADDRNOTAVAIL, ...
        this.table.unreachable(now, flow.id, 1);
    }
    this.kick();
  }

  /** Bytes from the host socket (copied by the send buffer); false when the socket must pause. */
  private fromHost(id: number, c: HostConn, chunk: Buffer): boolean {
    const n = this.table.send(id, chunk);
    this.kick();
    if (n < chunk.length) {
      // Keep the rest (chunk may be the shared read buffer) until sendSpace.
      c.pending = Buffer.from(chunk.subarray(n));
      c.socket.pause();
      return false;
    }
    return true;
  }

  data(flow: TcpFlow, data: Buffer): void {
    const c = this.conns.get(flow.id);
    if (!c || c.ended) {
      this.table.consumed(flow.id, data.length);
      return;
    }
    const len = data.length;
    // data may be the TAP's read buffer, reused after this call: copy (into
    // a recycled slab, released once Node has written it).
    const copy = this.arena.copy(data);
    c.socket.write(copy.data, () => {
      copy.release();
      this.table.consumed(flow.id, len);
      this.kick();
    });
  }

  eof(flow: TcpFlow): void {
    const c = this.conns.get(flow.id);
    if (!c || c.ended) return;
    c.ended = true;
    c.socket.end();
  }

  established(_flow: TcpFlow): void {}

  sendSpace(flow: TcpFlow): void {
    const c = this.conns.get(flow.id);
    if (!c || !c.pending) return;
    const rest = c.pending;
    c.pending = undefined;
    const n = this.table.send(flow.id, rest);
    if (n < rest.length) {
      c.pending = rest.subarray(n);
      return;
    }
    if (c.socket.readableEnded) this.table.close(flow.id);
    else c.socket.resume();
    this.kick();
  }

  reset(flow: TcpFlow, reason: string): void {
    const c = this.conns.get(flow.id);
    if (!c) return;
    this.opts.log.debug({ flow: flow.id, reason }, 'guest side reset: resetting host socket');
    c.ended = true;
    this.conns.delete(flow.id);
    if (c.connected) c.socket.resetAndDestroy();
    else c.socket.destroy();
  }

  closed(flow: TcpFlow): void {
    const c = this.conns.get(flow.id);
    if (!c) return;
    this.conns.delete(flow.id);
    // Normal close: both sides finished. Let Node finish flushing, then release.
    const s = c.socket;
    if (s.destroyed) return;
    if (s.writableFinished || !s.writableEnded) s.destroy();
    else s.once('finish', () => s.destroy()).once('error', () => s.destroy());
  }

  /** Destroys every socket (shutdown). */
  closeAll(): void {
    for (const c of this.conns.values()) c.socket.destroy();
    this.conns.clear();
  }
}
