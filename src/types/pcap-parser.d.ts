// Minimal types for pcap-parser 0.2 (the package ships none).
declare module 'pcap-parser' {
  import { EventEmitter } from 'node:events';
  import { Readable } from 'node:stream';
  export interface GlobalHeader {
    magicNumber: number;
    majorVersion: number;
    minorVersion: number;
    gmtOffset: number;
    timestampAccuracy: number;
    snapshotLength: number;
    linkLayerType: number;
  }
  export interface PacketHeader {
    timestampSeconds: number;
    timestampMicroseconds: number;
    capturedLength: number;
    originalLength: number;
  }
  export interface Packet {
    header: PacketHeader;
    data: Buffer;
  }
  export interface Parser extends EventEmitter {
    on(ev: 'globalHeader', cb: (h: GlobalHeader) => void): this;
    on(ev: 'packet', cb: (p: Packet) => void): this;
    on(ev: 'end', cb: () => void): this;
    on(ev: 'error', cb: (e: Error) => void): this;
  }
  export function parse(input: string | Readable): Parser;
  const _default: { parse: typeof parse };
  export default _default;
}
