import http from 'node:http';

/** One HTTP request exactly as the fuzzer means it: the raw path is sent as is (no URL normalization). */
export interface RawRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string | Buffer;
}

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  /** Set when no answer came: client-side refusal (e.g. an illegal path), socket error or time-out. */
  error?: string;
}

/**
 * node:http rather than fetch: fetch normalizes paths (`..`, `%2e`), refuses some methods and
 * rewrites bodies, which would hide exactly the inputs the fuzzer wants the server to see.
 */
export class RawClient {
  private agent = new http.Agent({ keepAlive: true, maxSockets: 16 });

  constructor(private base: string) {}

  send(req: RawRequest, timeoutMs = 40_000): Promise<RawResponse> {
    const url = new URL(this.base);
    return new Promise((resolve) => {
      let settled = false;
      const done = (r: RawResponse) => {
        if (!settled) {
          settled = true;
          resolve(r);
        }
      };
      let r: http.ClientRequest;
      try {
        const headers = { ...req.headers };
        if (req.body !== undefined) headers['content-length'] = String(Buffer.byteLength(req.body));
        r = http.request({ host: url.hostname, port: url.port, method: req.method, path: req.path, headers, agent: this.agent }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => done({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString() }));
          res.on('error', (err) => done({ status: res.statusCode ?? 0, headers: res.headers, text: '', error: String(err) }));
        });
      } catch (err) {
        // node:http refuses some paths and header values before sending: nothing reached the server.
        done({ status: 0, headers: {}, text: '', error: `client refused: ${(err as Error).message}` });
        return;
      }
      r.setTimeout(timeoutMs, () => {
        r.destroy(new Error(`no answer within ${timeoutMs} ms`));
      });
      r.on('error', (err) => done({ status: 0, headers: {}, text: '', error: String(err) }));
      r.end(req.body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

/**
 * Runs jobs 0, 1, 2... with at most `concurrency` in flight, up to `count` of them; stops starting new
 * ones after `deadline` or once `done()` says enough.
 */
export async function runPool(
  count: number,
  concurrency: number,
  deadline: number,
  job: (i: number) => Promise<void>,
  done: () => boolean = () => false,
): Promise<number> {
  let next = 0;
  let started = 0;
  const worker = async () => {
    for (;;) {
      if (done()) return;
      const i = next++;
      if (i >= count || Date.now() > deadline) return;
      started++;
      await job(i);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return started;
}
