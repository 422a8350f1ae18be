import { type RunningServer, type ServerOptions, startServer } from '@edgeplane/server';
import pino from 'pino';
import { type Dialect, type TestStore, testStore } from './db.js';

export interface TestServer {
  server: RunningServer;
  store: TestStore;
  url: string;
  admin: string;
  api(method: string, path: string, body?: unknown, opts?: { token?: string; contentType?: string; raw?: string }): Promise<{ status: number; body: any }>;
  restart(): Promise<void>;
  close(): Promise<void>;
}

/** A real server on a free loopback port, on a fresh store of the given dialect. */
export async function testServer(dialect: Dialect, options: Partial<ServerOptions> = {}): Promise<TestServer> {
  const store = await testStore(dialect);
  const opts: ServerOptions = {
    host: '127.0.0.1',
    port: 0,
    dataDir: store.dataDir,
    databaseUrl: store.databaseUrl,
    logger: pino({ level: process.env.EDGEPLANE_TEST_LOG ?? 'silent' }),
    ...options,
  };
  let server = await startServer(opts);
  const admin = server.adminToken!;
  const t: TestServer = {
    server,
    store,
    url: server.url,
    admin,
    async api(method, path, body, o = {}) {
      const headers: Record<string, string> = { authorization: `Bearer ${o.token ?? admin}` };
      if (body !== undefined || o.raw !== undefined) headers['content-type'] = o.contentType ?? 'application/json';
      const res = await fetch(`${t.url}${path}`, { method, headers, body: o.raw ?? (body === undefined ? undefined : JSON.stringify(body)) });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : undefined };
    },
    async restart() {
      const port = Number(new URL(t.url).port);
      await server.close();
      server = await startServer({ ...opts, port });
      t.server = server;
    },
    async close() {
      await server.close();
      await store.cleanup();
    },
  };
  return t;
}
