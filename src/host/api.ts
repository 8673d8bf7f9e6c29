// The slirp4netns-compatible JSON API socket (--api-socket PATH) and the
// forward table it shares with the CLI's -p flags.
//
// Read this first:
// - Protocol (checked against slirp4netns 1.2.0): a Unix stream
//   socket, one JSON request per connection (at most 4096 bytes), one compact
//   JSON reply without a newline, then close. Errors are always
//   {"error":{"desc":"bad request: ..."}} with slirp4netns's exact strings.
// - Beyond slirp4netns: host_addr may be IPv6; host_port 0 binds an ephemeral
//   port and the reply carries it ({"return":{"id":N,"host_port":P}});
//   {"execute":"get_stats"}; {"execute":"get_sandbox"} (what confines the
//   process, seen from inside: capabilities, seccomp probes, the root's
//   entries); a missing "arguments" is an error reply, not a
//   crash; a failed add says why after slirp4netns's "slirp_add_hostfwd
//   failed".
// - The table owns ids (from 1, never reused; a failed add consumes none, as
//   in slirp4netns) and entries; the ForwardBackend (the forwarding code) owns
//   the listeners.
// - The server must never crash the process or stall the data path: each
//   request is handled asynchronously, every exception becomes an error reply,
//   and a client that neither completes a request nor closes is dropped after
//   a timeout.

import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { capGet, capNames, probeBlocked, unlinkAtIfSame } from '../../native/index.js';
import type { Logger } from './log.js';
import { DEFAULT_HOST_ADDR, type ForwardSpec, type Proto } from './forward-spec.js';

export type { ForwardSpec, Proto };

/** One forward as list_hostfwd shows it (slirp4netns's field names and order). */
export interface ForwardEntry {
  id: number;
  proto: Proto;
  host_addr: string;
  host_port: number;
  guest_addr: string;
  guest_port: number;
}

/** The forwarding code behind the table: listeners on the host, flows into the guest. */
export interface ForwardBackend {
  /**
   * Starts forwarding. `id` is the id the table will give the entry if this
   * resolves; remove(id) refers to it. Resolves with the bound host port (the
   * chosen one when spec.hostPort is 0). Rejects with an Error whose message
   * is the reason, e.g. 'EADDRINUSE 0.0.0.0:8080 is already in use'.
   */
  add(spec: ForwardSpec & { guestAddr: string }, id: number): Promise<{ hostPort: number }>;
  /** Closes the listener of forward `id`; live connections keep going. */
  remove(id: number): void;
  /** Whatever get_stats should return. */
  stats(): Record<string, unknown>;
}

/** Bytes a request may have; slirp4netns reads into a 4096-byte buffer. */
export const API_MAX_REQUEST = 4096;
/** A client that neither completes a request nor closes within this is dropped. */
export const API_TIMEOUT_MS = 5000;
/** sizeof(sockaddr_un.sun_path), including the terminating NUL. */
export const SUN_PATH_MAX = 108;
/** Concurrent API connections; more are refused by the listener. */
export const API_MAX_CONNECTIONS = 64;

/**
 * A backend bound later: the API socket can listen before the stack exists
 * (so that it is there by the time the TAP device appears, as with
 * slirp4netns); an add waits until bind() hands over the real backend.
 */
export class LateBackend implements ForwardBackend {
  private real: ForwardBackend | undefined;
  private readonly bound: Promise<ForwardBackend>;
  private resolve!: (b: ForwardBackend) => void;

  constructor() {
    this.bound = new Promise((r) => (this.resolve = r));
  }

  bind(real: ForwardBackend): void {
    this.real = real;
    this.resolve(real);
  }

  async add(spec: ForwardSpec & { guestAddr: string }, id: number): Promise<{ hostPort: number }> {
    return (this.real ?? (await this.bound)).add(spec, id);
  }

  remove(id: number): void {
    this.real?.remove(id);
  }

  stats(): Record<string, unknown> {
    return this.real?.stats() ?? {};
  }
}

export class ForwardTable {
  private nextId = 1;
  private readonly entries = new Map<number, ForwardEntry>();

  constructor(
    private readonly backend: ForwardBackend,
    readonly defaultGuestAddr: string,
    /** The guest has IPv6 (--enable-ipv6): an IPv6 guest_addr is accepted (an extension of slirp4netns's API). */
    readonly ipv6 = false,
  ) {}

