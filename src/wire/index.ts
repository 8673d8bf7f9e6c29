// src/wire/index.ts — the wire layer's public surface: one module per
// protocol (views + Reprs), checksums, address helpers and WireError.

export * from './errors.js';
export * from './checksum.js';
export * from './address.js';
export * from './ethernet.js';
export * from './arp.js';
export * from './ipv4.js';
export * from './ipv6.js';
export * from './icmpv4.js';
export * from './icmpv6.js';
export * from './udp.js';
export * from './dhcp.js';
export * from './tcp.js';
export * from './virtio-net.js';
export * from './gso.js';
