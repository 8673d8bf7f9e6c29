// native/tun.ts — owns: the /dev/net/tun ABI. Opening the clone device, the
// TUN* ioctls (TUNSETIFF, TUNGETIFF, TUNSETOFFLOAD, TUNSETVNETHDRSZ,
// TUNGETFEATURES) with struct ifreq, and non-blocking frame read/write/drain.
//
// Read this first:
// - The tun driver binds the network namespace when /dev/net/tun is OPENED,
//   and TUNSETIFF needs CAP_NET_ADMIN in the user namespace owning that netns.
//   So a rootless caller gets the fd from an opener inside the namespace
//   (see native/pidfd.ts and src/launcher/tap.ts), then calls setIff() from the host.
// - readFrame/writeFrame never block once setNonBlocking() was called: they
//   return -1 on EAGAIN. Wait for readability with native/poll.ts.
// - One read() returns exactly one frame (plus a virtio_net_hdr in front when
//   IFF_VNET_HDR is set). Buffers must hold MTU + 14 (+ vnet hdr) bytes, or
//   64 KiB + hdr with TSO offloads; a short buffer truncates the frame.

import {
  E,
  NativeError,
  O_RDWR,
  errno,
  openPath,
  raw,
  setNonBlocking as setFdNonBlocking,
  closeFd as closeAnyFd,
} from './libc.js';

export const TUN_PATH = '/dev/net/tun';

// linux/if_tun.h: _IOW('T', nr, int) = 0x40045400 | nr, _IOR = 0x80045400 | nr.
export const TUNSETIFF = 0x400454ca; // _IOW('T', 202, int)
export const TUNSETPERSIST = 0x400454cb; // _IOW('T', 203, int)
export const TUNGETFEATURES = 0x800454cf; // _IOR('T', 207, unsigned int)
export const TUNSETOFFLOAD = 0x400454d0; // _IOW('T', 208, unsigned int)
export const TUNGETIFF = 0x800454d2; // _IOR('T', 210, unsigned int)
export const TUNGETVNETHDRSZ = 0x800454d7; // _IOR('T', 215, int)
export const TUNSETVNETHDRSZ = 0x400454d8; // _IOW('T', 216, int)

// ifr_flags
export const IFF_TUN = 0x0001;
export const IFF_TAP = 0x0002;
export const IFF_NAPI = 0x0010;
export const IFF_MULTI_QUEUE = 0x0100;
export const IFF_NO_PI = 0x1000;
export const IFF_VNET_HDR = 0x4000;
export const IFF_TUN_EXCL = 0x8000;

// TUNSETOFFLOAD flags: what the *reader* (us) accepts from the kernel.
export const TUN_F_CSUM = 0x01; // may hand us frames with partial checksums
export const TUN_F_TSO4 = 0x02;
export const TUN_F_TSO6 = 0x04;
export const TUN_F_TSO_ECN = 0x08;
export const TUN_F_UFO = 0x10;
export const TUN_F_USO4 = 0x20;
export const TUN_F_USO6 = 0x40;

/** sizeof(struct virtio_net_hdr); 12 with mergeable rx buffers. */
export const VIRTIO_NET_HDR_LEN = 10;

const IFNAMSIZ = 16;
const IFREQ_SIZE = 40; // struct ifreq on 64-bit: char[16] + 24-byte union
const IFR_FLAGS_OFF = 16;

export interface IffOptions {
  /** Prepend a virtio_net_hdr to every frame (IFF_VNET_HDR). */
  vnetHdr?: boolean;
  /** IFF_MULTI_QUEUE (not used by tsnet; default false). */
  multiQueue?: boolean;
  /** Layer-3 TUN instead of TAP (default false). */
  tun?: boolean;
}

export interface IffInfo {
  name: string;
  flags: number;
}

function ioctlFail(what: string, fd: number, doing?: string): never {
  throw new NativeError(errno(), `ioctl(${what})`, doing ?? `ioctl(${what}) on fd ${fd}`);
}

