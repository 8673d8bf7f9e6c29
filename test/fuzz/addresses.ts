// Addresses and MACs the fuzzer aims at: the virtual network's own (gateway,
// DNS, guest, other 10.0.2.x, its broadcast), every special IPv4 class
// (0/8, 127/8, 224/4, 240/4, 255.255.255.255, 169.254/16), ordinary outside
// addresses, and the MACs frames are sent from and to. Generators pick from
// here so every class shows up as source and destination.

import { MAC_BROADCAST, ipv4FromString as ip, macFromString as mac } from '../../src/wire/address.js';
import type { StackConfig } from '../../src/stack/config.js';
import type { Rng } from './rng.js';

/** The guests the fuzzer plays: a main one and a second one on the same link. */
export const GUEST_MAC = mac('02:00:00:00:00:64');
export const GUEST2_MAC = mac('02:00:00:00:00:65');
/** The guest MAC in the pcaps/ captures. */
export const PCAP_GUEST_MAC = mac('ea:e6:9a:a8:80:7e');

const MCAST_V4_MAC = mac('01:00:5e:00:00:01');
const MCAST_V6_MAC = mac('33:33:00:00:00:01');

export const OUTSIDE = [ip('93.184.216.34'), ip('1.1.1.1'), ip('8.8.8.8'), ip('192.0.2.53'), ip('203.0.113.7'), ip('172.16.5.4'), ip('10.1.2.3')];

export type AddrClass =
  | 'gateway'
  | 'dns'
  | 'guest'
  | 'net-other'
  | 'net-broadcast'
  | 'net-zero'
  | 'outside'
  | 'this-network'
  | 'loopback'
  | 'multicast'
  | 'reserved'
  | 'limited-broadcast'
  | 'link-local'
  | 'random';

export const ADDR_CLASSES: readonly AddrClass[] = [
  'gateway',
  'dns',
  'guest',
  'net-other',
  'net-broadcast',
  'net-zero',
  'outside',
  'this-network',
  'loopback',
  'multicast',
  'reserved',
  'limited-broadcast',
  'link-local',
  'random',
];

export class AddressPlan {
  readonly gateway: number;
  readonly dns: number;
  readonly guest: number;
  readonly guest2: number;
  readonly broadcast: number;
  readonly gatewayMac: number;
  readonly dnsMac: number;

  constructor(readonly cfg: StackConfig) {
    this.gateway = cfg.gateway;
    this.dns = cfg.dns;
    this.guest = cfg.guest;
    this.guest2 = (cfg.guest + 1) >>> 0;
    this.broadcast = (cfg.network | ~cfg.netmask) >>> 0;
    this.gatewayMac = cfg.gatewayMac;
    this.dnsMac = cfg.dnsMac;
  }

  of(cls: AddrClass, r: Rng): number {
    const net = this.cfg.network;
    switch (cls) {
      case 'gateway':
        return this.gateway;
      case 'dns':
        return this.dns;
      case 'guest':
        return r.chance(0.8) ? this.guest : this.guest2;
      case 'net-other':
        return (net + r.pick([1, 4, 15, 30, 50, 99, 101, 200, 254])) >>> 0;
      case 'net-broadcast':
        return this.broadcast;
      case 'net-zero':
        return net;
      case 'outside':
        return r.pick(OUTSIDE);
      case 'this-network':
        return r.chance(0.5) ? 0 : (r.int(1 << 24) >>> 0);
      case 'loopback':
        return r.chance(0.5) ? ip('127.0.0.1') : ((0x7f << 24) | r.int(1 << 24)) >>> 0;
      case 'multicast':
        return r.pick([ip('224.0.0.1'), ip('224.0.0.251'), ip('239.255.255.250'), ((0xe0 + r.int(16)) * 2 ** 24 + r.int(1 << 24)) >>> 0]);
      case 'reserved':
        return r.pick([ip('240.0.0.1'), ip('254.255.255.255'), ((0xf0 + r.int(15)) * 2 ** 24 + r.int(1 << 24)) >>> 0]);
      case 'limited-broadcast':
        return 0xffffffff;
      case 'link-local':
        return (ip('169.254.0.0') + r.int(65536)) >>> 0;
      case 'random':
        return r.u32();
    }
  }

  /** A destination: mostly the useful ones, every class sometimes. */
  dst(r: Rng): number {
    return this.of(
      r.weighted<AddrClass>([
        [30, 'gateway'],
        [15, 'dns'],
        [20, 'outside'],
        [3, 'guest'],
        [3, 'net-other'],
        [3, 'net-broadcast'],
        [1, 'net-zero'],
        [2, 'this-network'],
        [3, 'loopback'],
        [3, 'multicast'],
        [2, 'reserved'],
        [3, 'limited-broadcast'],
        [2, 'link-local'],
        [3, 'random'],
      ]),
      r,
    );
  }

  /** A source: mostly the guest, every class sometimes. */
  src(r: Rng): number {
    return this.of(
      r.weighted<AddrClass>([
        [70, 'guest'],
        [2, 'gateway'],
        [2, 'dns'],
        [3, 'net-other'],
        [2, 'net-broadcast'],
        [1, 'net-zero'],
        [2, 'outside'],
        [4, 'this-network'],
        [2, 'loopback'],
        [2, 'multicast'],
        [1, 'reserved'],
        [2, 'limited-broadcast'],
        [2, 'link-local'],
        [2, 'random'],
      ]),
      r,
    );
  }

  /** The virtual MAC that answers for ip (the gateway's for everything not the DNS address). */
  dstMacFor(ip: number): number {
    return ip === this.dns ? this.dnsMac : this.gatewayMac;
  }

  /** A destination MAC: mostly ours, sometimes broadcast, multicast or someone else's. */
  dstMac(r: Rng, forIp?: number): number {
    const ours = forIp === this.dns ? this.dnsMac : this.gatewayMac;
    return r.weighted<number>([
      [80, ours],
      [5, r.chance(0.5) ? this.gatewayMac : this.dnsMac],
      [5, MAC_BROADCAST],
      [3, MCAST_V4_MAC],
      [2, MCAST_V6_MAC],
      [3, GUEST2_MAC],
      [2, r.u32() * 256 + r.u8()],
    ]);
  }

  srcMac(r: Rng): number {
    return r.weighted<number>([
      [85, GUEST_MAC],
      [5, GUEST2_MAC],
      [3, PCAP_GUEST_MAC],
      [2, this.gatewayMac],
      [1, MAC_BROADCAST],
      [1, 0],
      [3, (r.u32() * 256 + r.u8()) % 2 ** 48],
    ]);
  }

  /** A port: mostly ordinary, with 0 and the other edges often. */
  port(r: Rng): number {
    return r.weighted<number>([
      [6, 0],
      [3, 1],
      [10, 53],
      [5, 67],
      [5, 68],
      [10, 80],
      [5, 443],
      [2, 1023],
      [2, 1024],
      [3, 65535],
      [20, 1025 + r.int(18000)],
    ]);
  }
}
