// The host side of UDP flows: one unconnected dgram socket per guest source
// endpoint (as slirp4netns), sending every datagram of the flow to its
// destination; replies are handed back to the stack with their source.
// An IPv6 flow's socket is a udp6 one (send6), with IPV6_RECVERR likewise.
// IP_RECVERR (native/sockerr.ts) turns the host's ICMP errors into calls the
// stack answers with ICMP unreachable toward the guest — so a closed host
// port gives the guest ECONNREFUSED, as on a real network.
//
// DNS: queries to the DNS address go out from a separate per-flow socket to
// the nameservers, the first one first; on timeout or error the query is
// re-sent to the next one. A reply is accepted only from a nameserver the
// query was sent to, from port 53, with the query's ID.
//
// Budgets: datagrams waiting for bind() (MAX_BIND_QUEUE per socket),
// datagrams in a socket's send queue and DNS queries in flight
// (MAX_DNS_PER_FLOW, MAX_DNS_TOTAL) are bounded and count against the
// stack's memory budget; beyond them datagrams are dropped and counted. A
// socket that cannot be created or bound (EMFILE, ...) fails its flow: ICMP
// host unreachable to the guest, the flow closed, nothing queued forever.
// Every socket event and timer runs under the runtime's Guard.

import dgram from 'node:dgram';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { attachRecvErr, type RecvErrHandle, type SockError } from '../../native/index.js';
import type { InboundUdpFlow, UdpFlow, UdpHooks, UdpTable } from '../stack/udp.js';
import { ipv4FromString, ipv4ToString } from '../wire/address.js';
import type { Guard } from './guard.js';
import type { Logger } from './log.js';
import type { Clock } from './clock.js';

export interface UdpHostOptions {
  outboundAddr?: string;
  outboundAddr6?: string;
  nameservers: () => string[];
  /** Per-nameserver wait before trying the next one. */
  dnsTimeoutMs?: number;
  log: Logger;
  guard: Guard;
  /** Where "now" comes from (the runtime's). */
  clock: Clock;
}

const DEFAULT_DNS_TIMEOUT_MS = 2000;
/** Datagrams one socket holds while bind() completes. */
export const MAX_BIND_QUEUE = 64;
/** Bytes one socket may have queued in the kernel-bound send queue. */
export const MAX_SEND_QUEUE = 256 * 1024;
/** DNS queries in flight, per guest flow and in all. */
export const MAX_DNS_PER_FLOW = 64;
export const MAX_DNS_TOTAL = 1024;
/** ICMP destination unreachable codes (RFC 792) for host-side errnos. */
const ERRNO_TO_ICMP_CODE: Record<string, number> = {
  ECONNREFUSED: 3, // port unreachable
  EHOSTUNREACH: 1,
  ENETUNREACH: 0,
  EPROTO: 2,
};

interface BoundSocket {
  socket: dgram.Socket;
  recverr: RecvErrHandle | undefined;
  ready: boolean;
  /** Datagrams waiting for bind() to finish. */
  queue: Array<[Buffer, number, string]>;
  closed: boolean;
}

interface DnsQuery {
  payload: Buffer;
  server: number;
  /** Nameservers the query was sent to (replies are accepted only from these). */
  sentTo: Set<string>;
  timer: NodeJS.Timeout;
}

interface HostFlow {
  main?: BoundSocket;
  dns?: BoundSocket;
  /** The DNS socket's family (6: dual-stack, for a list with an IPv6 nameserver). */
  dnsFamily?: 4 | 6;
  queries: Map<number, DnsQuery>;
}

export class UdpHost implements UdpHooks {
  private readonly flows = new Map<number, HostFlow>();
  private table!: UdpTable;
  private dnsInFlight = 0;

  constructor(
    private readonly opts: UdpHostOptions,
    /** Asks the runtime to flush the stack soon (after host events). */
    private readonly kick: () => void = () => {},
  ) {}

  bind(table: UdpTable): void {
    this.table = table;
  }

