import { z } from 'zod';
import { Role } from './user.js';

/**
 * The watch stream: GET /api/v1/watch?kinds=<plural>,... upgraded to a WebSocket. Browsers cannot set
 * an Authorization header on a WebSocket, so the API token may also be sent as the subprotocol
 * `bearer.<token>` next to `edgeplane.watch.v1` (which the server selects).
 */
export const WATCH_PROTOCOL = 'edgeplane.watch.v1';
export const WATCH_BEARER_PREFIX = 'bearer.';

export const WatchEventType = z.enum(['ADDED', 'MODIFIED', 'DELETED']);
export type WatchEventType = z.infer<typeof WatchEventType>;

/** A change to one object; `object.metadata.resourceVersion` is the version after the change. */
export const WatchChange = z.object({
  type: WatchEventType,
  kind: z.string(),
  object: z.object({ metadata: z.object({ name: z.string(), resourceVersion: z.string() }).loose() }).loose(),
});
export type WatchChange = z.infer<typeof WatchChange>;

export const WatchMessage = z.discriminatedUnion('type', [
  WatchChange.extend({ type: z.literal('ADDED') }),
  WatchChange.extend({ type: z.literal('MODIFIED') }),
  WatchChange.extend({ type: z.literal('DELETED') }),
  /** Sent once after the subscription is set up: changes from here on are delivered. */
  z.object({ type: z.literal('READY'), kinds: z.array(z.string()) }),
  /**
   * The client fell behind and changes were dropped: re-list what it shows, then carry on.
   * Keeps the server's memory per watcher bounded however fast objects change.
   */
  z.object({ type: z.literal('RESYNC'), kinds: z.array(z.string()), dropped: z.number().int().nonnegative() }),
]);
export type WatchMessage = z.infer<typeof WatchMessage>;

/** GET /api/v1/whoami: who the token belongs to and what it may do (`<plural>:<verb>` strings). */
export const Whoami = z.object({
  user: z.string(),
  role: Role,
  permissions: z.array(z.string()),
});
export type Whoami = z.infer<typeof Whoami>;
