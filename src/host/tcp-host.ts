// The host side of TCP flows: one host socket per flow (a bare libuv handle,
// src/host/host-socket.ts), connected to where the NAT routed the guest's
// SYN, with the byte stream relayed both ways and backpressure honoured:
//   guest → host: bytes go straight to the socket's fd when nothing is
//     queued for it (native/send.ts: what the kernel takes is consumed at
//     once); the rest goes to socket.write() and counts against the guest's
//     receive window until the write completes (consumed), so a slow host
//     peer shrinks the window the guest sees.
//   host → guest: reads go into the connection's bounded send buffer — a
//     bulk flow's straight into the buffer's room (lent by the stack, no
//     copy), others through one shared buffer; what does not fit waits,
//     with the socket paused, until the guest acknowledges (sendSpace).
// Connect outcome → SYN-ACK (accepted), RST (ECONNREFUSED), or ICMP
// unreachable (ENETUNREACH → net, EHOSTUNREACH/timeout → host). Out of file
// descriptors (EMFILE/ENFILE) refuses that one flow with RST, counted as
// "host-fd-limit"; existing flows are untouched and new ones work again as
// soon as descriptors free up. Forwarded connections (accepted by a
// net.Server) move their handle into a host socket the same way (adopt).
//
// Memory (the stack's MemoryBudget): each read lands in the flow's send
// buffer or in one shared buffer sized to the room the send buffer has, so
// host data never waits outside the budget (a remainder that did not fit
// is counted). Only a flow whose last read was a bulk one reads in place:
// the room lent for its next read stays held until then, and an idle
// request/response flow should hold no block at all. Guest data
// waiting to be written is counted until its write completes. A host socket
// the stack is done with but whose peer stops reading is destroyed after
// LINGER_MS instead of being kept forever. Every socket event runs under the
// runtime's Guard: an exception resets that flow alone.

import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { TcpFlow, TcpHooks, TcpRoute, TcpTable } from '../stack/tcp-flows.js';
import { ipv4ToString } from '../wire/address.js';
import type { Guard } from './guard.js';
import type { Logger } from './log.js';
import { sendNow } from '../../native/index.js';
import { HostSocket, type HostSocketOwner } from './host-socket.js';
import { SLAB, WriteArena, type ArenaCopy } from './write-arena.js';
import type { Clock } from './clock.js';

export interface TcpHostOptions {
  /** --outbound-addr: local address for outgoing connections. */
  outboundAddr?: string;
  /** --outbound-addr6: the same for IPv6 connections. */
  outboundAddr6?: string;
  /** Nameservers for connections to the DNS address (tried in order). */
  nameservers: () => string[];
  /** How long a host connect may take before the guest gets host unreachable. */
  connectTimeoutMs?: number;
  log: Logger;
  guard: Guard;
  /** Where "now" comes from (the runtime's). */
  clock: Clock;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 30_000;
/** How long a finished flow's host socket may take to flush to a peer that does not read (Linux tcp_fin_timeout). */
export const LINGER_MS = 60_000;
const FD_ERRORS = new Set(['EMFILE', 'ENFILE']);
/** Where host sockets read (onread) when not in place; its contents are copied out before the next read. */
const READ_BUF = Buffer.allocUnsafeSlow(256 * 1024);
/** A read at least this large marks a bulk flow: its next read lands in its send buffer in place. */
const BULK_READ = 16 * 1024;

/** A host connect in progress (TcpHost.connecting): its deadline and what to try next if it fails. */
interface PendingConnect {
  at: number;
  c: HostConn;
  flow: TcpFlow;
  targets: ReadonlyArray<readonly [string, number]>;
  i: number;
}

interface HostConn {
  /** The flow's id. */
  id: number;
  socket: HostSocket<HostConn>;
  /** The host connect in progress (until it completes or fails). */
  connect: PendingConnect | undefined;
  /** Bytes from the host that did not fit in the send buffer yet. */
  pending: Buffer | undefined;
  /** We told the socket to end (guest FIN) or destroyed it. */
  ended: boolean;
  /** Reading stopped because the flow's send buffer is full. */
  paused: boolean;
  /** The next read lands in the flow's lent send-buffer room (TcpTable.lendSendRoom), not READ_BUF. */
  lent: boolean;
  /** The last read was a bulk one (BULK_READ). */
  bulk: boolean;
  /** Keepalive sweeps this connection has seen (see KEEPALIVE_SWEEP_MS); KEEPALIVE_ON once set. */
  sweeps: number;
}

/**
 * Host sockets get TCP keepalive (idle 60 s) once they have lived through
 * two sweeps, 10-20 s after they open, rather than at connect: a shorter
 * connection could never send a probe anyway, and the four setsockopt calls
 * were ~5% of the CPU a connect+request+close costs. One unref'd interval
 * for all sockets, running only while there are any.
 */
const KEEPALIVE_SWEEP_MS = 10_000;
const KEEPALIVE_IDLE_MS = 60_000;
const KEEPALIVE_ON = 2;

export class TcpHost implements TcpHooks {
  private readonly conns = new Map<number, HostConn>();
  /** Inbound IPv6 flows whose client socket waits for the guest's handshake (adoptWhenEstablished). */
  private readonly awaiting = new Map<number, { socket: net.Socket; refused: () => void }>();
  private readonly arena = new WriteArena((n) => this.table.budget.release(n));
  private table!: TcpTable;
  /** Flows refused because the process was out of file descriptors. */
  fdRefusals = 0;