function ifreq(name: string, flags: number): Buffer {
  const nameBytes = Buffer.from(name, 'utf8');
  if (nameBytes.length >= IFNAMSIZ || nameBytes.includes(0)) {
    throw new NativeError(E.EINVAL, 'ioctl(TUNSETIFF)', `interface name "${name}" must be 1..15 bytes`);
  }
  const ifr = Buffer.alloc(IFREQ_SIZE);
  nameBytes.copy(ifr, 0);
  ifr.writeUInt16LE(flags & 0xffff, IFR_FLAGS_OFF);
  return ifr;
}

function ifrName(ifr: Buffer): string {
  const end = ifr.indexOf(0);
  return ifr.toString('utf8', 0, end < 0 || end > IFNAMSIZ ? IFNAMSIZ : end);
}

/** open("/dev/net/tun", O_RDWR|O_CLOEXEC). Throws e.g. `EACCES opening /dev/net/tun: Permission denied`. */
export function openTun(path: string = TUN_PATH): number {
  return openPath(path, O_RDWR);
}

/**
 * TUNSETIFF: attach fd to (creating if needed) interface `name` ('tap0', or a
 * pattern like 'tap%d'). Flags are IFF_TAP|IFF_NO_PI (+IFF_VNET_HDR...).
 * Returns the name the kernel chose. Typical errors: EPERM (no CAP_NET_ADMIN
 * over the fd's netns), EBUSY (device already attached elsewhere), EINVAL
 * (existing persistent device with other flags), EBADFD (fd already attached).
 */
export function setIff(fd: number, name: string, opts: IffOptions = {}): string {
  let flags = (opts.tun ? IFF_TUN : IFF_TAP) | IFF_NO_PI;
  if (opts.vnetHdr) flags |= IFF_VNET_HDR;
  if (opts.multiQueue) flags |= IFF_MULTI_QUEUE;
  const ifr = ifreq(name, flags);
  if (raw.ioctlPtr(fd, TUNSETIFF, ifr) < 0) {
    ioctlFail('TUNSETIFF', fd, `creating ${opts.tun ? 'tun' : 'tap'} device ${name} (TUNSETIFF)`);
  }
  return ifrName(ifr);
}

/**
 * TUNSETPERSIST: a persistent device outlives its last fd. Turning it off on
 * a device made ahead of time (ip tuntap add) ties its life to our fd again,
 * as if TUNSETIFF had created it.
 */
export function setPersist(fd: number, on: boolean): void {
  if (raw.ioctlInt(fd, TUNSETPERSIST, on ? 1 : 0) < 0) ioctlFail('TUNSETPERSIST', fd);
}

/** TUNGETIFF: name and flags of the interface an (inherited) fd is attached to. EBADFD if not attached. */
export function getIff(fd: number): IffInfo {
  const ifr = Buffer.alloc(IFREQ_SIZE);
  if (raw.ioctlPtr(fd, TUNGETIFF, ifr) < 0) ioctlFail('TUNGETIFF', fd);
  return { name: ifrName(ifr), flags: ifr.readUInt16LE(IFR_FLAGS_OFF) };
}

/** TUNGETFEATURES: the IFF_* flags this kernel's tun driver supports. */
export function getFeatures(fd: number): number {
  const out = Buffer.alloc(4);
  if (raw.ioctlPtr(fd, TUNGETFEATURES, out) < 0) ioctlFail('TUNGETFEATURES', fd);
  return out.readUInt32LE(0);
}

/** TUNSETVNETHDRSZ (n >= 10). Only meaningful with IFF_VNET_HDR. */
export function setVnetHdrSize(fd: number, n: number): void {
  const v = Buffer.alloc(4);
  v.writeInt32LE(n, 0);
  if (raw.ioctlPtr(fd, TUNSETVNETHDRSZ, v) < 0) ioctlFail('TUNSETVNETHDRSZ', fd);
}

/** TUNGETVNETHDRSZ. */
export function getVnetHdrSize(fd: number): number {
  const v = Buffer.alloc(4);
  if (raw.ioctlPtr(fd, TUNGETVNETHDRSZ, v) < 0) ioctlFail('TUNGETVNETHDRSZ', fd);
  return v.readInt32LE(0);
}

/**
 * TUNSETOFFLOAD (argument by value): which offloads we accept, TUN_F_* bits.
 * EINVAL for unknown bits or offloads without IFF_VNET_HDR semantics.
 */
