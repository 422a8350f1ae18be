import { describe, expect, it } from 'vitest';
import type { SiteMapPoint } from '../components/SiteMap';
import { clusterPoints, type ProjectedPoint } from './map-cluster';

const site = (name: string, severity: number, color = `c${severity}`): SiteMapPoint => ({
  name,
  latitude: 0,
  longitude: 0,
  color,
  severity,
  state: `s${severity}`,
});
const at = (x: number, y: number, s: SiteMapPoint): ProjectedPoint => ({ x, y, site: s });
const identity = { k: 1, x: 0, y: 0 };

describe('clusterPoints', () => {
  it('groups sites within the radius of the first, at their mean position, coloured by the most severe', () => {
    const out = clusterPoints([at(1, 1, site('a', 0)), at(9, 5, site('b', 3)), at(5, 3, site('c', 1)), at(100, 100, site('d', 0))], identity, 200, 200, 20);
    expect(out).toHaveLength(2);
    const group = out.find((d) => d.sites.length === 3)!;
    expect(group).toMatchObject({ x: 5, y: 3, color: 'c3', severity: 3 });
    // The most severe is drawn last, on top.
    expect(out.at(-1)).toBe(group);
  });

  it('starts a new group beyond the radius, so a chain of sites does not collapse into one', () => {
    const out = clusterPoints([at(5, 50, site('a', 0)), at(20, 50, site('b', 0)), at(35, 50, site('c', 0)), at(50, 50, site('d', 0))], identity, 200, 200, 20);
    expect(out.map((d) => d.sites.map((s) => s.name))).toEqual([
      ['a', 'b'],
      ['c', 'd'],
    ]);
  });

  it('splits a group once zoomed in, and leaves out what is off screen', () => {
    const pts = [at(10, 10, site('a', 0)), at(12, 10, site('b', 0)), at(150, 150, site('far', 0))];
    expect(clusterPoints(pts, identity, 200, 200, 20)).toHaveLength(2);
    // Zoom 20x around (10, 10): a and b are 40 px apart, the far site is off screen.
    const zoomed = clusterPoints(pts, { k: 20, x: -100, y: -100 }, 200, 200, 20);
    expect(zoomed.map((d) => d.sites.map((s) => s.name))).toEqual([['a'], ['b']]);
  });

  it('draws every site on its own with radius 0, and skips sites without a position', () => {
    const pts = [at(1, 1, site('a', 0)), at(1, 1, site('b', 0)), at(Number.NaN, 1, site('nowhere', 0))];
    expect(clusterPoints(pts, identity, 200, 200, 0)).toHaveLength(2);
  });
});
