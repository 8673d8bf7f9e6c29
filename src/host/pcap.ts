// pcap files: a buffered writer for live capture (--pcap, tsnet replay --out)
// and a reader (pcap-parser) for replay. Classic libpcap format 2.4,
// microsecond timestamps, LINKTYPE_ETHERNET — what tcpdump -w writes and
// tshark -r reads.

import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import pcapParser from 'pcap-parser';

export const LINKTYPE_ETHERNET = 1;
const MAGIC_USEC = 0xa1b2c3d4;
const GLOBAL_HEADER_LEN = 24;
const RECORD_HEADER_LEN = 16;
const SNAPLEN = 262144;
// Frames are buffered and written in chunks of about this size, or on flush().
const FLUSH_BYTES = 256 * 1024;

export interface PcapRecord {
  /** Capture time in microseconds since the epoch. */
  timeUs: number;
  data: Buffer;
}

export function pcapGlobalHeader(linkType = LINKTYPE_ETHERNET): Buffer {
  const h = Buffer.alloc(GLOBAL_HEADER_LEN);
  h.writeUInt32LE(MAGIC_USEC, 0);
  h.writeUInt16LE(2, 4); // version major
  h.writeUInt16LE(4, 6); // version minor
  h.writeInt32LE(0, 8); // thiszone: GMT
  h.writeUInt32LE(0, 12); // sigfigs
  h.writeUInt32LE(SNAPLEN, 16);
  h.writeUInt32LE(linkType, 20);
  return h;
}

export function pcapRecordHeader(timeUs: number, capLen: number, origLen: number): Buffer {
  const h = Buffer.allocUnsafe(RECORD_HEADER_LEN);
  const sec = Math.floor(timeUs / 1e6);
  h.writeUInt32LE(sec >>> 0, 0);
  h.writeUInt32LE(Math.floor(timeUs - sec * 1e6) >>> 0, 4);
  h.writeUInt32LE(capLen, 8);
  h.writeUInt32LE(origLen, 12);
  return h;
}

/** Synchronous, buffered pcap writer. Call flush() after each batch and close() at exit. */
export class PcapWriter {
  private fd: number;
  private chunks: Buffer[] = [];
  private pending = 0;
  frames = 0;
  /** Set when a write failed (ENOSPC, EIO, ...): capture stopped, the network goes on. */
  failure: Error | undefined;
  /** Called once when capture stops on a write error. */
  onFailure: (err: Error) => void = () => {};

  constructor(readonly path: string) {
    this.fd = fs.openSync(path, 'w', 0o644);
    fs.writeSync(this.fd, pcapGlobalHeader());
  }

  write(frame: Buffer, timeUs: number = nowUs()): void {
    if (this.fd < 0) return;
    const capLen = Math.min(frame.length, SNAPLEN);
    this.chunks.push(pcapRecordHeader(timeUs, capLen, frame.length));
    // Copy: callers may reuse their buffers after this call returns.
    this.chunks.push(Buffer.from(frame.subarray(0, capLen)));
    this.pending += RECORD_HEADER_LEN + capLen;
    this.frames++;
    if (this.pending >= FLUSH_BYTES) this.flush();
  }

  flush(): void {
    if (this.fd < 0 || this.pending === 0) return;
    const all = Buffer.concat(this.chunks, this.pending);
    this.chunks = [];
    this.pending = 0;
    try {
      let off = 0;
      while (off < all.length) off += fs.writeSync(this.fd, all, off);
    } catch (e) {
      // A full disk must not take the network down: stop capturing, say so once.
      this.failure = e as Error;
      try {
        fs.closeSync(this.fd);
      } catch {
        // already unusable
      }
      this.fd = -1;
      this.onFailure(this.failure);
    }
  }

  close(): void {
    if (this.fd < 0) return;
    this.flush();
    if (this.fd < 0) return;
    fs.closeSync(this.fd);
    this.fd = -1;
  }
}

/** Wall-clock microseconds with sub-millisecond resolution. */
function nowUs(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

export class PcapFormatError extends Error {}

/** Reads a whole Ethernet pcap file. */
export function readPcap(path: string): Promise<PcapRecord[]> {
  return new Promise((resolve, reject) => {
    let first: Buffer;
    try {
      const fd = fs.openSync(path, 'r');
      first = Buffer.alloc(4);
      fs.readSync(fd, first, 0, 4, 0);
      fs.closeSync(fd);
    } catch (e) {
      reject(e);
      return;
    }
    const magic = first.readUInt32LE(0);
    if (magic === 0x0a0d0d0a) {
      reject(new PcapFormatError(`${JSON.stringify(path)} is pcapng (convert it: editcap -F pcap ${path} out.pcap)`));
      return;
    }
    if (magic === 0xa1b23c4d || magic === 0x4d3cb2a1) {
      reject(new PcapFormatError(`${JSON.stringify(path)} has nanosecond timestamps (convert it: editcap -F pcap ${path} out.pcap)`));
      return;
    }
    if (magic !== 0xa1b2c3d4 && magic !== 0xd4c3b2a1) {
      reject(new PcapFormatError(`${JSON.stringify(path)} is not a pcap file: no pcap magic number at its start (name an Ethernet pcap, e.g. one written by --pcap or tcpdump -w)`));
      return;
    }
    const out: PcapRecord[] = [];
    const parser = pcapParser.parse(path);
    parser.on('globalHeader', (h) => {
      if (h.linkLayerType !== LINKTYPE_ETHERNET) {
        reject(new PcapFormatError(`${JSON.stringify(path)}: link type ${h.linkLayerType} is not Ethernet (capture on the TAP, or with --pcap)`));
      }
    });
    parser.on('packet', (p) => {
      out.push({
        timeUs: p.header.timestampSeconds * 1e6 + p.header.timestampMicroseconds,
        data: Buffer.from(p.data),
      });
    });
    parser.on('error', (e) => reject(new PcapFormatError(`${JSON.stringify(path)} is not a pcap file: ${e.message} (name an Ethernet pcap, e.g. one written by --pcap or tcpdump -w)`)));
    parser.on('end', () => resolve(out));
  });
}