  /**
   * Starts a forward and records it. Rejects with the backend's Error (its
   * message is the reason) and then consumes no id, unless another add took a
   * later id meanwhile (ids are never reused).
   */
  async add(spec: ForwardSpec): Promise<{ id: number; hostPort: number }> {
    const id = this.nextId++;
    const guestAddr = spec.guestAddr ?? this.defaultGuestAddr;
    let hostPort: number;
    try {
      ({ hostPort } = await this.backend.add({ ...spec, guestAddr }, id));
    } catch (e) {
      if (this.nextId === id + 1) this.nextId = id;
      throw e instanceof Error ? e : new Error(String(e));
    }
    this.entries.set(id, {
      id,
      proto: spec.proto,
      host_addr: spec.hostAddr,
      host_port: hostPort,
      guest_addr: guestAddr,
      guest_port: spec.guestPort,
    });
    return { id, hostPort };
  }

  /**
   * Stops forward `id`. False when there is no such forward. If the backend
   * throws, the entry stays and the error propagates.
   */
  remove(id: number): boolean {
    if (!this.entries.has(id)) return false;
    this.backend.remove(id);
    this.entries.delete(id);
    return true;
  }

  /** Copies of the entries, in id order. */
  list(): ForwardEntry[] {
    return [...this.entries.values()].sort((a, b) => a.id - b.id).map((e) => ({ ...e }));
  }

  stats(): Record<string, unknown> {
    return this.backend.stats();
  }
}

// ---- requests -------------------------------------------------------------

type Reply = Record<string, unknown>;

function errorReply(desc: string): Reply {
  return { error: { desc } };
}

const TOO_LARGE = 'bad request: too large message';
const CANNOT_PARSE = 'bad request: cannot parse JSON';
const NOT_OBJECT = 'bad request: json_object() failed';
const NO_EXECUTE = 'bad request: no execute found';
const UNKNOWN_EXECUTE = 'bad request: unknown execute';
const ADD_FAILED = 'bad request: add_hostfwd: slirp_add_hostfwd failed';
const REMOVE_FAILED = 'bad request: remove_hostfwd: slirp_remove_hostfwd failed';