  /** Port forwarding's UDP side (set by the Forwarder). */
  forward: { reply(flow: InboundUdpFlow, payload: Buffer): void; closed(flow: InboundUdpFlow): void; refused(flow: InboundUdpFlow): void } | undefined;

  forwardReply(flow: InboundUdpFlow, payload: Buffer): void {
    this.forward?.reply(flow, payload);
  }

  forwardClosed(flow: InboundUdpFlow): void {
    this.forward?.closed(flow);
  }

  forwardRefused(flow: InboundUdpFlow): void {
    this.forward?.refused(flow);
  }

  get sockets(): number {
    let n = 0;
    for (const f of this.flows.values()) n += (f.main ? 1 : 0) + (f.dns ? 1 : 0);
    return n;
  }

  private hostFlow(flow: UdpFlow): HostFlow {
    let f = this.flows.get(flow.id);
    if (!f) this.flows.set(flow.id, (f = { queries: new Map() }));
    return f;
  }

  /**
   * A socket for a flow. If it cannot be bound (EMFILE, EADDRNOTAVAIL for
   * --outbound-addr, ...) onFail runs once: the flow is failed, never left
   * queueing.
   */
  private open(
    flowId: number,
    family: 4 | 6,
    onMessage: (msg: Buffer, rinfo: dgram.RemoteInfo) => void,
    onIcmp: (e: SockError) => void,
    onFail: (code: string) => void,
    /** Bind to --outbound-addr/--outbound-addr6 (false: a dual-stack socket that must reach IPv4 too). */
    bindOutbound = true,
  ): BoundSocket {
    const guard = this.opts.guard;
    const socket = dgram.createSocket({ type: family === 6 ? 'udp6' : 'udp4' });
    const b: BoundSocket = { socket, recverr: undefined, ready: false, queue: [], closed: false };
    const fail = () => this.failFlow(flowId);
    socket.on('message', guard.wrap('udp-host', onMessage, fail));
    socket.on(
      'error',
      guard.wrap('udp-host', (err: NodeJS.ErrnoException) => {
        if (!b.ready && !b.closed) {
          // bind() failed: nothing can ever be sent from this socket.
          this.opts.log.debug({ flow: flowId, err: err.code }, 'udp socket bind failed');
          this.dropQueue(b);
          onFail(err.code ?? 'EIO');
          return;
        }
        // attachRecvErr handles ICMP-derived errors; anything else is logged.
        this.opts.log.debug({ flow: flowId, err: err.code }, 'udp socket error');
      }, fail),
    );
    const local = !bindOutbound ? undefined : family === 4 ? this.opts.outboundAddr : this.opts.outboundAddr6;
    socket.bind(
      { port: 0, address: local },
      guard.wrap('udp-host', () => {
        if (b.closed) return;
        b.ready = true;
        try {
          b.recverr = attachRecvErr(socket, guard.wrap('udp-host', onIcmp, fail), { onOtherError: () => {} });
        } catch (e) {
          this.opts.log.warn({ err: (e as Error).message }, 'IP_RECVERR unavailable: no ICMP errors for UDP');
        }
        const queued = b.queue;
        b.queue = [];
        for (const [msg, port, addr] of queued) {
          this.table.budget.release(msg.length);
          this.sendOn(b, msg, port, addr);
        }
      }, fail),
    );
    return b;
  }

  /** Closes a flow whose host side threw (the guard's onFail): ICMP host unreachable, flow gone. */
  private failFlow(flowId: number): void {
    this.table.fail(this.opts.clock(), flowId, 0, 0);
    this.kick();
  }

  private dropQueue(b: BoundSocket): void {
    for (const [msg] of b.queue) this.table.budget.release(msg.length);
    b.queue = [];
  }

