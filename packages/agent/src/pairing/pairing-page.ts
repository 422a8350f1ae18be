import { createServer, type Server } from 'node:http';
import { networkInterfaces } from 'node:os';
import type { Logger } from 'pino';
import QRCode from 'qrcode';
import type { PairingInfo } from './pairing-flow.js';

/** RFC 1918 addresses: the site LAN. The page is never offered on a public address. */
function isPrivateIpv4(a: string): boolean {
  return /^10\./.test(a) || /^192\.168\./.test(a) || /^172\.(1[6-9]|2\d|3[01])\./.test(a);
}

/** Loopback plus this machine's private IPv4 addresses (where a technician's laptop or phone can reach it). */
export function defaultPairingAddresses(): string[] {
  const lan = Object.values(networkInterfaces())
    .flat()
    .filter((i) => i && i.family === 'IPv4' && !i.internal && isPrivateIpv4(i.address))
    .map((i) => i!.address);
  return ['127.0.0.1', ...new Set(lan)];
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/**
 * A small local web page on the device showing the pairing code and a QR of the console's claim URL,
 * for devices without a screen a technician can read. Read-only: it shows what the agent already
 * shows on its terminal, and it stops once the device is registered.
 */
export class PairingPage {
  private servers: Server[] = [];
  private info?: PairingInfo;
  private state: 'waiting' | 'pending' | 'claimed' | 'registered' = 'waiting';
  private hostName?: string;
  readonly urls: string[] = [];

  constructor(private readonly options: { port: number; listen?: string[]; logger: Logger }) {}

  async start(): Promise<void> {
    const addresses = this.options.listen ?? defaultPairingAddresses();
    for (const address of addresses) {
      const server = createServer((req, res) => void this.handle(req.url ?? '/', res));
      try {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(this.options.port, address, () => resolve());
        });
        this.servers.push(server);
        const host = address.includes(':') ? `[${address}]` : address;
        this.urls.push(`http://${host}:${this.options.port}/`);
      } catch (err) {
        this.options.logger.warn({ address, port: this.options.port, err: (err as Error).message }, 'cannot serve the pairing page on this address');
      }
    }
    if (this.urls.length) this.options.logger.info({ urls: this.urls }, 'pairing page is up');
  }

  show(info: PairingInfo | undefined): void {
    if (info) {
      this.info = info;
      this.state = 'pending';
    } else this.state = 'claimed';
  }

  registered(hostName: string): void {
    this.state = 'registered';
    this.hostName = hostName;
  }

  async close(): Promise<void> {
    const servers = this.servers;
    this.servers = [];
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }

  private async handle(url: string, res: import('node:http').ServerResponse): Promise<void> {
    const path = url.split('?')[0];
    res.setHeader('cache-control', 'no-store');
    res.setHeader('x-content-type-options', 'nosniff');
    try {
      if (path === '/pairing.json') {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ state: this.state, ...(this.info ?? {}), ...(this.hostName ? { hostName: this.hostName } : {}) }));
      } else if (path === '/qr.png' && this.info) {
        res.setHeader('content-type', 'image/png');
        res.end(await QRCode.toBuffer(this.info.claimUrl, { margin: 2, width: 320 }));
      } else if (path === '/qr.svg' && this.info) {
        res.setHeader('content-type', 'image/svg+xml');
        res.end(await QRCode.toString(this.info.claimUrl, { type: 'svg', margin: 2 }));
      } else if (path === '/') {
        res.setHeader('content-type', 'text/html; charset=utf-8');
        res.end(await this.html());
      } else {
        res.statusCode = 404;
        res.end('not found\n');
      }
    } catch (err) {
      res.statusCode = 500;
      res.end(`error: ${(err as Error).message}\n`);
    }
  }

  private async html(): Promise<string> {
    let body: string;
    if (this.state === 'registered') body = `<h1>Registered</h1><p>This device is registered as host <b>${esc(this.hostName ?? '')}</b>.</p>`;
    else if (this.state === 'claimed') body = '<h1>Claimed</h1><p>The code was claimed; the device is completing its registration.</p>';
    else if (!this.info) body = '<h1>Waiting</h1><p>Asking the control plane for a pairing code...</p>';
    else {
      const svg = await QRCode.toString(this.info.claimUrl, { type: 'svg', margin: 2 });
      body = `<h1>Pair this device</h1>
<p>Pairing code</p><p class="code" id="code">${esc(this.info.code)}</p>
<div class="qr">${svg}</div>
<p>Scan the QR or open <a href="${esc(this.info.claimUrl)}">${esc(this.info.claimUrl)}</a>, or run<br><code>edgeplane claim ${esc(this.info.code)}</code></p>
<p>Device UID ${esc(this.info.deviceUid)}; the code expires at ${esc(this.info.expiresAt)}.</p>`;
    }
    // Refreshes itself: a new code after expiry, then "registered", without anyone touching the device.
    return `<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="refresh" content="5"><title>Edgeplane pairing</title>
<style>body{font-family:sans-serif;text-align:center;margin:2em}.code{font:bold 3em monospace;letter-spacing:.2em}.qr svg{width:280px;height:280px}</style>
</head><body>${body}</body></html>\n`;
  }
}
