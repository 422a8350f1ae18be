import { replaceEqualDeep } from '@tanstack/react-query';
import type { Resource } from './api';

const version = (r: Resource) => Number(r.metadata.resourceVersion);
const isResource = (x: unknown): x is Resource =>
  typeof x === 'object' && x !== null && typeof (x as Resource).metadata?.uid === 'string' && typeof (x as Resource).metadata?.resourceVersion === 'string';

/**
 * True when `next` is an older copy of the same object than `prev`. Objects reach the cache from two
 * directions (GET responses and watch batches), and either can land after a newer copy arrived the other
 * way; an older copy must never replace a newer one (an upgrade shown Cancelled must not flip back to
 * Rolling for a moment because a GET started before the cancel came back after it).
 */
export function isStale(prev: unknown, next: unknown): boolean {
  return isResource(prev) && isResource(next) && prev.metadata.uid === next.metadata.uid && version(next) < version(prev);
}

/** structuralSharing for object queries: keeps the newer copy, otherwise TanStack's usual deep sharing. */
export function keepNewest(prev: unknown, next: unknown): unknown {
  return isStale(prev, next) ? prev : replaceEqualDeep(prev, next);
}