  private sendOn(b: BoundSocket, msg: Buffer, port: number, addr: string): void {
    if (b.closed) return;
    const budget = this.table.budget;
    if (!b.ready) {
      if (b.queue.length >= MAX_BIND_QUEUE || !budget.take(msg.length)) {
        this.table.drop('udp-queue-full', `${addr}:${port}`);
        return;
      }
      b.queue.push([msg, port, addr]);
      return;
    }
    // The kernel-bound queue (libuv's, while the socket buffer is full) is
    // bounded per socket and counted against the memory budget.
    if (b.socket.getSendQueueSize() + msg.length > MAX_SEND_QUEUE || !budget.take(msg.length)) {
      this.table.drop('udp-queue-full', `${addr}:${port}`);
      return;
    }
    const cb = (err: Error | null) => {
      budget.release(msg.length);
      if (err) this.opts.log.debug({ err: (err as NodeJS.ErrnoException).code, addr, port }, 'udp send failed');
    };
    try {
      if (b.recverr) b.recverr.send(msg, port, addr, cb);
      else b.socket.send(msg, port, addr, cb);
    } catch (e) {
      budget.release(msg.length);
      throw e;
    }
  }

  private closeSocket(b: BoundSocket | undefined): void {
    if (!b || b.closed) return;
    b.closed = true;
    this.dropQueue(b);
    b.recverr?.detach();
    b.socket.close();
  }

  send(flow: UdpFlow, addr: number, port: number, payload: Buffer): void {
    const f = this.hostFlow(flow);
    const id = flow.id;
    f.main ??= this.open(
      id,
      4,
      (msg, rinfo) => {
        const src = net.isIPv4(rinfo.address) ? ipv4FromString(rinfo.address) : -1;
        if (src < 0) return;
        this.table.deliver(this.opts.clock(), id, src, rinfo.port, msg);
        this.kick();
      },
      (e) => {
        const code = ERRNO_TO_ICMP_CODE[e.code];
        if (code === undefined || !net.isIPv4(e.dstAddr)) return;
        this.table.unreachable(this.opts.clock(), id, ipv4FromString(e.dstAddr), e.dstPort, code);
        this.kick();
      },
      () => {
        this.table.fail(this.opts.clock(), id, addr, port);
        this.kick();
      },
    );
    // The payload is a view into the TAP read buffer: copy before the async send.
    this.sendOn(f.main, Buffer.from(payload), port, ipv4ToString(addr));
  }

  /** An IPv6 flow's datagram to an IPv6 host address: the flow's socket is a udp6 one. */
  send6(flow: UdpFlow, addr: string, port: number, payload: Buffer): void {
    const f = this.hostFlow(flow);
    const id = flow.id;
    f.main ??= this.open(
      id,
      6,
      (msg, rinfo) => {
        // A v4-mapped source is an IPv4 host the guest never addressed over IPv6.
        if (!net.isIPv6(rinfo.address) || rinfo.address.startsWith('::ffff:')) return;
        this.table.deliver(this.opts.clock(), id, rinfo.address.split('%')[0]!, rinfo.port, msg);
        this.kick();
      },
      (e) => {
        const code = ERRNO_TO_ICMP_CODE[e.code];
        if (code === undefined || !net.isIPv6(e.dstAddr)) return;
        this.table.unreachable(this.opts.clock(), id, e.dstAddr, e.dstPort, code);
        this.kick();
      },
      () => {
        this.table.fail(this.opts.clock(), id, addr, port);
        this.kick();
      },
    );
    this.sendOn(f.main, Buffer.from(payload), port, addr);
  }

