#!/usr/bin/env bash
# record.sh - re-record the real-kernel packet captures in this directory.
#
# What it does
#   Creates throw-away network namespaces, attaches the real slirp4netns to
#   them as the peer of the guest's tap0, and runs tcpdump on tap0 INSIDE the
#   namespace, so every capture contains exactly the Ethernet frames that the
#   guest Linux kernel writes to tap0 and the frames slirp4netns (libslirp)
#   writes back.  Captures are classic libpcap files (magic a1b2c3d4,
#   microsecond timestamps, linktype EN10MB), which is what the `pcap-parser`
#   npm package used by tsnet can read (it does NOT read pcapng).
#
#   Session A (IPv4 only, IPv6 disabled in the namespace to keep it quiet):
#     arp-gateway.pcap, ping-gateway.pcap, ping-dns.pcap, tcp-syn.pcap,
#     tcp-syn-only.pcap (derived from tcp-syn.pcap), udp-dns.pcap
#   Session B (slirp4netns --enable-ipv6):
#     ipv6-ndp.pcap, ipv6-ping-gateway.pcap
#   Session C (whole sessions): dhcp, dns-tcp, http-curl, http-download-loss
#   Session D (errors, upload, port forward): tcp-refused, udp-refused,
#     tcp-upload, port-forward
#   Session E (IPv6 sessions): ipv6-http-curl, ipv6-dns-udp, ipv6-dns-tcp
#   Synthetic:
#     malformed.pcap, written by gen-malformed.py (no kernel involved)
#
# Network safety
#   The guest only ever talks to 10.0.2.2 / 10.0.2.3 / fd00::2, which
#   slirp4netns answers itself (ICMP echo, ARP, NDP) or maps to the host's
#   loopback (TCP to 10.0.2.2:PORT -> 127.0.0.1:PORT).  DNS: libslirp forwards
#   queries for 10.0.2.3 to the first nameserver of /etc/resolv.conf.  To make
#   sure nothing leaves the machine, slirp4netns is started in a private mount
#   namespace where /etc/resolv.conf is bind-mounted to a file that says
#   "nameserver 127.0.0.1", and a tiny stdlib-python DNS responder (embedded
#   below, never forwards anything) listens on 127.0.0.1:53.
#
# Requirements
#   root (unshare -n, mount --bind, port 53), slirp4netns, tcpdump, tshark/
#   editcap, busybox (wget, nslookup, nc, httpd, udhcpc), iproute2, ping,
#   python3, curl, ncat (session D).
#   Host TCP port $HTTP_PORT (default 18099) and 127.0.0.1:53/udp must be free.
#
# Usage
#   sudo ./record.sh            # writes the .pcap files next to this script
#   OUT=/tmp/x ./record.sh      # or somewhere else
#   ONLY=C ./record.sh          # one session only (C, D or E)
#
# Cleanup
#   Every background process started here is recorded by PID and stopped by
#   PID (never by name) in the EXIT trap; the temp dir is removed.  Network
#   namespaces are anonymous (held only by a `sleep` process), so they vanish
#   when that process is killed.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$HERE}
HTTP_PORT=${HTTP_PORT:-18099}

[ "$(id -u)" = 0 ] || { echo "record.sh: must run as root" >&2; exit 1; }
for c in slirp4netns tcpdump tshark busybox ip ping python3 unshare nsenter; do
  command -v "$c" >/dev/null || { echo "record.sh: missing $c" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/tsnet-pcaps.XXXXXX)
PIDS=()   # every background process we start, in start order

