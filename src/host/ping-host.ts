// The host side of ICMP echo to outside addresses: one unprivileged ping
// socket (native/ping.ts) per guest echo flow, IPv4 or IPv6 as the flow is
// (the same sysctl, net.ipv4.ping_group_range, allows both). When the machine's
// net.ipv4.ping_group_range excludes us, pings to outside addresses are
// dropped and one warning at start says why and how to fix it; pings to the
// virtual addresses are answered by the stack regardless.
// ICMP errors a ping socket receives are drained and counted (never left to
// pile up); a send the host refuses (ENETUNREACH, EMFILE for a new socket)
// drops that echo, counted. Socket events run under the runtime's Guard.

import { performance } from 'node:perf_hooks';
import { echoRequest, parseEcho, PingSocket, pingAllowed } from '../../native/index.js';
import type { EchoFlow, EchoHooks, EchoTable } from '../stack/icmp-echo.js';
import { ipv4FromString, ipv4ToString } from '../wire/address.js';
import type { Guard } from './guard.js';
import type { Logger } from './log.js';
import { monotonicClock, type Clock } from './clock.js';

export class PingHost implements EchoHooks {
  private readonly sockets = new Map<number, PingSocket>();
  private table!: EchoTable;
  private readonly rbuf = Buffer.allocUnsafe(65536);

  constructor(
    private readonly log: Logger,
    private readonly guard: Guard,
    private readonly kick: () => void,
    private readonly clock: Clock = monotonicClock,
  ) {}

  /**
   * Whether ping sockets can be used; when not, says so once, at info (a
   * host setting, not a fault: many hosts ship it so), with the fix.
   */
  static available(log: Logger): boolean {
    const p = pingAllowed();
    if (!p.ok) {
      log.info(
        `ping to outside addresses is off: ${p.reason ?? 'ping sockets are not permitted'} ` +
          '(ping to the gateway and DNS addresses still works)',
      );
    }
    return p.ok;
  }

  bind(table: EchoTable): void {
    this.table = table;
  }

  get size(): number {
    return this.sockets.size;
  }

  send(flow: EchoFlow, addr: number, seq: number, data: Buffer): void {
    this.sendFamily(flow, 4, ipv4ToString(addr), seq, data);
  }

  send6(flow: EchoFlow, addr: string, seq: number, data: Buffer): void {
    this.sendFamily(flow, 6, addr, seq, data);
  }

  /** An echo request from the flow's ping socket (one per flow, of the flow's family). */
  private sendFamily(flow: EchoFlow, family: 4 | 6, addr: string, seq: number, data: Buffer): void {
    let sock = this.sockets.get(flow.id);
    if (!sock) {
      try {
        sock = PingSocket.open(family);
      } catch (e) {
        this.log.debug({ err: (e as Error).message }, 'ping socket failed');
        this.table.drop('icmp-echo-socket-failed');
        return;
      }
      const s = sock;
      this.sockets.set(flow.id, s);
      const fail = () => this.table.fail(flow.id);
      s.watch(
        this.guard.wrap('ping-host', () => {
          for (;;) {
            const r = s.receive(this.rbuf);
            if (!r) break;
            const echo = parseEcho(this.rbuf.subarray(0, r.len));
            // Echo reply: type 0, or 129 over ICMPv6.
            if (!echo || echo.type !== (family === 6 ? 129 : 0)) continue;
            const from = family === 6 ? r.from.split('%')[0]! : ipv4FromString(r.from);
            this.table.deliver(this.clock(), flow.id, from, echo.seq, Buffer.from(echo.payload));
          }
          this.kick();
        }, fail),
        // Drained from the error queue by the socket; counted, not kept.
        this.guard.wrap('ping-host', (e) => this.table.drop('icmp-echo-error', e.code), fail),
      );
    }
    try {
      sock.send(addr, echoRequest(family, 0, seq, data));
    } catch (e) {
      this.log.debug({ err: (e as Error).message }, 'ping send failed');
      this.table.drop('icmp-echo-send-failed', (e as { code?: string }).code);
    }
  }

  close(flow: EchoFlow): void {
    const s = this.sockets.get(flow.id);
    if (!s) return;
    this.sockets.delete(flow.id);
    void s.close();
  }

  closeAll(): void {
    for (const s of this.sockets.values()) void s.close();
    this.sockets.clear();
  }
}
