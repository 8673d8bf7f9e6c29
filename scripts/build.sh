#!/bin/sh
# npm run build: compile, then bundle the two entry points.
#
# tsc type-checks and compiles src/, native/, bench/ and the fuzzer into
# dist/ (tests and the bench import those files). The commands users run are
# then one-file CommonJS bundles of their entry and everything it imports
# (esbuild): dist/src/cli/main.bundle.cjs (tsnet) and slirp4netns.bundle.cjs
# (the drop-in's Node.js entry), each started by a copy of src/cli/load.cjs
# (main.cjs, slirp4netns.cjs), which runs the bundle through the V8 code
# cache written here, beside it (NAME.bundle.cjs.cache, by running the
# command once with --version under the #! line's V8 flags). Node.js then
# loads one module instead of ~90 and compiles almost none of it: measured
# `tsnet --version` 0.30 -> 0.21 s (the bundle) -> ~0.15 s (the cache), idle
# attach 60 -> 52 MiB. koffi stays outside (it loads its native binary from
# its own package). Source maps chain back to src/*.ts and carry every
# source's text (sourcesContent), so the packed maps need nothing beside
# them; the package ships src/ and native/ as well, so their paths resolve
# too. import.meta.url (ES modules only) becomes the bundle's file URL.
set -eu
cd "$(dirname "$0")/.."
# npm pack builds through prepack: in a clone without dev dependencies that
# must fail loudly rather than pack a package with no dist/.
for tool in tsc esbuild; do
	command -v "$tool" >/dev/null 2>&1 || {
		echo "build: $tool not found: run \`npm ci\` first (it installs the dev dependencies the build needs)" >&2
		exit 1
	}
done
tsc -p tsconfig.json
esbuild dist/src/cli/main.js dist/src/cli/slirp4netns.js \
	--bundle --platform=node --format=cjs --target=node20 \
	--outdir=dist/src/cli --entry-names='[name].bundle' --out-extension:.js=.cjs \
	--external:koffi --sourcemap --minify-whitespace --minify-syntax --log-level=warning \
	--define:import.meta.url=__tsnetUrl \
	'--banner:js=const __tsnetUrl = require("node:url").pathToFileURL(__filename).href;'
cp src/cli/load.cjs dist/src/cli/main.cjs
cp src/cli/load.cjs dist/src/cli/slirp4netns.cjs
cp src/cli/tsnet.sh dist/src/cli/tsnet
cp src/cli/slirp4netns.sh dist/src/cli/slirp4netns
cp src/cli/sandbox.sh dist/src/cli/sandbox.sh
chmod +x dist/src/cli/tsnet dist/src/cli/main.cjs dist/src/cli/slirp4netns.cjs dist/src/cli/slirp4netns dist/src/cli/sandbox.sh
# The code caches, compiled under the flags of load.cjs's #! line (V8 rejects
# a cache made under other flags).
flags=$(sed -n '1s/^#!\/usr\/bin\/env -S node //p' src/cli/load.cjs)
for entry in main slirp4netns; do
	rm -f "dist/src/cli/$entry.bundle.cjs.cache"
	TSNET_CODE_CACHE_OUT="dist/src/cli/$entry.bundle.cjs.cache" node $flags "dist/src/cli/$entry.cjs" --version >/dev/null
done
