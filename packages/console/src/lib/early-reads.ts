import { FLEET_SUMMARY_PATH } from '@edgeplane/protocol/fleet-path';
import { request, tokenStore } from './api';

/**
 * The reads the first page waits for, started by the console's entry while the rest of the console
 * is still being evaluated (on a 2-core machine that is 0.3-0.5 s the reads no longer wait):
 * the sign-in check, and on the Overview the fleet summary. Each is handed to the first query that
 * asks for it, once; later reads go to the server as usual.
 */
const early = new Map<string, Promise<unknown>>();

const whoamiKey = (token: string) => `whoami ${token}`;
const FLEET_KEY = 'fleet';

export function startEarlyReads(): void {
  const token = tokenStore.get();
  if (!token) return;
  const start = (key: string, path: string) => {
    const read = request('GET', path, undefined, token);
    // Handled by whoever takes it; until then a failure is not an unhandled rejection.
    read.catch(() => {});
    early.set(key, read);
  };
  start(whoamiKey(token), '/api/v1/whoami');
  if (location.pathname === '/') start(FLEET_KEY, FLEET_SUMMARY_PATH);
}

function take<T>(key: string): Promise<T> | undefined {
  const read = early.get(key);
  early.delete(key);
  return read as Promise<T> | undefined;
}

export const takeEarlyWhoami = <T>(token: string) => take<T>(whoamiKey(token));
export const takeEarlyFleet = <T>() => take<T>(FLEET_KEY);
