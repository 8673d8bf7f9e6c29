// src/wire/dhcp.ts — DHCP (RFC 2131) messages and options (RFC 2132), carried
// in the BOOTP format (RFC 951) over UDP ports 67 (server) and 68 (client).
//
// Read this first:
// - DhcpPacket views the UDP payload: a 236-byte fixed BOOTP header, the
//   magic cookie 99.130.83.99 and the options. newChecked validates the whole
//   option area once (no option may overrun it), so `option()` and the header
//   accessors never throw afterwards.
// - DhcpRepr.parse turns the options tsnet uses into typed fields and keeps
//   every other option raw, in order (`otherOptions`). It records the order
//   in which options arrived (`order`) so that emit(parse(b)) reproduces a
//   real client's message byte for byte. A Repr built by hand has no `order`
//   and emits its options in a fixed order (DEFAULT_ORDER, server-style).
// - Addresses are unsigned 32-bit numbers, chaddr a 48-bit MAC number: only
//   Ethernet (htype 1, hlen 6) is supported by the Repr. sname/file are not
//   exposed (emitted as zeros); option overload (52) is not followed.
// - emit pads the message with zeros to the 300-byte BOOTP minimum.

import { WireError } from './errors.js';
import { readMac, readU16, readU32, writeMac, writeU16, writeU32 } from './address.js';

/** RFC 2131 §4.1: servers listen on 67, clients on 68. */
export const DHCP_SERVER_PORT = 67;
export const DHCP_CLIENT_PORT = 68;

export const DHCP_OP = 0;
export const DHCP_HTYPE = 1;
export const DHCP_HLEN = 2;
export const DHCP_HOPS = 3;
export const DHCP_XID = 4;
export const DHCP_SECS = 8;
export const DHCP_FLAGS = 10;
export const DHCP_CIADDR = 12;
export const DHCP_YIADDR = 16;
export const DHCP_SIADDR = 20;
export const DHCP_GIADDR = 24;
/** 16 bytes; an Ethernet address uses the first 6. */
export const DHCP_CHADDR = 28;
/** 64 bytes, server host name (not exposed). */
export const DHCP_SNAME = 44;
/** 128 bytes, boot file name (not exposed). */
export const DHCP_FILE = 108;
export const DHCP_COOKIE = 236;
export const DHCP_OPTIONS = 240;
/** RFC 2131 §3: the magic cookie 99.130.83.99 opens the options field. */
export const DHCP_MAGIC_COOKIE = 0x63825363;
/**
 * RFC 1542 §3.1.1 (and RFC 951's 64-byte vendor area): a BOOTP message is at
 * least 300 bytes; some relays and old clients drop shorter ones, so every
 * message tsnet emits is padded to this length.
 */
export const BOOTP_MIN_LEN = 300;

/** RFC 951 §3: the op field. */
export const BootpOp = {
  Request: 1,
  Reply: 2,
} as const;

/** RFC 1700 "Hardware Type" (ARP numbers): 10 Mb Ethernet. */
export const HTYPE_ETHERNET = 1;

/** RFC 2131 §2 (Figure 2): the leftmost bit of flags asks for broadcast replies. */
export const DHCP_FLAG_BROADCAST = 0x8000;

/** RFC 2132 §9.6: option 53, DHCP Message Type. */
export const DhcpMessageType = {
  Discover: 1,
  Offer: 2,
  Request: 3,
  Decline: 4,
  Ack: 5,
  Nak: 6,
  Release: 7,
  Inform: 8,
} as const;

/** RFC 2132 option codes used by tsnet. */
export const DhcpOption = {
  Pad: 0,
  SubnetMask: 1,
  Router: 3,
  DnsServer: 6,
  HostName: 12,
  DomainName: 15,
  InterfaceMtu: 26,
  BroadcastAddress: 28,
  RequestedIp: 50,
  LeaseTime: 51,
  Overload: 52,
  MessageType: 53,
  ServerId: 54,
  ParameterRequestList: 55,
  Message: 56,
  MaxMessageSize: 57,
  RenewalTime: 58,
  RebindingTime: 59,
  ClientId: 61,
  /** RFC 3397. */
  DomainSearch: 119,
  End: 255,
} as const;

