import { randomBytes, randomUUID } from 'node:crypto';
import { DEFAULT_PROJECT, findKind } from '@edgeplane/protocol';
import { ResourceService } from '../resource/resource.service.js';
import type { Executor } from '../store/db.js';
import { isUniqueViolation } from '../store/db.js';
import { EVENT_KIND_TABLES } from '../store/event-kinds.js';
import { announceWrite } from '../watch/change-bus.js';
import { insertEvents, uidsByName } from './event.repository.js';

export const events = new ResourceService(findKind('Event')!, 'events', {}, { listOrder: 'event_time' });

export interface NewEvent {
  /** `uid` defaults to the uid of the object of that kind and name that exists now. */
  involvedObject: { kind: string; name: string; uid?: string };
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
  source: string;
  timestamp?: string;
  /** Stored once per key: agents re-send queued events after a reconnect. */
  dedupeKey?: string;
}

/**
 * When the event happened, for sorting: its own timestamp (agents send queued events late), but
 * never later than now, so a device with a clock in the future cannot pin its events to the end.
 */
function eventTime(timestamp: string | undefined, now: string): string {
  const t = timestamp === undefined ? Number.NaN : Date.parse(timestamp);
  return Number.isNaN(t) ? now : new Date(Math.min(t, Date.parse(now))).toISOString();
}

function eventRow(e: NewEvent, uid: string | undefined) {
  const now = new Date().toISOString();
  const t = e.timestamp ?? now;
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
    spec: JSON.stringify({
      type: e.type,
      reason: e.reason,
      message: e.message,
      involvedObject: { ...e.involvedObject, ...(uid ? { uid } : {}) },
      source: e.source,
    }),
    status: JSON.stringify({ count: 1, firstTimestamp: t, lastTimestamp: t }),
    involved_kind: e.involvedObject.kind,
    involved_name: e.involvedObject.name,
    involved_uid: uid ?? null,
    event_time: eventTime(e.timestamp, now),
    dedupe_key: e.dedupeKey ?? null,
  };
}

/** The uid of each event's involved object (given, or looked up by kind and name; one query per kind). */
async function involvedUids(db: Executor, list: NewEvent[]): Promise<(string | undefined)[]> {
  const found = new Map<string, string>();
  const byKind = new Map<string, Set<string>>();
  for (const e of list)
    if (!e.involvedObject.uid) byKind.set(e.involvedObject.kind, (byKind.get(e.involvedObject.kind) ?? new Set()).add(e.involvedObject.name));
  for (const [kind, names] of byKind) {
    const table = EVENT_KIND_TABLES.find(([k]) => k === kind)?.[1];
    if (table) for (const r of await uidsByName(db, table, [...names])) found.set(`${kind}/${r.name}`, r.uid);
  }
  return list.map((e) => e.involvedObject.uid ?? found.get(`${e.involvedObject.kind}/${e.involvedObject.name}`));
}

/** Records many events in one statement (no dedupe keys), e.g. the transitions of a connectivity flush. */
export async function recordEvents(db: Executor, list: NewEvent[]): Promise<void> {
  if (list.length === 0) return;
  const uids = await involvedUids(db, list);
  const rows = list.map((e, i) => eventRow(e, uids[i]));
  await insertEvents(db, rows);
  for (const r of rows) announceWrite(db, { kind: 'Event', name: r.name, type: 'ADDED' });
}

/** Records an event; returns false when an event with the same dedupe key already exists. */
export async function recordEvent(db: Executor, e: NewEvent): Promise<boolean> {
  const row = eventRow(e, (await involvedUids(db, [e]))[0]);
  try {
    await insertEvents(db, [row]);
    // Read back by each server's watch hub shortly after (the caller's transaction commits first).
    announceWrite(db, { kind: 'Event', name: row.name, type: 'ADDED' });
    return true;
  } catch (err) {
    if (e.dedupeKey && isUniqueViolation(err)) return false;
    throw err;
  }
}
