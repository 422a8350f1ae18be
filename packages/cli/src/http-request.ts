import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

/** An HTTP answer, read whole. */
export interface HttpAnswer {
  status: number;
  statusText: string;
  ok: boolean;
  text: string;
}

/**
 * One HTTP(S) request with node:http, the body read as text. Hand-written instead of the global
 * fetch on purpose: fetch loads undici and its WebAssembly HTTP parser on first use, about 70 ms of
 * every CLI run (bench/cli-start). `ca` replaces Node's CA store for https (trustedCas adds the
 * defaults back); no `ca`: the default store. One connection per request (no keep-alive pool that
 * could hold the process open).
 */
export function requestText(
  url: URL,
  init: { method: string; headers: Record<string, string>; body?: string; signal?: AbortSignal; ca?: string[] },
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const headers = init.body === undefined ? init.headers : { ...init.headers, 'content-length': String(Buffer.byteLength(init.body)) };
    const req = send(url, { method: init.method, headers, signal: init.signal, agent: false, ...(init.ca ? { ca: init.ca } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        resolve({ status, statusText: res.statusMessage ?? '', ok: status >= 200 && status < 300, text: Buffer.concat(chunks).toString('utf8') });
      });
    });
    req.on('error', reject);
    req.end(init.body);
  });
}
