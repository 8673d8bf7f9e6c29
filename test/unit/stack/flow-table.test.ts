// The one flow table on its own: one key shape for every kind, one cap,
// the eviction order at the cap (least recently active UDP, then echo,
// never TCP), idle expiry through the owners, ids unique across kinds.

import { describe, expect, it } from 'vitest';
import { FlowTable, type Flow, type FlowKind } from '../../../src/stack/flow-table.js';

function table(max = 4, idleMs = 1000) {
  const t = new FlowTable(max, idleMs);
  const ended: string[] = [];
  for (const kind of ['tcp', 'udp', 'udp-in', 'echo'] as FlowKind[]) {
    t.register(kind, {
      expire: (f, reason) => {
        ended.push(`${f.kind}#${f.id}:${reason}`);
        t.remove(f);
      },
    });
  }
  const add = (kind: FlowKind, guestPort: number, now = 0, peerIp = 0, peerPort = 0): Flow | undefined => {
    if (!t.admit()) return undefined;
    const f: Flow = { id: t.newId(), kind, guestIp: 0x0a000264, guestPort, peerIp, peerPort, lastActive: now };
    t.insert(f);
    return f;
  };
  return { t, ended, add };
}

describe('FlowTable', () => {
  it('keys by kind and both sides; the same ports in another kind are another flow', () => {
    const { t, add } = table(10);
    const tcp = add('tcp', 5000, 0, 0xc0000201, 80)!;
    const udp = add('udp', 5000)!;
    expect(t.lookup('tcp', 0x0a000264, 5000, 0xc0000201, 80)).toBe(tcp);
    expect(t.lookup('udp', 0x0a000264, 5000)).toBe(udp);
    expect(t.lookup('tcp', 0x0a000264, 5000)).toBeUndefined();
    expect(new Set([tcp.id, udp.id]).size).toBe(2);
    expect(() => t.insert({ ...tcp, id: t.newId() })).toThrow(/key taken/);
    expect(t.count('tcp')).toBe(1);
    expect(t.size).toBe(2);
  });

  it('at the cap evicts the least recently active UDP flow, then echo, never TCP', () => {
    const { t, ended, add } = table(4);
    add('echo', 1, 0);
    const u1 = add('udp', 2, 1)!;
    add('udp-in', 3, 2, 0x0a000202, 9999);
    add('tcp', 4, 3, 0xc0000201, 80);
    t.touch(u1, 10); // u1 active again: the forwarded conversation is now the oldest UDP
    expect(add('tcp', 5, 11, 0xc0000201, 80)).toBeDefined();
    expect(ended).toEqual(['udp-in#3:evicted']);
    expect(add('tcp', 6, 12, 0xc0000201, 80)).toBeDefined();
    expect(add('tcp', 7, 13, 0xc0000201, 80)).toBeDefined();
    expect(ended).toEqual(['udp-in#3:evicted', 'udp#2:evicted', 'echo#1:evicted']);
    // Only TCP left: no room, nothing evicted.
    expect(add('udp', 8, 14)).toBeUndefined();
    expect(t.count('tcp')).toBe(4);
    expect(t.evictions).toBe(3);
  });

  it('expires idle flows oldest first through their owners; TCP never idles out', () => {
    const { t, ended, add } = table(10, 1000);
    add('tcp', 1, 0, 0xc0000201, 80);
    const u = add('udp', 2, 0)!;
    add('echo', 3, 500);
    expect(t.pollAt()).toBe(1000);
    t.touch(u, 800);
    t.expire(1000);
    expect(ended).toEqual([]);
    t.expire(1500);
    expect(ended).toEqual(['echo#3:idle']);
    expect(t.pollAt()).toBe(1800);
    t.expire(5000);
    expect(ended).toEqual(['echo#3:idle', 'udp#2:idle']);
    expect(t.pollAt()).toBe(Infinity);
    expect(t.count('tcp')).toBe(1);
  });
});
