/** What an HTTP health check saw. */
export interface HttpResult {
  status: number;
  ok: boolean;
  body: string;
}

/** An HTTP request that got no answer: `timedOut`, or `reason` says why (ECONNREFUSED, ...). */
export class HttpError extends Error {
  constructor(
    readonly url: string,
    readonly reason: string,
    readonly timedOut: boolean,
  ) {
    super(timedOut ? `GET ${url}: no answer in time` : `GET ${url}: ${reason}`);
    this.name = 'HttpError';
  }
}

/**
 * A GET from the machine running the agent, with a timeout; rejects with HttpError when there is
 * no answer (an `signal` abort rejects with the abort reason). The body is read as text.
 */
export async function httpGet(url: string, options: { timeoutMs: number; signal?: AbortSignal }): Promise<HttpResult> {
  const timeout = AbortSignal.timeout(options.timeoutMs);
  try {
    const res = await fetch(url, { signal: options.signal ? AbortSignal.any([options.signal, timeout]) : timeout });
    const body = await res.text().catch(() => '');
    return { status: res.status, ok: res.ok, body };
  } catch (err) {
    options.signal?.throwIfAborted();
    // fetch wraps network errors ("fetch failed"); the cause says what happened.
    const e = err as Error & { cause?: { code?: string; message?: string } };
    throw new HttpError(url, e.cause?.code ?? e.cause?.message ?? e.message, timeout.aborted);
  }
}
