import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../index.js';
import { type FakeApi, startFakeApi, tempConfigEnv } from '../test-support.js';
import { terminalSize } from './shell.js';

describe('edgeplane shell terminal size', () => {
  let api: FakeApi;
  beforeAll(async () => {
    api = await startFakeApi();
  });
  afterAll(() => api.close());

  it('falls back to 80x24 for a terminal without a size, and caps absurd sizes', () => {
    expect(terminalSize({ columns: 0, rows: 0 })).toEqual({ cols: 80, rows: 24 });
    expect(terminalSize({})).toEqual({ cols: 80, rows: 24 });
    expect(terminalSize({ columns: 132, rows: 43 })).toEqual({ cols: 132, rows: 43 });
    expect(terminalSize({ columns: 5000, rows: 50 })).toEqual({ cols: 1000, rows: 50 });
  });

  it('asks the server for an 80x24 session from a pty that reports 0x0', async () => {
    let stderr = '';
    const code = await main(['node', 'edgeplane', 'shell', 'nuc-01', '--reason', 'INC-1'], {
      stdout: Object.assign({ write: () => true, isTTY: true }, { columns: 0, rows: 0 }),
      stderr: { write: (s: string) => (stderr += s) },
      stdin: Readable.from(['']),
      env: { ...tempConfigEnv(), EDGEPLANE_SERVER: api.url, EDGEPLANE_TOKEN: api.token },
    });
    // The fake API has no host nuc-01: what matters is the request the CLI sent.
    expect(code, stderr).toBe(1);
    const request = api.requests.find((r) => r.method === 'POST' && r.path === '/api/v1/edgehosts/nuc-01/sessions');
    expect(request?.body).toMatchObject({ kind: 'shell', reason: 'INC-1', cols: 80, rows: 24 });
  });
});
