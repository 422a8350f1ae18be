import { geoNaturalEarth1, geoPath } from 'd3-geo';
import { select } from 'd3-selection';
import { type ZoomBehavior, type ZoomTransform, zoom, zoomIdentity } from 'd3-zoom';
import { type FormEvent, useEffect, useMemo, useRef, useState } from 'react';
import { feature, mesh } from 'topojson-client';
import type { GeometryCollection, Topology } from 'topojson-specification';
// Natural Earth 1:110m country outlines (world-atlas), bundled with the console: no tile server, no request at run time.
import world from 'world-atlas/countries-110m.json';
import { clusterPoints, type DrawnItem, type ProjectedPoint } from '../lib/map-cluster';
import './site-map.css';

/** One site on the map: where it is, its colour, and how much its state matters when sites are grouped. */
export interface SiteMapPoint {
  name: string;
  latitude: number;
  longitude: number;
  /** CSS colour of the dot. */
  color: string;
  /** A group of nearby sites takes the colour of its most severe member (higher wins). */
  severity: number;
  /** A word for the site's state ("offline"): a group's hover counts its sites by it. */
  state: string;
  /** Shown on hover under the name (e.g. "3/3 hosts online"). */
  detail?: string;
}

export interface SiteMapProps {
  sites: SiteMapPoint[];
  /** A single site was clicked (a group zooms in instead). */
  onSelect?: (name: string) => void;
  /** Colour key shown under the map. */
  legend?: { label: string; color: string }[];
  height?: number;
  /** Accessible name of the map. */
  label?: string;
  /** Open zoomed to the sites (a rollout's few sites) instead of the whole world, until the user zooms or pans. */
  fitToSites?: boolean;
}

const MAX_ZOOM = 200;
const GROUP_PX = 36; // sites closer than this on screen are drawn as one group
const DOT_R = 5;
const FIT_PAD = 48; // px around the sites when the map opens zoomed to them
const FIT_MAX_ZOOM = 24; // one site, or sites in one town, still show their region
const topo = world as unknown as Topology<{ countries: GeometryCollection; land: GeometryCollection }>;
const LAND = feature(topo, topo.objects.land);
const BORDERS = mesh(topo, topo.objects.countries, (a, b) => a !== b);

/**
 * A world map of sites: country outlines in SVG (scaled by a transform, so zooming never re-projects
 * them), the sites on a canvas (thousands of dots redraw in a few milliseconds where as many SVG
 * nodes would not), grouped on screen when they would overlap, with zoom/pan (wheel, drag, buttons),
 * hover details, and a click through to a single site. Reused wherever sites are shown by state.
 */
