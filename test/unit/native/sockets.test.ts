// test/unit/native/sockets.test.ts — native/sockopt.ts, sockerr.ts, ping.ts
// against the real kernel, on loopback only (127.0.0.1, ::1). Runs as root or
// as an unprivileged user; ping tests skip unless net.ipv4.ping_group_range
// admits this process (kernel default "1 0" admits nobody, root included).
import dgram from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  NativeError,
  PingSocket,
  type SockError,
  SOL_SOCKET,
  SO_RCVBUF,
  attachRecvErr,
  bytesToIpv6,
  decodeSockaddr,
  echoRequest,
  encodeSockaddr,
  getSockName,
  getSockOptInt,
  ipv6ToBytes,
  parseEcho,
  pingAllowed,
  readErrorQueue,
  sharedPoller,
  socketFd,
} from '../../../native/index.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const sockets: dgram.Socket[] = [];
const pings: PingSocket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) {
    try {
      s.close();
    } catch {
      // already closed
    }
  }
  for (const p of pings.splice(0)) await p.close();
});

async function udp(family: 4 | 6): Promise<dgram.Socket> {
  const s = dgram.createSocket(family === 6 ? 'udp6' : 'udp4');
  sockets.push(s);
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.bind(0, family === 6 ? '::1' : '127.0.0.1', () => {
      s.off('error', reject);
      resolve();
    });
  });
  return s;
}

/** A port nothing listens on: bind, read the port, close. */
async function closedPort(family: 4 | 6): Promise<number> {
  const s = await udp(family);
  const port = s.address().port;
  s.close();
  return port;
}

const hasIpv6Loopback = await (async () => {
  const s = dgram.createSocket('udp6');
  try {
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.bind(0, '::1', () => resolve());
    });
    return true;
  } catch {
    return false;
  } finally {
    try {
      s.close();
    } catch {
      // never bound
    }
  }
})();

const ping = pingAllowed();

describe('sockopt: addresses and options', () => {
  it('round-trips sockaddr_in and sockaddr_in6', () => {
    const a4 = encodeSockaddr({ address: '127.0.0.1', port: 5353 });
    expect(a4.length).toBe(16);
    expect(decodeSockaddr(a4)).toEqual({ family: 4, address: '127.0.0.1', port: 5353 });
    const a6 = encodeSockaddr({ address: '2001:db8::1:0:0:1', port: 53 });
    expect(a6.length).toBe(28);
    expect(decodeSockaddr(a6)).toMatchObject({ family: 6, address: '2001:db8::1:0:0:1', port: 53 });
  });

  it('formats IPv6 like RFC 5952', () => {
    const f = (s: string): string => bytesToIpv6(ipv6ToBytes(s));
    expect(f('::1')).toBe('::1');
    expect(f('::')).toBe('::');
    expect(f('0:0:0:0:0:ffff:7f00:1')).toBe('::ffff:127.0.0.1');
    expect(f('2001:0db8:0:0:1:0:0:1')).toBe('2001:db8::1:0:0:1');
    expect(f('fe80::1%2')).toBe('fe80::1');
    expect(() => ipv6ToBytes('1.2.3.4')).toThrow(NativeError);
  });

  it('reads options and the bound name of a Node dgram socket', async () => {
    const s = await udp(4);
    const fd = socketFd(s);
    expect(getSockName(fd)).toEqual({ family: 4, address: '127.0.0.1', port: s.address().port });
    expect(getSockOptInt(fd, SOL_SOCKET, SO_RCVBUF)).toBeGreaterThan(0);
  });

  it('socketFd explains an unbound or closed socket', async () => {
    const s = dgram.createSocket('udp4');
    sockets.push(s);
    expect(() => socketFd(s)).toThrow(/not bound/);
    const t = await udp(4);
    t.close();
    expect(() => socketFd(t)).toThrow(/closed/);
  });
});

