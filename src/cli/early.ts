// src/cli/early.ts — owns: what must happen before anything else in the
// process, imported first by both entry points (main.ts, slirp4netns.ts) for
// its side effect. glibc fixes its arena limit the first time a second
// thread allocates, so the malloc tuning (native/malloc.ts) has to come
// before the rest of the command loads (called from serveNetwork it came
// too late: the arenas still held 6.3 MiB after a bulk transfer).

import { tuneMalloc } from '../../native/malloc.js';

tuneMalloc();