export function SiteMap({ sites, onSelect, legend, height = 420, label = 'Site map', fitToSites = false }: SiteMapProps) {
  const wrapRef = useRef<HTMLDivElement>(null);
  const canvasRef = useRef<HTMLCanvasElement>(null);
  const gRef = useRef<SVGGElement>(null);
  const zoomRef = useRef<ZoomBehavior<HTMLDivElement, unknown>>(null);
  const drawnRef = useRef<DrawnItem[]>([]);
  // Set once the user zooms or pans: from then on the map no longer fits itself to the sites.
  const userMovedRef = useRef(false);
  const [width, setWidth] = useState(800);
  const [transform, setTransform] = useState<ZoomTransform>(zoomIdentity);
  const [hover, setHover] = useState<{ x: number; y: number; item: DrawnItem } | null>(null);
  const [selected, setSelected] = useState<string | null>(null);
  const [findText, setFindText] = useState('');
  const [findError, setFindError] = useState('');

  // The projection fits the world into the box; zooming is a transform on top of it.
  const projection = useMemo(
    () =>
      geoNaturalEarth1().fitExtent(
        [
          [4, 4],
          [width - 4, height - 4],
        ],
        { type: 'Sphere' },
      ),
    [width, height],
  );
  const paths = useMemo(() => {
    const path = geoPath(projection);
    return { sphere: path({ type: 'Sphere' }) ?? '', land: path(LAND) ?? '', borders: path(BORDERS) ?? '' };
  }, [projection]);
  const projected = useMemo<ProjectedPoint[]>(
    () =>
      sites.map((s) => {
        const [x, y] = projection([s.longitude, s.latitude]) ?? [Number.NaN, Number.NaN];
        return { x, y, site: s };
      }),
    [sites, projection],
  );

  useEffect(() => {
    const el = wrapRef.current;
    if (!el) return;
    const ro = new ResizeObserver(([e]) => setWidth(Math.max(320, Math.round(e.contentRect.width))));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);

  useEffect(() => {
    const el = wrapRef.current;
    if (!el) return;
    const z = zoom<HTMLDivElement, unknown>()
      .scaleExtent([1, MAX_ZOOM])
      .translateExtent([
        [0, 0],
        [width, height],
      ])
      .on('zoom', (e: { transform: ZoomTransform; sourceEvent: unknown }) => {
        if (e.sourceEvent) userMovedRef.current = true;
        setTransform(e.transform);
      });
    zoomRef.current = z;
    select(el).call(z);
    return () => {
      select(el).on('.zoom', null);
    };
  }, [width, height]);

  // Fit the sites into the box (again when the box or the sites change), as long as the user has not moved the map.
  useEffect(() => {
    const el = wrapRef.current;
    const z = zoomRef.current;
    if (!fitToSites || userMovedRef.current || !el || !z) return;
    const placed = projected.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
    if (placed.length === 0) return;
    const xs = placed.map((p) => p.x);
    const ys = placed.map((p) => p.y);
    const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
    const k = Math.max(1, Math.min(FIT_MAX_ZOOM, width / (x1 - x0 + 2 * FIT_PAD), height / (y1 - y0 + 2 * FIT_PAD)));
    const t = zoomIdentity
      .translate(width / 2, height / 2)
      .scale(k)
      .translate(-(x0 + x1) / 2, -(y0 + y1) / 2);
    select(el).call(z.transform, t);
  }, [fitToSites, projected, width, height]);

  // Draw the sites for the current zoom: grouped where they overlap on screen.
  useEffect(() => {
    const canvas = canvasRef.current;
    const ctx = canvas?.getContext('2d');
    if (!canvas || !ctx) return;
    const dpr = window.devicePixelRatio || 1;
    canvas.width = width * dpr;
    canvas.height = height * dpr;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const items = clusterPoints(projected, transform, width, height, transform.k >= MAX_ZOOM ? 0 : GROUP_PX);
    drawnRef.current = items;
    // How many dots and groups are drawn: tests and the first-paint benchmark wait for it.
    canvas.dataset.drawn = String(items.length);
    for (const it of items) {
      const r = it.sites.length > 1 ? Math.min(17, 7 + Math.log2(it.sites.length) * 1.4) : DOT_R;
      ctx.beginPath();
      ctx.arc(it.x, it.y, r, 0, 2 * Math.PI);
      ctx.fillStyle = it.color;
      ctx.fill();
      ctx.lineWidth = 1.5;
      ctx.strokeStyle = '#fff';
      ctx.stroke();
      if (it.sites.length > 1) {
        ctx.fillStyle = '#fff';
        ctx.font = '600 10px system-ui, sans-serif';
        ctx.textAlign = 'center';
        ctx.textBaseline = 'middle';
        ctx.fillText(it.sites.length > 999 ? `${Math.round(it.sites.length / 1000)}k` : String(it.sites.length), it.x, it.y);
      }
      if (selected && it.sites.some((s) => s.name === selected)) {
        ctx.beginPath();
        ctx.arc(it.x, it.y, r + 4, 0, 2 * Math.PI);
        ctx.lineWidth = 2;
        ctx.strokeStyle = '#1b1f24';
        ctx.stroke();
      }
    }
  }, [projected, transform, width, height, selected]);

  const itemAt = (x: number, y: number): DrawnItem | undefined => {
    let best: DrawnItem | undefined;
    let bestD = Number.POSITIVE_INFINITY;
    for (const it of drawnRef.current) {
      const d = (it.x - x) ** 2 + (it.y - y) ** 2;
      const r = it.sites.length > 1 ? 18 : DOT_R + 3;
      if (d <= r * r && d < bestD) {
        best = it;
        bestD = d;
      }
    }
    return best;
  };
  const local = (e: { clientX: number; clientY: number }) => {
    const box = canvasRef.current!.getBoundingClientRect();
    return { x: e.clientX - box.left, y: e.clientY - box.top };
  };
  const zoomTo = (x: number, y: number, k: number) => {
    const el = wrapRef.current;
    if (!el || !zoomRef.current) return;
    userMovedRef.current = true;
    // x, y in projected (unzoomed) coordinates: centre them at scale k.
    const t = zoomIdentity
      .translate(width / 2, height / 2)
      .scale(k)
      .translate(-x, -y);
    select(el).call(zoomRef.current.transform, t);
  };
  const zoomBy = (f: number) => {
    const el = wrapRef.current;
    userMovedRef.current = true;
    if (el && zoomRef.current) select(el).call(zoomRef.current.scaleBy, f);
  };
  const find = (e: FormEvent) => {
    e.preventDefault();
    const q = findText.trim().toLowerCase();
    if (!q) return;
    const hit = projected.find((p) => p.site.name.toLowerCase() === q) ?? projected.find((p) => p.site.name.toLowerCase().startsWith(q));
    if (!hit || !Number.isFinite(hit.x)) {
      setFindError(`No site on the map matches "${findText.trim()}".`);
      return;
    }
    setFindError('');
    setSelected(hit.site.name);
    zoomTo(hit.x, hit.y, MAX_ZOOM);
  };

  const hoverText = hover
    ? hover.item.sites.length === 1
      ? { title: hover.item.sites[0].name, body: hover.item.sites[0].detail ?? '' }
      : { title: `${hover.item.sites.length} sites`, body: groupDetail(hover.item) }
    : null;
  return (
    <figure className="site-map" aria-label={label}>
      <div className="site-map-tools">
        <form className="row" onSubmit={find} aria-label="Find a site on the map">
          <label htmlFor="site-map-find">Find site</label>
          <input id="site-map-find" value={findText} onChange={(e) => setFindText(e.target.value)} placeholder="site name" />
          <button type="submit" className="secondary small">
            Show
          </button>
        </form>
        <span className="row">
          <button type="button" className="secondary small" aria-label="Zoom in" onClick={() => zoomBy(2)}>
            +
          </button>
          <button type="button" className="secondary small" aria-label="Zoom out" onClick={() => zoomBy(0.5)}>
            −
          </button>
          <button
            type="button"
            className="secondary small"
            onClick={() => {
              setSelected(null);
              userMovedRef.current = true;
              if (wrapRef.current && zoomRef.current) select(wrapRef.current).call(zoomRef.current.transform, zoomIdentity);
            }}
          >
            Whole world
          </button>
        </span>
      </div>
      {findError && (
        <p className="error-text" role="alert">
          {findError}
        </p>
      )}
      <div ref={wrapRef} className="site-map-box" style={{ height }} data-testid="site-map" data-zoom={transform.k.toFixed(2)}>
        <svg width={width} height={height} aria-hidden="true">
          <g ref={gRef} transform={transform.toString()}>
            <path d={paths.sphere} className="site-map-sea" />
            <path d={paths.land} className="site-map-land" />
            <path d={paths.borders} className="site-map-borders" />
          </g>
        </svg>
        <canvas
          ref={canvasRef}
          style={{ width, height }}
          data-testid="site-map-canvas"
          onMouseMove={(e) => {
            const p = local(e);
            const it = itemAt(p.x, p.y);
            setHover(it ? { ...p, item: it } : null);
          }}
          onMouseLeave={() => setHover(null)}
          onClick={(e) => {
            const p = local(e);
            const it = itemAt(p.x, p.y);
            if (!it) return;
            if (it.sites.length === 1) onSelect?.(it.sites[0].name);
            else zoomTo(transform.invertX(it.x), transform.invertY(it.y), Math.min(MAX_ZOOM, transform.k * 4));
          }}
        />
        {hover && hoverText && (
          <div className="site-map-tip" role="tooltip" style={{ left: Math.min(hover.x + 12, width - 220), top: hover.y + 12 }}>
            <strong>{hoverText.title}</strong>
            {hoverText.body && <div>{hoverText.body}</div>}
          </div>
        )}
      </div>
      {legend && (
        <figcaption className="site-map-legend">
          {legend.map((l) => (
            <span key={l.label}>
              <i style={{ background: l.color }} /> {l.label}
            </span>
          ))}
          <span className="muted">Scroll or use + / − to zoom, drag to pan; click a group to zoom into it, a dot to open its site.</span>
        </figcaption>
      )}
    </figure>
  );
}

/** "12 offline, 3 degraded" style counts of a group's sites by state, most severe first. */
function groupDetail(item: DrawnItem): string {
  const by = new Map<string, { n: number; severity: number }>();
  for (const s of item.sites) {
    const e = by.get(s.state) ?? { n: 0, severity: s.severity };
    e.n++;
    by.set(s.state, e);
  }
  return [...by.entries()]
    .sort((a, b) => b[1].severity - a[1].severity)
    .map(([state, e]) => `${e.n} ${state}`)
    .join(', ');
}
