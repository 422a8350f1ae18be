import { describe, expect, it } from 'vitest';
import { siteHealth } from './site-health.js';

const h = (hostsInService: number, hostsOnline: number, clustersFailing = 0, clustersUpgrading = 0) =>
  siteHealth({ hostsInService, hostsOnline, clustersFailing, clustersUpgrading });

describe('siteHealth', () => {
  it('is online when every host in service is online and no cluster fails', () => {
    expect(h(3, 3)).toBe('online');
  });
  it('is offline when no host in service is online, whatever its clusters do', () => {
    expect(h(2, 0)).toBe('offline');
    expect(h(2, 0, 1, 1)).toBe('offline');
  });
  it('is degraded when some hosts are not online or a cluster fails', () => {
    expect(h(3, 2)).toBe('degraded');
    expect(h(3, 3, 1)).toBe('degraded');
  });
  it('is upgrading while a cluster upgrades, even with a node down for its reboot', () => {
    expect(h(3, 2, 0, 1)).toBe('upgrading');
    expect(h(3, 3, 1, 1)).toBe('upgrading');
  });
  it('is empty without hosts in service', () => {
    expect(h(0, 0)).toBe('empty');
  });
});
