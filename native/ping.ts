// native/ping.ts — owns: unprivileged ICMP echo through Linux "ping
// sockets": socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP) and
// socket(AF_INET6, SOCK_DGRAM, IPPROTO_ICMPV6). How tsnet re-sends a guest's
// pings to outside addresses without CAP_NET_RAW.
//
// Read this first (verified on Linux 6.x, see sockets.test.ts):
// - Allowed only when the caller's egid or a supplementary gid lies inside
//   net.ipv4.ping_group_range (one sysctl for IPv4 AND IPv6; per network
//   namespace). The kernel default "1 0" allows nobody — not even root:
//   socket() fails with EACCES. pingAllowed() tells in advance.
// - send(): the message must be an ICMP Echo Request (type 8 / ICMPv6 128,
//   code 0; anything else is EINVAL). The kernel OVERWRITES the identifier
//   with the socket's ident (its "port": chosen at bind, or on the first
//   send if unbound) and computes the checksum (ICMPv6: with the pseudo
//   header). Sequence number and payload go out as given.
// - receive(): returns the ICMP message without the IP header. Replies are
//   matched to the socket by identifier, and the reply's identifier is
//   delivered AS ON THE WIRE, i.e. it is the socket's ident, NOT the one
//   the caller put in its request: nothing is rewritten back. tsnet must
//   restore the guest's identifier (and fix the checksum) itself — keep one
//   PingSocket per guest (address, identifier), or map by sequence number.
//   Do not bind() the guest's identifier instead: idents are not exclusive
//   between ping sockets (see bind()).
// - Replies are matched by ident only (and bound address/device), not by
//   the address pinged: one socket receives replies from every destination.
// - ICMP errors for our echoes (unreachable, time exceeded) are dropped
//   unless IP_RECVERR/IPV6_RECVERR is on (PingSocket.open(f, {recvErr:
//   true}) does it); they then show up in the error queue (readErrors()),
//   payload = the original echo header (type, code, csum, ident, seq), and
//   the fd polls POLLERR until drained. As with UDP (sockerr.ts), the
//   pending sk_err makes the next recv or send fail once with that errno;
//   receive() and send() absorb that (drain + retry) and deliver the
//   errors to the onError callback of watch() / to readErrors().

import { readFileSync } from 'node:fs';
import { E, NativeError, closeFd, errno, errnoName, raw } from './libc.js';
import { POLLERR, POLLIN, POLLNVAL, type Poller, sharedPoller } from './poll.js';
import { ICMP_ERRNOS, type SockError, enableRecvErr, readErrorQueue } from './sockerr.js';
import {
  AF_INET,
  AF_INET6,
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
  IP_TTL,
  IPV6_UNICAST_HOPS,
  MSG_DONTWAIT,
  SOCKADDR_STORAGE_LEN,
  SOCK_DGRAM,
  SOL_IP,
  SOL_IPV6,
  bindSocket,
  decodeSockaddr,
  encodeSockaddr,
  getSockName,
  openSocket,
  setSockOptInt,
  takeSocketError,
  type Family,
} from './sockopt.js';

export const PING_GROUP_RANGE_PATH = '/proc/sys/net/ipv4/ping_group_range';
export const PING_SYSCTL_FIX = 'sysctl -w net.ipv4.ping_group_range="0 2147483647"';

export const ICMP_ECHO_REQUEST = 8;
export const ICMP_ECHO_REPLY = 0;
export const ICMPV6_ECHO_REQUEST = 128;
export const ICMPV6_ECHO_REPLY = 129;

export interface PingAllowed {
  ok: boolean;
  /** [low, high] from net.ipv4.ping_group_range ([1, 0] = nobody). */
  range: [number, number];
  /** Why not, with the fix. */
  reason?: string;
}

/**
 * Would socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP) be allowed for this
 * process? Compares the sysctl with process.getegid() and getgroups(), as
 * the kernel does (ping_init_sock). Does not open a socket.
 */