  constructor(
    private readonly opts: TcpHostOptions,
    /** Asks the runtime to flush the stack soon (after host events). */
    private readonly kick: () => void,
    /** Flushes the stack now (after a read, a connect, the host's EOF: libuv callbacks, one per socket per loop turn). */
    private readonly flush: () => void = kick,
  ) {}

  bind(table: TcpTable): void {
    this.table = table;
  }

  get size(): number {
    return this.conns.size + this.awaiting.size;
  }

  open(flow: TcpFlow, route: TcpRoute): void {
    this.opts.guard.run('tcp-host', () => this.openGuarded(flow, route), () => this.failFlow(flow.id));
  }

  /** A host socket callback threw: counted, and that flow alone is reset (the guard's semantics without a closure per call). */
  private fault(c: HostConn, e: unknown): void {
    this.opts.guard.report('tcp-host', e);
    this.failFlow(c.id);
  }

  /** Resets a flow whose host side threw (the guard's onFail). */
  private failFlow(id: number): void {
    const c = this.conns.get(id);
    this.conns.delete(id);
    c?.socket.destroy();
    this.table.abort(this.opts.clock(), id);
    this.kick();
  }

  private openGuarded(flow: TcpFlow, route: TcpRoute): void {
    const targets =
      route.kind === 'dns'
        ? this.opts.nameservers().map((a) => [a, 53] as const)
        : [[route.kind === 'host6' ? route.addr : ipv4ToString(route.addr), flow.peerPort] as const];
    if (targets.length === 0) {
      this.opts.log.warn({ flow: flow.id }, 'DNS over TCP: no nameservers configured');
      this.table.refused(this.opts.clock(), flow.id);
      return;
    }
    this.tryConnect(flow, targets, 0);
  }

  private tryConnect(flow: TcpFlow, targets: ReadonlyArray<readonly [string, number]>, i: number): void {
    const [host, port] = targets[i]!;
    const c = this.newConn(flow.id);
    c.connect = { at: this.opts.clock() + this.connectTimeoutMs, c, flow, targets, i };
    // --outbound-addr for IPv4 destinations, --outbound-addr6 for IPv6 ones
    // (targets are address literals: only IPv6 ones hold a ':').
    c.socket = HostSocket.connect(this.sockets, c, host, port, host.includes(':') ? this.opts.outboundAddr6 : this.opts.outboundAddr);
    this.watchConnect(c.connect);
  }