/** slirp4netns parses the buffer as a C string: anything after a NUL is ignored. */
function requestText(raw: Buffer): string {
  const nul = raw.indexOf(0);
  return raw.toString('utf8', 0, nul >= 0 ? nul : raw.length);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** An own property only: a request cannot reach Object.prototype. */
function field(obj: unknown, key: string): unknown {
  return isObject(obj) && Object.hasOwn(obj, key) ? obj[key] : undefined;
}

function isPort(v: unknown, allowZero: boolean): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= (allowZero ? 0 : 1) && v <= 65535;
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Answers one request (the bytes a client sent). Never rejects: every failure
 * is an {"error":{"desc":...}} reply.
 */
export async function handleRequest(table: ForwardTable, raw: Buffer): Promise<object> {
  try {
    if (raw.length > API_MAX_REQUEST) return errorReply(TOO_LARGE);
    let req: unknown;
    try {
      req = JSON.parse(requestText(raw));
    } catch {
      return errorReply(CANNOT_PARSE);
    }
    if (!isObject(req)) return errorReply(NOT_OBJECT);
    const execute = field(req, 'execute');
    if (typeof execute !== 'string') return errorReply(NO_EXECUTE);
    switch (execute) {
      case 'add_hostfwd':
        return await addHostfwd(table, field(req, 'arguments'));
      case 'list_hostfwd': {
        // slirp4netns 1.2.0 answers with both the bare and the "return" form.
        const entries = table.list();
        return { entries, return: { entries } };
      }
      case 'remove_hostfwd':
        return removeHostfwd(table, field(req, 'arguments'));
      case 'get_stats':
        return { return: table.stats() };
      case 'get_sandbox':
        return { return: sandboxReport() };
      default:
        return errorReply(UNKNOWN_EXECUTE);
    }
  } catch (e) {
    return errorReply(`internal error: ${message(e)}`);
  }
}

/**
 * The process's confinement from the inside: its (main thread's) capability
 * sets, the result of attempting calls the seccomp filter blocks (EPERM each
 * when it is live), and what its root directory holds.
 */
function sandboxReport(): Record<string, unknown> {
  const caps = capGet();
  let root: string[] | string;
  try {
    root = fs.readdirSync('/').sort();
  } catch (e) {
    root = message(e);
  }
  return {
    capabilities: { effective: capNames(caps.effective), permitted: capNames(caps.permitted) },
    blocked_calls: probeBlocked(),
    root,
  };
}

// slirp4netns checks the arguments in this order and reports the first bad one.
async function addHostfwd(table: ForwardTable, args: unknown): Promise<Reply> {
  const bad = (name: string) => errorReply(`bad request: add_hostfwd: bad arguments.${name}`);

  const proto = field(args, 'proto');
  if (proto !== 'tcp' && proto !== 'udp') return bad('proto');

  // null, absent or "" mean the default, as in slirp4netns.
  let hostAddr = field(args, 'host_addr');
  if (hostAddr === undefined || hostAddr === null || hostAddr === '') hostAddr = DEFAULT_HOST_ADDR;
  if (typeof hostAddr !== 'string' || !(net.isIPv4(hostAddr) || net.isIPv6(hostAddr))) return bad('host_addr');

  const hostPort = field(args, 'host_port');
  if (!isPort(hostPort, true)) return bad('host_port');

  // 0.0.0.0 means the default, as in libslirp. An IPv6 guest address (an
  // extension) needs IPv6 for the guest.
  let guestAddr = field(args, 'guest_addr');
  if (guestAddr === undefined || guestAddr === null || guestAddr === '' || guestAddr === '0.0.0.0') {
    guestAddr = table.defaultGuestAddr;
  }
  if (typeof guestAddr !== 'string' || !(net.isIPv4(guestAddr) || (table.ipv6 && net.isIPv6(guestAddr)))) return bad('guest_addr');

  const guestPort = field(args, 'guest_port');
  if (!isPort(guestPort, false)) return bad('guest_port');

  let added: { id: number; hostPort: number };
  try {
    added = await table.add({ proto, hostAddr, hostPort, guestAddr, guestPort });
  } catch (e) {
    return errorReply(`${ADD_FAILED}: ${message(e)}`);
  }
  return hostPort === 0 ? { return: { id: added.id, host_port: added.hostPort } } : { return: { id: added.id } };
}

function removeHostfwd(table: ForwardTable, args: unknown): Reply {
  const id = field(args, 'id');
  if (typeof id !== 'number' || !Number.isInteger(id)) return errorReply('bad request: remove_hostfwd: bad arguments.id');
  let removed: boolean;
  try {
    removed = table.remove(id);
  } catch (e) {
    return errorReply(`${REMOVE_FAILED}: ${message(e)}`);
  }
  if (!removed) return errorReply('bad request: remove_hostfwd: bad arguments.id');
  return { return: {} };
}

/** Compact JSON; bigints (counters) become numbers. */
export function serializeReply(reply: object): string {
  try {
    return JSON.stringify(reply, (_k, v: unknown) => (typeof v === 'bigint' ? Number(v) : v));
  } catch (e) {
    return JSON.stringify(errorReply(`internal error: ${message(e)}`));
  }
}

// ---- the socket -------------------------------------------------------------

export interface ApiServerOptions {
  /** Drop a client that neither completes a request nor closes within this; default 5000. */
  timeoutMs?: number;
}

export class ApiServer {
  private server: net.Server | undefined;
  private readonly conns = new Set<net.Socket>();
  /** Set once the socket is mode 0600; connections before that are refused. */
  private ready = false;
  /** The inode we bound, so close() never unlinks someone else's file. */
  private ino: number | undefined;
  /** The socket's directory, held open: a sandbox hides the path, and close() still removes the socket. */
  private dirFd: number | undefined;
  private readonly timeoutMs: number;

  constructor(
    readonly path: string,
    private readonly table: ForwardTable,
    private readonly log: Logger,
    opts: ApiServerOptions = {},
  ) {
    this.timeoutMs = opts.timeoutMs ?? API_TIMEOUT_MS;
  }

  /**
   * Creates the socket, mode 0600 whatever the umask. Rejects if the path is
   * too long for sun_path, if a live process listens on it, if it exists and
   * is not a socket, or if bind/listen fails. A stale socket left by a dead
   * process is replaced.
   */
  async start(): Promise<void> {
    if (this.server) throw new Error(`API socket ${this.path} is already started`);
    // slirp4netns's message.
    if (Buffer.byteLength(this.path) >= SUN_PATH_MAX) {
      throw new Error(`the specified API socket path is too long (>= ${SUN_PATH_MAX})`);
    }
    await this.removeStale();

    const server = net.createServer({ allowHalfOpen: true }, (sock) => this.onConnection(sock));
    server.maxConnections = API_MAX_CONNECTIONS;
    await new Promise<void>((resolve, reject) => {
      const onError = (e: NodeJS.ErrnoException) => {
        // libuv reports a missing directory as EACCES.
        const dir = path.dirname(this.path);
        const why = fs.existsSync(dir) ? e.message : `directory ${dir} does not exist`;
        reject(new Error(`cannot listen on API socket ${this.path}: ${why}`));
      };
      server.once('error', onError);
      server.listen(this.path, () => {
        server.off('error', onError);
        resolve();
      });
    });
    try {
      // The socket was created 0777 & ~umask; nobody was served in between.
      fs.chmodSync(this.path, 0o600);
      this.ino = fs.lstatSync(this.path).ino;
      this.dirFd = fs.openSync(path.dirname(this.path), fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    } catch (e) {
      server.close();
      fs.rmSync(this.path, { force: true });
      throw new Error(`cannot set mode 0600 on API socket ${this.path}: ${message(e)}`);
    }
    server.on('error', (e) => this.log.warn({ err: e }, `API socket ${this.path}: ${e.message}`));
    this.server = server;
    this.ready = true;
    this.log.info(`API socket listening on ${this.path}`);
  }

  /** Stops listening, drops open connections, and unlinks the socket. */
  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    this.ready = false;
    for (const sock of this.conns) sock.destroy();
    this.conns.clear();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    // Node unlinks a pipe it bound when the server closes; make sure, but only
    // if the file is still ours.
    const dirFd = this.dirFd;
    this.dirFd = undefined;
    if (dirFd !== undefined) {
      if (this.ino !== undefined) unlinkAtIfSame(dirFd, path.basename(this.path), this.ino);
      fs.closeSync(dirFd);
    }
  }

  /** A socket left at the path by a dead process is removed; a live one is an error. */
  private async removeStale(): Promise<void> {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(this.path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw new Error(`cannot use API socket path ${this.path}: ${message(e)}`);
    }
    if (!st.isSocket()) throw new Error(`API socket path ${this.path} exists and is not a socket`);
    const live = await new Promise<boolean>((resolve) => {
      const probe = net.connect(this.path);
      probe.once('connect', () => {
        probe.destroy();
        resolve(true);
      });
      probe.once('error', () => resolve(false));
    });
    if (live) throw new Error(`API socket ${this.path} is in use by another process`);
    try {
      fs.unlinkSync(this.path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new Error(`cannot remove stale API socket ${this.path}: ${message(e)}`);
      }
    }
    this.log.debug(`removed stale API socket ${this.path}`);
  }

  private onConnection(sock: net.Socket): void {
    if (!this.ready) {
      sock.destroy();
      return;
    }
    this.conns.add(sock);
    const chunks: Buffer[] = [];
    let size = 0;
    // Once the request is complete (or too large), later bytes are discarded.
    let complete = false;
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        this.log.debug(`API client dropped after ${this.timeoutMs} ms`);
        sock.destroy();
      }, this.timeoutMs);
      timer.unref();
    };
    arm();

    const respond = (raw: Buffer | undefined) => {
      complete = true;
      clearTimeout(timer);
      // undefined: the request was too large and its bytes were not kept.
      (raw ? handleRequest(this.table, raw) : Promise.resolve(errorReply(TOO_LARGE)))
        .catch((e: unknown) => errorReply(`internal error: ${message(e)}`))
        .then((reply) => {
          const text = serializeReply(reply);
          this.log.debug({ request: raw ? requestText(raw).slice(0, 512) : '(too large)', reply: text }, 'API request');
          if (sock.destroyed) return;
          // Half-close; the client closes after reading, or the timer drops it.
          arm();
          sock.end(text);
        })
        .catch((e: unknown) => {
          this.log.warn(`API reply failed: ${message(e)}`);
          sock.destroy();
        });
    };

    sock.on('data', (chunk: Buffer) => {
      if (complete) return;
      size += chunk.length;
      if (size > API_MAX_REQUEST) {
        this.log.debug(`API request too large (> ${API_MAX_REQUEST} bytes)`);
        respond(undefined);
        return;
      }
      chunks.push(chunk);
      // Clients that half-close are answered on 'end'; this answers those
      // that send one JSON document and wait (slirp4netns does one read()).
      const buf = Buffer.concat(chunks);
      if (parses(buf)) respond(buf);
    });
    sock.on('end', () => {
      if (!complete) respond(Buffer.concat(chunks));
    });
    sock.on('error', (e) => this.log.debug(`API client: ${e.message}`));
    sock.on('close', () => {
      clearTimeout(timer);
      this.conns.delete(sock);
    });
  }
}

function parses(buf: Buffer): boolean {
  try {
    JSON.parse(requestText(buf));
    return true;
  } catch {
    return false;
  }
}