export function pingAllowed(path: string = PING_GROUP_RANGE_PATH): PingAllowed {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    return {
      ok: false,
      range: [1, 0],
      reason: `cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? String(e)}): kernel without ping sockets?`,
    };
  }
  const m = /^\s*(\d+)\s+(\d+)\s*$/.exec(text);
  if (!m) return { ok: false, range: [1, 0], reason: `cannot parse ${path}: ${JSON.stringify(text)}` };
  const range: [number, number] = [Number(m[1]), Number(m[2])];
  // The kernel's answer first: inside a user namespace the file shows the
  // range in that namespace's ids (unmapped ones as the overflow id), which
  // a comparison with our own ids there can get wrong.
  if (path === PING_GROUP_RANGE_PATH) {
    const fd = raw.socket(2 /* AF_INET */, 2 /* SOCK_DGRAM */, 1 /* IPPROTO_ICMP */);
    if (fd >= 0) {
      raw.close(fd);
      return { ok: true, range };
    }
  }
  const gids = [process.getegid?.() ?? -1, ...(process.getgroups?.() ?? [])];
  const inRange = (g: number): boolean => g >= range[0] && g <= range[1];
  if (path !== PING_GROUP_RANGE_PATH && gids.some(inRange)) return { ok: true, range };
  return {
    ok: false,
    range,
    reason:
      `gid ${gids[0]} (groups ${gids.slice(1).join(',') || 'none'}) is outside net.ipv4.ping_group_range ` +
      `"${range[0]} ${range[1]}"${range[0] > range[1] ? ' (nobody may open ping sockets)' : ''}; ` +
      `allow it with: ${PING_SYSCTL_FIX}`,
  };
}

export interface PingOpenOptions {
  /** Turn on IP_RECVERR / IPV6_RECVERR to learn about ICMP errors (default true). */
  recvErr?: boolean;
}

/**
 * An unprivileged ICMP echo socket (non-blocking, close-on-exec). All
 * methods are synchronous and never block.
 */
export class PingSocket {
  readonly fd: number;
  readonly family: Family;
  readonly recvErr: boolean;
  private closed = false;
  private poller: Poller | undefined;
  private pendingErrors: SockError[] = [];
  private onErr: ((e: SockError) => void) | undefined;
  private lastDst = '';
  private lastSa: Buffer = Buffer.alloc(0);
  private readonly fromBuf = Buffer.alloc(SOCKADDR_STORAGE_LEN);
  private readonly fromLen = Buffer.alloc(4);

  private constructor(fd: number, family: Family, recvErr: boolean) {
    this.fd = fd;
    this.family = family;
    this.recvErr = recvErr;
  }

  /**
   * Open a ping socket. Throws NativeError EACCES (message naming
   * net.ipv4.ping_group_range and the sysctl fix) when the process's
   * groups are outside the range; EAFNOSUPPORT without IPv6.
   */
  static open(family: Family, opts: PingOpenOptions = {}): PingSocket {
    const [domain, proto, what] =
      family === 6
        ? [AF_INET6, IPPROTO_ICMPV6, 'socket(AF_INET6, SOCK_DGRAM, IPPROTO_ICMPV6)']
        : [AF_INET, IPPROTO_ICMP, 'socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP)'];
    let fd: number;
    try {
      fd = openSocket(domain, SOCK_DGRAM, proto, true, `opening an ICMP${family === 6 ? 'v6' : ''} ping socket, ${what}`);
    } catch (e) {
      if (e instanceof NativeError && e.code === 'EACCES') {
        const why = pingAllowed();
        e.message +=
          ` — unprivileged ping sockets need the process's gid inside net.ipv4.ping_group_range` +
          ` (now "${why.range[0]} ${why.range[1]}", gid ${process.getegid?.()}); fix: ${PING_SYSCTL_FIX}`;
      }
      throw e;
    }
    const recvErr = opts.recvErr ?? true;
    const s = new PingSocket(fd, family, recvErr);
    if (recvErr) {
      try {
        enableRecvErr(fd, family);
      } catch (e) {
        closeFd(fd);
        throw e;
      }
    }
    return s;
  }

