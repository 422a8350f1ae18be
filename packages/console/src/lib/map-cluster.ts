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
 * Groups the sites that fall into the same `cellPx` square on screen at zoom transform `t` (scale k,
 * translation x, y), leaving out those outside the visible box. Done in screen space on every
 * redraw rather than with a geographic clusterer: the map is not Web Mercator, and bucketing 10,000
 * projected points is a few milliseconds. A group sits at its sites' mean position and takes the
 * colour of its most severe site. `cellPx` 0 draws every site on its own.
 */
export function clusterPoints(
  points: readonly ProjectedPoint[],
  t: { k: number; x: number; y: number },
  width: number,
  height: number,
  cellPx: number,
): DrawnItem[] {
  const groups = new Map<string, { sx: number; sy: number; top: SiteMapPoint; sites: SiteMapPoint[] }>();
  const margin = 20;
  let single = 0;
  for (const p of points) {
    if (!Number.isFinite(p.x) || !Number.isFinite(p.y)) continue;
    const x = p.x * t.k + t.x;
    const y = p.y * t.k + t.y;
    if (x < -margin || y < -margin || x > width + margin || y > height + margin) continue;
    const key = cellPx > 0 ? `${Math.floor(x / cellPx)},${Math.floor(y / cellPx)}` : String(single++);
    const g = groups.get(key);
    if (!g) groups.set(key, { sx: x, sy: y, top: p.site, sites: [p.site] });
    else {
      g.sx += x;
      g.sy += y;
      g.sites.push(p.site);
      if (p.site.severity > g.top.severity) g.top = p.site;
    }
  }
  const out: DrawnItem[] = [];
  for (const g of groups.values())
    out.push({ x: g.sx / g.sites.length, y: g.sy / g.sites.length, color: g.top.color, severity: g.top.severity, sites: g.sites });
  // Most severe drawn last, so a red group is never hidden under a green one.
  return out.sort((a, b) => a.severity - b.severity);
}