  /**
   * What every host socket reports to (one object for all: no closures per
   * connection). Reads: a bulk flow reads straight into its send buffer's
   * room (lent by the stack: no copy at all); other reads land in the one
   * shared buffer, sized to the room the flow has, and are copied into the
   * send buffer at once — so an idle flow holds no block for a read that
   * may never come, no ArrayBuffer is made per read (GC churn), and nothing
   * read waits outside the send buffer (and its memory budget). The socket
   * asks for the next read's buffer right after each read.
   */
  private readonly sockets: HostSocketOwner<HostConn> = {
    connected: (c) => {
      try {
        const p = c.connect!;
        c.connect = undefined;
        this.connecting.delete(p);
        this.opts.log.debug({ flow: c.id, target: p.targets[p.i] }, 'host connect ok');
        this.table.accepted(this.opts.clock(), c.id);
        // The SYN-ACK now, as after a read (libuv's callback: nothing to batch with).
        this.flush();
      } catch (e) {
        this.fault(c, e);
      }
    },
    nextBuffer: (c) => {
      try {
        if (c.bulk && c.pending === undefined) {
          const room = this.table.lendSendRoom(c.id, READ_BUF.length);
          if (room !== undefined) {
            c.lent = true;
            return room;
          }
        }
        const room = this.table.sendSpace(c.id);
        // The whole buffer when there is room for it (no view allocated per read).
        return room >= READ_BUF.length ? READ_BUF : READ_BUF.subarray(0, Math.max(1, room));
      } catch (e) {
        // Like every other host callback: this flow alone is reset (its
        // socket closed, so nothing is read into the buffer returned).
        this.fault(c, e);
        return READ_BUF;
      }
    },
    read: (c, n, buf) => {
      try {
        const id = c.id;
        c.bulk = n >= BULK_READ;
        let more: boolean;
        if (c.lent) {
          c.lent = false;
          more = this.queued(id, c, buf as Buffer, n, this.table.commitSendRoom(id, n));
        } else {
          const chunk = READ_BUF.subarray(0, n);
          more = this.queued(id, c, chunk, n, this.table.send(id, chunk));
        }
        // Send it on now rather than in a setImmediate: one read per
        // socket per loop turn, so there is nothing to batch with, and
        // the flush only dispatches flows with work.
        this.flush();
        return more;
      } catch (e) {
        this.fault(c, e);
        return false;
      }
    },
    ended: (c) => {
      try {
        // Nothing more will be read: the room lent for the next read comes back.
        if (c.lent) {
          c.lent = false;
          this.table.unlendSendRoom(c.id);
        }
        // The host peer finished sending: FIN to the guest after queued data.
        if (c.pending) return; // sendSpace() will close after the rest
        this.table.close(this.opts.clock(), c.id);
        this.flush();
      } catch (e) {
        this.fault(c, e);
      }
    },
    failed: (c, code) => {
      try {
        if (!c.socket.connected) {
          const p = c.connect;
          c.connect = undefined;
          if (p === undefined) return; // given up already (connect timeout)
          this.connecting.delete(p);
          this.connectFailed(p.flow, p.targets, p.i, code);
          return;
        }
        this.opts.log.debug({ flow: c.id, err: code }, 'host socket error');
        c.ended = true;
        if (this.conns.get(c.id) === c) this.conns.delete(c.id);
        this.table.abort(this.opts.clock(), c.id);
        this.kick();
      } catch (e) {
        this.fault(c, e);
      }
    },
  };

