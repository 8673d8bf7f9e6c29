#!/usr/bin/env bash
# The Quick-start demo (npm run demo): one `tsnet run` shows the whole path.
# A web server is started on the host's loopback; inside new rootless
# namespaces the workload shows tap0 configured, pings the gateway and DNS
# addresses, fetches the host's page through 10.0.2.2, serves a page of its
# own that `-p` publishes on the host's 127.0.0.1, and fetches that published
# port back through the host (a round trip out of the namespace and in
# again). Run as a normal user. Cleans up what it started, by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
WEBPID=
cleanup() {
  [ -n "$WEBPID" ] && kill "$WEBPID" 2>/dev/null && wait "$WEBPID" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

echo "+ a web server on the host's 127.0.0.1 (node) &"
node -e '
const s = require("http").createServer((q, r) => r.end("hello from the host, served on 127.0.0.1\n"));
s.listen(0, "127.0.0.1", () => console.log(s.address().port));' >"$work/port" &
WEBPID=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.05; done
HOSTPORT=$(cat "$work/port")
PUBLISHED=$(free_port)

cat >"$work/inside.sh" <<EOF
set -e
say() { echo "+ [inside] \$*"; }
say ip -4 addr show tap0; ip -4 addr show tap0
say ip route; ip route
if command -v ping >/dev/null; then
  say ping -c 2 10.0.2.2; ping -c 2 -i 0.2 10.0.2.2 | tail -2
  say ping -c 2 10.0.2.3; ping -c 2 -i 0.2 10.0.2.3 | tail -2
else
  echo "(ping is not installed: skipping ping — apt-get install iputils-ping)"
fi
say "fetch http://10.0.2.2:$HOSTPORT/ (the host's loopback)"
node -e "fetch('http://10.0.2.2:$HOSTPORT/').then(r => r.text()).then(t => process.stdout.write(t))"
say "serve on :8080, published on the host as 127.0.0.1:$PUBLISHED, and fetch it back through the host"
node -e "
const s = require('http').createServer((q, r) => { r.end('hello from inside the namespace, client ' + q.socket.remoteAddress + '\\\\n'); s.close(); });
s.listen(8080, () => fetch('http://10.0.2.2:$PUBLISHED/').then(r => r.text()).then(t => process.stdout.write(t)));"
EOF

echo "+ tsnet run -p 127.0.0.1:$PUBLISHED:8080 -- sh inside.sh"
dist/src/cli/tsnet run --log-level error -p "127.0.0.1:$PUBLISHED:8080" -- sh "$work/inside.sh"
echo "demo: OK — a workload in rootless namespaces reached the host and served it through a published port"
