// Nameservers for the DNS address (10.0.2.3): read from --resolv-conf FILE
// (default /etc/resolv.conf) at start and re-read when the file changes, as
// slirp4netns does, so a host moving between networks keeps working.
// Loopback nameservers (127.0.0.53 of systemd-resolved) are fine: tsnet
// lives on the host side.

import fs from 'node:fs';
import net from 'node:net';

export function parseResolvConf(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const m = /^nameserver\s+(\S+)/.exec(line);
    if (!m) continue;
    // An IPv6 address may carry a zone (%eth0); keep it for the socket layer.
    const addr = m[1]!;
    if (net.isIP(addr.split('%')[0]!) !== 0) out.push(addr);
  }
  return out;
}

export class Resolvers {
  private list: string[] = [];
  private mtimeMs = -1;

  constructor(readonly path: string) {
    this.reload();
  }

  /**
   * The nameservers, re-reading the file when it changed (cheap stat). A file
   * that cannot be read (gone for a moment while it is replaced, or outside a
   * sandbox's root) leaves the last list in place.
   */
  get(): string[] {
    this.reload();
    return this.list;
  }

  private reload(): void {
    try {
      const st = fs.statSync(this.path);
      if (st.mtimeMs === this.mtimeMs) return;
      this.mtimeMs = st.mtimeMs;
      this.list = parseResolvConf(fs.readFileSync(this.path, 'utf8'));
    } catch {
      this.mtimeMs = -1;
    }
  }
}
