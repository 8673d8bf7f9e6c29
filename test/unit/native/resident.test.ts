// native/resident.ts: which mappings may have their pages dropped (only
// read-only, private, file-backed ones with no private copy), and that
// dropping them lowers a real process's RSS and changes nothing it computes.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { releasableMappings } from '../../../native/resident.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

function mapping(head: string, rss: number, anon: number): string {
  return `${head}\nSize:               1024 kB\nRss:                ${rss} kB\nPss:                ${rss} kB\nAnonymous:          ${anon} kB\nVmFlags: rd mr mw me\n`;
}

describe('releasableMappings', () => {
  const smaps = [
    mapping('555555554000-555555600000 r--p 00000000 08:01 1234                       /usr/bin/node', 600, 0),
    mapping('555555600000-555556000000 r-xp 000ac000 08:01 1234                       /usr/bin/node', 20000, 0),
    // RELRO after mprotect: read-only now, but its pages were written (relocations).
    mapping('555556000000-555556100000 r--p 00aac000 08:01 1234                       /usr/bin/node', 900, 900),
    mapping('555556100000-555556200000 rw-p 00bac000 08:01 1234                       /usr/bin/node', 40, 40),
    mapping('7ffff7a00000-7ffff7b00000 r-xp 00000000 08:01 99                         /usr/lib/x86_64-linux-gnu/libc.so.6', 1200, 0),
    mapping('7ffff7c00000-7ffff7c10000 r--s 00000000 08:01 77                         /tmp/shared', 16, 0),
    mapping('7ffff7d00000-7ffff7e00000 r-xp 00000000 08:01 98                         /usr/lib/x86_64-linux-gnu/libm.so.6', 0, 0),
    mapping('7ffff7e00000-7ffff7f00000 rw-p 00000000 00:00 0 ', 300, 300),
    mapping('7ffff7f00000-7ffff7f01000 r-xp 00000000 00:00 0                          [vdso]', 4, 0),
  ].join('');

  it('takes only read-only private file mappings with something resident and no private copy', () => {
    const got = releasableMappings(smaps);
    expect(got.map((m) => [m.start.toString(16), m.length, m.rssKiB, m.path])).toEqual([
      ['555555554000', 0xac000, 600, '/usr/bin/node'],
      ['555555600000', 0xa00000, 20000, '/usr/bin/node'],
      ['7ffff7a00000', 0x100000, 1200, '/usr/lib/x86_64-linux-gnu/libc.so.6'],
    ]);
  });

  it('skips a mapping whose smaps lines it cannot read', () => {
    expect(releasableMappings('555555600000-555556000000 r-xp 000ac000 08:01 1234 /usr/bin/node\nRss: 20000 kB\n')).toEqual([]);
  });
});

const built = fs.existsSync(path.join(root, 'dist/native/resident.js'));

describe.skipIf(!built)('releaseMappings (child process)', () => {
  it("drops a live Node.js process's start-up pages, and it runs on unchanged", () => {
    const script = `
      import fs from 'node:fs';
      import zlib from 'node:zlib';
      import { releasableMappings, releaseMappings } from '${path.join(root, 'dist/native/resident.js')}';
      const rss = () => Number(/VmRSS:\\s+(\\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1]);
      const work = () => zlib.gunzipSync(zlib.gzipSync(Buffer.from(JSON.stringify({ a: [1, 2, 3], s: 'x'.repeat(1000) })))).toString('hex');
      const before = work();
      const rss0 = rss();
      const r = releaseMappings(releasableMappings(fs.readFileSync('/proc/self/smaps', 'utf8')));
      const rss1 = rss();
      const after = work();
      console.log(JSON.stringify({ ...r, rss0, rss1, same: before === after }));
    `;
    const r = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }).trim());
    // Node.js maps its executable read-only: at least some MiB of it were touched to start.
    expect(r.mappings).toBeGreaterThan(2);
    expect(r.kib).toBeGreaterThan(8 * 1024);
    expect(r.rss0 - r.rss1).toBeGreaterThan(8 * 1024);
    expect(r.same).toBe(true);
  });
});
