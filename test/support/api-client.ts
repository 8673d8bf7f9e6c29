// A client for the slirp4netns-style JSON API socket (one request per
// connection, the reply read to EOF), shared by the benchmark and the tests.

import net from 'node:net';

/** Sends one request (an object, or raw text) and resolves with the parsed reply. */
export function apiCall(sock: string, req: object | string): Promise<Record<string, any>> {
  return new Promise((resolve, reject) => {
    const c = net.connect(sock);
    let out = '';
    c.setEncoding('utf8');
    c.on('data', (d: string) => (out += d));
    c.on('end', () => {
      try {
        resolve(JSON.parse(out));
      } catch (e) {
        reject(e);
      }
    });
    c.on('error', reject);
    c.end(typeof req === 'string' ? req : JSON.stringify(req));
  });
}