export class DhcpPacket {
  constructor(readonly buffer: Buffer) {}

  static newChecked(buf: Buffer): DhcpPacket {
    // RFC 2131 §2: 236 bytes of fixed fields, then the options field, which
    // for DHCP starts with the 4-byte magic cookie (§3).
    if (buf.length < DHCP_OPTIONS) throw new WireError('dhcp-truncated');
    const p = new DhcpPacket(buf);
    if (p.magicCookie !== DHCP_MAGIC_COOKIE) throw new WireError('dhcp-bad-cookie');
    // Walk the options once: no option may run past the message.
    walkOptions(buf, DHCP_OPTIONS, buf.length, noop);
    return p;
  }

  get op(): number {
    return this.buffer[DHCP_OP] ?? 0;
  }
  set op(v: number) {
    this.buffer[DHCP_OP] = v;
  }
  get htype(): number {
    return this.buffer[DHCP_HTYPE] ?? 0;
  }
  get hlen(): number {
    return this.buffer[DHCP_HLEN] ?? 0;
  }
  get hops(): number {
    return this.buffer[DHCP_HOPS] ?? 0;
  }
  get xid(): number {
    return readU32(this.buffer, DHCP_XID);
  }
  set xid(v: number) {
    writeU32(this.buffer, DHCP_XID, v);
  }
  get secs(): number {
    return readU16(this.buffer, DHCP_SECS);
  }
  get flags(): number {
    return readU16(this.buffer, DHCP_FLAGS);
  }
  set flags(v: number) {
    writeU16(this.buffer, DHCP_FLAGS, v);
  }
  /** RFC 2131 §4.1: the client cannot receive unicast before it is configured. */
  get broadcast(): boolean {
    return (this.flags & DHCP_FLAG_BROADCAST) !== 0;
  }
  get ciaddr(): number {
    return readU32(this.buffer, DHCP_CIADDR);
  }
  set ciaddr(v: number) {
    writeU32(this.buffer, DHCP_CIADDR, v);
  }
  get yiaddr(): number {
    return readU32(this.buffer, DHCP_YIADDR);
  }
  set yiaddr(v: number) {
    writeU32(this.buffer, DHCP_YIADDR, v);
  }
  get siaddr(): number {
    return readU32(this.buffer, DHCP_SIADDR);
  }
  get giaddr(): number {
    return readU32(this.buffer, DHCP_GIADDR);
  }
  set giaddr(v: number) {
    writeU32(this.buffer, DHCP_GIADDR, v);
  }
  /** The first six bytes of chaddr as a MAC (meaningful when htype 1, hlen 6). */
  get chaddr(): number {
    return readMac(this.buffer, DHCP_CHADDR);
  }
  set chaddr(mac: number) {
    writeMac(this.buffer, DHCP_CHADDR, mac);
  }
  get magicCookie(): number {
    return readU32(this.buffer, DHCP_COOKIE);
  }
  /** The options after the magic cookie (view, to the end of the buffer). */
  get options(): Buffer {
    return this.buffer.subarray(DHCP_OPTIONS);
  }

  /**
   * The data of the first instance of option `code` (view), or undefined.
   * (RFC 3396 concatenation of repeated instances is done by DhcpRepr.parse.)
   */
  option(code: number): Buffer | undefined {
    let found: Buffer | undefined;
    const b = this.buffer;
    walkOptions(b, DHCP_OPTIONS, b.length, (c, start, len) => {
      if (c !== code) return false;
      found = b.subarray(start, start + len);
      return true;
    });
    return found;
  }

  /** Option 53, or 0 when absent or malformed (a plain BOOTP message). */
  get messageType(): number {
    const o = this.option(DhcpOption.MessageType);
    return o !== undefined && o.length === 1 ? o[0]! : 0;
  }
}

function noop(): boolean {
  return false;
}

/**
 * Calls `fn(code, dataStart, dataLen)` for each option in `b[start, end)`
 * until END, the end of the range, or fn returning true.
 * RFC 2132 §2: Pad (0) and End (255) are single bytes; every other option is
 * code, length, then `length` data bytes. Throws when one runs past `end`.
 * A missing End is tolerated (the range just runs out).
 */
