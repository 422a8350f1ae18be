import { findKind, KINDS } from '@edgeplane/protocol';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { ApiClient, Resource } from './api-client.js';
import { eventsOf, renderDescribe } from './describe-output.js';
import { formatAge, formatCell, formatDuration, formatDurationExact, renderResources, renderResourceTable, renderTable } from './output.js';

const now = new Date('2025-01-01T12:00:00Z');
const ago = (ms: number) => new Date(now.getTime() - ms).toISOString();
const hosts = findKind('hosts')!;

const host = (name: string, extra: Partial<Resource> = {}): Resource => ({
  apiVersion: 'edgeplane.io/v1',
  kind: 'EdgeHost',
  metadata: { name, labels: {}, createdAt: ago(3_600_000) },
  spec: { site: 'shop-1' },
  status: { state: 'ready', connectivity: 'online', agentVersion: '0.1.0', lastSeen: ago(5 * 60_000) },
  ...extra,
});

describe('ages', () => {
  it('formats durations like kubectl', () => {
    expect(formatDuration(45_000)).toBe('45s');
    expect(formatDuration(5 * 60_000)).toBe('5m');
    expect(formatDuration(2 * 3_600_000 + 59_000)).toBe('2h');
    expect(formatDuration(3 * 86_400_000)).toBe('3d');
    expect(formatDuration(3 * 365 * 86_400_000)).toBe('3y');
    expect(formatDuration(-5)).toBe('0s');
  });
  it('reads past timestamps as ages and future ones as "in ..."', () => {
    expect(formatAge(ago(5 * 60_000), now)).toBe('5m');
    expect(formatAge(new Date(now.getTime() + 7 * 86_400_000).toISOString(), now)).toBe('in 7d');
    expect(formatAge('not a date', now)).toBe('not a date');
  });
});

describe('cells', () => {
  it('renders missing values, booleans, maps and timestamps', () => {
    expect(formatCell(undefined, 'spec.site')).toBe('<none>');
    expect(formatCell(false, 'spec.autoApprove')).toBe('false');
    expect(formatCell({ a: '1', b: '2' }, 'metadata.labels')).toBe('a=1,b=2');
    expect(formatCell(ago(2 * 3_600_000), 'status.lastSeen', now)).toBe('2h');
    expect(formatCell(ago(60_000), 'metadata.createdAt', now)).toBe('60s');
    // A timestamp-looking string in a field not named like a time is left alone.
    expect(formatCell('2025-01-01T00:00:00Z', 'spec.description', now)).toBe('2025-01-01T00:00:00Z');
    expect(formatCell('line one\nline two', 'spec.message')).toBe('line one line two');
  });
});

describe('counts', () => {
  it('shows a count the status left out as 0, not <none>', () => {
    const rollout = {
      metadata: { name: 'r' },
      spec: { profile: { name: 'p', revision: 2 } },
      status: { phase: 'Progressing', currentBatch: 0, counts: { total: 3, upgrading: 3 } },
    };
    const table = renderResourceTable(findKind('rollouts')!, [rollout], now);
    expect(table).toMatch(/^r\s+Progressing\s+p\s+2\s+0\s+0\s+0\s+3$/m);
    expect(formatCell(undefined, 'status.counts.failed')).toBe('0');
    expect(formatCell(undefined, 'status.count')).toBe('<none>');
  });

  it('writes durations exactly, in the units flags take', () => {
    expect(formatDurationExact(90_000)).toBe('1m30s');
    expect(formatDurationExact(600_000)).toBe('10m');
    expect(formatDurationExact(5_400_000)).toBe('1h30m');
    expect(formatDurationExact(7 * 86_400_000)).toBe('7d');
  });
});

describe('tables', () => {
  it('uses the kind columns, aligned, without borders or trailing spaces', () => {
    const out = renderResourceTable(
      hosts,
      [host('nuc-01'), host('a-much-longer-name', { status: { state: 'pending-approval', connectivity: 'unknown' } })],
      now,
    );
    const lines = out.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^NAME\s{3,}STATE\s{3,}CONNECTIVITY\s{3,}SITE\s{3,}AGENT\s{3,}LAST SEEN$/);
    expect(lines[1]).toMatch(/^nuc-01\s+ready\s+online\s+shop-1\s+0\.1\.0\s+5m$/);
    expect(lines[2]).toMatch(/^a-much-longer-name\s+pending-approval\s+unknown\s+shop-1\s+<none>\s+<none>$/);
    expect(lines.every((l) => l === l.trimEnd())).toBe(true);
    expect(lines[1].indexOf('ready')).toBe(lines[0].indexOf('STATE'));
    expect(out).not.toMatch(/[│─┌]/);
  });
  it('has columns for every kind', () => {
    for (const kind of KINDS) expect(renderResourceTable(kind, []).split('\n')[0]).toContain(kind.columns[0].header);
  });
  it('renders a generic table', () => {
    expect(renderTable(['A', 'B'], [['x', 'yy']])).toBe('A   B\nx   yy\n');
    // Wide characters take two columns, combining marks none; a cell with a newline makes a row of two lines.
    expect(
      renderTable(
        ['NAME', 'NOTE'],
        [
          ['日本', 'e\u0301'],
          ['ab', 'one\ntwo'],
          ['c', ''],
        ],
      ),
    ).toBe('NAME   NOTE\n日本   e\u0301\nab     one\n       two\nc\n');
  });
});

