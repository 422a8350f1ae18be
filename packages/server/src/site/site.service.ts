import { findKind, type SiteSpec } from '@edgeplane/protocol';
import { ResourceService } from '../resource/resource.service.js';
import { validateSchedule, windowState } from './maintenance-window.js';

/** Sites: where hosts and clusters are; their maintenance windows gate rollouts. */
export const sites = new ResourceService(findKind('Site')!, 'sites', {
  // Window state is a function of the clock, so it is computed when read rather than stored.
  status(row) {
    const spec = JSON.parse(row.spec) as SiteSpec;
    try {
      const w = windowState(spec.timezone, spec.maintenanceWindows, new Date());
      return { windowOpen: w.open, windowClosesAt: w.closesAt?.toISOString(), nextWindowAt: w.nextOpensAt?.toISOString() };
    } catch {
      return {}; // a zone dropped from a newer tz database: shown without window state
    }
  },
  async prepareCreate(_db, input) {
    const spec = input.spec as SiteSpec;
    validateSchedule(spec.timezone, spec.maintenanceWindows);
    return {};
  },
  async prepareUpdate(_db, _row, next) {
    const spec = next as SiteSpec;
    validateSchedule(spec.timezone, spec.maintenanceWindows);
    return {};
  },
});
