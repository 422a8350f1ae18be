import { describe, expect, it } from 'vitest';
import { serializeRequest } from './server.js';

describe('request log lines', () => {
  it('mask one-time secrets in query strings and keep the rest', () => {
    const r = serializeRequest({
      method: 'GET',
      url: '/api/v1/remotesessions/s1/attach?cols=80&ticket=epat_secret&token=abc',
      headers: { host: 'h:1' },
      socket: { remoteAddress: '10.0.0.1' },
    });
    expect(r).toEqual({ method: 'GET', url: '/api/v1/remotesessions/s1/attach?cols=80&ticket=***&token=***', host: 'h:1', remoteAddress: '10.0.0.1' });
    expect(JSON.stringify(r)).not.toContain('epat_secret');
  });
});