function walkOptions(
  b: Buffer,
  start: number,
  end: number,
  fn: (code: number, dataStart: number, dataLen: number) => boolean,
): void {
  let i = start;
  while (i < end) {
    const code = b[i]!;
    if (code === DhcpOption.Pad) {
      i++;
      continue;
    }
    if (code === DhcpOption.End) return;
    if (i + 1 >= end) throw new WireError('dhcp-bad-option-len', `option ${code} has no length byte`);
    const len = b[i + 1]!;
    if (i + 2 + len > end) throw new WireError('dhcp-bad-option-len', `option ${code} overruns the message`);
    if (fn(code, i + 2, len)) return;
    i += 2 + len;
  }
}

/** An option tsnet does not interpret, kept raw. */
export interface DhcpRawOption {
  code: number;
  /** From parse: a view into the message. */
  data: Buffer;
}

export interface DhcpFields {
  /** BootpOp. */
  op: number;
  xid: number;
  /** Client MAC (chaddr, htype 1, hlen 6). */
  chaddr: number;
  /** Relay hop count (default 0). */
  hops?: number;
  secs?: number;
  /** DHCP_FLAG_BROADCAST or 0 (default 0). */
  flags?: number;
  ciaddr?: number;
  yiaddr?: number;
  siaddr?: number;
  giaddr?: number;
  /** Option 53 (DhcpMessageType); absent in plain BOOTP. */
  messageType?: number;
  /** Option 1. */
  subnetMask?: number;
  /** Option 3, in order of preference. */
  router?: number[];
  /** Option 6, in order of preference. */
  dns?: number[];
  /** Option 12 (bytes as latin1, so any byte round-trips). */
  hostname?: string;
  /** Option 26, bytes. */
  mtu?: number;
  /** Option 28. */
  broadcast?: number;
  /** Option 50. */
  requestedIp?: number;
  /** Option 51, seconds (0xffffffff = infinite). */
  leaseTime?: number;
  /** Option 54. */
  serverId?: number;
  /** Option 55, option codes. */
  parameterRequestList?: number[];
  /** Option 56, a human-readable error (NAK) or reason (DECLINE), latin1. */
  message?: string;
  /** Option 57, bytes. */
  maxMessageSize?: number;
  /** Option 58, T1 in seconds. */
  renewalTime?: number;
  /** Option 59, T2 in seconds. */
  rebindingTime?: number;
  /** Option 61, type byte then identifier (from parse: a view). */
  clientId?: Buffer;
  /**
   * Every other option, in the order received / to be emitted — instances
   * of one code together, where the first one was (RFC 3396 concatenates
   * them; only their order among themselves matters).
   */
  otherOptions?: DhcpRawOption[];
  /**
   * Option codes in the order they appeared (each once); from parse, so
   * that emit reproduces the original layout. Codes absent from the Repr
   * are skipped; fields not listed follow in DEFAULT_ORDER.
   */
  order?: number[];
}

/** Emit order for a Repr without `order` (server replies): what dnsmasq does. */
const DEFAULT_ORDER: readonly number[] = [
  DhcpOption.MessageType,
  DhcpOption.ServerId,
  DhcpOption.LeaseTime,
  DhcpOption.RenewalTime,
  DhcpOption.RebindingTime,
  DhcpOption.SubnetMask,
  DhcpOption.BroadcastAddress,
  DhcpOption.Router,
  DhcpOption.DnsServer,
  DhcpOption.InterfaceMtu,
  DhcpOption.HostName,
  DhcpOption.RequestedIp,
  DhcpOption.MaxMessageSize,
  DhcpOption.ParameterRequestList,
  DhcpOption.ClientId,
  DhcpOption.Message,
];
const KNOWN = new Set(DEFAULT_ORDER);

function badLen(code: number, len: number): never {
  throw new WireError('dhcp-bad-option-len', `option ${code} with length ${len}`);
}

