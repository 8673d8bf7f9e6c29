// Gives back, once the network is up, the pages of the node executable and
// its libraries that only start-up used (native/resident.ts says what is
// dropped and why it is exact). /proc/self/smaps is opened at once, since
// --enable-sandbox takes /proc away before the network starts; it is read
// as the TAP starts serving, before the ready signal, so a bulk transfer
// started at once cannot raise the peak first and no descriptor of it is
// left open once the network is up (reading it walks the page tables:
// ~5 ms, once). Best effort: without /proc, or on a kernel that says
// nothing, the pages simply stay.

import fs from 'node:fs';
import { releasableMappings, releaseMappings } from '../../native/index.js';
import type { Logger } from './log.js';

export interface StartupPages {
  /** The network is up: the pages go back now. */
  release(): void;
  /** Nothing more to do (the network stops first): closes what is still open. */
  cancel(): void;
}

export function startupPages(log: Logger): StartupPages {
  let fd: number | undefined;
  try {
    fd = fs.openSync('/proc/self/smaps', 'r');
  } catch (e) {
    log.debug({ err: (e as Error).message }, 'start-up pages kept: /proc/self/smaps unreadable');
  }
  const close = () => {
    if (fd !== undefined) fs.closeSync(fd);
    fd = undefined;
  };
  const release = () => {
    if (fd === undefined) return;
    try {
      const r = releaseMappings(releasableMappings(fs.readFileSync(fd, 'utf8')));
      log.debug({ mappings: r.mappings, MiB: Math.round(r.kib / 102.4) / 10 }, 'start-up pages of read-only file mappings given back');
    } catch (e) {
      log.debug({ err: (e as Error).message }, 'start-up pages kept');
    } finally {
      close();
    }
  };
  return { release, cancel: close };
}
