import type { FleetSite } from '@edgeplane/protocol';
import { describe, expect, it } from 'vitest';
import { byRegion, NO_REGION, worstSites } from './fleet';

const site = (name: string, health: FleetSite['health'], online: number, total: number, region?: string, lastChange?: string): FleetSite => ({
  name,
  defined: true,
  health,
  ...(region ? { region } : {}),
  hosts: { total, byConnectivity: { online, offline: total - online }, byState: { ready: total } },
  clusters: { total: 1, byPhase: { Running: 1 }, upgrading: health === 'upgrading' ? 1 : 0 },
  ...(lastChange ? { lastChange } : {}),
});

describe('fleet grid rows', () => {
  it('sums sites per region label, the unlabelled last, with the latest change', () => {
    const rows = byRegion([
      site('a', 'online', 2, 2, 'eu', '2026-01-01T00:00:00Z'),
      site('b', 'offline', 0, 3, 'eu', '2026-02-01T00:00:00Z'),
      site('c', 'online', 1, 1),
      site('d', 'upgrading', 1, 1, 'ap'),
    ]);
    expect(rows.map(([r]) => r)).toEqual(['ap', 'eu', NO_REGION]);
    const eu = rows[1][1];
    expect(eu).toMatchObject({ sites: 2, hosts: { total: 5, byConnectivity: { online: 2, offline: 3 } }, clusters: { total: 2, byPhase: { Running: 2 } } });
    expect(eu.health).toMatchObject({ online: 1, offline: 1 });
    expect(eu.lastChange).toBe('2026-02-01T00:00:00Z');
  });

  it('puts the most severe sites first, then those with most hosts down, and leaves out those all online', () => {
    const out = worstSites([site('ok', 'online', 1, 1), site('half', 'degraded', 1, 2), site('down', 'offline', 0, 1), site('worse', 'degraded', 1, 5)], 3);
    expect(out.map((s) => s.name)).toEqual(['down', 'worse', 'half']);
    expect(worstSites([site('ok', 'online', 1, 1), site('none', 'empty', 0, 0)], 5)).toEqual([]);
  });
});
