// The virtual network's address plan: network, gateway, DNS, DHCP range,
// recommended guest address, virtual MACs and MTU. Built once at start from
// the CLI's --cidr/--mtu/--macaddress (strings parsed here, at the edge, with
// ip-address); the per-packet code only ever sees the numbers.
//
// Layout (slirp4netns-compatible, see its man page): for network N/len,
// gateway = N+2, DNS = N+3, DHCP pool N+15..N+30, guest = N+100.
// Virtual MACs are 52:55: followed by the four IPv4 bytes of the address.
// IPv6 (--enable-ipv6), as slirp4netns: prefix fd00::/64, gateway and host
// fd00::2, DNS fd00::3, the router's link-local address fe80::2; MACs
// 52:56:00:00:00:02 (router) and :03 (DNS), as slirp4netns answers.

import { Address4 } from 'ip-address';
import { ipv6FromString } from '../wire/address.js';

export interface StackConfig {
  /** Network address, host byte order as an unsigned 32-bit number. */
  readonly network: number;
  readonly prefixLen: number;
  readonly netmask: number;
  readonly gateway: number;
  readonly dns: number;
  readonly guest: number;
  readonly dhcpStart: number;
  readonly dhcpEnd: number;
  readonly gatewayMac: number;
  readonly dnsMac: number;
  /** The guest's MAC when the user set one with --macaddress (with -c). */
  readonly guestMac: number | undefined;
  readonly mtu: number;
  /** --disable-host-loopback: traffic to the gateway must not reach 127.0.0.1. */
  readonly disableHostLoopback: boolean;
  /** IPv6 on the guest link (--enable-ipv6); undefined when off. */
  readonly ipv6: Ipv6Plan | undefined;
}

/** The IPv6 address plan (16-byte addresses). */
export interface Ipv6Plan {
  readonly prefix: Buffer;
  readonly prefixLen: number;
  /** fd00::2: the gateway, and the host as the guest sees it. */
  readonly gateway: Buffer;
  readonly dns: Buffer;
  /** fe80::2: the router's link-local address (the guest's default route). */
  readonly linkLocal: Buffer;
  /** The MAC of the gateway and the router's link-local address. */
  readonly mac: number;
  /** The MAC of the DNS address. */
  readonly dnsMac: number;
}

/** slirp4netns's IPv6 MACs: 52:56:00:00:00:02 for the router (fd00::2, fe80::2), :03 for DNS (fd00::3). */
export const IPV6_ROUTER_MAC = 0x525600000002;
export const IPV6_DNS_MAC = 0x525600000003;

/** The MAC that answers for one of the plan's addresses. */
export function macFor6(plan: Ipv6Plan, addr: Uint8Array): number {
  return addr[15] === plan.dns[15] && Buffer.compare(Buffer.from(addr.buffer, addr.byteOffset, 16), plan.dns) === 0 ? plan.dnsMac : plan.mac;
}

export function ipv6Plan(): Ipv6Plan {
  return {
    prefix: ipv6FromString('fd00::'),
    prefixLen: 64,
    gateway: ipv6FromString('fd00::2'),
    dns: ipv6FromString('fd00::3'),
    linkLocal: ipv6FromString('fe80::2'),
    mac: IPV6_ROUTER_MAC,
    dnsMac: IPV6_DNS_MAC,
  };
}

/** Offsets inside the network, as slirp4netns defines them. */
export const OFFSET_GATEWAY = 2;
export const OFFSET_DNS = 3;
export const OFFSET_DHCP_START = 15;
export const OFFSET_DHCP_END = 30;
export const OFFSET_GUEST = 100;

// slirp4netns accepts prefixes 1..25: with /26 or longer, network+100 falls
// outside the network.
export const PREFIX_MIN = 1;
export const PREFIX_MAX = 25;

export const MTU_MIN = 68; // RFC 791: every IPv4 host must handle 68-byte datagrams
export const MTU_MAX = 65521; // slirp4netns's upper bound
export const DEFAULT_MTU = 1500;
export const DEFAULT_CIDR = '10.0.2.0/24';

