#!/bin/sh
# sandbox.sh USERNS_PATH CREDS -- COMMAND [ARGS...]
# sandbox.sh '' new -- COMMAND [ARGS...]
#
# Starts COMMAND (tsnet) for --enable-sandbox: in a private mount namespace,
# inside a user namespace where it holds the capabilities to shape that mount
# namespace later. A multithreaded process (every Node.js process) can enter
# neither afterwards, so this happens before the runtime starts; tsnet then
# opens what it needs, makes its root and drops its capabilities itself
# (native/sandbox.ts). TSNET_SANDBOX_NS=1 tells it the namespace is ready.
#
# Which user namespace: ours when we already hold CAP_SYS_ADMIN in it (podman
# runs its network command as root of its rootless user namespace); else
# USERNS_PATH, the target's, joined as slirp4netns joins it — keeping our
# credentials (CREDS=keep, where we are its root) or as uid/gid 0
# (CREDS=root; podman's keep-id). CREDS=new (tsnet run, which makes its
# workload's namespaces itself, as children of this one): a new user
# namespace with us as its root. The network namespace stays the host's:
# tsnet's host sockets must be made there.
set -u
userns=$1
creds=$2
shift 2
[ "${1:-}" = -- ] && shift

TSNET_SANDBOX_NS=1
export TSNET_SANDBOX_NS
if [ "$creds" = new ]; then
	exec unshare --user --map-root-user --mount --propagation private -- "$@"
fi
capeff=$(sed -n 's/^CapEff:[[:space:]]*//p' /proc/self/status)
if [ -n "$capeff" ] && [ $(((0x$capeff >> 21) & 1)) = 1 ]; then
	exec unshare --mount --propagation private -- "$@"
fi
if [ -z "$userns" ]; then
	echo "tsnet: --enable-sandbox: no user namespace to make the sandbox in: pass --userns-path (the one owning the network namespace), or run tsnet as root of a user namespace" >&2
	exit 1
fi
if [ "$creds" = root ]; then
	exec nsenter --setuid=0 --setgid=0 "--user=$userns" -- unshare --mount --propagation private -- "$@"
fi
exec nsenter --preserve-credentials "--user=$userns" -- unshare --mount --propagation private -- "$@"
