// The host side of UDP flows: one unconnected dgram socket per guest source
// endpoint (as slirp4netns), sending every datagram of the flow to its
// destination; replies are handed back to the stack with their source.
// IP_RECVERR (native/sockerr.ts) turns the host's ICMP errors into calls the
// stack answers with ICMP unreachable toward the guest — so a closed host
// port gives the guest ECONNREFUSED, as on a real network.
//
// DNS: queries to the DNS address go out from a separate per-flow socket to
// the nameservers, the first one first; on timeout or error the query is
// re-sent to the next one. Replies are matched by query ID.

import dgram from 'node:dgram';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { attachRecvErr, type RecvErrHandle, type SockError } from '../../native/index.js';
import type { InboundUdpFlow, UdpFlow, UdpHooks, UdpTable } from '../stack/udp.js';
import { ipv4FromString, ipv4ToString } from '../wire/address.js';
import type { Logger } from './log.js';

export interface UdpHostOptions {
  outboundAddr?: string;
  nameservers: () => string[];
  /** Per-nameserver wait before trying the next one. */
  dnsTimeoutMs?: number;
  log: Logger;
}

const DEFAULT_DNS_TIMEOUT_MS = 2000;
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
  timer: NodeJS.Timeout;
}

interface HostFlow {
  main?: BoundSocket;
  dns?: BoundSocket;
  queries: Map<number, DnsQuery>;
}

export class UdpHost implements UdpHooks {
  private readonly flows = new Map<number, HostFlow>();
  private table!: UdpTable;

  constructor(private readonly opts: UdpHostOptions) {}

  bind(table: UdpTable): void {
    this.table = table;
  }

  /** Port forwarding's UDP side (set by the Forwarder). */
  forward: { reply(flow: InboundUdpFlow, payload: Buffer): void; closed(flow: InboundUdpFlow): void } | undefined;

  forwardReply(flow: InboundUdpFlow, payload: Buffer): void {
    this.forward?.reply(flow, payload);
  }

  forwardClosed(flow: InboundUdpFlow): void {
    this.forward?.closed(flow);
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

  private open(flowId: number, family: 4 | 6, onMessage: (msg: Buffer, rinfo: dgram.RemoteInfo) => void, onIcmp: (e: SockError) => void): BoundSocket {
    const socket = dgram.createSocket({ type: family === 6 ? 'udp6' : 'udp4' });
    const b: BoundSocket = { socket, recverr: undefined, ready: false, queue: [], closed: false };
    socket.on('message', onMessage);
    socket.on('error', (err: NodeJS.ErrnoException) => {
      // attachRecvErr handles ICMP-derived errors; anything else is logged.
      this.opts.log.debug({ flow: flowId, err: err.code }, 'udp socket error');
    });
    const local = family === 4 ? this.opts.outboundAddr : undefined;
    socket.bind({ port: 0, address: local }, () => {
      b.ready = true;
      try {
        b.recverr = attachRecvErr(socket, onIcmp, { onOtherError: () => {} });
      } catch (e) {
        this.opts.log.warn({ err: (e as Error).message }, 'IP_RECVERR unavailable: no ICMP errors for UDP');
      }
      for (const [msg, port, addr] of b.queue) this.sendOn(b, msg, port, addr);
      b.queue = [];
    });
    return b;
  }

  private sendOn(b: BoundSocket, msg: Buffer, port: number, addr: string): void {
    if (b.closed) return;
    if (!b.ready) {
      b.queue.push([msg, port, addr]);
      return;
    }
    const cb = (err: Error | null) => {
      if (err) this.opts.log.debug({ err: (err as NodeJS.ErrnoException).code, addr, port }, 'udp send failed');
    };
    if (b.recverr) b.recverr.send(msg, port, addr, cb);
    else b.socket.send(msg, port, addr, cb);
  }

  private closeSocket(b: BoundSocket | undefined): void {
    if (!b || b.closed) return;
    b.closed = true;
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
        this.table.deliver(performance.now(), id, src, rinfo.port, msg);
      },
      (e) => {
        const code = ERRNO_TO_ICMP_CODE[e.code];
        if (code === undefined || !net.isIPv4(e.dstAddr)) return;
        this.table.unreachable(id, ipv4FromString(e.dstAddr), e.dstPort, code);
      },
    );
    // The payload is a view into the TAP read buffer: copy before the async send.
    this.sendOn(f.main, Buffer.from(payload), port, ipv4ToString(addr));
  }

  sendDns(flow: UdpFlow, payload: Buffer): void {
    const servers = this.opts.nameservers();
    const id = flow.id;
    if (servers.length === 0 || payload.length < 12) {
      this.table.unreachable(id, 0, 53, 3, true);
      return;
    }
    const f = this.hostFlow(flow);
    const family = servers.some((s) => net.isIPv6(s.split('%')[0]!)) && !servers.some((s) => net.isIPv4(s)) ? 6 : 4;
    f.dns ??= this.open(
      id,
      family,
      (msg) => {
        if (msg.length < 2) return;
        const q = f.queries.get(msg.readUInt16BE(0));
        if (!q) return; // late answer from a slower nameserver
        clearTimeout(q.timer);
        f.queries.delete(msg.readUInt16BE(0));
        this.table.deliver(performance.now(), id, 0, 53, msg, true);
      },
      (e) => {
        // That nameserver is not listening: try the next one for queries sent to it.
        for (const [qid, q] of f.queries) {
          if (servers[q.server] === e.dstAddr.replace(/^::ffff:/, '')) this.nextServer(id, f, qid);
        }
      },
    );
    const qid = payload.readUInt16BE(0);
    const old = f.queries.get(qid);
    if (old) clearTimeout(old.timer);
    const q: DnsQuery = { payload: Buffer.from(payload), server: -1, timer: undefined as unknown as NodeJS.Timeout };
    f.queries.set(qid, q);
    this.nextServer(id, f, qid);
  }

  private nextServer(flowId: number, f: HostFlow, qid: number): void {
    const q = f.queries.get(qid);
    if (!q || !f.dns) return;
    clearTimeout(q.timer);
    const servers = this.opts.nameservers();
    q.server++;
    if (q.server >= servers.length) {
      f.queries.delete(qid);
      this.opts.log.debug({ flow: flowId, qid }, 'DNS query: no nameserver answered');
      this.table.unreachable(flowId, 0, 53, 3, true);
      return;
    }
    const server = servers[q.server]!;
    q.timer = setTimeout(() => this.nextServer(flowId, f, qid), this.opts.dnsTimeoutMs ?? DEFAULT_DNS_TIMEOUT_MS);
    q.timer.unref();
    this.sendOn(f.dns, q.payload, 53, server);
  }

  close(flow: UdpFlow): void {
    const f = this.flows.get(flow.id);
    if (!f) return;
    this.flows.delete(flow.id);
    for (const q of f.queries.values()) clearTimeout(q.timer);
    this.closeSocket(f.main);
    this.closeSocket(f.dns);
  }

  closeAll(): void {
    for (const id of [...this.flows.keys()]) {
      const f = this.flows.get(id)!;
      for (const q of f.queries.values()) clearTimeout(q.timer);
      this.closeSocket(f.main);
      this.closeSocket(f.dns);
    }
    this.flows.clear();
  }
}
