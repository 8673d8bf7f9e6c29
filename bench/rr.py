#!/usr/bin/env python3
"""Latency probe for `npm run bench`.

server PORT [ADDR]   echo server (thread per connection, TCP_NODELAY)
client HOST PORT     prints: rr_p50_us=N rr_p99_us=N crr_per_s=N
  rr:  2500 one-byte request/response round trips on one connection
       (the first 250 are warm-up and not counted)
  crr: connect + one-byte request/response + close, repeated for 3 s
"""
import socket
import statistics
import sys
import threading
import time


def serve(port, addr):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, port))
    ls.listen(1024)
    print("ready", flush=True)

    def handle(c):
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with c:
            while True:
                d = c.recv(65536)
                if not d:
                    return
                c.sendall(d)

    while True:
        c, _ = ls.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()


def client(host, port):
    c = socket.create_connection((host, port), timeout=10)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    samples = []
    for _ in range(2500):
        t = time.perf_counter()
        c.sendall(b"x")
        c.recv(1)
        samples.append((time.perf_counter() - t) * 1e6)
    c.close()
    samples = sorted(samples[250:])
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 3:
        k = socket.create_connection((host, port), timeout=10)
        k.sendall(b"y")
        k.recv(1)
        k.close()
        n += 1
    rate = n / (time.perf_counter() - t0)
    p99 = samples[int(len(samples) * 0.99)]
    print(f"rr_p50_us={statistics.median(samples):.0f} rr_p99_us={p99:.0f} crr_per_s={rate:.0f}")


if __name__ == "__main__":
    if sys.argv[1] == "server":
        serve(int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "127.0.0.1")
    else:
        client(sys.argv[2], int(sys.argv[3]))
