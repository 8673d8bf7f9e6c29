// src/wire/errors.ts — the single error type thrown by the wire layer.
//
// Every malformed or unsupported input that a `newChecked` constructor or a
// `Repr.parse` rejects surfaces as a `WireError` carrying a short kebab-case
// `reason`. The stack counts and logs by reason; it never has to catch a
// RangeError or a TypeError coming out of src/wire.

/**
 * Every reason the wire layer can report, with a one-line description
 * (useful for `tsnet` counters and log messages).
 *
 * Convention: `<proto>-truncated` means the buffer is shorter than the fixed
 * part of the header; a length *field* that disagrees with the buffer (too
 * small to be legal, or claiming more bytes than exist) gets a field-specific
 * reason such as `ipv4-bad-total-len` or `udp-bad-length`.
 */
export const WIRE_ERROR_REASONS = {
  'eth-truncated': 'frame shorter than the Ethernet (or 802.1Q-tagged) header',
  'arp-truncated': 'ARP packet shorter than its declared address lengths',
  'arp-unsupported': 'ARP for something other than Ethernet/IPv4',
  'arp-bad-operation': 'ARP operation other than request (1) or reply (2)',
  'ipv4-truncated': 'buffer shorter than the 20-byte IPv4 header',
  'ipv4-bad-version': 'IP version field is not 4',
  'ipv4-bad-header-len': 'IHL below 5 words or beyond the buffer',
  'ipv4-bad-total-len': 'total length below the header length or beyond the buffer',
  'ipv4-bad-checksum': 'IPv4 header checksum mismatch',
  'ipv6-truncated': 'buffer shorter than the 40-byte IPv6 header',
  'ipv6-bad-version': 'IP version field is not 6',
  'ipv6-bad-payload-len': 'IPv6 payload length beyond the buffer',
  'ipv6-ext-truncated': 'an IPv6 extension header runs past the payload',
  'ipv6-ext-bad-order': 'Hop-by-Hop Options header not directly after the IPv6 header',
  'ipv6-multicast-source': 'an IPv6 source address in the multicast range (RFC 4291 §2.7)',
  'icmpv4-truncated': 'ICMPv4 message shorter than 8 bytes',
  'icmpv4-bad-checksum': 'ICMPv4 checksum mismatch',
  'icmpv4-bad-embedded': 'ICMPv4 error without a complete embedded IPv4 header',
  'icmpv6-truncated': 'ICMPv6 message shorter than its type requires',
  'icmpv6-bad-checksum': 'ICMPv6 checksum mismatch',
  'ndp-bad-code': 'NDP message with a non-zero code',
  'ndp-bad-option-len': 'NDP option with length 0, a wrong length, or overrunning the message',
  'udp-truncated': 'buffer shorter than the 8-byte UDP header',
  'udp-bad-length': 'UDP length field below 8 or beyond the buffer',
  'udp-bad-checksum': 'UDP checksum mismatch',
  'udp-missing-checksum': 'UDP over IPv6 with a zero (absent) checksum',
  'tcp-truncated': 'buffer shorter than the 20-byte TCP header',
  'tcp-bad-data-offset': 'TCP data offset below 5 words or beyond the segment',
  'tcp-bad-option-len': 'TCP option with a bad length or overrunning the header',
  'tcp-bad-checksum': 'TCP checksum mismatch',
  'dhcp-truncated': 'BOOTP/DHCP message shorter than its 236-byte header plus the magic cookie',
  'dhcp-bad-cookie': 'BOOTP message without the DHCP magic cookie 99.130.83.99',
  'dhcp-bad-option-len': 'DHCP option overrunning the message, or with a length its code does not allow',
  'dhcp-unsupported-htype': 'BOOTP hardware type/length other than Ethernet (1/6)',
  'virtio-truncated': 'buffer shorter than the virtio_net_hdr',
  'virtio-bad-gso-type': 'virtio_net_hdr with an unknown gso_type',
  'virtio-gso-unsupported': 'virtio_net_hdr asking for a segmentation tsnet did not offer (UFO)',
  'virtio-offload-unsupported': 'offload asked for a frame that is not TCP/UDP over IPv4/IPv6',
  'virtio-gso-not-udp': 'UDP segmentation (GSO_UDP_L4) of a frame that is not UDP',
  'virtio-gso-truncated': 'UDP super-datagram whose IP length overruns the frame',
  'virtio-gso-bad-size': 'UDP super-datagram with gso_size 0',
  'virtio-gso-too-many': 'UDP super-datagram cut into more than 128 datagrams',
  'buffer-too-small': 'emit target smaller than Repr.bufferLen()',
  'address-bad-format': 'address string that does not parse',
} as const;

export type WireErrorReason = keyof typeof WIRE_ERROR_REASONS;

export class WireError extends Error {
  readonly reason: WireErrorReason;

  constructor(reason: WireErrorReason, detail?: string) {
    super(detail === undefined ? reason : `${reason}: ${detail}`);
    this.name = 'WireError';
    this.reason = reason;
  }
}
