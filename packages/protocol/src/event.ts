import { z } from 'zod';
import { resourceInputSchema, resourceSchema, Timestamp } from './meta.js';

export const EventSpec = z
  .object({
    type: z.enum(['Normal', 'Warning']),
    reason: z.string().min(1).max(128),
    message: z.string().max(4096),
    involvedObject: z.object({ kind: z.string(), name: z.string() }),
    /** Who reported it: `server`, `controller/<name>`, or `agent/<host>`. */
    source: z.string().max(256),
  })
  .strict();
export const EventStatus = z.object({
  count: z.number().int().positive(),
  firstTimestamp: Timestamp,
  lastTimestamp: Timestamp,
});
export const Event = resourceSchema('Event', EventSpec, EventStatus);
export type Event = z.infer<typeof Event>;
export const EventInput = resourceInputSchema('Event', EventSpec);