export class ConfigError extends Error {}

/** 52:55:a.b.c.d — the virtual MAC for a virtual IPv4 address. */
export function virtualMac(ip: number): number {
  return 0x5255 * 2 ** 32 + (ip >>> 0);
}

export interface ParsedCidr {
  network: number;
  prefixLen: number;
}

/**
 * Parses --cidr with slirp4netns's validation and messages: "invalid CIDR",
 * "CIDR needs to be a network address like 10.0.2.0/24, not like
 * 10.0.2.100/24", "prefix length needs to be 1-25".
 */
export function parseCidr(text: string): ParsedCidr {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3})\/(\d{1,2})$/.exec(text.trim());
  if (!m || !Address4.isValid(text.trim())) throw new ConfigError(`invalid CIDR: ${text}`);
  const prefixLen = Number(m[2]);
  if (prefixLen < PREFIX_MIN || prefixLen > PREFIX_MAX) {
    throw new ConfigError(`prefix length needs to be ${PREFIX_MIN}-${PREFIX_MAX}`);
  }
  const a = new Address4(m[1]!);
  const ip = Number(a.bigInt()) >>> 0;
  const mask = prefixLen === 0 ? 0 : (0xffffffff << (32 - prefixLen)) >>> 0;
  const network = (ip & mask) >>> 0;
  if (network !== ip) {
    const a2 = new Address4(`${ipv4Text(network)}/${prefixLen}`);
    throw new ConfigError(
      `CIDR needs to be a network address like ${a2.correctForm()}/${prefixLen}, not like ${text.trim()}`,
    );
  }
  return { network, prefixLen };
}

/** Parses aa:bb:cc:dd:ee:ff into a 48-bit number. */
export function parseMac(text: string): number {
  const m = /^([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2})$/i.exec(
    text.trim(),
  );
  if (!m) throw new ConfigError(`invalid MAC address: ${text}`);
  let v = 0;
  for (let i = 1; i <= 6; i++) v = v * 256 + parseInt(m[i]!, 16);
  if (Math.floor(v / 2 ** 40) & 1) throw new ConfigError(`MAC address must be unicast, not multicast: ${text}`);
  return v;
}

export function parseMtu(text: string | number): number {
  const s = String(text).trim();
  if (!/^\d+$/.test(s)) throw new ConfigError(`MTU must be a number, got: ${text}`);
  const mtu = Number(s);
  // slirp4netns: "MTU must be a positive integer (< 65522)"
  if (mtu < MTU_MIN || mtu > MTU_MAX) {
    throw new ConfigError(`MTU must be between ${MTU_MIN} and ${MTU_MAX}, got ${mtu}`);
  }
  return mtu;
}

function ipv4Text(ip: number): string {
  return `${ip >>> 24}.${(ip >>> 16) & 255}.${(ip >>> 8) & 255}.${ip & 255}`;
}

export interface ConfigInput {
  cidr?: string;
  mtu?: number;
  macAddress?: string;
  disableHostLoopback?: boolean;
  enableIpv6?: boolean;
}

export function makeConfig(input: ConfigInput = {}): StackConfig {
  const { network, prefixLen } = parseCidr(input.cidr ?? DEFAULT_CIDR);
  const netmask = (0xffffffff << (32 - prefixLen)) >>> 0;
  const at = (off: number) => (network + off) >>> 0;
  const gateway = at(OFFSET_GATEWAY);
  const dns = at(OFFSET_DNS);
  return {
    network,
    prefixLen,
    netmask,
    gateway,
    dns,
    guest: at(OFFSET_GUEST),
    dhcpStart: at(OFFSET_DHCP_START),
    dhcpEnd: at(OFFSET_DHCP_END),
    gatewayMac: virtualMac(gateway),
    dnsMac: virtualMac(dns),
    guestMac: input.macAddress !== undefined ? parseMac(input.macAddress) : undefined,
    mtu: input.mtu ?? DEFAULT_MTU,
    disableHostLoopback: input.disableHostLoopback ?? false,
    ipv6: input.enableIpv6 ? ipv6Plan() : undefined,
  };
}