  /**
   * Choose the ident (the socket's "port") and/or source address before the
   * first send. ident 0 = the kernel's choice: an ident no other ping socket
   * of this netns uses. CAUTION: an explicit ident is NOT exclusive — ping
   * sockets carry SO_REUSEADDR semantics (INET_PROTOSW_REUSE), so a second
   * socket (any user's) may bind the same ident, and then every reply for
   * it goes to just one of them (the last bound). So let the kernel choose
   * and rewrite the guest's identifier in tsnet; do not bind guest idents.
   */
  bind(ident = 0, address: string = this.family === 6 ? '::' : '0.0.0.0'): void {
    this.check();
    bindSocket(this.fd, address, ident, this.family);
  }

  /**
   * The echo identifier the kernel writes into every request (getsockname
   * port). 0 until the socket is bound (explicitly or by the first send).
   */
  ident(): number {
    this.check();
    return getSockName(this.fd).port;
  }

  /** IP TTL / IPv6 unicast hop limit for the echo requests. */
  setTtl(ttl: number): void {
    this.check();
    if (this.family === 6) setSockOptInt(this.fd, SOL_IPV6, IPV6_UNICAST_HOPS, ttl, 'IPV6_UNICAST_HOPS');
    else setSockOptInt(this.fd, SOL_IP, IP_TTL, ttl, 'IP_TTL');
  }

  /**
   * sendto(dst): icmpMessage is a whole ICMP(v6) Echo Request (8-byte
   * header + data). The kernel replaces the identifier with ident() and
   * fills in the checksum; the caller's buffer is not modified. Returns
   * false if the send buffer is full (EAGAIN: drop, like a lossy link).
   * Throws NativeError: EINVAL (not an echo request), ENETUNREACH, ...
   */
  send(dst: string, icmpMessage: Uint8Array): boolean {
    this.check();
    if (dst !== this.lastDst) {
      this.lastSa = encodeSockaddr({ address: dst, port: 0, family: this.family });
      this.lastDst = dst;
    }
    for (let retries = 2; ; ) {
      const n = raw.sendto(this.fd, icmpMessage, icmpMessage.length, MSG_DONTWAIT, this.lastSa, this.lastSa.length);
      if (n >= 0) return true;
      const e = errno();
      if (e === E.EAGAIN) return false;
      if (e === E.EINTR) continue;
      // A pending ICMP error (sk_err) fails one send, which then sent nothing.
      if (this.recvErr && retries-- > 0 && this.absorb(e)) continue;
      throw new NativeError(e, 'sendto', `sending ICMP echo to ${dst} on fd ${this.fd}`);
    }
  }

  /**
   * recvfrom(): one ICMP message (no IP header) into buf, or null when none
   * is queued. `from` is the replying address. A reply's identifier is the
   * socket's ident(), not what the request carried (see file header).
   */
  receive(buf: Uint8Array): { len: number; from: string } | null {
    this.check();
    for (let retries = 2; ; ) {
      this.fromLen.writeUInt32LE(SOCKADDR_STORAGE_LEN, 0);
      const n = raw.recvfrom(this.fd, buf, buf.length, MSG_DONTWAIT, this.fromBuf, this.fromLen);
      if (n >= 0) {
        const a = decodeSockaddr(this.fromBuf, 0, Math.min(this.fromLen.readUInt32LE(0), SOCKADDR_STORAGE_LEN));
        return { len: n, from: a?.address ?? '' };
      }
      const e = errno();
      if (e === E.EAGAIN) return null;
      if (e === E.EINTR) continue;
      if (this.recvErr && retries-- > 0 && this.absorb(e)) continue;
      throw new NativeError(e, 'recvfrom', `receiving on ICMP socket fd ${this.fd}`);
    }
  }

