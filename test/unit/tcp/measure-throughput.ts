// Not a test: measures the TCP core's in-memory throughput. Two
// TcpConnections wired back to back (no IP, no checksums, no loss), the
// sender fed with 64 KiB chunks, the receiver consuming at once.
//   npx vite-node test/unit/tcp/measure-throughput.ts
//   MSS=1460 TOTAL=268435456 npx vite-node test/unit/tcp/measure-throughput.ts
import { TcpConnection, type TcpAppEvents, type TcpSegmentOut } from '../../../src/stack/tcp/connection.js';
import { TcpRepr } from '../../../src/wire/tcp.js';

const MSS = Number(process.env.MSS ?? 65480);
const TOTAL = Number(process.env.TOTAL ?? 1 << 30);
const BUF = Number(process.env.BUF ?? 4 << 20);
let received = 0;
let aConn!: TcpConnection;
let bConn: TcpConnection | undefined;
const chunk = Buffer.alloc(65536, 7);
let sent = 0;
const evA: TcpAppEvents = {
  onData() {}, onEof() {}, onEstablished() {}, onSendSpace() {}, onReset(r) { console.log('A reset', r); }, onClosed() {},
};
const evB: TcpAppEvents = {
  onData(d) { received += d.length; bConn!.consumed(d.length); },
  onEof() { bConn!.close(now); }, onEstablished() {}, onSendSpace() {}, onReset(r) { console.log('B reset', r); }, onClosed() {},
};
const cfg = (iss: number) => ({ mss: MSS, rcvBufSize: BUF, sndBufSize: BUF, iss });
let now = 0;
aConn = TcpConnection.connect(now, 40000, 80, cfg(1000), evA);
const toB: TcpRepr[] = [];
const toA: TcpRepr[] = [];
const emitA = (s: TcpSegmentOut) => toB.push(s.repr);
const emitB = (s: TcpSegmentOut) => toA.push(s.repr);
const t0 = performance.now();
let iter = 0;
while (true) {
  iter++;
  while (sent < TOTAL) {
    const n = aConn.send(chunk.subarray(0, Math.min(chunk.length, TOTAL - sent)));
    sent += n;
    if (n < chunk.length) break;
  }
  if (sent >= TOTAL) aConn.close(now);
  aConn.dispatch(now, emitA);
  aConn.deliverEvents();
  for (const r of toB) {
    if (!bConn) { bConn = TcpConnection.fromSyn(now, r, cfg(5000), evB); bConn.accept(now); }
    else bConn.process(now, r);
    bConn.deliverEvents();
  }
  toB.length = 0;
  bConn?.dispatch(now, emitB);
  bConn?.deliverEvents();
  for (const r of toA) {
    aConn.process(now, r);
    aConn.deliverEvents();
  }
  toA.length = 0;
  if (aConn.state === 'TIME-WAIT' || aConn.state === 'CLOSED') break;
  if (iter > 1e7) { console.log('stuck', aConn.state, bConn?.state, received); break; }
  now += 0.01;
}
const dt = (performance.now() - t0) / 1000;
console.log(`MSS ${MSS}: ${received} bytes in ${dt.toFixed(2)} s = ${((received * 8) / dt / 1e9).toFixed(2)} Gbit/s; iters ${iter}`);
