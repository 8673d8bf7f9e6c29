// Node's own libuv stream bindings, which tsnet drives directly where the
// net.Socket around them costs more than the work (src/host/host-socket.ts:
// host TCP connections; src/host/tap-port.ts: reading the TAP; the pty
// relay). These are Node internals reached through process.binding (the
// allow-listed tcp_wrap, pipe_wrap and stream_wrap): typed here, in one
// place, with only what tsnet calls.
//
// The read protocol: a handle's `onread` (it must be a function: Node
// checks) is called after each read with the result in the shared
// streamBaseState — readResult(): the byte count, UV_EOF, or a negative
// errno. After useUserBuffer(buf), reads land in buf; a Uint8Array returned
// by onread is where the next read lands. useUserBuffer pushes a new read
// listener each time: call it once per handle.

/** A libuv stream handle (tcp_wrap's TCP, pipe_wrap's Pipe) as tsnet uses it. */
export interface StreamHandle {
  onread: (this: StreamHandle) => Uint8Array | undefined;
  readonly fd: number;
  readStart(): number;
  readStop(): number;
  useUserBuffer(buf: Uint8Array): void;
  writeBuffer(req: WriteReq, buf: Uint8Array): number;
  shutdown(req: ShutdownReq): number;
  close(cb?: () => void): void;
}

/** tcp_wrap's TCP handle. */
export interface TcpHandle extends StreamHandle {
  setNoDelay(on: boolean): number;
  setKeepAlive(on: boolean, secs: number): number;
  reset(cb?: () => void): number;
  bind(addr: string, port: number): number;
  bind6(addr: string, port: number, flags: number): number;
  connect(req: ConnectReq, addr: string, port: number): number;
  connect6(req: ConnectReq, addr: string, port: number): number;
}

export interface WriteReq {
  handle: StreamHandle;
  oncomplete: (status: number) => void;
  async: boolean;
  bytes: number;
  buffer: Uint8Array | null;
}
export interface ShutdownReq {
  handle: StreamHandle;
  oncomplete: (status: number) => void;
}
export interface ConnectReq {
  oncomplete: (status: number) => void;
  address: string;
  port: number;
}

interface TcpBinding {
  TCP: new (type: number) => TcpHandle;
  TCPConnectWrap: new () => ConnectReq;
  constants: { SOCKET: number };
}
interface PipeBinding {
  Pipe: new (type: number) => StreamHandle & { open(fd: number): number };
  constants: { SOCKET: number };
}
interface StreamBinding {
  WriteWrap: new () => WriteReq;
  ShutdownWrap: new () => ShutdownReq;
  streamBaseState: Int32Array;
  kReadBytesOrError: number;
  kLastWriteWasAsync: number;
}

const binding = (name: string): unknown => (process as unknown as { binding(name: string): unknown }).binding(name);

export const tcpWrap = binding('tcp_wrap') as TcpBinding;
export const streamWrap = binding('stream_wrap') as StreamBinding;
const state = streamWrap.streamBaseState;
const K_READ = streamWrap.kReadBytesOrError;
const K_ASYNC = streamWrap.kLastWriteWasAsync;

/** libuv's UV_EOF. */
export const UV_EOF = -4095;

/** What the read onread reports was: a byte count, 0, UV_EOF or a negative errno. */
export function readResult(): number {
  return state[K_READ]!;
}

/** Whether the last writeBuffer was queued (true) or written whole at once. */
export function lastWriteWasAsync(): boolean {
  return state[K_ASYNC] !== 0;
}

/**
 * A libuv pipe handle watching fd (the event loop's own epoll), or
 * undefined when the pipe_wrap binding is unavailable or refuses the fd.
 */
export function pipeHandle(fd: number): StreamHandle | undefined {
  let b: PipeBinding;
  try {
    b = binding('pipe_wrap') as PipeBinding;
  } catch {
    return undefined;
  }
  const handle = new b.Pipe(b.constants.SOCKET);
  return handle.open(fd) === 0 ? handle : undefined;
}
