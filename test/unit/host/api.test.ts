// The slirp4netns-compatible API: handleRequest for every execute and every
// error string (exact), id allocation, ephemeral host ports, get_stats; then
// ApiServer over a real Unix socket in a temp dir (mode, one request per
// connection, size limit, slow clients, path checks, cleanup). The forwarding
// code is a fake backend.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import {
  API_MAX_REQUEST,
  ApiServer,
  ForwardTable,
  handleRequest,
  serializeReply,
  type ForwardBackend,
} from '../../../src/host/api.js';
import type { ForwardSpec } from '../../../src/host/forward-spec.js';

const GUEST = '10.0.2.100';
const silent = pino({ level: 'silent' });

class FakeBackend implements ForwardBackend {
  added: { spec: ForwardSpec & { guestAddr: string }; id: number }[] = [];
  removed: number[] = [];
  failWith: string | undefined;
  removeThrows: string | undefined;
  nextEphemeral = 40000;
  async add(spec: ForwardSpec & { guestAddr: string }, id: number): Promise<{ hostPort: number }> {
    await Promise.resolve();
    if (this.failWith) throw new Error(this.failWith);
    this.added.push({ spec, id });
    return { hostPort: spec.hostPort === 0 ? this.nextEphemeral++ : spec.hostPort };
  }
  remove(id: number): void {
    if (this.removeThrows) throw new Error(this.removeThrows);
    this.removed.push(id);
  }
  stats(): Record<string, unknown> {
    return { tcpFlows: 3, udpFlows: 1, bytes: 12345n };
  }
}

function req(table: ForwardTable, body: unknown): Promise<object> {
  return handleRequest(table, Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)));
}

const add = (args: Record<string, unknown>) => ({ execute: 'add_hostfwd', arguments: args });
const WEB = { proto: 'tcp', host_addr: '0.0.0.0', host_port: 8080, guest_addr: GUEST, guest_port: 80 };
const err = (desc: string) => ({ error: { desc } });

