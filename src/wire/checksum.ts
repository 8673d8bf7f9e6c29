// src/wire/checksum.ts — the Internet checksum and everything built on it.
//
// Read this first:
// - `onesSum` returns the one's-complement sum of a byte range, folded to 16
//   bits (0..0xffff). It is *not* complemented, so sums chain: pass one
//   result as `initial` to the next call (pseudo-header, then header, then
//   payload).
// - `checksum` = the value to store in a header field (~sum & 0xffff).
// - A region whose checksum field is already filled sums to 0xffff; that is
//   how every `verifyChecksum()` in src/wire checks.
// - Pseudo-header helpers return a folded, uncomplemented sum, ready to be
//   passed as `initial`.
// - `ChecksumMode` is what `emit` does with a transport checksum field:
//   compute it, leave it zero, or write the pseudo-header sum only for a
//   device that completes it (virtio NEEDS_CSUM / CHECKSUM_PARTIAL).

/** What an `emit` writes into a TCP/UDP checksum field. */
export const ChecksumMode = {
  /** Compute the full checksum over pseudo-header, header and payload. */
  Full: 0,
  /** Write 0 ("no checksum"; only legal for UDP over IPv4, or for tests). */
  None: 1,
  /**
   * Write the folded pseudo-header sum, uncomplemented; the device sums the
   * rest from csum_start and stores ~sum at csum_start + csum_offset
   * (virtio-net VIRTIO_NET_HDR_F_NEEDS_CSUM, Linux CHECKSUM_PARTIAL).
   */
  Partial: 2,
} as const;
export type ChecksumMode = (typeof ChecksumMode)[keyof typeof ChecksumMode];

/** Ranges shorter than this are summed with plain byte reads (no DataView). */
const SMALL = 128;
/**
 * The accumulator is a double, exact up to 2^53. Each step adds two 32-bit
 * words (< 2^33), so folding every 2^19 steps (4 MiB) keeps it exact.
 */
const CHUNK = 1 << 22;

/** Folds a non-negative integer sum (exact in a double) to 16 bits with end-around carry. */
export function fold(sum: number): number {
  // RFC 1071 §2(C): carries out of bit 15 are added back in at bit 0
  // ("end-around carry"); repeat until nothing is left above 16 bits.
  // `& 0xffff` is exact for integers below 2^53 (ToInt32 reduces mod 2^32,
  // a multiple of 2^16); the high part needs a real division.
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 65536);
  return sum;
}

function sumSmall(b: Uint8Array, i: number, end: number, sum: number): number {
  const end4 = i + ((end - i) & ~3);
  for (; i < end4; i += 4) {
    sum += ((b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]) >>> 0;
  }
  // RFC 1071 §4.1: a trailing odd byte is summed as if padded with a zero
  // byte on the right, i.e. it is the high byte of a 16-bit word.
  if (end - i >= 2) {
    sum += (b[i] << 8) | b[i + 1];
    i += 2;
  }
  if (i < end) sum += b[i] << 8;
  return sum;
}

/**
 * One's-complement sum of `buf[start, end)` plus `initial`, folded to 16 bits.
 *
 * RFC 1071 §2(B): the sum is independent of how the words are grouped, so
 * adding big-endian 32-bit words and folding the result gives the same value
 * as adding 16-bit words; it halves the loop count.
 * Out-of-range indices read as zero rather than throwing.
 */
export function onesSum(buf: Uint8Array, start: number, end: number, initial = 0): number {
  let sum = initial;
  if (end - start < SMALL) return fold(sumSmall(buf, start, end, sum));
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let i = start;
  const end8 = start + ((Math.min(end, buf.length) - start) & ~7);
  while (i < end8) {
    const stop = Math.min(end8, i + CHUNK);
    for (; i < stop; i += 8) sum += dv.getUint32(i) + dv.getUint32(i + 4);
    sum = fold(sum);
  }
  return fold(sumSmall(buf, i, end, sum));
}

/** The value to store in a checksum field: the complement of the folded sum. */
export function checksum(buf: Uint8Array, start: number, end: number, initial = 0): number {
  return ~onesSum(buf, start, end, initial) & 0xffff;
}

/**
 * Folded sum of the IPv4 pseudo-header.
 * RFC 793 §3.1 / RFC 768: source address, destination address, a zero byte,
 * the protocol number and the transport length (header + data) take part in
 * the TCP/UDP checksum though they are not transmitted in the segment.
 */
export function pseudoV4(src: number, dst: number, proto: number, len: number): number {
  return fold(
    (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + proto + (len >>> 16) + (len & 0xffff),
  );
}

/**
 * Folded sum of the IPv6 pseudo-header.
 * RFC 8200 §8.1: 16-byte source, 16-byte destination, a 32-bit upper-layer
 * length, three zero bytes and the upper-layer protocol number (the final
 * Next Header value, not that of an extension header).
 * `src`/`dst` are read at `srcOff`/`dstOff` (16 bytes each).
 */
export function pseudoV6(
  src: Uint8Array,
  dst: Uint8Array,
  nextHeader: number,
  len: number,
  srcOff = 0,
  dstOff = 0,
): number {
  let sum = nextHeader + (len >>> 16) + (len & 0xffff);
  sum = sumSmall(src, srcOff, srcOff + 16, sum);
  sum = sumSmall(dst, dstOff, dstOff + 16, sum);
  return fold(sum);
}

/**
 * Incremental update when one 16-bit word covered by a checksum changes.
 * RFC 1624 §3, eqn. 3: HC' = ~(~HC + ~m + m'). Unlike eqn. 2 of RFC 1141 it
 * never produces a spurious -0 (0xffff-sum) result from a non-zero input.
 */
export function updateChecksum16(oldCsum: number, oldWord: number, newWord: number): number {
  const sum = (~oldCsum & 0xffff) + (~oldWord & 0xffff) + (newWord & 0xffff);
  return ~fold(sum) & 0xffff;
}

/**
 * Incremental update for a 32-bit field (an IPv4 address rewrite, a TCP
 * sequence number): RFC 1624 eqn. 3 applied to both halves at once.
 */
export function updateChecksum32(oldCsum: number, oldValue: number, newValue: number): number {
  const sum =
    (~oldCsum & 0xffff) +
    (~(oldValue >>> 16) & 0xffff) +
    (~oldValue & 0xffff) +
    (newValue >>> 16) +
    (newValue & 0xffff);
  return ~fold(sum) & 0xffff;
}

/**
 * Checksum field value for UDP.
 * RFC 768: a computed checksum of zero is transmitted as all ones (0xffff),
 * because a zero field means "no checksum" over IPv4. RFC 8200 §8.1 keeps the
 * same rule for IPv6, where zero is simply invalid.
 */
export function udpChecksumField(csum: number): number {
  return csum === 0 ? 0xffff : csum;
}
