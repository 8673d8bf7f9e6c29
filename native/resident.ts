// native/resident.ts — owns: handing back the resident pages of read-only
// file mappings (the node executable, the shared libraries) once start-up
// is over, so the process's resident set is what its steady state touches.
//
// Read this first: Node.js touches ~33 MiB of its own executable to start
// (V8's snapshot and embedded builtins, ICU, the module loader, option
// parsing); a running tsnet needs a fraction of that, but the kernel keeps
// every page a process ever touched mapped, and counts it in its RSS, until
// memory runs short. madvise(MADV_DONTNEED) on a private file mapping drops
// the process's page-table entries only: the pages stay in the page cache,
// and the next access maps the same page again (a minor fault). That is
// exact only for pages that are still the file's: a mapping with any
// private copy (`Anonymous:` in smaps — the relocated RELRO pages, .data)
// would get the file's bytes back, so only mappings that are not writable
// and hold no anonymous page qualify. Memory tsnet allocates (V8's heap,
// buffers: `Private_Dirty`) is untouched by this; what the kernel gains is
// pages it can reclaim without taking them from a running process.
// Measured (attach -c -6 --mtu 65520, idle): RSS 48.0 -> 23.1 MiB, 24.7 a
// second later; 25 mappings, 37.6 MiB, 5.6 ms. docs/ARCHITECTURE.md,
// "Memory".

import { libc } from './libc.js';

const MADV_DONTNEED = 4;

const madvise = libc.func('int madvise(uintptr_t addr, uintptr_t len, int advice)') as unknown as (addr: number, len: number, advice: number) => number;

/** One mapping whose pages can be dropped: where it is and how much of it is resident (KiB). */
export interface ReleasableMapping {
  start: number;
  length: number;
  rssKiB: number;
  path: string;
}

const HEAD = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ (\d+)\s*(.*)$/gm;

/**
 * The mappings in a /proc/PID/smaps text whose resident pages are all the
 * file's own: file-backed (inode ≠ 0), private, not writable, no
 * `Anonymous:` page, something resident.
 */
export function releasableMappings(smaps: string): ReleasableMapping[] {
  const heads = [...smaps.matchAll(HEAD)];
  const out: ReleasableMapping[] = [];
  for (let i = 0; i < heads.length; i++) {
    const h = heads[i]!;
    const [, lo, hi, perm, inode, path] = h;
    if (inode === '0' || perm![1] === 'w' || perm![3] !== 'p') continue;
    const body = smaps.slice(h.index, i + 1 < heads.length ? heads[i + 1]!.index : smaps.length);
    const anon = /^Anonymous:\s+(\d+) kB/m.exec(body);
    const rss = /^Rss:\s+(\d+) kB/m.exec(body);
    // A kernel that does not say is not trusted.
    if (!anon || !rss || anon[1] !== '0' || rss[1] === '0') continue;
    const start = parseInt(lo!, 16);
    out.push({ start, length: parseInt(hi!, 16) - start, rssKiB: Number(rss[1]), path: path!.trim() });
  }
  return out;
}

/** Drops the resident pages of these mappings (see the header); what was resident in those it could drop, in KiB. */
export function releaseMappings(maps: ReleasableMapping[]): { mappings: number; kib: number } {
  let mappings = 0;
  let kib = 0;
  for (const m of maps) {
    // EINVAL (a locked mapping, say) leaves that one as it was.
    if (madvise(m.start, m.length, MADV_DONTNEED) !== 0) continue;
    mappings++;
    kib += m.rssKiB;
  }
  return { mappings, kib };
}
