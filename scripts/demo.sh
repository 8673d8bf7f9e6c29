#!/usr/bin/env bash
# The Quick-start demo (npm run demo): creates a rootless network namespace
# with `unshare -Urn`, attaches tsnet to it with --configure, starts a web
# server on the host's loopback, and shows from inside the namespace that
# tap0 is configured, that the gateway (10.0.2.2) and the DNS address
# (10.0.2.3) answer ping, and that the host's page is fetched through
# 10.0.2.2. Run as a normal user. Cleans up what it started, by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
TSNET=(node dist/src/cli/main.js)
work=$(mktemp -d)
NSPID= TSPID= WEBPID=
cleanup() {
  [ -n "$WEBPID" ] && kill "$WEBPID" 2>/dev/null && wait "$WEBPID" 2>/dev/null || true
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

echo "+ a web server on the host's 127.0.0.1 (node) &"
node -e '
const s = require("http").createServer((q, r) => r.end("hello from the host, served on 127.0.0.1\n"));
s.listen(0, "127.0.0.1", () => console.log(s.address().port));' >"$work/port" &
WEBPID=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.05; done
PORT=$(cat "$work/port")

ns() { echo "+ [in namespace] $*"; nsenter --preserve-credentials -U -n -t "$NSPID" "$@"; }
ns ip -4 addr show tap0
ns ip route
if command -v ping >/dev/null; then
  ns ping -c 3 -i 0.2 10.0.2.2
  ns ping -c 3 -i 0.2 10.0.2.3
else
  echo "(ping is not installed: skipping the ping part — apt-get install iputils-ping)"
fi
ns node -e "fetch('http://10.0.2.2:$PORT/').then(r => r.text()).then(t => process.stdout.write(t))"
echo "demo: OK — the namespace reaches tsnet's gateway, its DNS address and the host's loopback"
