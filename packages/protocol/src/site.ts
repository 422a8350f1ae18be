import { z } from 'zod';
import { resourceInputSchema, resourceSchema } from './meta.js';

/** `4h`, `90m`, `1h30m`: hours and/or minutes. */
export const DurationString = z
  .string()
  .regex(/^(?=\d)(\d+h)?(\d+m)?$/, 'must be a duration in hours and/or minutes, e.g. 4h, 90m, 1h30m')
  .refine((s) => parseDurationMs(s) > 0, 'must be longer than zero');

/** Milliseconds of a DurationString (0 for a string that is not one). */
export function parseDurationMs(s: string): number {
  const m = /^(?:(\d+)h)?(?:(\d+)m)?$/.exec(s);
  if (!m) return 0;
  return (Number(m[1] ?? 0) * 60 + Number(m[2] ?? 0)) * 60_000;
}

/**
 * A recurring maintenance window: it opens at each time the cron `schedule` (5 fields: minute hour
 * day-of-month month day-of-week) matches, in the site's timezone, and stays open for `duration`.
 */
export const MaintenanceWindow = z
  .object({
    schedule: z.string().min(9).max(128),
    duration: DurationString,
  })
  .strict();
export type MaintenanceWindow = z.infer<typeof MaintenanceWindow>;

export const SiteSpec = z
  .object({
    displayName: z.string().max(256).optional(),
    /** IANA time zone (Europe/Berlin, America/New_York); maintenance windows are read in it. */
    timezone: z.string().min(1).max(64).default('UTC'),
    address: z.string().max(1024).optional(),
    coordinates: z
      .object({ latitude: z.number().min(-90).max(90), longitude: z.number().min(-180).max(180) })
      .strict()
      .optional(),
    /** No windows: changes may happen at any time. Several windows: any one open is enough. */
    maintenanceWindows: z.array(MaintenanceWindow).max(32).default([]),
  })
  .strict();
export type SiteSpec = z.infer<typeof SiteSpec>;

export const SiteStatus = z.object({
  /** Computed when read: whether a maintenance window is open now, and when the next one opens/closes. */
  windowOpen: z.boolean().optional(),
  windowClosesAt: z.string().optional(),
  nextWindowAt: z.string().optional(),
});
export type SiteStatus = z.infer<typeof SiteStatus>;

export const Site = resourceSchema('Site', SiteSpec, SiteStatus);
export type Site = z.infer<typeof Site>;
export const SiteInput = resourceInputSchema('Site', SiteSpec);
