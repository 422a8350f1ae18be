import { describe, expect, it } from 'vitest';
import { parseManifest } from './manifest.js';
import { intArg, parseDuration, parseLabels } from './parse.js';

describe('parseDuration', () => {
  it('reads units and combinations', () => {
    expect(parseDuration('90s')).toBe(90_000);
    expect(parseDuration('24h')).toBe(86_400_000);
    expect(parseDuration('7d')).toBe(7 * 86_400_000);
    expect(parseDuration('1d12h')).toBe(36 * 3_600_000);
    expect(parseDuration('2w')).toBe(14 * 86_400_000);
  });
  it('refuses what is not a duration', () => {
    for (const bad of ['24', 'h', '-1h', '1.5h', '0s', '']) expect(() => parseDuration(bad)).toThrow();
  });
});

describe('parseLabels', () => {
  it('reads k=v pairs', () => {
    expect(parseLabels('env=lab, team=edge')).toEqual({ env: 'lab', team: 'edge' });
    expect(parseLabels('empty=')).toEqual({ empty: '' });
    expect(() => parseLabels('novalue')).toThrow(/key=value/);
  });
});

describe('intArg', () => {
  it('accepts positive integers only', () => {
    expect(intArg('--n')('5')).toBe(5);
    expect(() => intArg('--n')('0')).toThrow(/positive/);
    expect(intArg('--port', { allowZero: true })('0')).toBe(0);
    expect(() => intArg('--n')('2.5')).toThrow();
  });
});

describe('parseManifest', () => {
  it('reads multi-document YAML, skipping empty documents', () => {
    const docs = parseManifest('kind: Project\nmetadata: {name: a}\n---\n---\nkind: Project\nmetadata: {name: b}\n', 'f.yaml');
    expect(docs.map((d) => d.metadata.name)).toEqual(['a', 'b']);
  });
  it('reads JSON, arrays and <Kind>Lists', () => {
    expect(parseManifest('{"kind":"Project","metadata":{"name":"j"}}', 'f.json')[0].metadata.name).toBe('j');
    const list = parseManifest(
      JSON.stringify({
        kind: 'ProjectList',
        items: [
          { kind: 'Project', metadata: { name: 'x' } },
          { kind: 'Project', metadata: { name: 'y' } },
        ],
      }),
      'l',
    );
    expect(list.map((d) => d.metadata.name)).toEqual(['x', 'y']);
    expect(parseManifest('- {kind: Project, metadata: {name: p}}', 'arr')).toHaveLength(1);
  });
  it('says which document is wrong', () => {
    expect(() => parseManifest('kind: Project\nmetadata: {name: a}\n---\nmetadata: {name: b}\n', 'f.yaml')).toThrow(/f\.yaml document 2: missing "kind"/);
    expect(() => parseManifest('kind: Project\nmetadata: {}\n', 'f.yaml')).toThrow(/missing "metadata.name"/);
    expect(() => parseManifest('kind: [unclosed\n', 'f.yaml')).toThrow(/not valid YAML/);
  });
});
