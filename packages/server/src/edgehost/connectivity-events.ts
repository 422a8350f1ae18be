import type { NewEvent } from '../event/event.service.js';

/**
 * The connectivity history of a host, kept as ordinary Events ('Online' / 'Offline') so the API, the
 * CLI (`describe`) and the console's host page show it without a table of its own. The connection
 * hub writes them in the same batched statement-per-direction flush as the connectivity column, and
 * only for hosts whose connectivity really changed.
 */
export function connectivityEvent(host: string, state: 'online' | 'offline', at: string): NewEvent {
  return state === 'online'
    ? { involvedObject: { kind: 'EdgeHost', name: host }, type: 'Normal', reason: 'Online', message: 'agent connected', source: 'server', timestamp: at }
    : {
        involvedObject: { kind: 'EdgeHost', name: host },
        type: 'Warning',
        reason: 'Offline',
        message: 'agent disconnected or went silent',
        source: 'server',
        timestamp: at,
      };
}
