#!/bin/sh
# tsnet, the command users run: starts tsnet's Node.js entry (main.cjs beside
# it) — for `tsnet run`, already inside the sandbox's namespaces.
#
# Why a shell first: tsnet run sandboxes itself by default, and its sandbox
# (a user and a private mount namespace of its own, src/cli/sandbox.sh) can
# only hold a process born in it, because no multithreaded process (every
# Node.js process) may enter a user namespace. Started as Node.js, tsnet run
# had to start Node.js a second time through sandbox.sh: ~200 ms of a
# ~420 ms `tsnet run -- true` on a 2-vCPU machine. This launcher starts the
# run in the sandbox's namespaces from the beginning when it is sure tsnet
# would: the command is `run`, no --no-sandbox or --map-auto before `--`
# (conservatively: anywhere before it, CMD's own words included), and the
# host can make the namespaces (the same probe tsnet makes). Whenever it is
# not sure, it starts tsnet as it is, and tsnet decides as before. It costs
# one readlink to find main.cjs.
set -u
self=$(readlink -f "$0" 2>/dev/null) || self=$0 # no readlink on the PATH: as called
entry=${self%/*}/main.cjs
# The same flags as main.cjs's #! line (the code cache is built under them;
# test/unit/cli/output.test.ts holds the two together).
node_flags='--max-semi-space-size=1 --max-old-space-size=1024 --v8-pool-size=1'

if [ "${1:-}" = run ] && [ -z "${TSNET_SANDBOX_NS:-}" ]; then
	sandbox=1
	for arg in "$@"; do
		case $arg in
		--) break ;;
		--no-sandbox | --map-auto) sandbox=0; break ;;
		esac
	done
	if [ "$sandbox" = 1 ] && unshare --user --map-root-user --mount true 2>/dev/null; then
		exec sh "${self%/*}/sandbox.sh" '' new -- node $node_flags "$entry" "$@"
	fi
fi
exec node $node_flags "$entry" "$@"