  /**
   * ICMP errors collected so far (by send/receive/watch) plus whatever is
   * in the error queue now. Empty unless opened with recvErr.
   */
  readErrors(): SockError[] {
    this.check();
    const out = this.pendingErrors;
    this.pendingErrors = [];
    if (this.recvErr) out.push(...readErrorQueue(this.fd, this.family));
    return out;
  }

  /**
   * Watch through a Poller (default: the shared one). onReadable() runs
   * when replies are queued and must call receive() until null (level-
   * triggered). ICMP errors are drained here on POLLERR (else poll would
   * return at once forever) and passed to onError (or kept for
   * readErrors()). Call close() — not closeFd — to stop.
   */
  watch(onReadable: () => void, onError?: (e: SockError) => void, poller: Poller = sharedPoller()): void {
    this.check();
    if (this.poller && this.poller !== poller) throw new Error('PingSocket is already watched by another Poller');
    this.poller = poller;
    this.onErr = onError;
    this.flushErrors();
    poller.add(this.fd, (revents) => {
      if (this.closed) return;
      if (revents & POLLNVAL) return;
      if (revents & POLLERR) {
        this.collect();
        // Not an error-queue entry (recvErr off, or sk_err alone): clear it.
        takeSocketError(this.fd);
        this.flushErrors();
      }
      if (revents & POLLIN) onReadable();
    });
  }

  /** Stop watching; resolves when no poll references the fd any more. */
  async unwatch(): Promise<void> {
    const p = this.poller;
    this.poller = undefined;
    this.onErr = undefined;
    if (p) await p.remove(this.fd);
  }

  /**
   * Close the socket. If watched, the fd is closed only after the Poller
   * has let go of it (await the promise before assuming it is closed).
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const p = this.poller;
    this.poller = undefined;
    if (p) await p.remove(this.fd);
    closeFd(this.fd);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private check(): void {
    if (this.closed) throw new NativeError(E.EBADF, 'ping', 'using a closed PingSocket');
  }

  /** After a failed send/recv with errno e: was it a consumed ICMP error? Drain the queue if so. */
  private absorb(e: number): boolean {
    if (!ICMP_ERRNOS.has(errnoName(e))) return false;
    this.collect();
    this.flushErrors();
    return true;
  }

  private collect(): void {
    if (this.recvErr) this.pendingErrors.push(...readErrorQueue(this.fd, this.family));
  }

  private flushErrors(): void {
    const cb = this.onErr;
    if (!cb || this.pendingErrors.length === 0) return;
    const errs = this.pendingErrors;
    this.pendingErrors = [];
    for (const e of errs) cb(e);
  }
}

/**
 * Build an ICMP(v6) Echo Request: type, code 0, checksum 0 (the kernel
 * fills it for ping sockets), ident, seq, payload.
 */
export function echoRequest(family: Family, ident: number, seq: number, payload: Uint8Array = new Uint8Array(0)): Buffer {
  const b = Buffer.alloc(8 + payload.length);
  b[0] = family === 6 ? ICMPV6_ECHO_REQUEST : ICMP_ECHO_REQUEST;
  b.writeUInt16BE(ident & 0xffff, 4);
  b.writeUInt16BE(seq & 0xffff, 6);
  b.set(payload, 8);
  return b;
}

/** Parse an ICMP(v6) echo message header (reply or request). */
export function parseEcho(msg: Uint8Array): { type: number; code: number; checksum: number; ident: number; seq: number; payload: Buffer } | null {
  if (msg.length < 8) return null;
  const b = Buffer.from(msg.buffer, msg.byteOffset, msg.length);
  return {
    type: b[0]!,
    code: b[1]!,
    checksum: b.readUInt16BE(2),
    ident: b.readUInt16BE(4),
    seq: b.readUInt16BE(6),
    payload: Buffer.from(b.subarray(8)),
  };
}