describe('handleRequest', () => {
  let backend: FakeBackend;
  let table: ForwardTable;
  beforeEach(() => {
    backend = new FakeBackend();
    table = new ForwardTable(backend, GUEST);
  });

  it('add_hostfwd returns {"return":{"id":1}} and starts the forward', async () => {
    expect(await req(table, add(WEB))).toEqual({ return: { id: 1 } });
    expect(backend.added).toEqual([
      { spec: { proto: 'tcp', hostAddr: '0.0.0.0', hostPort: 8080, guestAddr: GUEST, guestPort: 80 }, id: 1 },
    ]);
  });

  it('the exact slirp4netns byte shapes for add, list and remove', async () => {
    const raw = (body: unknown) => req(table, body).then(serializeReply);
    expect(
      await raw(
        '{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_addr":"0.0.0.0","host_port":8080,"guest_addr":"10.0.2.100","guest_port":80}}',
      ),
    ).toBe('{"return":{"id":1}}');
    const entry = '{"id":1,"proto":"tcp","host_addr":"0.0.0.0","host_port":8080,"guest_addr":"10.0.2.100","guest_port":80}';
    expect(await raw('{"execute":"list_hostfwd"}')).toBe(`{"entries":[${entry}],"return":{"entries":[${entry}]}}`);
    expect(await raw('{"execute":"remove_hostfwd","arguments":{"id":1}}')).toBe('{"return":{}}');
    expect(await raw('{"execute":"list_hostfwd"}')).toBe('{"entries":[],"return":{"entries":[]}}');
  });

  it('host_addr defaults to 0.0.0.0 and guest_addr to the server guest address', async () => {
    await req(table, add({ proto: 'udp', host_port: 5353, guest_port: 53 }));
    await req(table, add({ proto: 'udp', host_addr: '', host_port: 5354, guest_addr: '', guest_port: 53 }));
    await req(table, add({ proto: 'udp', host_addr: null, host_port: 5355, guest_addr: '0.0.0.0', guest_port: 53 }));
    const entries = table.list();
    expect(entries.map((e) => [e.host_addr, e.guest_addr])).toEqual([
      ['0.0.0.0', GUEST],
      ['0.0.0.0', GUEST],
      ['0.0.0.0', GUEST],
    ]);
    expect(entries[0]).toEqual({ id: 1, proto: 'udp', host_addr: '0.0.0.0', host_port: 5353, guest_addr: GUEST, guest_port: 53 });
  });

  it('accepts an IPv6 host_addr and another guest_addr', async () => {
    expect(await req(table, add({ ...WEB, host_addr: '::1', guest_addr: '10.0.2.15' }))).toEqual({ return: { id: 1 } });
    expect(table.list()[0]).toMatchObject({ host_addr: '::1', guest_addr: '10.0.2.15' });
  });

  it('an IPv6 guest_addr (an extension) is accepted when the guest has IPv6, refused otherwise', async () => {
    const backend6 = { add: async () => ({ hostPort: 8080 }), remove: () => true, stats: () => ({}) } as unknown as ConstructorParameters<typeof ForwardTable>[0];
    const with6 = new ForwardTable(backend6, GUEST, true);
    expect(await req(with6, add({ ...WEB, guest_addr: 'fd00::100' }))).toEqual({ return: { id: 1 } });
    expect(with6.list()[0]).toMatchObject({ guest_addr: 'fd00::100' });
    expect(await req(with6, add({ ...WEB, proto: 'udp', guest_addr: 'fd00::100' }))).toEqual({ return: { id: 2 } });
    expect(await req(table, add({ ...WEB, guest_addr: 'fd00::100' }))).toEqual({ error: { desc: 'bad request: add_hostfwd: bad arguments.guest_addr' } });
  });

  it('host_port 0 binds an ephemeral port and returns it', async () => {
    expect(await req(table, add({ ...WEB, host_port: 0 }))).toEqual({ return: { id: 1, host_port: 40000 } });
    expect(table.list()[0]!.host_port).toBe(40000);
  });

  it('ids start at 1 and are never reused after remove', async () => {
    expect(await req(table, add(WEB))).toEqual({ return: { id: 1 } });
    expect(await req(table, add({ ...WEB, host_port: 8081 }))).toEqual({ return: { id: 2 } });
    expect(await req(table, { execute: 'remove_hostfwd', arguments: { id: 2 } })).toEqual({ return: {} });
    expect(await req(table, { execute: 'remove_hostfwd', arguments: { id: 1 } })).toEqual({ return: {} });
    expect(await req(table, add(WEB))).toEqual({ return: { id: 3 } });
    expect(backend.removed).toEqual([2, 1]);
    expect(table.list().map((e) => e.id)).toEqual([3]);
  });

  it('a failed add consumes no id (as in slirp4netns)', async () => {
    backend.failWith = 'EADDRINUSE 0.0.0.0:8080 is already in use';
    expect(await req(table, add(WEB))).toEqual(
      err('bad request: add_hostfwd: slirp_add_hostfwd failed: EADDRINUSE 0.0.0.0:8080 is already in use'),
    );
    expect(table.list()).toEqual([]);
    backend.failWith = undefined;
    expect(await req(table, add(WEB))).toEqual({ return: { id: 1 } });
  });

  it('concurrent adds get distinct ids', async () => {
    const replies = await Promise.all([1, 2, 3].map((i) => req(table, add({ ...WEB, host_port: 8080 + i }))));
    expect(replies).toEqual([{ return: { id: 1 } }, { return: { id: 2 } }, { return: { id: 3 } }]);
  });

  it('get_stats returns what the stats provider returns', async () => {
    const reply = await req(table, { execute: 'get_stats' });
    expect(reply).toEqual({ return: { tcpFlows: 3, udpFlows: 1, bytes: 12345n } });
    expect(serializeReply(reply)).toBe('{"return":{"tcpFlows":3,"udpFlows":1,"bytes":12345}}');
  });

  describe('errors (exact strings)', () => {
    const cases: [string, unknown, string][] = [
      ['not JSON', '{"execute":', 'bad request: cannot parse JSON'],
      ['empty', '', 'bad request: cannot parse JSON'],
      ['not an object', '[1,2]', 'bad request: json_object() failed'],
      ['no execute', { arguments: {} }, 'bad request: no execute found'],
      ['execute not a string', { execute: 1 }, 'bad request: no execute found'],
      ['unknown execute', { execute: 'add_hostfwds' }, 'bad request: unknown execute'],
      ['missing arguments', { execute: 'add_hostfwd' }, 'bad request: add_hostfwd: bad arguments.proto'],
      ['arguments not an object', { execute: 'add_hostfwd', arguments: 'tcp' }, 'bad request: add_hostfwd: bad arguments.proto'],
      ['proto sctp', add({ ...WEB, proto: 'sctp' }), 'bad request: add_hostfwd: bad arguments.proto'],
      ['proto TCP', add({ ...WEB, proto: 'TCP' }), 'bad request: add_hostfwd: bad arguments.proto'],
      ['host_addr bad', add({ ...WEB, host_addr: '300.1.1.1' }), 'bad request: add_hostfwd: bad arguments.host_addr'],
      ['host_addr name', add({ ...WEB, host_addr: 'localhost' }), 'bad request: add_hostfwd: bad arguments.host_addr'],
      ['host_addr number', add({ ...WEB, host_addr: 1 }), 'bad request: add_hostfwd: bad arguments.host_addr'],
      ['host_port missing', add({ ...WEB, host_port: undefined }), 'bad request: add_hostfwd: bad arguments.host_port'],
      ['host_port string', add({ ...WEB, host_port: '8080' }), 'bad request: add_hostfwd: bad arguments.host_port'],
      ['host_port 65536', add({ ...WEB, host_port: 65536 }), 'bad request: add_hostfwd: bad arguments.host_port'],
      ['host_port -1', add({ ...WEB, host_port: -1 }), 'bad request: add_hostfwd: bad arguments.host_port'],
      ['host_port 80.5', add({ ...WEB, host_port: 80.5 }), 'bad request: add_hostfwd: bad arguments.host_port'],
      ['guest_addr IPv6', add({ ...WEB, guest_addr: 'fd00::100' }), 'bad request: add_hostfwd: bad arguments.guest_addr'],
      ['guest_addr bad', add({ ...WEB, guest_addr: '10.0.2' }), 'bad request: add_hostfwd: bad arguments.guest_addr'],
      ['guest_port 0', add({ ...WEB, guest_port: 0 }), 'bad request: add_hostfwd: bad arguments.guest_port'],
      ['guest_port missing', add({ ...WEB, guest_port: undefined }), 'bad request: add_hostfwd: bad arguments.guest_port'],
      ['remove without arguments', { execute: 'remove_hostfwd' }, 'bad request: remove_hostfwd: bad arguments.id'],
      ['remove unknown id', { execute: 'remove_hostfwd', arguments: { id: 7 } }, 'bad request: remove_hostfwd: bad arguments.id'],
      ['remove id string', { execute: 'remove_hostfwd', arguments: { id: '1' } }, 'bad request: remove_hostfwd: bad arguments.id'],
    ];
    for (const [name, body, desc] of cases) {
      it(`${name}: ${desc}`, async () => {
        expect(await req(table, body)).toEqual(err(desc));
        expect(backend.added).toEqual([]);
      });
    }

    it('the first bad argument is reported, in slirp4netns order', async () => {
      expect(await req(table, add({ proto: 'x', host_addr: 'x', host_port: 0.5 }))).toEqual(
        err('bad request: add_hostfwd: bad arguments.proto'),
      );
      expect(await req(table, add({ proto: 'tcp', host_addr: 'x', host_port: 0.5 }))).toEqual(
        err('bad request: add_hostfwd: bad arguments.host_addr'),
      );
    });

    it('too large message', async () => {
      const big = Buffer.from(JSON.stringify({ execute: 'list_hostfwd', pad: 'x'.repeat(API_MAX_REQUEST) }));
      expect(await handleRequest(table, big)).toEqual(err('bad request: too large message'));
    });

    it('a request of exactly 4096 bytes is accepted', async () => {
      const body = '{"execute":"list_hostfwd"}';
      const raw = Buffer.from(body + ' '.repeat(API_MAX_REQUEST - body.length));
      expect(raw.length).toBe(API_MAX_REQUEST);
      expect(await handleRequest(table, raw)).toEqual({ entries: [], return: { entries: [] } });
    });

    it('bytes after a NUL are ignored, as by slirp4netns', async () => {
      expect(await handleRequest(table, Buffer.from('{"execute":"list_hostfwd"}\0garbage'))).toEqual({
        entries: [],
        return: { entries: [] },
      });
    });

    it('a backend that throws on remove is an error reply and the entry stays', async () => {
      await req(table, add(WEB));
      backend.removeThrows = 'boom';
      expect(await req(table, { execute: 'remove_hostfwd', arguments: { id: 1 } })).toEqual(
        err('bad request: remove_hostfwd: slirp_remove_hostfwd failed: boom'),
      );
      expect(table.list()).toHaveLength(1);
    });

    it('a stats provider that throws is an error reply', async () => {
      backend.stats = () => {
        throw new Error('stats exploded');
      };
      expect(await req(table, { execute: 'get_stats' })).toEqual(err('internal error: stats exploded'));
    });

    it('__proto__ tricks do not reach Object.prototype', async () => {
      const body = '{"execute":"add_hostfwd","arguments":{"__proto__":{"proto":"tcp"},"host_port":1,"guest_port":1}}';
      expect(await req(table, body)).toEqual(err('bad request: add_hostfwd: bad arguments.proto'));
    });
  });
});

