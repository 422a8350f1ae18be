import { describe, expect, it } from 'vitest';
import { parseHostsCsv } from './hosts-import.js';
import { installerBody } from './installer.js';

describe('hosts import CSV', () => {
  it('reads header-named columns in any order, quoted labels, and skips comments', () => {
    const rows = parseHostsCsv('# shop rollout\nsite,deviceUid,labels\nshop-1,4c4c4544-0000-0001,"tier=pos,row=3"\n,4c4c4544-0000-0002,tier=edge;rack=a\n');
    expect(rows).toEqual([
      { deviceUid: '4c4c4544-0000-0001', site: 'shop-1', labels: { tier: 'pos', row: '3' } },
      { deviceUid: '4c4c4544-0000-0002', labels: { tier: 'edge', rack: 'a' } },
    ]);
  });

  it('refuses the whole file when any row is bad, listing every problem', () => {
    const bad = 'deviceUid,site,labels\nshort,shop-1,\n4c4c4544-0000-0003,Bad_Site,\n4c4c4544-0000-0004,,nolabel\n4c4c4544-0000-0005,,\n4C4C4544-0000-0005,,\n';
    expect(() => parseHostsCsv(bad)).toThrow(
      /line 2: deviceUid[\s\S]*line 3: site[\s\S]*line 4: label "nolabel"[\s\S]*line 6: device UID 4C4C4544-0000-0005 is listed twice/,
    );
    expect(() => parseHostsCsv('uid,site\nx,y\n')).toThrow(/deviceUid column/);
  });
});

describe('installer flags', () => {
  it('builds a static network, and refuses half of one', () => {
    expect(
      installerBody({ tokenSecret: 's', network: 'static', address: '10.0.0.5/24', gateway: '10.0.0.1', dns: ['10.0.0.1'], ntp: ['pool.ntp.org'] }),
    ).toEqual({
      tokenSecret: 's',
      network: { mode: 'static', address: '10.0.0.5/24', gateway: '10.0.0.1', dns: ['10.0.0.1'] },
      ntp: ['pool.ntp.org'],
    });
    expect(() => installerBody({ rotate: true, network: 'static', address: '10.0.0.5/24' })).toThrow(/--gateway/);
    expect(() => installerBody({ rotate: true, address: '10.0.0.5/24' })).toThrow(/need --network static/);
    expect(() => installerBody({ rotate: true, caFile: '/nonexistent/ca.pem' })).toThrow(/cannot read --ca-file/);
  });
});