  sendDns(flow: UdpFlow, payload: Buffer): void {
    const servers = this.opts.nameservers();
    const id = flow.id;
    if (servers.length === 0 || payload.length < 12) {
      this.table.unreachable(this.opts.clock(), id, 0, 53, 3, true);
      return;
    }
    const f = this.hostFlow(flow);
    // Any IPv6 nameserver: one dual-stack udp6 socket reaches both kinds
    // (IPv4 ones as ::ffff:a.b.c.d); else a udp4 socket.
    const family = servers.some((s) => net.isIPv6(s.split('%')[0]!)) ? 6 : 4;
    if (!f.dns) f.dnsFamily = family;
    f.dns ??= this.open(
      id,
      family,
      (msg, rinfo) => {
        if (msg.length < 12) return;
        const qid = msg.readUInt16BE(0);
        const q = f.queries.get(qid);
        // Only the answer of a nameserver this query went to, from port 53:
        // anything else (a late or forged datagram) is dropped.
        if (!q || rinfo.port !== 53 || !q.sentTo.has(normalizeAddr(rinfo.address))) {
          this.table.drop('dns-reply-unexpected', `${rinfo.address}:${rinfo.port}`);
          return;
        }
        this.endQuery(f, qid, q);
        this.table.deliver(this.opts.clock(), id, 0, 53, msg, true);
        this.kick();
      },
      (e) => {
        // That nameserver is not listening: try the next one for queries sent to it.
        const failed = normalizeAddr(e.dstAddr);
        for (const [qid, q] of [...f.queries]) {
          const at = this.opts.nameservers()[q.server];
          if (at !== undefined && normalizeAddr(at) === failed) this.nextServer(id, f, qid);
        }
        this.kick();
      },
      () => {
        this.table.fail(this.opts.clock(), id, 0, 53, true);
        this.kick();
      },
      // A list mixing IPv6 and IPv4 nameservers: the socket must reach both.
      !(family === 6 && servers.some((x) => net.isIPv4(x))),
    );
    const qid = payload.readUInt16BE(0);
    const old = f.queries.get(qid);
    if (old) this.endQuery(f, qid, old);
    if (f.queries.size >= MAX_DNS_PER_FLOW || this.dnsInFlight >= MAX_DNS_TOTAL || !this.table.budget.take(payload.length)) {
      this.table.drop('dns-too-many-queries', `flow ${id}`);
      return;
    }
    const q: DnsQuery = { payload: Buffer.from(payload), server: -1, sentTo: new Set(), timer: undefined as unknown as NodeJS.Timeout };
    f.queries.set(qid, q);
    this.dnsInFlight++;
    this.nextServer(id, f, qid);
  }

  /** A query is answered, abandoned or replaced: its timer, count and budget go. */
  private endQuery(f: HostFlow, qid: number, q: DnsQuery): void {
    clearTimeout(q.timer);
    if (f.queries.get(qid) !== q) return;
    f.queries.delete(qid);
    this.dnsInFlight--;
    this.table.budget.release(q.payload.length);
  }

  private nextServer(flowId: number, f: HostFlow, qid: number): void {
    const q = f.queries.get(qid);
    if (!q || !f.dns) return;
    clearTimeout(q.timer);
    const servers = this.opts.nameservers();
    q.server++;
    if (q.server >= servers.length) {
      this.endQuery(f, qid, q);
      this.opts.log.debug({ flow: flowId, qid }, 'DNS query: no nameserver answered');
      this.table.unreachable(this.opts.clock(), flowId, 0, 53, 3, true);
      return;
    }
    const server = servers[q.server]!;
    q.sentTo.add(normalizeAddr(server));
    q.timer = setTimeout(
      this.opts.guard.wrap('dns-timer', () => {
        this.nextServer(flowId, f, qid);
        this.kick();
      }, () => this.failFlow(flowId)),
      this.opts.dnsTimeoutMs ?? DEFAULT_DNS_TIMEOUT_MS,
    );
    q.timer.unref();
    // On a udp6 socket an IPv4 nameserver is addressed as v4-mapped.
    const to = f.dnsFamily === 6 && net.isIPv4(server) ? `::ffff:${server}` : server;
    this.sendOn(f.dns, q.payload, 53, to);
  }

  close(flow: UdpFlow): void {
    const f = this.flows.get(flow.id);
    if (!f) return;
    this.flows.delete(flow.id);
    this.release(f);
  }

  private release(f: HostFlow): void {
    for (const [qid, q] of [...f.queries]) this.endQuery(f, qid, q);
    this.closeSocket(f.main);
    this.closeSocket(f.dns);
  }

  closeAll(): void {
    for (const f of this.flows.values()) this.release(f);
    this.flows.clear();
  }
}

/** An address as the socket layer reports it: no IPv4-mapped prefix, no zone. */
function normalizeAddr(addr: string): string {
  return addr.replace(/^::ffff:/, '').split('%')[0]!;
}
