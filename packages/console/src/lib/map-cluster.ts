import type { SiteMapPoint } from '../components/SiteMap';

/** A site at its projected (unzoomed) map position. */
export interface ProjectedPoint {
  x: number;
  y: number;
  site: SiteMapPoint;
}
/** What the map draws: one site, or a group of sites that would overlap on screen. */
export interface DrawnItem {
  x: number;
  y: number;
  color: string;
  /** The most severe site's severity. */
  severity: number;
  sites: SiteMapPoint[];
}

/**
 * Groups the sites visible at zoom transform `t` (scale k, translation x, y) that lie within
 * `radiusPx` of each other on screen, as supercluster does: each site not yet in a group starts one
 * and takes every free site within the radius (found through a grid of radius-sized cells). Done in
 * screen space on every redraw rather than with a geographic clusterer: the map is not Web Mercator,
 * and grouping 10,000 projected points takes a few milliseconds. Group centres are at least the
 * radius apart, so their circles barely overlap. A group sits at its sites' mean position and takes
 * the colour of its most severe site. `radiusPx` 0 draws every site on its own.
 */
export function clusterPoints(
  points: readonly ProjectedPoint[],
  t: { k: number; x: number; y: number },
  width: number,
  height: number,
  radiusPx: number,
): DrawnItem[] {
  const margin = 20;
  const xs: number[] = [];
  const ys: number[] = [];
  const sites: SiteMapPoint[] = [];
  for (const p of points) {
    if (!Number.isFinite(p.x) || !Number.isFinite(p.y)) continue;
    const x = p.x * t.k + t.x;
    const y = p.y * t.k + t.y;
    if (x < -margin || y < -margin || x > width + margin || y > height + margin) continue;
    xs.push(x);
    ys.push(y);
    sites.push(p.site);
  }
  const out: DrawnItem[] = [];
  if (radiusPx <= 0) {
    for (let i = 0; i < sites.length; i++) out.push({ x: xs[i], y: ys[i], color: sites[i].color, severity: sites[i].severity, sites: [sites[i]] });
    return out.sort((a, b) => a.severity - b.severity);
  }
  const cellOf = (i: number) => [Math.floor(xs[i] / radiusPx), Math.floor(ys[i] / radiusPx)];
  const cells = new Map<string, number[]>();
  for (let i = 0; i < sites.length; i++) {
    const key = cellOf(i).join();
    const c = cells.get(key);
    if (c) c.push(i);
    else cells.set(key, [i]);
  }
  const taken = new Uint8Array(sites.length);
  const r2 = radiusPx * radiusPx;
  for (let i = 0; i < sites.length; i++) {
    if (taken[i]) continue;
    taken[i] = 1;
    const members = [i];
    const [cx, cy] = cellOf(i);
    for (let dx = -1; dx <= 1; dx++)
      for (let dy = -1; dy <= 1; dy++)
        for (const j of cells.get(`${cx + dx},${cy + dy}`) ?? []) {
          if (taken[j] || (xs[j] - xs[i]) ** 2 + (ys[j] - ys[i]) ** 2 > r2) continue;
          taken[j] = 1;
          members.push(j);
        }
    let sx = 0;
    let sy = 0;
    let top = sites[i];
    for (const j of members) {
      sx += xs[j];
      sy += ys[j];
      if (sites[j].severity > top.severity) top = sites[j];
    }
    out.push({ x: sx / members.length, y: sy / members.length, color: top.color, severity: top.severity, sites: members.map((j) => sites[j]) });
  }
  // Most severe drawn last, so a red group is never hidden under a green one.
  return out.sort((a, b) => a.severity - b.severity);
}
