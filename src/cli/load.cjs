#!/usr/bin/env -S node --max-semi-space-size=1 --max-old-space-size=1024 --v8-pool-size=1
// The commands users run (tsnet: dist/src/cli/main.cjs; the drop-in's Node.js
// entry: dist/src/cli/slirp4netns.cjs) are this one file, copied under each
// name by scripts/build.sh. It runs the one-file CommonJS bundle beside it
// (NAME.bundle.cjs, esbuild's output) through V8's code cache
// (NAME.bundle.cjs.cache, written by the build): V8 then deserializes the
// compiled code instead of parsing and compiling ~0.5 MB of JavaScript, and
// a plain CommonJS entry skips the ES module loader. Together that starts
// tsnet ~40 ms sooner on a 2-vCPU machine (`tsnet --version` and attach to
// ready; docs/ARCHITECTURE.md, "Start-up").
//
// The cache belongs to one Node.js build and one set of V8 flags; when it
// does not match (another Node.js, `node --inspect`), V8 rejects it and the
// bundle compiles as usual, a few milliseconds slower and otherwise the same.
// TSNET_CODE_CACHE_OUT=<path> (the build's step, nothing a user sets) writes
// the cache, as compiled by the time the process exits, to <path>.
'use strict';
const fs = require('node:fs');
const Module = require('node:module');
const vm = require('node:vm');

const file = __filename.replace(/\.cjs$/, '.bundle.cjs');
let source = fs.readFileSync(file, 'utf8');
// The bundle keeps its entry's #! line; a function body cannot hold one.
if (source.startsWith('#!')) source = '//' + source.slice(2);
let cachedData;
try {
  cachedData = fs.readFileSync(file + '.cache');
} catch {
  // no cache: compile as usual
}
const script = new vm.Script(Module.wrap(source), { filename: file, cachedData });
const out = process.env.TSNET_CODE_CACHE_OUT;
if (out !== undefined) {
  delete process.env.TSNET_CODE_CACHE_OUT;
  // 'exit' also comes when the bundle calls process.exit() while it loads (--version).
  process.on('exit', () => fs.writeFileSync(out, script.createCachedData()));
}
const bundle = new Module(file, module);
bundle.filename = file;
script.runInThisContext()(bundle.exports, Module.createRequire(file), bundle, file, __dirname);
