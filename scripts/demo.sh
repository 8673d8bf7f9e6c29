#!/usr/bin/env bash
# The Quick-start demo (npm run demo): creates a rootless network namespace
# with `unshare -Urn`, attaches tsnet to it with --configure, and shows from
# inside that tap0 is configured and that the gateway (10.0.2.2) and the DNS
# address (10.0.2.3) answer ping. Run as a normal user. Cleans up the
# processes it started, by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
TSNET=(node dist/src/cli/main.js)
work=$(mktemp -d)
NSPID= TSPID=
cleanup() {
  [ -n "$TSPID" ] && kill "$TSPID" 2>/dev/null && wait "$TSPID" 2>/dev/null || true
  [ -n "$NSPID" ] && kill "$NSPID" 2>/dev/null && wait "$NSPID" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "+ unshare -Urn sleep 300 &"
unshare -Urn sleep 300 &
NSPID=$!
for _ in $(seq 100); do [ "$(cat /proc/$NSPID/comm 2>/dev/null)" = sleep ] && break; sleep 0.05; done

echo "+ tsnet attach --configure --ready-fd 3 $NSPID tap0 &"
"${TSNET[@]}" attach --configure --ready-fd 3 "$NSPID" tap0 3>"$work/ready" &
TSPID=$!
for _ in $(seq 200); do
  [ "$(cat "$work/ready")" = 1 ] && break
  kill -0 "$TSPID" 2>/dev/null || { wait "$TSPID"; exit 1; }
  sleep 0.05
done

ns() { echo "+ [in namespace] $*"; nsenter --preserve-credentials -U -n -t "$NSPID" "$@"; }
ns ip -4 addr show tap0
ns ip route
ns ping -c 3 -i 0.2 10.0.2.2
ns ping -c 3 -i 0.2 10.0.2.3
echo "demo: OK — the namespace reaches tsnet's gateway and DNS addresses"
