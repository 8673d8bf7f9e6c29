// Replay: real captures from pcaps/ (recorded from a real kernel in a
// namespace, see pcaps/README.md) fed to a fresh stack; what it sends back is
// asserted field by field and compared with what the recorded peer
// (slirp4netns) answered. Also runs `tsnet replay` as a user would.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readPcap } from '../../src/host/pcap.js';
import { isFromStack, replayRecords } from '../../src/app/replay.js';
import { makeConfig } from '../../src/stack/config.js';
import { ArpOperation, ArpPacket, ArpRepr } from '../../src/wire/arp.js';
import { ipv4FromString } from '../../src/wire/address.js';
import { EtherType, EthernetFrame } from '../../src/wire/ethernet.js';
import { Icmpv4Packet, Icmpv4Repr, Icmpv4Type } from '../../src/wire/icmpv4.js';
import { IpProtocol, Ipv4Packet, Ipv4Repr } from '../../src/wire/ipv4.js';

const PCAPS = path.resolve(import.meta.dirname, '../../pcaps');
const cfg = makeConfig();
const GW = ipv4FromString('10.0.2.2');
const DNS = ipv4FromString('10.0.2.3');

async function replay(name: string) {
  const records = await readPcap(path.join(PCAPS, name));
  const peer = records.filter((r) => isFromStack(cfg, r.data));
  return { records, peer, ...replayRecords(records, cfg) };
}

function arpOf(f: Buffer) {
  const eth = EthernetFrame.newChecked(f);
  return { eth, arp: ArpRepr.parse(ArpPacket.newChecked(eth.payload)) };
}

function icmpOf(f: Buffer) {
  const eth = EthernetFrame.newChecked(f);
  const p = Ipv4Packet.newChecked(eth.payload);
  return { eth, ip: Ipv4Repr.parse(p), icmp: Icmpv4Repr.parse(Icmpv4Packet.newChecked(p.payload)) };
}

describe('replay of real captures', () => {
  it('arp-gateway.pcap: answers the kernel’s who-has 10.0.2.2 exactly as slirp4netns did', async () => {
    const { input, output, peer } = await replay('arp-gateway.pcap');
    const requests = input.filter((r) => arpOf(r.data).arp.operation === ArpOperation.Request);
    expect(requests.length).toBeGreaterThanOrEqual(1);
    expect(output).toHaveLength(requests.length);
    for (const [i, o] of output.entries()) {
      const req = arpOf(requests[i]!.data);
      const { eth, arp } = arpOf(o.data);
      expect(eth.ethertype).toBe(EtherType.ARP);
      expect(eth.dst).toBe(req.eth.src);
      expect(arp).toMatchObject({
        operation: ArpOperation.Reply,
        senderMac: cfg.gatewayMac,
        senderIp: GW,
        targetMac: req.arp.senderMac,
        targetIp: req.arp.senderIp,
      });
    }
    // Byte for byte what the recorded peer answered (ignoring Ethernet padding).
    for (const [i, p] of peer.entries()) expect(output[i]!.data.equals(p.data.subarray(0, 42))).toBe(true);
  });

  for (const [file, target] of [
    ['ping-gateway.pcap', GW],
    ['ping-dns.pcap', DNS],
  ] as const) {
    it(`${file}: one echo reply per request, same ident/seq/data, from the pinged address`, async () => {
      const { input, output } = await replay(file);
      const requests = input
        .filter((r) => EthernetFrame.newChecked(r.data).ethertype === EtherType.IPv4)
        .map((r) => icmpOf(r.data))
        .filter((x) => x.ip.protocol === IpProtocol.ICMP && x.icmp.type === Icmpv4Type.EchoRequest);
      expect(requests.length).toBe(3);
      const replies = output
        .filter((o) => EthernetFrame.newChecked(o.data).ethertype === EtherType.IPv4)
        .map((o) => icmpOf(o.data));
      expect(replies).toHaveLength(3);
      for (const [i, r] of replies.entries()) {
        const q = requests[i]!;
        expect(r.ip).toMatchObject({ src: target, dst: q.ip.src, protocol: IpProtocol.ICMP });
        expect(r.icmp).toMatchObject({ type: Icmpv4Type.EchoReply, ident: q.icmp.ident, seq: q.icmp.seq });
        expect(r.icmp.data.equals(q.icmp.data)).toBe(true);
        expect(r.eth.dst).toBe(q.eth.src);
      }
    });
  }

  it('tcp-syn.pcap: the SYN with Linux options parses and the whole wget session is terminated (sessions.test.ts checks the bytes)', async () => {
    const { stack } = await replay('tcp-syn.pcap');
    expect(stack.counters.drops.get('tcp-unhandled')).toBeUndefined();
    expect(stack.counters.drops.get('internal-error')).toBeUndefined();
    expect(stack.counters.snapshot().events['tcp-flow-opened']).toBe(1);
  });

  it('malformed.pcap: every synthetic bad frame is dropped with a specific reason, nothing thrown', async () => {
    const { input, stack } = await replay('malformed.pcap');
    expect(input.length).toBeGreaterThanOrEqual(6);
    const drops = stack.counters.snapshot().drops;
    expect(drops['internal-error']).toBeUndefined();
    for (const reason of ['eth-truncated', 'ipv4-bad-header-len', 'ipv4-bad-total-len', 'ipv4-bad-checksum']) {
      expect(drops[reason], `${reason} in ${JSON.stringify(drops)}`).toBeGreaterThanOrEqual(1);
    }
  });
});

describe('tsnet replay (CLI)', () => {
  it('writes the ARP reply for arp-gateway.pcap to --out, readable by tshark', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsnet-replay-'));
    try {
      const out = path.join(dir, 'x.pcap');
      const main = path.resolve(import.meta.dirname, '../../dist/src/cli/main.cjs');
      const summary = execFileSync(process.execPath, [main, 'replay', path.join(PCAPS, 'arp-gateway.pcap'), '--out', out], {
        encoding: 'utf8',
      });
      expect(summary).toMatch(/stack sent 1 \(written to/);
      const written = await readPcap(out);
      expect(written).toHaveLength(1);
      expect(arpOf(written[0]!.data).arp.operation).toBe(ArpOperation.Reply);
      let tshark = '';
      try {
        tshark = execFileSync('tshark', ['-r', out], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      } catch {
        return; // tshark not installed: the pcap-level check above stands
      }
      expect(tshark).toMatch(/10\.0\.2\.2 is at 52:55:0a:00:02:02/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('--diff says, per conversation, where tsnet and the recorded peer differ (here: nowhere in the streams)', () => {
    const main = path.resolve(import.meta.dirname, '../../dist/src/cli/main.cjs');
    const out = execFileSync(process.execPath, [main, 'replay', path.join(PCAPS, 'http-curl.pcap'), '--diff'], { encoding: 'utf8' });
    expect(out).toMatch(/^tcp 10\.0\.2\.100:\d+ > 10\.0\.2\.2:18099$/m);
    expect(out).toMatch(/^  stream: identical \(\d+ bytes\)$/m);
    expect(out).toMatch(/^  guest's \d+ bytes and FIN: all acknowledged$/m);
    const dns = execFileSync(process.execPath, [main, 'replay', path.join(PCAPS, 'udp-dns.pcap'), '--diff'], { encoding: 'utf8' });
    expect(dns).toMatch(/^udp 10\.0\.2\.100:\d+ > 10\.0\.2\.3:53: recorded 2 datagrams, tsnet 2, identical$/m);
  });
});