  /**
   * Port forwarding: a client socket accepted on a host listener (paused
   * since accept, nothing read yet), already bound to an inbound flow. Its
   * bytes wait in the connection until the guest completes the handshake.
   * Its libuv handle moves from the socket net.Server made to a HostSocket
   * (takeHandle); a socket whose handle cannot move is reset, and so is the
   * flow.
   */
  adopt(flowId: number, accepted: net.Socket): void {
    const taken = takeHandle(accepted);
    if (!taken) {
      accepted.resetAndDestroy();
      this.table.abort(this.opts.clock(), flowId);
      this.kick();
      return;
    }
    const c = this.newConn(flowId);
    c.socket = HostSocket.adopt(this.sockets, c, taken.handle, taken.onClose);
    this.kick();
  }

  /**
   * Port forwarding over IPv6: the client socket (paused) is adopted once the
   * guest completes the handshake of inbound flow `flowId`. If the guest
   * refuses it or never answers, `refused` runs instead and the socket is
   * left as it was, for the caller to try another way (over IPv4: a guest
   * server listening on IPv4 only). What the client sent meanwhile waits in
   * its socket.
   */
  adoptWhenEstablished(flowId: number, socket: net.Socket, refused: () => void): void {
    this.awaiting.set(flowId, { socket, refused });
  }

  /** A connection for flow `id`, registered (its socket is set by the caller). */
  private newConn(id: number): HostConn {
    const c: HostConn = {
      id,
      socket: undefined as unknown as HostSocket<HostConn>,
      connect: undefined,
      pending: undefined,
      ended: false,
      paused: false,
      lent: false,
      bulk: false,
      sweeps: 0,
    };
    this.conns.set(id, c);
    if (!this.sweeper) {
      this.sweeper = setInterval(() => this.opts.guard.run('tcp-host', () => this.sweepKeepalive()), KEEPALIVE_SWEEP_MS);
      this.sweeper.unref();
    }
    return c;
  }

  /**
   * Host connects in progress, each with its deadline. One ticker for all
   * of them rather than a Node timer per socket (socket.setTimeout and its
   * listener cost ~7 µs per connection): it runs only while a connect is
   * pending and fires a timeout at most a tick late (1 s, or an eighth of
   * a short timeout). At most the half-open cap of connects is pending.
   */
  private readonly connecting = new Set<PendingConnect>();
  private connectTicker: NodeJS.Timeout | undefined;

  private get connectTimeoutMs(): number {
    return this.opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  }

  private watchConnect(p: PendingConnect): void {
    this.connecting.add(p);
    if (this.connectTicker !== undefined) return;
    const tick = Math.min(1000, Math.max(10, this.connectTimeoutMs / 8));
    this.connectTicker = setInterval(() => this.expireConnects(), tick);
    this.connectTicker.unref();
  }

  /** Connects past their deadline give up (ETIMEDOUT); the ticker stops when none is left. */
  private expireConnects(): void {
    const now = this.opts.clock();
    for (const p of this.connecting) {
      if (p.c.socket.connected || p.c.socket.destroyed) {
        this.connecting.delete(p);
        continue;
      }
      if (p.at > now) continue;
      this.connecting.delete(p);
      p.c.connect = undefined;
      // connectFailed destroys the socket (still the flow's: the connect is pending).
      this.opts.guard.run('tcp-host', () => this.connectFailed(p.flow, p.targets, p.i, 'ETIMEDOUT'), () => this.failFlow(p.flow.id));
    }
    if (this.connecting.size === 0) {
      clearInterval(this.connectTicker);
      this.connectTicker = undefined;
    }
  }