describe('ForwardTable', () => {
  it('fills in the default guest address for -p specs and lists copies', async () => {
    const backend = new FakeBackend();
    const table = new ForwardTable(backend, '10.0.3.100');
    expect(await table.add({ proto: 'tcp', hostAddr: '127.0.0.1', hostPort: 8080, guestPort: 80 })).toEqual({
      id: 1,
      hostPort: 8080,
    });
    const [entry] = table.list();
    expect(entry!.guest_addr).toBe('10.0.3.100');
    entry!.host_port = 1;
    expect(table.list()[0]!.host_port).toBe(8080);
    expect(table.remove(1)).toBe(true);
    expect(table.remove(1)).toBe(false);
  });

  it('rejects with the backend error', async () => {
    const backend = new FakeBackend();
    backend.failWith = 'EACCES 0.0.0.0:80 needs privileges';
    const table = new ForwardTable(backend, GUEST);
    await expect(table.add({ proto: 'tcp', hostAddr: '0.0.0.0', hostPort: 80, guestPort: 80 })).rejects.toThrow(
      'EACCES 0.0.0.0:80 needs privileges',
    );
  });
});

// ---- over a real socket -----------------------------------------------------

interface Exchange {
  reply: string;
  /** How the connection ended: the server closed it normally, or reset/destroyed it. */
  ended: 'end' | 'error' | 'close';
}