describe.each([4, 6] as const)('IP_RECVERR on a Node dgram socket, IPv%i', (family) => {
  const host = family === 6 ? '::1' : '127.0.0.1';

  it.skipIf(family === 6 && !hasIpv6Loopback)(
    'maps port unreachable to ECONNREFUSED with the destination, keeps other traffic, and leaves the loop idle',
    async () => {
      const dead = await closedPort(family);
      const echo = await udp(family);
      echo.on('message', (m, r) => echo.send(m, r.port, r.address));
      const s = await udp(family);
      const errs: SockError[] = [];
      const h = attachRecvErr(s, (e) => errs.push(e));
      const got: string[] = [];
      s.on('message', (m) => got.push(m.toString()));
      const sent: Array<string | null> = [];
      // One tick: on loopback the ICMP error is generated inside the first
      // sendmsg, so the next send would fail (and be lost) without the retry.
      for (const [msg, port] of [
        ['x1', dead],
        ['b1', echo.address().port],
        ['x2', dead],
        ['b2', echo.address().port],
      ] as const) {
        h.send(Buffer.from(msg), port, host, (err) => sent.push(err ? (err as NodeJS.ErrnoException).code! : null));
      }
      for (let i = 0; i < 100 && (got.length < 2 || errs.length < 2); i++) await sleep(10);

      expect(sent).toEqual([null, null, null, null]);
      expect(got.sort()).toEqual(['b1', 'b2']);
      expect(errs).toHaveLength(2);
      for (const e of errs) {
        expect(e).toMatchObject({
          code: 'ECONNREFUSED',
          errno: 111,
          origin: family === 6 ? 3 : 2, // SO_EE_ORIGIN_ICMP6 / ICMP
          icmpType: family === 6 ? 1 : 3, // destination unreachable
          icmpCode: family === 6 ? 4 : 3, // port unreachable
          dstAddr: host,
          dstPort: dead,
          offender: host,
        });
      }
      expect(errs.map((e) => e.payload.toString()).sort()).toEqual(['x1', 'x2']);
      expect(readErrorQueue(h.fd, family)).toEqual([]);

      // A queue left full would make libuv spin at 100% CPU; drained, it idles.
      const c0 = process.cpuUsage();
      await sleep(300);
      const c = process.cpuUsage(c0);
      expect((c.user + c.system) / 1000).toBeLessThan(100);
    },
  );

  it.skipIf(family === 6 && !hasIpv6Loopback)(
    'an ICMP error surfacing as a recvmsg error neither closes the socket nor drops queued datagrams',
    async () => {
      const dead = await closedPort(family);
      const peer = await udp(family);
      const s = await udp(family);
      const errs: SockError[] = [];
      const h = attachRecvErr(s, (e) => errs.push(e));
      const seen: string[] = [];
      s.on('error', (e) => seen.push(`error ${(e as NodeJS.ErrnoException).code} ${(e as NodeJS.ErrnoException).syscall}`));
      s.on('message', (m) => seen.push(`msg ${m}`));
      peer.send('d1', s.address().port, host);
      h.send(Buffer.from('x'), dead, host);
      peer.send('d2', s.address().port, host);
      for (let i = 0; i < 100 && seen.filter((x) => x.startsWith('msg')).length < 2; i++) await sleep(10);
      expect(seen).toEqual([`error ECONNREFUSED recvmsg`, 'msg d1', 'msg d2']);
      expect(errs.map((e) => [e.code, e.dstPort])).toEqual([['ECONNREFUSED', dead]]);
      expect(s.address().port).toBeGreaterThan(0); // still open

      // detach: IP_RECVERR off again, no more events
      h.detach();
      s.send('y', dead, host);
      await sleep(50);
      expect(errs).toHaveLength(1);
      expect(seen).toHaveLength(3);
    },
  );
});