function addrList(d: Buffer, code: number): number[] {
  // RFC 2132 §3.5/§3.8: a list of addresses, minimum length 4, multiple of 4.
  if (d.length < 4 || d.length % 4 !== 0) badLen(code, d.length);
  const out: number[] = [];
  for (let i = 0; i < d.length; i += 4) out.push(readU32(d, i));
  return out;
}

function u32(d: Buffer, code: number): number {
  if (d.length !== 4) badLen(code, d.length);
  return readU32(d, 0);
}

function u16(d: Buffer, code: number): number {
  if (d.length !== 2) badLen(code, d.length);
  return readU16(d, 0);
}

function nonEmpty(d: Buffer, code: number): Buffer {
  // RFC 2132: host name, parameter request list, message: minimum length 1.
  if (d.length < 1) badLen(code, d.length);
  return d;
}

export class DhcpRepr implements DhcpFields {
  op: number;
  xid: number;
  chaddr: number;
  hops: number;
  secs: number;
  flags: number;
  ciaddr: number;
  yiaddr: number;
  siaddr: number;
  giaddr: number;
  messageType: number | undefined;
  subnetMask: number | undefined;
  router: number[] | undefined;
  dns: number[] | undefined;
  hostname: string | undefined;
  mtu: number | undefined;
  broadcast: number | undefined;
  requestedIp: number | undefined;
  leaseTime: number | undefined;
  serverId: number | undefined;
  parameterRequestList: number[] | undefined;
  message: string | undefined;
  maxMessageSize: number | undefined;
  renewalTime: number | undefined;
  rebindingTime: number | undefined;
  clientId: Buffer | undefined;
  otherOptions: DhcpRawOption[];
  order: number[] | undefined;

  constructor(f: DhcpFields) {
    this.op = f.op;
    this.xid = f.xid >>> 0;
    this.chaddr = f.chaddr;
    this.hops = f.hops ?? 0;
    this.secs = f.secs ?? 0;
    this.flags = f.flags ?? 0;
    this.ciaddr = f.ciaddr ?? 0;
    this.yiaddr = f.yiaddr ?? 0;
    this.siaddr = f.siaddr ?? 0;
    this.giaddr = f.giaddr ?? 0;
    this.messageType = f.messageType;
    this.subnetMask = f.subnetMask;
    this.router = f.router;
    this.dns = f.dns;
    this.hostname = f.hostname;
    this.mtu = f.mtu;
    this.broadcast = f.broadcast;
    this.requestedIp = f.requestedIp;
    this.leaseTime = f.leaseTime;
    this.serverId = f.serverId;
    this.parameterRequestList = f.parameterRequestList;
    this.message = f.message;
    this.maxMessageSize = f.maxMessageSize;
    this.renewalTime = f.renewalTime;
    this.rebindingTime = f.rebindingTime;
    this.clientId = f.clientId;
    this.otherOptions = f.otherOptions ?? [];
    this.order = f.order;
  }

