// Servers on the host loopback for integration tests: a TCP source that
// streams random bytes, a sink that hashes what it gets, an echo server, a
// UDP echo server and a tiny authoritative DNS server (UDP and TCP). Each
// records sha256s so a test can compare with what the guest saw.

import crypto from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';

export interface Listening {
  port: number;
  close(): Promise<void>;
}

function closeServer(server: net.Server, sockets: Set<net.Socket>): Promise<void> {
  for (const s of sockets) s.destroy();
  return new Promise((r) => server.close(() => r()));
}

function track(server: net.Server): Set<net.Socket> {
  const sockets = new Set<net.Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
  });
  return sockets;
}

function listen(server: net.Server | dgram.Socket, host: string, port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    if (server instanceof net.Server) {
      server.once('error', reject);
      server.listen(port, host, () => resolve((server.address() as net.AddressInfo).port));
    } else {
      server.once('error', reject);
      server.bind(port, host, () => resolve(server.address().port));
    }
  });
}

/** Streams `bytes` random bytes to each client, then closes; sha256 of what was sent per connection. */
export async function sourceServer(bytes: number, host = '127.0.0.1'): Promise<Listening & { sent: string[] }> {
  const sent: string[] = [];
  const server = net.createServer((s) => {
    const h = crypto.createHash('sha256');
    let left = bytes;
    const pump = () => {
      while (left > 0) {
        const chunk = crypto.randomBytes(Math.min(1 << 20, left));
        left -= chunk.length;
        h.update(chunk);
        if (!s.write(chunk)) return void s.once('drain', pump);
      }
      sent.push(h.digest('hex'));
      s.end();
    };
    pump();
  });
  const sockets = track(server);
  const port = await listen(server, host);
  return { port, sent, close: () => closeServer(server, sockets) };
}

/** Hashes everything each client sends; closes when the client half-closes. */
export async function sinkServer(host = '127.0.0.1'): Promise<Listening & { received: Array<{ bytes: number; sha256: string }> }> {
  const received: Array<{ bytes: number; sha256: string }> = [];
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    const h = crypto.createHash('sha256');
    let n = 0;
    s.on('data', (d) => {
      h.update(d);
      n += d.length;
    });
    s.on('end', () => {
      received.push({ bytes: n, sha256: h.digest('hex') });
      s.end();
    });
  });
  const sockets = track(server);
  const port = await listen(server, host);
  return { port, received, close: () => closeServer(server, sockets) };
}

export async function echoServer(host = '127.0.0.1'): Promise<Listening & { connections: () => number }> {
  let count = 0;
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    count++;
    s.pipe(s);
  });
  const sockets = track(server);
  const port = await listen(server, host);
  return { port, connections: () => count, close: () => closeServer(server, sockets) };
}

export async function udpEchoServer(host = '127.0.0.1'): Promise<Listening> {
  const sock = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  sock.on('message', (msg, rinfo) => sock.send(msg, rinfo.port, rinfo.address));
  const port = await listen(sock, host);
  return { port, close: () => new Promise((r) => sock.close(() => r())) };
}

/** A free UDP/TCP port on host with nothing listening. */
export async function closedPort(host = '127.0.0.1'): Promise<number> {
  const s = net.createServer();
  const port = await listen(s, host);
  await new Promise((r) => s.close(r));
  return port;
}

// --- DNS -------------------------------------------------------------------

function parseQuestion(q: Buffer): { name: string; end: number } {
  const labels: string[] = [];
  let off = 12;
  while (q[off]! !== 0) {
    const len = q[off]!;
    labels.push(q.toString('ascii', off + 1, off + 1 + len));
    off += 1 + len;
  }
  return { name: labels.join('.').toLowerCase(), end: off + 5 };
}

function answer(q: Buffer, records: Record<string, string>): Buffer {
  const { name, end } = parseQuestion(q);
  const addr = records[name];
  const header = Buffer.from(q.subarray(0, 12));
  header.writeUInt16BE(0x8180 | (addr ? 0 : 3), 2); // response, RD+RA, NXDOMAIN if unknown
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(addr ? 1 : 0, 6);
  header.writeUInt16BE(0, 8);
  header.writeUInt16BE(0, 10);
  const question = q.subarray(12, end);
  if (!addr) return Buffer.concat([header, question]);
  const rr = Buffer.alloc(16);
  rr.writeUInt16BE(0xc00c, 0); // pointer to the name in the question
  rr.writeUInt16BE(1, 2); // A
  rr.writeUInt16BE(1, 4); // IN
  rr.writeUInt32BE(60, 6);
  rr.writeUInt16BE(4, 10);
  Buffer.from(addr.split('.').map(Number)).copy(rr, 12);
  return Buffer.concat([header, question, rr]);
}

/** An authoritative-only DNS server on host:53 (UDP and TCP). Needs root for port 53. */
export async function dnsServer(host: string, records: Record<string, string>): Promise<Listening & { queries: { udp: number; tcp: number } }> {
  const queries = { udp: 0, tcp: 0 };
  const udp = dgram.createSocket('udp4');
  udp.on('message', (msg, rinfo) => {
    queries.udp++;
    udp.send(answer(msg, records), rinfo.port, rinfo.address);
  });
  await listen(udp, host, 53);
  const tcp = net.createServer((s) => {
    let buf = Buffer.alloc(0);
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const q = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + q.length);
        queries.tcp++;
        const a = answer(q, records);
        const len = Buffer.alloc(2);
        len.writeUInt16BE(a.length);
        s.write(Buffer.concat([len, a]));
      }
    });
  });
  const sockets = track(tcp);
  await listen(tcp, host, 53);
  return {
    port: 53,
    queries,
    close: async () => {
      await new Promise<void>((r) => udp.close(() => r()));
      await closeServer(tcp, sockets);
    },
  };
}