describe('pingAllowed', () => {
  it('parses the sysctl and compares it with our groups', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tsnet-ping-'));
    try {
      const f = join(dir, 'range');
      writeFileSync(f, '1\t0\n');
      const no = pingAllowed(f);
      expect(no.ok).toBe(false);
      expect(no.range).toEqual([1, 0]);
      expect(no.reason).toMatch(/ping_group_range "1 0".*sysctl -w net\.ipv4\.ping_group_range="0 2147483647"/);
      writeFileSync(f, '0\t2147483647\n');
      expect(pingAllowed(f)).toEqual({ ok: true, range: [0, 2147483647] });
      expect(pingAllowed(join(dir, 'missing')).ok).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('PingSocket', () => {
  it.skipIf(ping.ok)('fails with EACCES naming ping_group_range and the fix', () => {
    let err: unknown;
    try {
      pings.push(PingSocket.open(4));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NativeError);
    expect((err as NativeError).code).toBe('EACCES');
    expect((err as NativeError).message).toMatch(/ping_group_range.*sysctl -w net\.ipv4\.ping_group_range="0 2147483647"/);
  });

  it.skipIf(!ping.ok)('echoes to 127.0.0.1: the kernel sets the ident, keeps seq and payload', async () => {
    const s = PingSocket.open(4);
    pings.push(s);
    expect(s.ident()).toBe(0); // unbound
    const replies: Array<{ from: string; echo: ReturnType<typeof parseEcho> }> = [];
    s.watch(() => {
      const buf = Buffer.alloc(1500);
      for (let r; (r = s.receive(buf)); ) replies.push({ from: r.from, echo: parseEcho(buf.subarray(0, r.len)) });
    });
    const req = echoRequest(4, 0x1234, 7, Buffer.from('tsnet-ping'));
    const copy = Buffer.from(req);
    expect(s.send('127.0.0.1', req)).toBe(true);
    expect(req.equals(copy)).toBe(true);
    const ident = s.ident();
    expect(ident).toBeGreaterThan(0);
    for (let i = 0; i < 100 && replies.length === 0; i++) await sleep(10);
    expect(replies).toHaveLength(1);
    expect(replies[0]!.from).toBe('127.0.0.1');
    // The reply carries the SOCKET's ident, not the 0x1234 we wrote.
    expect(replies[0]!.echo).toMatchObject({ type: 0, code: 0, ident, seq: 7 });
    expect(replies[0]!.echo!.payload.toString()).toBe('tsnet-ping');
    expect(s.readErrors()).toEqual([]);
    await s.close();
    expect(sharedPoller().size).toBe(0);
  });

  it.skipIf(!ping.ok)('bind() chooses the ident (not exclusively); non-echo messages are EINVAL', async () => {
    const s = PingSocket.open(4);
    pings.push(s);
    s.bind(0);
    const ident = s.ident();
    expect(ident).toBeGreaterThan(0);
    expect(() => s.send('127.0.0.1', Buffer.from([13, 0, 0, 0, 0, 0, 0, 0]))).toThrow(
      expect.objectContaining({ code: 'EINVAL', syscall: 'sendto' }),
    );
    // Ping sockets are created with SO_REUSEADDR semantics (INET_PROTOSW_REUSE):
    // a second socket may bind the same ident, and then ALL replies for that
    // ident go to one of them (the last bound). Never bind a guest's ident.
    const t = PingSocket.open(4);
    pings.push(t);
    t.bind(ident);
    expect(t.ident()).toBe(ident);
    s.send('127.0.0.1', echoRequest(4, 0, 1));
    t.send('127.0.0.1', echoRequest(4, 0, 2));
    const buf = Buffer.alloc(64);
    const seqs = (p: PingSocket): number[] => {
      const out: number[] = [];
      for (let r; (r = p.receive(buf)); ) out.push(parseEcho(buf.subarray(0, r.len))!.seq);
      return out;
    };
    const got: number[][] = [[], []];
    for (let i = 0; i < 100 && got[0]!.length + got[1]!.length < 2; i++) {
      await sleep(5);
      got[0]!.push(...seqs(s));
      got[1]!.push(...seqs(t));
    }
    expect(got.map((g) => g.length).sort()).toEqual([0, 2]);
  });

  it.skipIf(!ping.ok || !hasIpv6Loopback)('echoes to ::1', async () => {
    const s = PingSocket.open(6);
    pings.push(s);
    const buf = Buffer.alloc(1500);
    expect(s.send('::1', echoRequest(6, 1, 9, Buffer.from('v6')))).toBe(true);
    let r: { len: number; from: string } | null = null;
    for (let i = 0; i < 100 && !(r = s.receive(buf)); i++) await sleep(10);
    expect(r?.from).toBe('::1');
    expect(parseEcho(buf.subarray(0, r!.len))).toMatchObject({ type: 129, ident: s.ident(), seq: 9 });
  });
});
