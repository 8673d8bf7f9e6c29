// The seed corpus: every frame of every capture in pcaps/, read with the
// same reader `tsnet replay` uses (src/host/pcap.ts, pcap-parser). The
// mutators start from these real frames; frames the recorded peer
// (slirp4netns) sent are kept too — as guest input they are hostile.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readPcap } from '../../src/host/pcap.js';

export interface SeedFrame {
  file: string;
  index: number;
  data: Buffer;
}

/** pcaps/ from the repository root, whether run from test/fuzz (vitest) or dist/test/fuzz (node). */
export function pcapDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const p = path.join(dir, 'pcaps');
    if (fs.existsSync(path.join(p, 'README.md'))) return p;
    dir = path.dirname(dir);
  }
  throw new Error('pcaps/ not found above ' + path.dirname(fileURLToPath(import.meta.url)));
}

/** Every frame of every pcaps/*.pcap, in file-name order (stable, so seeds reproduce). */
export async function loadSeeds(dir = pcapDir()): Promise<SeedFrame[]> {
  const files = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.pcap'))
    .sort();
  const out: SeedFrame[] = [];
  for (const file of files) {
    const records = await readPcap(path.join(dir, file));
    records.forEach((r, index) => out.push({ file, index, data: r.data }));
  }
  if (out.length === 0) throw new Error(`no frames in ${dir}/*.pcap`);
  return out;
}