describe('json and yaml', () => {
  it('wraps several resources in a <Kind>List and a single one as itself', () => {
    const items = [host('a'), host('b')];
    const json = JSON.parse(renderResources('json', hosts, items));
    expect(json).toMatchObject({ apiVersion: 'edgeplane.io/v1', kind: 'EdgeHostList', metadata: {} });
    expect(json.items.map((i: Resource) => i.metadata.name)).toEqual(['a', 'b']);
    const yaml = parse(renderResources('yaml', hosts, [items[0]], { single: true }));
    expect(yaml).toEqual(items[0]);
    expect(parse(renderResources('yaml', hosts, items, { continueToken: 'b' })).metadata).toEqual({ continue: 'b' });
  });
  it('prints plural/name for -o name', () => {
    expect(renderResources('name', hosts, [host('a'), host('b')])).toBe('edgehosts/a\nedgehosts/b\n');
  });
});

describe('describe', () => {
  it('shows metadata, spec, status and the events about the object', async () => {
    const h = host('nuc-01', { metadata: { name: 'nuc-01', project: 'default', labels: { site: 'shop-1', env: 'lab' }, createdAt: ago(3_600_000) } });
    const event = (name: string, object: string, reason: string, t: number): Resource => ({
      kind: 'Event',
      metadata: { name },
      spec: { type: 'Normal', reason, message: `${reason} happened`, involvedObject: { kind: 'EdgeHost', name: object }, source: 'server' },
      status: { count: 1, firstTimestamp: ago(t), lastTimestamp: ago(t) },
    });
    // Two pages; a server that ignored the selector would also send e2 (another object) and e4 (an
    // earlier nuc-01 with another uid): both are left out.
    const pages: Record<string, unknown> = {
      '': { items: [event('e1', 'nuc-01', 'Approved', 60_000), event('e2', 'other', 'Registered', 1000)], metadata: { continue: 'p2' } },
      p2: {
        items: [
          event('e3', 'nuc-01', 'Registered', 600_000),
          { ...event('e4', 'nuc-01', 'Old', 1000), spec: { involvedObject: { kind: 'EdgeHost', name: 'nuc-01', uid: 'old' } } },
        ],
        metadata: {},
      },
    };
    const queries: unknown[] = [];
    const client = {
      request: async (_method: string, _path: string, options: { query: { continue?: string } }) => {
        queries.push(options.query);
        return pages[options.query.continue ?? ''];
      },
    } as unknown as ApiClient;
    const events = await eventsOf(client, { ...h, kind: 'EdgeHost', metadata: { ...h.metadata, uid: 'now' } });
    expect(events.map((e) => e.metadata.name)).toEqual(['e1', 'e3']);
    expect(queries[0]).toEqual({ fieldSelector: 'involvedObject.kind=EdgeHost,involvedObject.name=nuc-01', continue: undefined });
    const out = renderDescribe(h, events, now);
    expect(out).toMatch(/^Name:\s+nuc-01$/m);
    expect(out).toMatch(/^Labels:\s+site=shop-1\n\s+env=lab$/m);
    expect(out).toMatch(/^Created:\s+.*\(1h ago\)$/m);
    expect(out).toMatch(/^Spec:\n {2}site: shop-1$/m);
    expect(out).toMatch(/^Status:\n {2}state: ready$/m);
    // Oldest event first.
    expect(out.indexOf('Registered')).toBeLessThan(out.indexOf('Approved'));
    expect(out).toMatch(/^ {2}TYPE\s+REASON\s+AGE\s+FROM\s+MESSAGE$/m);
    expect(renderDescribe(h, [], now)).toMatch(/^Events:\s+<none>$/m);
    expect(out).not.toMatch(/^OS:/m);
  });

  it('says whether a host runs a managed OS or keeps its own (agent mode)', () => {
    const inv = (osMode: string | undefined, name: string, version: string) =>
      host('n', { status: { state: 'ready', inventory: { ...(osMode ? { osMode } : {}), os: { name, version } } } });
    expect(renderDescribe(inv('unmanaged', 'Ubuntu', '24.04'), [], now)).toMatch(
      /^OS Mode:\s+unmanaged OS \(Ubuntu 24\.04\): the host keeps its own OS; Kubernetes is installed from the profile's artifact$/m,
    );
    expect(renderDescribe(inv('managed', 'Edgeplane OS', '2.0.0'), [], now)).toMatch(/^OS Mode:\s+managed OS \(Edgeplane OS 2\.0\.0\): Edgeplane A\/B slots/m);
    // An agent that reports no mode is an older one, on Edgeplane OS.
    expect(renderDescribe(inv(undefined, 'Edgeplane OS', '1.0.0'), [], now)).toMatch(/^OS Mode:\s+managed OS/m);
  });

  it("sums up a host's OS rollout in one line", () => {
    const d = (c: string) => `sha256:${c.repeat(64)}`;
    const os = { profile: 'gw-os', revision: 3, image: 'r/os:3', desiredDigest: d('c'), digest: d('b'), bootedSlot: 'A', activeSlot: 'A', phase: 'FellBack' };
    const fell = host('gw', { status: { state: 'ready', os: { ...os, upToDate: false, message: 'fell back to slot A: check failed' } } });
    expect(renderDescribe(fell, [], now)).toMatch(
      /^OS:\s+profile gw-os revision 3, desired sha256:cccccccccccc, running sha256:bbbbbbbbbbbb in slot A \(FellBack\); NOT up to date: fell back to slot A: check failed$/m,
    );
    const ok = host('gw', { status: { state: 'ready', os: { ...os, digest: d('c'), phase: 'Committed', upToDate: true } } });
    expect(renderDescribe(ok, [], now)).toMatch(/^OS:\s+.*running sha256:cccccccccccc in slot A \(Committed\); up to date$/m);
  });
});