  private connectFailed(flow: TcpFlow, targets: ReadonlyArray<readonly [string, number]>, i: number, code: string): void {
    this.opts.log.debug({ flow: flow.id, target: targets[i], code }, 'host connect failed');
    if (this.conns.get(flow.id)?.socket.destroyed === false) this.conns.get(flow.id)!.socket.destroy();
    this.conns.delete(flow.id);
    if (i + 1 < targets.length) {
      this.tryConnect(flow, targets, i + 1);
      return;
    }
    const now = this.opts.clock();
    if (FD_ERRORS.has(code)) {
      // Out of file descriptors: refuse this one flow; nothing else changes.
      this.fdRefusals++;
      this.table.refused(now, flow.id);
      this.kick();
      return;
    }
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

  /**
   * `taken` of the `len` bytes read into `chunk` went into the flow's send
   * buffer. Returns whether to read on; the socket pauses otherwise.
   */
  private queued(id: number, c: HostConn, chunk: Buffer, len: number, taken: number): boolean {
    if (taken < len) {
      // Keep the rest (chunk is the shared read buffer or the lent room)
      // until sendSpace; it is memory held for the flow, so it counts
      // against the budget.
      c.pending = Buffer.from(chunk.subarray(taken, len));
      this.table.budget.force(c.pending.length);
    } else if (this.table.sendSpace(id) > 0) {
      return true;
    }
    c.paused = true;
    c.socket.pause();
    return false;
  }

  data(flow: TcpFlow, data: Buffer): void {
    const c = this.conns.get(flow.id);
    if (!c || c.ended) {
      this.table.consumed(flow.id, data.length);
      return;
    }
    if (c.socket.connected && c.socket.writableLength === 0) {
      // Nothing queued for the socket: straight to the kernel (native/send.ts).
      // What it takes is consumed now; the rest goes the queued way below.
      const fd = c.socket.fd;
      const n = fd < 0 ? -1 : sendNow(fd, data);
      if (n > 0) {
        this.table.consumed(flow.id, n);
        if (n === data.length) return;
        data = data.subarray(n);
      }
    }
    const len = data.length;
    const budget = this.table.budget;
    // data may be the TAP's read buffer, reused after this call: copy (into
    // a recycled slab, released once its write completes). A write that
    // waits in the socket's queue pins its whole slab: counted below.
    const copy = this.arena.copy(data);
    budget.force(len);
    const id = flow.id;
    c.socket.write(copy.data, () => this.written(id, copy, len));
    if (c.socket.writableLength > 0 && this.arena.pin(copy)) budget.force(SLAB);
  }

  /** A write of guest data completed: its memory and window come back (guarded without a closure: per segment). */
  private written(id: number, copy: ArenaCopy, len: number): void {
    try {
      this.table.budget.release(len);
      this.arena.release(copy);
      this.table.consumed(id, len);
      this.kick();
    } catch (e) {
      this.opts.guard.report('tcp-host', e);
      this.failFlow(id);
    }
  }

  eof(flow: TcpFlow): void {
    const c = this.conns.get(flow.id);
    if (!c || c.ended) return;
    c.ended = true;
    c.socket.end();
  }

  established(flow: TcpFlow): void {
    const a = this.awaiting.get(flow.id);
    if (!a) return;
    this.awaiting.delete(flow.id);
    if (a.socket.destroyed) {
      this.table.abort(this.opts.clock(), flow.id);
      this.kick();
      return;
    }
    this.adopt(flow.id, a.socket);
  }

  /** An inbound flow still waiting for the guest ended without a handshake: the caller's fallback. */
  private notAdopted(flowId: number): boolean {
    const a = this.awaiting.get(flowId);
    if (!a) return false;
    this.awaiting.delete(flowId);
    this.opts.guard.run('tcp-host', a.refused, () => a.socket.destroy());
    return true;
  }

  sendSpace(flow: TcpFlow): void {
    const c = this.conns.get(flow.id);
    if (!c) return;
    if (c.pending) {
      const rest = c.pending;
      const n = this.table.send(flow.id, rest);
      this.table.budget.release(n);
      if (n < rest.length) {
        c.pending = rest.subarray(n);
        return;
      }
      c.pending = undefined;
      if (c.socket.readableEnded) {
        this.table.close(this.opts.clock(), flow.id);
        this.kick();
        return;
      }
    }
    if (c.paused && this.table.sendSpace(flow.id) > 0) {
      c.paused = false;
      c.socket.resume();
    }
    this.kick();
  }

  private sweeper: NodeJS.Timeout | undefined;

  /** Turns keepalive on for connections that have seen a sweep before this one (see KEEPALIVE_SWEEP_MS). */
  private sweepKeepalive(): void {
    if (this.conns.size === 0) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
      return;
    }
    for (const c of this.conns.values()) {
      if (c.sweeps >= KEEPALIVE_ON || !c.socket.connected || c.ended || c.socket.destroyed) continue;
      if (++c.sweeps === KEEPALIVE_ON) c.socket.setKeepAlive(true, KEEPALIVE_IDLE_MS);
    }
  }