export function setOffload(fd: number, flags: number): void {
  if (raw.ioctlInt(fd, TUNSETOFFLOAD, flags >>> 0) < 0) ioctlFail('TUNSETOFFLOAD', fd);
}

/** Set O_NONBLOCK (fcntl F_GETFL/F_SETFL). */
export function setNonBlocking(fd: number, on = true): void {
  setFdNonBlocking(fd, on);
}

/**
 * read(2) one frame into buf (pass buf.subarray(off) to read at an offset).
 * Returns bytes read, or -1 when nothing is queued (EAGAIN). EINTR is
 * retried; any other failure throws NativeError (EBADFD when the device was
 * deleted, EBADF when the fd was closed).
 */
export function readFrame(fd: number, buf: Uint8Array): number {
  for (;;) {
    const n = raw.read(fd, buf, buf.length);
    if (n >= 0) return n;
    const e = errno();
    if (e === E.EAGAIN) return -1;
    if (e === E.EINTR) continue;
    throw new NativeError(e, 'read', `reading frame from fd ${fd}`);
  }
}

/** Where each ArrayBuffer's bytes start (see addressOf). */
const bases = new WeakMap<ArrayBufferLike, number>();

/**
 * The address of b's first byte. Taken once per ArrayBuffer: a Buffer's
 * backing store never moves (reading `.buffer` moves even a small on-heap
 * typed array's bytes off the heap for good, before memmove sees them).
 */
function addressOf(b: Uint8Array): number {
  const ab = b.buffer;
  let base = bases.get(ab);
  if (base === undefined) {
    base = raw.memmoveAddress(b, b, 0) - b.byteOffset;
    bases.set(ab, base);
  }
  return base + b.byteOffset;
}

/** Two struct iovec { void *base; size_t len; } for writeFrame2. */
const IOV = Buffer.allocUnsafeSlow(32);

function putU64(at: number, v: number): void {
  const lo = v % 0x100000000;
  IOV.writeUInt32LE(lo, at);
  IOV.writeUInt32LE((v - lo) / 0x100000000, at + 4);
}

/**
 * writev(2) of one frame in two pieces, a[0, aLen) then all of b: headers
 * built in one buffer, and a payload written from where it lies (a TCP
 * send buffer's block), with no copy. Returns bytes written, or -1 on
 * EAGAIN; EINTR retried; other errors throw, as writeFrame.
 */
export function writeFrame2(fd: number, a: Uint8Array, aLen: number, b: Uint8Array): number {
  if (aLen > a.length) aLen = a.length;
  putU64(0, addressOf(a));
  putU64(8, aLen);
  putU64(16, addressOf(b));
  putU64(24, b.length);
  for (;;) {
    const n = raw.writev(fd, IOV, 2);
    if (n >= 0) return n;
    const e = errno();
    if (e === E.EAGAIN) return -1;
    if (e === E.EINTR) continue;
    throw new NativeError(e, 'writev', `writing frame to fd ${fd}`);
  }
}

/**
 * write(2) one frame: buf[0, len). Returns bytes written, or -1 on EAGAIN
 * (rare for a tap). EINTR retried; other errors throw (EIO when the tap is
 * down is reported as thrown EIO — callers may choose to count and drop).
 */
export function writeFrame(fd: number, buf: Uint8Array, len: number = buf.length): number {
  if (len > buf.length) len = buf.length;
  for (;;) {
    const n = raw.write(fd, buf, len);
    if (n >= 0) return n;
    const e = errno();
    if (e === E.EAGAIN) return -1;
    if (e === E.EINTR) continue;
    throw new NativeError(e, 'write', `writing frame to fd ${fd}`);
  }
}

/**
 * Synchronous batch drain: read frames into bufs[0], bufs[1], ... until EAGAIN
 * or the buffers run out; lens[i] receives each length. Returns the count
 * (0 if nothing was queued). If it returns bufs.length, more may be pending.
 */
export function drain(fd: number, bufs: Uint8Array[], lens: number[] | Uint32Array): number {
  let i = 0;
  for (; i < bufs.length; i++) {
    const n = readFrame(fd, bufs[i]!);
    if (n < 0) break;
    lens[i] = n;
  }
  return i;
}

/** close(2) any fd we own (tap, pidfd, eventfd). */
export function closeFd(fd: number): void {
  closeAnyFd(fd);
}
