import { EdgeplaneError, type MaintenanceWindow, parseDurationMs } from '@edgeplane/protocol';
import { CronExpressionParser } from 'cron-parser';

export interface WindowState {
  /** No windows configured counts as always open. */
  open: boolean;
  /** When the open window(s) close; unset when closed or when no windows are configured. */
  closesAt?: Date;
  /** Next time a window opens (after now); unset when no windows are configured. */
  nextOpensAt?: Date;
}

/** Whether `tz` is an IANA zone this runtime knows (Intl is the authority the cron library uses too). */
export function isValidTimezone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** Refuses an unknown timezone or a schedule that is not a 5-field cron expression, with stable codes. */
export function validateSchedule(timezone: string, windows: MaintenanceWindow[]): void {
  if (!isValidTimezone(timezone))
    throw new EdgeplaneError('InvalidTimezone', `"${timezone}" is not an IANA time zone (for example Europe/Berlin)`, { timezone });
  windows.forEach((w, index) => {
    const fields = w.schedule.trim().split(/\s+/).length;
    let problem = fields === 5 ? '' : `has ${fields} fields, expected 5 (minute hour day-of-month month day-of-week)`;
    if (!problem) {
      try {
        CronExpressionParser.parse(w.schedule, { tz: timezone });
      } catch (err) {
        problem = (err as Error).message;
      }
    }
    if (problem)
      throw new EdgeplaneError('InvalidSchedule', `maintenance window ${index} schedule "${w.schedule}": ${problem}`, {
        index,
        schedule: w.schedule,
      });
  });
}

/**
 * The window state at `now` for windows read in `timezone`. A window opens at each cron match and
 * stays open for its duration; any open window makes the site open. Cron matches are computed by
 * cron-parser in the site's zone, so daylight-saving shifts follow the site's local clock.
 */
export function windowState(timezone: string, windows: MaintenanceWindow[], now: Date): WindowState {
  if (windows.length === 0) return { open: true };
  let closesAt: Date | undefined;
  let nextOpensAt: Date | undefined;
  for (const w of windows) {
    const dur = parseDurationMs(w.duration);
    // prev() is strictly before currentDate: start 1 ms after now so a window opening exactly now counts.
    const expr = CronExpressionParser.parse(w.schedule, { tz: timezone, currentDate: new Date(now.getTime() + 1) });
    const last = expr.prev().getTime();
    if (last + dur > now.getTime() && (!closesAt || last + dur > closesAt.getTime())) closesAt = new Date(last + dur);
    const next = CronExpressionParser.parse(w.schedule, { tz: timezone, currentDate: now }).next().getTime();
    if (!nextOpensAt || next < nextOpensAt.getTime()) nextOpensAt = new Date(next);
  }
  return { open: closesAt !== undefined, closesAt, nextOpensAt };
}
