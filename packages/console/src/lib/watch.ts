import { KINDS, WATCH_BEARER_PREFIX, WATCH_PROTOCOL, type WatchMessage } from '@edgeplane/protocol';
import { type InfiniteData, type QueryClient, useQueryClient } from '@tanstack/react-query';
import { useEffect, useState } from 'react';
import type { Resource, ResourceList } from './api';
import { isStale } from './freshness';

export type WatchState = 'connecting' | 'live' | 'reconnecting';

type Change = Extract<WatchMessage, { type: 'ADDED' | 'MODIFIED' | 'DELETED' }>;
const pluralOf = (kind: string) => KINDS.find((k) => k.kind === kind)?.plural ?? `${kind.toLowerCase()}s`;

/** Applies a batch of changes of one kind to every cached list page and object of that kind. */
function applyBatch(qc: QueryClient, plural: string, changes: Map<string, Change>): void {
  let added = false;
  for (const c of changes.values()) {
    const name = c.object.metadata.name;
    if (c.type === 'DELETED') qc.removeQueries({ queryKey: ['get', plural, name], exact: true });
    else qc.setQueryData(['get', plural, name], c.object);
    if (c.type === 'ADDED') added = true;
  }
  const patchItems = (items: Resource[]) => {
    let changed = false;
    const out: Resource[] = [];
    for (const item of items) {
      const c = changes.get(item.metadata.name);
      if (!c || (c.type !== 'DELETED' && isStale(item, c.object))) out.push(item);
      else {
        changed = true;
        if (c.type !== 'DELETED') out.push(c.object as unknown as Resource);
      }
    }
    return changed ? out : items;
  };
  qc.setQueriesData<InfiniteData<ResourceList> | ResourceList>({ queryKey: ['list', plural] }, (data) => {
    if (!data) return data;
    if ('pages' in data) {
      const pages = data.pages.map((p) => {
        const items = patchItems(p.items);
        return items === p.items ? p : { ...p, items };
      });
      return pages.some((p, i) => p !== data.pages[i]) ? { ...data, pages } : data;
    }
    const items = patchItems(data.items);
    return items === data.items ? data : { ...data, items };
  });
  // New objects belong somewhere in name order (and maybe not in a filtered view): let lists re-read.
  if (added) void qc.invalidateQueries({ queryKey: ['list', plural] });
  if (plural === 'edgehosts' || plural === 'events') void qc.invalidateQueries({ queryKey: ['summary'] });
}

/**
 * Keeps the query cache live from GET /api/v1/watch. Changes are applied in batches (every 250 ms), so
 * thousands of hosts changing at once cost one pass over the loaded rows, not one per change.
 */
export function useWatch(token: string): WatchState {
  const qc = useQueryClient();
  const [state, setState] = useState<WatchState>('connecting');
  useEffect(() => {
    if (!token) return;
    let ws: WebSocket | undefined;
    let stopped = false;
    let retry: ReturnType<typeof setTimeout> | undefined;
    let attempt = 0;
    const pending = new Map<string, Map<string, Change>>();
    const flushTimer = setInterval(() => {
      for (const [plural, changes] of pending) applyBatch(qc, plural, changes);
      pending.clear();
    }, 250);
    const open = () => {
      const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
      ws = new WebSocket(`${proto}//${location.host}/api/v1/watch`, [WATCH_PROTOCOL, `${WATCH_BEARER_PREFIX}${token}`]);
      ws.onmessage = (ev) => {
        const msg = JSON.parse(String(ev.data)) as WatchMessage;
        if (msg.type === 'READY') {
          attempt = 0;
          setState('live');
          // The stream carries changes from READY on. What is shown was read before that, on a first
          // connection too (a page's GETs run while the watch connects): a change made between a GET
          // and READY reaches neither, so re-read what is shown.
          void qc.invalidateQueries();
        } else if (msg.type === 'RESYNC') {
          for (const kind of msg.kinds) void qc.invalidateQueries({ queryKey: ['list', pluralOf(kind)] });
          void qc.invalidateQueries({ queryKey: ['summary'] });
        } else {
          const plural = pluralOf(msg.kind);
          const m = pending.get(plural) ?? new Map<string, Change>();
          pending.set(plural, m);
          m.set(msg.object.metadata.name, msg);
        }
      };
      ws.onclose = () => {
        if (stopped) return;
        setState('reconnecting');
        attempt++;
        retry = setTimeout(open, Math.min(30_000, 500 * 2 ** Math.min(attempt, 6)));
      };
    };
    open();
    return () => {
      stopped = true;
      clearInterval(flushTimer);
      if (retry) clearTimeout(retry);
      ws?.close();
    };
  }, [token, qc]);
  return state;
}
