import { randomBytes, randomUUID } from 'node:crypto';
import { DEFAULT_PROJECT, findKind } from '@edgeplane/protocol';
import { ResourceService } from '../resource/resource.service.js';
import type { Executor } from '../store/db.js';
import { isUniqueViolation } from '../store/db.js';
import { announceWrite } from '../watch/change-bus.js';
import { insertEvents } from './event.repository.js';

export const events = new ResourceService(findKind('Event')!, 'events');

export interface NewEvent {
  involvedObject: { kind: string; name: string };
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
  source: string;
  timestamp?: string;
  /** Stored once per key: agents re-send queued events after a reconnect. */
  dedupeKey?: string;
}

function eventRow(e: NewEvent) {
  const t = e.timestamp ?? new Date().toISOString();
  const now = new Date().toISOString();
  return {
    name: `${e.involvedObject.name.slice(0, 46)}-${randomBytes(8).toString('hex')}`,
    uid: randomUUID(),
    project: DEFAULT_PROJECT,
    labels: '{}',
    annotations: '{}',
    generation: 1,
    resource_version: 1,
    created_at: now,
    updated_at: now,
    spec: JSON.stringify({ type: e.type, reason: e.reason, message: e.message, involvedObject: e.involvedObject, source: e.source }),
    status: JSON.stringify({ count: 1, firstTimestamp: t, lastTimestamp: t }),
    involved_kind: e.involvedObject.kind,
    involved_name: e.involvedObject.name,
    dedupe_key: e.dedupeKey ?? null,
  };
}

/** Records many events in one statement (no dedupe keys), e.g. the transitions of a connectivity flush. */
export async function recordEvents(db: Executor, list: NewEvent[]): Promise<void> {
  if (list.length === 0) return;
  const rows = list.map(eventRow);
  await insertEvents(db, rows);
  for (const r of rows) announceWrite({ kind: 'Event', name: r.name, type: 'ADDED' });
}

/** Records an event; returns false when an event with the same dedupe key already exists. */
export async function recordEvent(db: Executor, e: NewEvent): Promise<boolean> {
  const row = eventRow(e);
  try {
    await insertEvents(db, [row]);
    // Read back by each server's watch hub shortly after (the caller's transaction commits first).
    announceWrite({ kind: 'Event', name: row.name, type: 'ADDED' });
    return true;
  } catch (err) {
    if (e.dedupeKey && isUniqueViolation(err)) return false;
    throw err;
  }
}