  /** The packet must come from newChecked. */
  static parse(p: DhcpPacket): DhcpRepr {
    // tsnet serves Ethernet TAPs only; chaddr is read as a 6-byte MAC.
    if (p.htype !== HTYPE_ETHERNET || p.hlen !== 6) {
      throw new WireError('dhcp-unsupported-htype', `htype ${p.htype} hlen ${p.hlen}`);
    }
    const r = new DhcpRepr({
      op: p.op,
      xid: p.xid,
      chaddr: p.chaddr,
      hops: p.hops,
      secs: p.secs,
      flags: p.flags,
      ciaddr: p.ciaddr,
      yiaddr: p.yiaddr,
      siaddr: p.siaddr,
      giaddr: p.giaddr,
      order: [],
    });
    const b = p.buffer;
    // RFC 3396 §7: several instances of the same option are one option whose
    // data is their concatenation, in order. Collect first, decode after.
    const known = new Map<number, Buffer[]>();
    const order: number[] = [];
    walkOptions(b, DHCP_OPTIONS, b.length, (code, start, len) => {
      const data = b.subarray(start, start + len);
      if (KNOWN.has(code)) {
        const parts = known.get(code);
        if (parts) parts.push(data);
        else {
          known.set(code, [data]);
          order.push(code);
        }
      } else {
        // Unknown options stay separate instances, so they round-trip as sent.
        // Option overload (52, RFC 2132 §9.3) is kept here but not followed:
        // tsnet needs nothing a client could put in sname/file.
        r.otherOptions.push({ code, data });
        if (!order.includes(code)) order.push(code);
      }
      return false;
    });
    r.order = order;
    // emit() writes every instance of an unknown code together, where the
    // first one was (see layout()); list them that way too, so that what is
    // parsed is what emit() writes: 52, 76, 52 becomes 52, 52, 76 (the
    // instances of one code keep their order, which is all RFC 3396 needs).
    if (r.otherOptions.length > 1) {
      const rank = new Map(order.map((c, i) => [c, i]));
      r.otherOptions.sort((a, b) => rank.get(a.code)! - rank.get(b.code)!); // stable (ES2019)
    }
    for (const [code, parts] of known) {
      const d = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
      switch (code) {
        case DhcpOption.MessageType:
          // RFC 2132 §9.6: length 1, values 1..8 (unknown values are left to the stack).
          if (d.length !== 1) badLen(code, d.length);
          r.messageType = d[0];
          break;
        case DhcpOption.SubnetMask:
          r.subnetMask = u32(d, code);
          break;
        case DhcpOption.Router:
          r.router = addrList(d, code);
          break;
        case DhcpOption.DnsServer:
          r.dns = addrList(d, code);
          break;
        case DhcpOption.HostName:
          r.hostname = nonEmpty(d, code).toString('latin1');
          break;
        case DhcpOption.InterfaceMtu:
          r.mtu = u16(d, code);
          break;
        case DhcpOption.BroadcastAddress:
          r.broadcast = u32(d, code);
          break;
        case DhcpOption.RequestedIp:
          r.requestedIp = u32(d, code);
          break;
        case DhcpOption.LeaseTime:
          r.leaseTime = u32(d, code);
          break;
        case DhcpOption.ServerId:
          r.serverId = u32(d, code);
          break;
        case DhcpOption.ParameterRequestList:
          r.parameterRequestList = [...nonEmpty(d, code)];
          break;
        case DhcpOption.Message:
          r.message = nonEmpty(d, code).toString('latin1');
          break;
        case DhcpOption.MaxMessageSize:
          r.maxMessageSize = u16(d, code);
          break;
        case DhcpOption.RenewalTime:
          r.renewalTime = u32(d, code);
          break;
        case DhcpOption.RebindingTime:
          r.rebindingTime = u32(d, code);
          break;
        case DhcpOption.ClientId:
          // RFC 2132 §9.14 says minimum length 2; one byte is tolerated.
          r.clientId = nonEmpty(d, code);
          break;
      }
    }
    return r;
  }

  /** The data of a typed option, or undefined when the field is unset. */
  private optionData(code: number): Buffer | undefined {
    const addr = (v: number | undefined) => {
      if (v === undefined) return undefined;
      const d = Buffer.allocUnsafe(4);
      writeU32(d, 0, v);
      return d;
    };
    const list = (v: number[] | undefined) => {
      if (v === undefined) return undefined;
      const d = Buffer.allocUnsafe(4 * v.length);
      v.forEach((a, i) => writeU32(d, 4 * i, a));
      return d;
    };
    const short = (v: number | undefined) => {
      if (v === undefined) return undefined;
      const d = Buffer.allocUnsafe(2);
      writeU16(d, 0, v);
      return d;
    };
    switch (code) {
      case DhcpOption.MessageType:
        return this.messageType === undefined ? undefined : Buffer.from([this.messageType]);
      case DhcpOption.SubnetMask:
        return addr(this.subnetMask);
      case DhcpOption.Router:
        return list(this.router);
      case DhcpOption.DnsServer:
        return list(this.dns);
      case DhcpOption.HostName:
        return this.hostname === undefined ? undefined : Buffer.from(this.hostname, 'latin1');
      case DhcpOption.InterfaceMtu:
        return short(this.mtu);
      case DhcpOption.BroadcastAddress:
        return addr(this.broadcast);
      case DhcpOption.RequestedIp:
        return addr(this.requestedIp);
      case DhcpOption.LeaseTime:
        return addr(this.leaseTime);
      case DhcpOption.ServerId:
        return addr(this.serverId);
      case DhcpOption.ParameterRequestList:
        return this.parameterRequestList === undefined ? undefined : Buffer.from(this.parameterRequestList);
      case DhcpOption.Message:
        return this.message === undefined ? undefined : Buffer.from(this.message, 'latin1');
      case DhcpOption.MaxMessageSize:
        return short(this.maxMessageSize);
      case DhcpOption.RenewalTime:
        return addr(this.renewalTime);
      case DhcpOption.RebindingTime:
        return addr(this.rebindingTime);
      case DhcpOption.ClientId:
        return this.clientId;
      default:
        return undefined;
    }
  }