  /** Gives back the budget a connection's unsent remainder held. */
  private dropPending(c: HostConn): void {
    if (!c.pending) return;
    this.table.budget.release(c.pending.length);
    c.pending = undefined;
  }

  reset(flow: TcpFlow, reason: string): void {
    if (this.notAdopted(flow.id)) return;
    const c = this.conns.get(flow.id);
    if (!c) return;
    this.opts.log.debug({ flow: flow.id, reason }, 'guest side reset: resetting host socket');
    c.ended = true;
    this.dropPending(c);
    this.conns.delete(flow.id);
    // A socket still connecting is closed plainly (there is no peer to reset).
    c.socket.resetAndDestroy();
  }

  closed(flow: TcpFlow): void {
    if (this.notAdopted(flow.id)) return;
    const c = this.conns.get(flow.id);
    if (!c) return;
    this.conns.delete(flow.id);
    this.dropPending(c);
    // Normal close: both sides finished. Let the socket finish flushing, then
    // release — but not forever: a peer that never reads loses the socket
    // after LINGER_MS (its unsent bytes' budget comes back with the write
    // callbacks).
    const s = c.socket;
    if (s.destroyed) return;
    if (s.writableFinished || !s.writableEnded) {
      s.destroy();
      return;
    }
    const linger = setTimeout(() => s.destroy(), LINGER_MS);
    linger.unref();
    this.lingering.add(s);
    s.whenFlushed(() => {
      clearTimeout(linger);
      this.lingering.delete(s);
      s.destroy();
    });
  }

  /** Finished flows' sockets still flushing to their peer. */
  private readonly lingering = new Set<HostSocket<HostConn>>();

  /** Destroys every socket (shutdown). */
  closeAll(): void {
    clearInterval(this.sweeper);
    this.sweeper = undefined;
    clearInterval(this.connectTicker);
    this.connectTicker = undefined;
    this.connecting.clear();
    for (const c of this.conns.values()) {
      this.dropPending(c);
      c.socket.destroy();
    }
    this.conns.clear();
    for (const a of this.awaiting.values()) a.socket.destroy();
    this.awaiting.clear();
    for (const s of [...this.lingering]) s.destroy();
  }
}

/** What net.Server keeps on a socket it accepted (Node's own fields, as net.Socket._destroy uses them). */
interface AcceptedSocket {
  _handle?: object | null;
  _server?: { _connections: number; _emitCloseIfDrained?: () => void } | null;
}

/**
 * The libuv handle of `accepted`, moved out of the net.Socket net.Server
 * made (as tap-port.ts wraps the TAP's fd), and what to run when it is
 * closed: the server's connection count, which the old object would have
 * kept (it is never destroyed now, so it must not hold the count). Only for
 * a socket paused since accept (pauseOnConnect) with nothing buffered;
 * undefined otherwise.
 */
function takeHandle(accepted: net.Socket): { handle: object; onClose: () => void } | undefined {
  const old = accepted as net.Socket & AcceptedSocket;
  const handle = old._handle;
  if (!handle || accepted.readableLength > 0 || accepted.destroyed || !accepted.isPaused()) return undefined;
  // The peer's address is read (and cached) while the old object still holds the handle.
  void accepted.remoteAddress;
  const server = old._server;
  old._server = null;
  old._handle = null;
  return {
    handle,
    onClose: () => {
      if (!server) return;
      server._connections--;
      server._emitCloseIfDrained?.();
    },
  };
}