cleanup() {
  local i p
  for ((i=${#PIDS[@]}-1; i>=0; i--)); do
    p=${PIDS[$i]}
    kill "$p" 2>/dev/null || true
  done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

log() { printf '[record.sh] %s\n' "$*" >&2; }

# reap PID...: stop processes we started (by PID) and forget them.
reap() {
  local p q keep
  for p in "$@"; do kill "$p" 2>/dev/null || true; done
  for p in "$@"; do wait "$p" 2>/dev/null || true; done
  for p in "$@"; do
    keep=()
    for q in "${PIDS[@]}"; do [ "$q" = "$p" ] || keep+=("$q"); done
    PIDS=("${keep[@]}")
  done
}

# ---------------------------------------------------------------- helpers --
NSPID=""
ns() { nsenter -t "$NSPID" -n "$@"; }   # run a command inside the guest netns

# new_ns: anonymous network namespace held by a sleep process.
# `unshare -n sleep` (no --fork) execs sleep, so $! is the process in the ns.
new_ns() {
  unshare -n sleep 3600 &
  NSPID=$!; PIDS+=("$NSPID")
  for _ in $(seq 50); do
    [ "$(readlink /proc/$NSPID/ns/net)" != "$(readlink /proc/self/ns/net)" ] && return 0
    sleep 0.1
  done
  echo "namespace did not appear" >&2; exit 1
}

# start_slirp EXTRA_ARGS...: real slirp4netns on $NSPID/tap0, with a private
# /etc/resolv.conf ($RESOLV: nameserver 127.0.0.1, or ::1 for session E).
# unshare and sh both exec, so $! is slirp4netns itself.
SLIRPPID=""
RESOLV=""
start_slirp() {
  unshare -m --propagation private -- sh -c \
    'mount --bind "$0" /etc/resolv.conf && exec slirp4netns "$@"' \
    "${RESOLV:-$WORK/resolv.conf}" --configure --mtu=1500 "$@" "$NSPID" tap0 \
    >"$WORK/slirp4netns.$NSPID.log" 2>&1 &
  SLIRPPID=$!; PIDS+=("$SLIRPPID")
  for _ in $(seq 100); do
    ns ip -4 addr show dev tap0 2>/dev/null | grep -q 10.0.2.100 && { sleep 0.5; return 0; }
    sleep 0.1
  done
  cat "$WORK/slirp4netns.$NSPID.log" >&2; echo "tap0 not configured" >&2; exit 1
}

# cap_start NAME [FILTER...]: tcpdump on the guest's tap0, inside the netns.
# nsenter is called directly (not via the ns() function, which would put a
# subshell in between); nsenter -n does not fork, so $! is tcpdump itself.
# -Z root: Debian's tcpdump would otherwise drop to user tcpdump before
# opening the output file in the root-only temp dir.  Stopped with SIGTERM
# (background jobs of a non-interactive shell ignore SIGINT); tcpdump
# flushes and closes the file on SIGTERM too.
CAPPID=""; CAPNAME=""
cap_start() {
  CAPNAME=$1; shift
  nsenter -t "$NSPID" -n tcpdump -i tap0 -nn -U --immediate-mode -B 32768 -Z root -s 262144 \
     -w "$WORK/$CAPNAME" "$@" >"$WORK/$CAPNAME.log" 2>&1 &
  CAPPID=$!; PIDS+=("$CAPPID")
  for _ in $(seq 50); do
    grep -q 'listening on' "$WORK/$CAPNAME.log" && { sleep 0.3; return 0; }
    sleep 0.1
  done
  cat "$WORK/$CAPNAME.log" >&2; echo "tcpdump did not start" >&2; exit 1
}

cap_stop() {
  sleep 1                       # let late replies arrive
  reap "$CAPPID"
  cp "$WORK/$CAPNAME" "$OUT/$CAPNAME"
  log "$CAPNAME: $(grep -o "[0-9]* packets captured" "$WORK/$CAPNAME.log"), $(grep -o "[0-9]* packets dropped by kernel" "$WORK/$CAPNAME.log")"
}

# ------------------------------------------------------ loopback services --
echo "nameserver 127.0.0.1" >"$WORK/resolv.conf"

# Tiny authoritative-only DNS responder on 127.0.0.1:53 (never forwards).
#   tsnet.test  A    -> 192.0.2.53 (TTL 60)
#   tsnet.test  AAAA -> NOERROR, no answer (NODATA)
#   anything else    -> NXDOMAIN
cat >"$WORK/dns.py" <<'EOF'
import socket, struct, sys, threading
HOST = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
FAMILY = socket.AF_INET6 if ":" in HOST else socket.AF_INET
def answer(q):
    qid, flags, qd = struct.unpack("!HHH", q[:6])
    i, labels = 12, []
    while i < len(q) and q[i]:
        labels.append(q[i+1:i+1+q[i]].decode("ascii", "replace").lower()); i += 1 + q[i]
    i += 1
    qtype, = struct.unpack("!H", q[i:i+2]); question = q[12:i+4]
    name = ".".join(labels)
    rd = flags & 0x0100
    ans = b""
    if name == "tsnet.test":
        rcode = 0
        if qtype == 1:
            ans = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton("192.0.2.53")
    else:
        rcode = 3
    hdr = struct.pack("!HHHHHH", qid, 0x8400 | rd | rcode, 1, 1 if ans else 0, 0, 0)
    return hdr + question + ans
def tcp_server():
    t = socket.socket(FAMILY, socket.SOCK_STREAM)
    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind((HOST, 53)); t.listen(8)
    while True:
        c, _ = t.accept()
        with c:
            n = struct.unpack("!H", c.recv(2))[0]; q = b""
            while len(q) < n: q += c.recv(n - len(q))
            r = answer(q); c.sendall(struct.pack("!H", len(r)) + r)
threading.Thread(target=tcp_server, daemon=True).start()
s = socket.socket(FAMILY, socket.SOCK_DGRAM)
s.bind((HOST, 53))
while True:
    q, peer = s.recvfrom(4096)
    if len(q) < 12: continue
    s.sendto(answer(q), peer)
EOF
python3 "$WORK/dns.py" >"$WORK/dns.log" 2>&1 &
PIDS+=($!)

mkdir -p "$WORK/www"
printf 'hello from the tsnet pcap recorder\n' >"$WORK/www/index.html"
# 1 MiB of a fixed pattern for the download (same bytes on every recording)
python3 -c 'import sys; sys.stdout.buffer.write(bytes(i * 7 % 251 for i in range(1 << 20)))' >"$WORK/www/big.bin"
python3 -m http.server --bind 127.0.0.1 --directory "$WORK/www" "$HTTP_PORT" \
  >"$WORK/http.log" 2>&1 &
PIDS+=($!)
sleep 1

# ONLY=C records session C alone (the files of A, B and the synthetic one stay).
if [ -z "${ONLY:-}" ]; then
# ============================================================ session A ====
log "session A: IPv4 (IPv6 disabled in the guest netns)"
new_ns
ns sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
start_slirp
log "guest tap0: $(ns ip -br link show dev tap0)"

# 1. kernel ARP for the gateway (triggered by one ping after flushing)
ns ip neigh flush dev tap0
cap_start arp-gateway.pcap arp
ns ping -c 1 -W 2 10.0.2.2 >/dev/null
cap_stop

# 2. ARP + 3 echo requests/replies to the gateway
ns ip neigh flush dev tap0
cap_start ping-gateway.pcap arp or icmp
ns ping -c 3 -W 2 10.0.2.2 >/dev/null
cap_stop

# 3. ARP + 3 echo requests/replies to the DNS address (on-link, own MAC)
ns ip neigh flush dev tap0
cap_start ping-dns.pcap arp or icmp
ns ping -c 3 -W 2 10.0.2.3 >/dev/null
cap_stop

# 4. whole TCP exchange: guest -> 10.0.2.2:PORT -> host 127.0.0.1:PORT
cap_start tcp-syn.pcap tcp port "$HTTP_PORT"
ns busybox wget -qO- "http://10.0.2.2:$HTTP_PORT/" >"$WORK/wget.out"
cap_stop
tshark -r "$OUT/tcp-syn.pcap" -Y 'tcp.flags.syn==1 && tcp.flags.ack==0' \
  -F pcap -w "$OUT/tcp-syn-only.pcap"
log "tcp-syn-only.pcap: $(tshark -r "$OUT/tcp-syn-only.pcap" | wc -l) packets"

# 5. DNS over UDP to 10.0.2.3 (busybox nslookup: A + AAAA queries)
cap_start udp-dns.pcap udp port 53
ns busybox nslookup tsnet.test 10.0.2.3 >"$WORK/nslookup.out" 2>&1 || true
cap_stop

reap "$SLIRPPID" "$NSPID"

# ============================================================ session B ====
# tcpdump refuses to open a DOWN interface, and slirp4netns brings tap0 up
# itself, so instead: create the namespace with IPv6 disabled, let
# slirp4netns configure tap0 (IPv4), start tcpdump, then enable IPv6 on tap0.
# That starts addrconf on the (already up) tap0 exactly as a link-up would:
# link-local address, DAD, MLD reports, router solicitation, RA, SLAAC.
log "session B: IPv6 (slirp4netns --enable-ipv6)"
new_ns
ns sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
start_slirp --enable-ipv6
log "guest tap0: $(ns ip -br link show dev tap0)"

# 6. IPv6 autoconfiguration traffic
cap_start ipv6-ndp.pcap ip6
ns sysctl -qw net.ipv6.conf.tap0.disable_ipv6=0
sleep 9
cap_stop
log "guest tap0 IPv6: $(ns ip -br -6 addr show dev tap0)"

# 6b. (bonus) ICMPv6 echo to the IPv6 gateway fd00::2, with neighbor discovery
ns ip -6 neigh flush dev tap0
cap_start ipv6-ping-gateway.pcap ip6
ns ping -6 -c 3 -W 2 fd00::2 >/dev/null
cap_stop

reap "$SLIRPPID" "$NSPID"

# ============================================================ synthetic ====
python3 "$HERE/gen-malformed.py" "$OUT/malformed.pcap"
log "malformed.pcap written"
fi

if [ -z "${ONLY:-}" ] || [ "${ONLY:-}" = C ]; then
# ============================================================ session C ====
# Whole sessions for replaying through tsnet: DHCP, DNS over TCP, an HTTP GET
# with curl, a 1 MiB download with losses both ways (iptables statistic in the
# guest: netem is not in every kernel).
log "session C: whole sessions (IPv4)"
new_ns
ns sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
start_slirp

# 7. a DHCP exchange (udhcpc: DISCOVER, OFFER, REQUEST, ACK; its script does nothing)
cap_start dhcp.pcap udp port 67 or udp port 68
ns busybox udhcpc -i tap0 -f -q -n -t 3 -s /bin/true >"$WORK/udhcpc.out" 2>&1 || true
cap_stop

# 8. DNS over TCP to 10.0.2.3 (one A query, length-prefixed)
cap_start dns-tcp.pcap tcp port 53
ns python3 -c '
import socket, struct
q = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"\x05tsnet\x04test\x00" + struct.pack("!HH", 1, 1)
s = socket.create_connection(("10.0.2.3", 53), timeout=5)
s.sendall(struct.pack("!H", len(q)) + q)
n = struct.unpack("!H", s.recv(2))[0]; r = b""
while len(r) < n: r += s.recv(n - len(r))
s.close(); print(len(r))' >"$WORK/dns-tcp.out"
cap_stop

# 9. curl over HTTP
cap_start http-curl.pcap tcp port "$HTTP_PORT"
ns curl -s "http://10.0.2.2:$HTTP_PORT/" >"$WORK/curl.out"
cap_stop

# 10. a 1 MiB download with 3 % of frames lost each way
ns iptables -A INPUT -i tap0 -m statistic --mode random --probability 0.03 -j DROP
ns iptables -A OUTPUT -o tap0 -m statistic --mode random --probability 0.03 -j DROP
cap_start http-download-loss.pcap tcp port "$HTTP_PORT"
ns busybox wget -qO "$WORK/big.out" "http://10.0.2.2:$HTTP_PORT/big.bin"
cap_stop
cmp "$WORK/big.out" "$WORK/www/big.bin" && log "download intact"

reap "$SLIRPPID" "$NSPID"
fi

if [ -z "${ONLY:-}" ] || [ "${ONLY:-}" = D ]; then
# ============================================================ session D ====
# Errors and the other direction: a refused TCP connect, a UDP datagram to a
# closed port (ICMP port unreachable), an upload, and a port forward into
# the guest (slirp4netns's add_hostfwd API).
log "session D: errors, upload, port forward (IPv4)"
UPLOAD_PORT=${UPLOAD_PORT:-18100}
FWD_PORT=${FWD_PORT:-18101}
new_ns
ns sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
start_slirp --api-socket "$WORK/api.sock"

# 11. TCP to a closed host port: the SYN is answered with RST
cap_start tcp-refused.pcap tcp port 1
ns curl -s --max-time 3 "http://10.0.2.2:1/" >/dev/null 2>&1 || true
cap_stop

# 12. UDP to a closed host port: ICMP port unreachable back
cap_start udp-refused.pcap udp port 9 or icmp
ns python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
s.connect(("10.0.2.2", 9)); s.send(b"anyone there?")
try: s.recv(100)
except OSError as e: print(e)' >"$WORK/udp-refused.out" 2>&1 || true
cap_stop

# 13. a 256 KiB upload to a host listener (ncat), the guest half-closes first
ncat -l 127.0.0.1 "$UPLOAD_PORT" --recv-only >"$WORK/upload.out" &
UPPID=$!; PIDS+=("$UPPID"); sleep 0.5
cap_start tcp-upload.pcap tcp port "$UPLOAD_PORT"
python3 -c 'import sys; sys.stdout.buffer.write(bytes(i * 13 % 253 for i in range(1 << 18)))' >"$WORK/up.bin"
ns python3 -c '
import socket, sys
s = socket.create_connection(("10.0.2.2", int(sys.argv[1])), timeout=10)
s.sendall(open(sys.argv[2], "rb").read()); s.shutdown(socket.SHUT_WR)
while s.recv(4096): pass
s.close()' "$UPLOAD_PORT" "$WORK/up.bin"
cap_stop
reap "$UPPID"
cmp "$WORK/upload.out" "$WORK/up.bin" && log "upload intact"

# 14. a port forward: host 127.0.0.1:FWD_PORT -> guest :80 (busybox httpd)
mkdir -p "$WORK/guest-www"; printf 'hello from inside the guest\n' >"$WORK/guest-www/index.html"
nsenter -t "$NSPID" -n busybox httpd -f -p 80 -h "$WORK/guest-www" &
HTTPDPID=$!; PIDS+=("$HTTPDPID"); sleep 0.5
printf '{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_addr":"127.0.0.1","host_port":%s,"guest_port":80}}' "$FWD_PORT" |
  ncat -U "$WORK/api.sock" >"$WORK/api.out"
cap_start port-forward.pcap tcp port 80
curl -s "http://127.0.0.1:$FWD_PORT/" >"$WORK/fwd.out"
cap_stop
reap "$HTTPDPID"
grep -q 'inside the guest' "$WORK/fwd.out" && log "port forward served"

reap "$SLIRPPID" "$NSPID"
fi

if [ -z "${ONLY:-}" ] || [ "${ONLY:-}" = E ]; then
# ============================================================ session E ====
# Whole IPv6 sessions (slirp4netns --enable-ipv6): an HTTP GET to fd00::2
# (the host's ::1), DNS over UDP and over TCP to fd00::3.
log "session E: IPv6 sessions (slirp4netns --enable-ipv6)"
HTTP6_PORT=${HTTP6_PORT:-18102}
python3 -m http.server --bind ::1 --directory "$WORK/www" "$HTTP6_PORT" >"$WORK/http6.log" 2>&1 &
PIDS+=($!)
# libslirp forwards fd00::3 to an IPv6 nameserver of resolv.conf: the same responder on ::1.
python3 "$WORK/dns.py" ::1 >"$WORK/dns6.log" 2>&1 &
PIDS+=($!)
echo "nameserver ::1" >"$WORK/resolv6.conf"
RESOLV="$WORK/resolv6.conf"
new_ns
start_slirp --enable-ipv6
RESOLV=""
for _ in $(seq 100); do
  ns ip -6 addr show dev tap0 scope global | grep -q fd00 && ! ns ip -6 addr show dev tap0 | grep -q tentative && break
  sleep 0.1
done
log "guest tap0 IPv6: $(ns ip -br -6 addr show dev tap0)"
# Resolve fd00::2 and fd00::3 before capturing: the captures hold the session itself.
ns ping -6 -c 1 -W 2 fd00::2 >/dev/null || true
ns ping -6 -c 1 -W 2 fd00::3 >/dev/null || true

# 15. curl over HTTP to fd00::2 (host ::1)
cap_start ipv6-http-curl.pcap ip6 and tcp port "$HTTP6_PORT"
ns curl -s -g "http://[fd00::2]:$HTTP6_PORT/" >"$WORK/curl6.out"
cap_stop
grep -q 'tsnet pcap recorder' "$WORK/curl6.out" && log "IPv6 page fetched"

# 16. DNS over UDP to fd00::3 (one A query)
cap_start ipv6-dns-udp.pcap ip6 and udp port 53
ns python3 -c '
import socket, struct
q = struct.pack("!HHHHHH", 0x4321, 0x0100, 1, 0, 0, 0) + b"\x05tsnet\x04test\x00" + struct.pack("!HH", 1, 1)
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.settimeout(3)
s.sendto(q, ("fd00::3", 53)); print(len(s.recvfrom(512)[0]))' >"$WORK/dns6-udp.out" 2>&1 || true
cap_stop

# 17. DNS over TCP to fd00::3
cap_start ipv6-dns-tcp.pcap ip6 and tcp port 53
ns python3 -c '
import socket, struct
q = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"\x05tsnet\x04test\x00" + struct.pack("!HH", 1, 1)
s = socket.create_connection(("fd00::3", 53), timeout=5)
s.sendall(struct.pack("!H", len(q)) + q)
n = struct.unpack("!H", s.recv(2))[0]; r = b""
while len(r) < n: r += s.recv(n - len(r))
s.close(); print(len(r))' >"$WORK/dns6-tcp.out" 2>&1 || true
cap_stop
log "DNS over IPv6: udp $(cat "$WORK/dns6-udp.out"), tcp $(cat "$WORK/dns6-tcp.out")"

reap "$SLIRPPID" "$NSPID"
fi

log "done: kernel $(uname -r), $(slirp4netns --version | head -1), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