/** Sends `data` (optionally half-closing), collects everything until the server closes. */
function exchange(sockPath: string, data: string | Buffer, halfClose = true): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let ended: Exchange['ended'] = 'close';
    const c = net.connect(sockPath);
    c.on('connect', () => {
      if (halfClose) c.end(data);
      else c.write(data);
    });
    c.on('data', (d: Buffer) => chunks.push(d));
    c.on('end', () => {
      ended = 'end';
    });
    c.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') reject(e);
      ended = 'error';
    });
    c.on('close', () => resolve({ reply: Buffer.concat(chunks).toString(), ended }));
  });
}

describe('ApiServer', () => {
  let dir: string;
  let sockPath: string;
  let table: ForwardTable;
  let server: ApiServer | undefined;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsnet-api-'));
    sockPath = path.join(dir, 'api.sock');
    table = new ForwardTable(new FakeBackend(), GUEST);
  });
  afterEach(async () => {
    await server?.close();
    server = undefined;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function start(timeoutMs = 5000): Promise<ApiServer> {
    server = new ApiServer(sockPath, table, silent, { timeoutMs });
    await server.start();
    return server;
  }

  it('creates the socket with mode 0600 whatever the umask', async () => {
    const old = process.umask(0);
    try {
      await start();
    } finally {
      process.umask(old);
    }
    const st = fs.lstatSync(sockPath);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
  });

  it('answers one request per connection, then closes', async () => {
    await start();
    expect(await exchange(sockPath, JSON.stringify(add(WEB)))).toEqual({ reply: '{"return":{"id":1}}', ended: 'end' });
    expect(await exchange(sockPath, '{"execute":"list_hostfwd"}')).toEqual({
      reply:
        '{"entries":[{"id":1,"proto":"tcp","host_addr":"0.0.0.0","host_port":8080,"guest_addr":"10.0.2.100","guest_port":80}],' +
        '"return":{"entries":[{"id":1,"proto":"tcp","host_addr":"0.0.0.0","host_port":8080,"guest_addr":"10.0.2.100","guest_port":80}]}}',
      ended: 'end',
    });
    // A second request on the same connection is not answered.
    const two = await exchange(sockPath, '{"execute":"list_hostfwd"}{"execute":"get_stats"}');
    expect(two.reply).toBe('{"error":{"desc":"bad request: cannot parse JSON"}}');
  });

  it('answers a request split across writes', async () => {
    await start();
    const reply = await new Promise<string>((resolve) => {
      const c = net.connect(sockPath);
      const chunks: Buffer[] = [];
      c.on('data', (d: Buffer) => chunks.push(d));
      c.on('close', () => resolve(Buffer.concat(chunks).toString()));
      c.on('connect', () => {
        c.write('{"execute":');
        setTimeout(() => c.end('"remove_hostfwd","arguments":{"id":5}}'), 50);
      });
    });
    expect(reply).toBe('{"error":{"desc":"bad request: remove_hostfwd: bad arguments.id"}}');
  });

  it('answers a client that sends a whole request without half-closing', async () => {
    await start();
    expect(await exchange(sockPath, '{"execute":"list_hostfwd"}', false)).toEqual({
      reply: '{"entries":[],"return":{"entries":[]}}',
      ended: 'end',
    });
  });

  it('invalid JSON gets "cannot parse JSON"', async () => {
    await start();
    expect((await exchange(sockPath, 'hello')).reply).toBe('{"error":{"desc":"bad request: cannot parse JSON"}}');
  });

  it('more than 4096 bytes gets "too large message"', async () => {
    await start();
    const r = await exchange(sockPath, Buffer.alloc(64 * 1024, 'x'));
    expect(r.reply).toBe('{"error":{"desc":"bad request: too large message"}}');
  });

  it('drops a client that never completes a request nor half-closes', async () => {
    await start(150);
    const t0 = Date.now();
    const r = await exchange(sockPath, '{"execute":', false);
    expect(r.reply).toBe('');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(100);
    // The server is still serving.
    expect((await exchange(sockPath, '{"execute":"get_stats"}')).reply).toBe(
      '{"return":{"tcpFlows":3,"udpFlows":1,"bytes":12345}}',
    );
  });

  it('rejects a path of 108 bytes or more with slirp4netns\'s message', async () => {
    const long = path.join(dir, 'x'.repeat(108));
    server = new ApiServer(long, table, silent);
    await expect(server.start()).rejects.toThrow(/^the specified API socket path is too long \(>= 108\)$/);
    expect(fs.existsSync(long)).toBe(false);
    const just = dir + '/' + 's'.repeat(107 - dir.length - 1);
    expect(Buffer.byteLength(just)).toBe(107);
    server = new ApiServer(just, table, silent);
    await server.start();
    expect(fs.lstatSync(just).isSocket()).toBe(true);
  });

  it('refuses a path where another process listens', async () => {
    const other = net.createServer();
    await new Promise<void>((r) => other.listen(sockPath, r));
    try {
      server = new ApiServer(sockPath, table, silent);
      await expect(server.start()).rejects.toThrow(`API socket ${sockPath} is in use by another process`);
      server = undefined;
    } finally {
      await new Promise<void>((r) => other.close(() => r()));
    }
  });

  it('replaces a stale socket left by a dead process', async () => {
    // A bound but not listening socket: connecting is refused, as after a crash.
    const script = `require('net').createServer().listen(${JSON.stringify(sockPath)}, () => process.kill(process.pid, 'SIGKILL'))`;
    try {
      execFileSync(process.execPath, ['-e', script], { stdio: 'ignore' });
    } catch {
      // killed by SIGKILL, as intended: the socket file stays behind
    }
    expect(fs.lstatSync(sockPath).isSocket()).toBe(true);
    await start();
    expect((await exchange(sockPath, '{"execute":"list_hostfwd"}')).reply).toBe('{"entries":[],"return":{"entries":[]}}');
  });

  it('refuses to replace a file that is not a socket', async () => {
    fs.writeFileSync(sockPath, 'precious');
    server = new ApiServer(sockPath, table, silent);
    await expect(server.start()).rejects.toThrow(`API socket path ${sockPath} exists and is not a socket`);
    server = undefined;
    expect(fs.readFileSync(sockPath, 'utf8')).toBe('precious');
  });

  it('reports other bind errors clearly', async () => {
    server = new ApiServer(path.join(dir, 'missing', 'api.sock'), table, silent);
    await expect(server.start()).rejects.toThrow(
      `cannot listen on API socket ${dir}/missing/api.sock: directory ${dir}/missing does not exist`,
    );
    server = undefined;
    fs.mkdirSync(path.join(dir, 'ro'), { mode: 0o500 });
    server = new ApiServer(path.join(dir, 'ro', 'api.sock'), table, silent);
    if (process.getuid?.() !== 0) {
      await expect(server.start()).rejects.toThrow(/^cannot listen on API socket .*ro\/api\.sock: listen EACCES/);
    }
    server = undefined;
  });

  it('close() unlinks the socket and stops answering', async () => {
    const s = await start();
    await s.close();
    server = undefined;
    expect(fs.existsSync(sockPath)).toBe(false);
    await expect(exchange(sockPath, '{"execute":"list_hostfwd"}')).rejects.toThrow(/ENOENT/);
  });

  it('close() drops a client still connected', async () => {
    const s = await start(60_000);
    const pending = exchange(sockPath, '{"exec', false);
    await new Promise((r) => setTimeout(r, 50));
    await s.close();
    server = undefined;
    expect((await pending).reply).toBe('');
  });
});