  /** Options in emit order: [code, data] (the END option excluded). */
  private layout(): [number, Buffer][] {
    const out: [number, Buffer][] = [];
    const doneKnown = new Set<number>();
    const others = this.otherOptions;
    const doneOther = new Array<boolean>(others.length).fill(false);
    const put = (code: number) => {
      if (KNOWN.has(code)) {
        if (doneKnown.has(code)) return;
        doneKnown.add(code);
        const d = this.optionData(code);
        if (d !== undefined) out.push([code, d]);
        return;
      }
      // Every raw instance of this code, in order.
      others.forEach((o, i) => {
        if (o.code === code && !doneOther[i]) {
          doneOther[i] = true;
          out.push([o.code, o.data]);
        }
      });
    };
    for (const code of this.order ?? []) put(code);
    for (const code of DEFAULT_ORDER) put(code);
    others.forEach((o, i) => {
      if (!doneOther[i]) out.push([o.code, o.data]);
    });
    return out;
  }

  /** Bytes of the options, END included (before padding). */
  private optionsLen(layout: [number, Buffer][]): number {
    let n = 1; // END
    for (const [, d] of layout) {
      // RFC 3396 §5: data longer than 255 bytes is split into several
      // instances; an empty option is still emitted once (code, 0).
      n += Math.max(1, Math.ceil(d.length / 255)) * 2 + d.length;
    }
    return n;
  }

  bufferLen(): number {
    return Math.max(BOOTP_MIN_LEN, DHCP_OPTIONS + this.optionsLen(this.layout()));
  }

  /** Writes the whole message (bufferLen() bytes): header, cookie, options, END, zero padding. */
  emit(target: DhcpPacket | Buffer): void {
    const b = target instanceof DhcpPacket ? target.buffer : target;
    const layout = this.layout();
    const len = Math.max(BOOTP_MIN_LEN, DHCP_OPTIONS + this.optionsLen(layout));
    if (b.length < len) throw new WireError('buffer-too-small');
    b.fill(0, 0, len);
    b[DHCP_OP] = this.op;
    b[DHCP_HTYPE] = HTYPE_ETHERNET;
    b[DHCP_HLEN] = 6;
    b[DHCP_HOPS] = this.hops;
    writeU32(b, DHCP_XID, this.xid);
    writeU16(b, DHCP_SECS, this.secs);
    writeU16(b, DHCP_FLAGS, this.flags);
    writeU32(b, DHCP_CIADDR, this.ciaddr);
    writeU32(b, DHCP_YIADDR, this.yiaddr);
    writeU32(b, DHCP_SIADDR, this.siaddr);
    writeU32(b, DHCP_GIADDR, this.giaddr);
    writeMac(b, DHCP_CHADDR, this.chaddr);
    writeU32(b, DHCP_COOKIE, DHCP_MAGIC_COOKIE);
    let i = DHCP_OPTIONS;
    for (const [code, d] of layout) {
      let off = 0;
      do {
        const n = Math.min(255, d.length - off);
        b[i] = code;
        b[i + 1] = n;
        d.copy(b, i + 2, off, off + n);
        i += 2 + n;
        off += n;
      } while (off < d.length);
    }
    b[i] = DhcpOption.End;
  }
}
