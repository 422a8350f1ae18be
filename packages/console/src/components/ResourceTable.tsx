import { KINDS, type KindInfo } from '@edgeplane/protocol';
import { useInfiniteQuery } from '@tanstack/react-query';
import { useVirtualizer } from '@tanstack/react-virtual';
import { type ReactNode, useEffect, useMemo, useRef, useState } from 'react';
import { api, formatValue, pick, type Resource } from '../lib/api';
import { Link } from '../lib/router';
import { Empty, ErrorBox, Loading, StateBadge } from './ui';

export interface TableProps {
  plural: string;
  /** Server-side filters. */
  labelSelector?: string;
  fieldSelector?: string;
  /** Client-side filter over loaded rows (e.g. state), applied after paging. */
  rowFilter?: (r: Resource) => boolean;
  rowLink?: (r: Resource) => string;
  actions?: (r: Resource) => ReactNode;
  pageSize?: number;
  emptyText?: ReactNode;
  /** A page's own words for a cell (e.g. "OS only"); undefined falls back to the generic formatting. */
  formatCell?: (r: Resource, path: string) => ReactNode | undefined;
}

const ROW_HEIGHT = 41;
const BADGE_PATHS = new Set(['status.state', 'status.connectivity', 'spec.type', 'status.phase']);

type Sort = { path: string; dir: 1 | -1 };
/**
 * Events read newest first, by time, whatever order the server pages them in: the sort runs over
 * every loaded page together, so merged pages stay in time order. Other kinds keep the server's
 * name order until a column is clicked.
 */
const DEFAULT_SORT: Record<string, Sort> = { events: { path: 'status.lastTimestamp', dir: -1 } };
const NAME_ORDER: Sort = { path: 'metadata.name', dir: 1 };
const ISO = /^\d{4}-\d\d-\d\dT/;

/** Orders two cell values: timestamps as times, the rest as text with numbers compared as numbers. */
function compareValues(a: unknown, b: unknown): number {
  if (typeof a === 'string' && typeof b === 'string' && ISO.test(a) && ISO.test(b)) return Date.parse(a) - Date.parse(b);
  return String(a ?? '').localeCompare(String(b ?? ''), undefined, { numeric: true });
}

export function kindInfo(plural: string): KindInfo | undefined {
  return KINDS.find((k) => k.plural === plural);
}

/**
 * The generic table every resource page uses: columns from the protocol's KINDS, pages fetched from
 * the server with limit/continue as the user scrolls, and only the visible rows in the DOM, so 10,000
 * hosts scroll as smoothly as 10.
 */
export function ResourceTable({ plural, labelSelector, fieldSelector, rowFilter, rowLink, actions, pageSize = 200, emptyText, formatCell }: TableProps) {
  const info = kindInfo(plural);
  const columns = info?.columns ?? [{ header: 'NAME', path: 'metadata.name' }];
  const [sort, setSort] = useState<Sort>(DEFAULT_SORT[plural] ?? NAME_ORDER);
  const q = useInfiniteQuery({
    queryKey: ['list', plural, { labelSelector, fieldSelector, pageSize }],
    queryFn: ({ pageParam }) => api.list(plural, { limit: pageSize, continue: pageParam, labelSelector, fieldSelector }),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last) => last.metadata.continue,
  });
  const rows = useMemo(() => {
    let all = q.data?.pages.flatMap((p) => p.items) ?? [];
    if (rowFilter) all = all.filter(rowFilter);
    if (sort.path === NAME_ORDER.path && sort.dir === 1 && !DEFAULT_SORT[plural]) return all; // the server's order
    // Ties (events of the same second) fall back to creation time, then name, in the same direction.
    return [...all].sort(
      (a, b) =>
        (compareValues(pick(a, sort.path), pick(b, sort.path)) ||
          compareValues(a.metadata.createdAt, b.metadata.createdAt) ||
          a.metadata.name.localeCompare(b.metadata.name)) * sort.dir,
    );
  }, [q.data, rowFilter, sort, plural]);

  const scrollRef = useRef<HTMLDivElement>(null);
  const virtual = useVirtualizer({ count: rows.length, getScrollElement: () => scrollRef.current, estimateSize: () => ROW_HEIGHT, overscan: 12 });
  const items = virtual.getVirtualItems();
  const lastIndex = items.at(-1)?.index ?? 0;
  // Fetch the next page when the user scrolls near the end of what is loaded.
  useEffect(() => {
    if (q.hasNextPage && !q.isFetchingNextPage && lastIndex >= rows.length - 30) void q.fetchNextPage();
  }, [lastIndex, rows.length, q.hasNextPage, q.isFetchingNextPage, q.fetchNextPage]);

  if (q.isPending) return <Loading what={info?.plural ?? plural} />;
  if (q.error) return <ErrorBox error={q.error} title={`Could not load ${plural}`} />;
  if (rows.length === 0 && !q.hasNextPage) return <Empty>{emptyText ?? `No ${plural} yet.`}</Empty>;

  const padTop = items[0]?.start ?? 0;
  const padBottom = virtual.getTotalSize() - (items.at(-1)?.end ?? 0);
  const colSpan = columns.length + (actions ? 1 : 0);
  return (
    <div className="table-wrap">
      <div className="table-scroll" ref={scrollRef} data-testid={`table-${plural}`}>
        <table aria-rowcount={rows.length + 1}>
          <thead>
            <tr>
              {columns.map((c) => (
                <th key={c.path} scope="col" aria-sort={sort.path === c.path ? (sort.dir === 1 ? 'ascending' : 'descending') : 'none'}>
                  <button type="button" className="sort" onClick={() => setSort((s) => ({ path: c.path, dir: s.path === c.path ? (-s.dir as 1 | -1) : 1 }))}>
                    {c.header.toLowerCase()}
                    {sort.path === c.path ? (sort.dir === 1 ? ' ▲' : ' ▼') : ''}
                  </button>
                </th>
              ))}
              {actions && <th scope="col">Actions</th>}
            </tr>
          </thead>
          <tbody>
            {padTop > 0 && (
              <tr className="spacer">
                <td colSpan={colSpan} style={{ height: padTop, padding: 0, border: 0 }} />
              </tr>
            )}
            {items.map((vi) => {
              const r = rows[vi.index];
              return (
                <tr key={r.metadata.name} data-row={r.metadata.name} aria-rowindex={vi.index + 2} style={{ height: ROW_HEIGHT }}>
                  {columns.map((c, i) => {
                    const v = pick(r, c.path);
                    let cell: ReactNode = formatCell?.(r, c.path) ?? (BADGE_PATHS.has(c.path) ? <StateBadge value={v} /> : formatValue(v));
                    if (i === 0 && rowLink) cell = <Link to={rowLink(r)}>{formatValue(v)}</Link>;
                    return <td key={c.path}>{cell}</td>;
                  })}
                  {actions && <td className="actions">{actions(r)}</td>}
                </tr>
              );
            })}
            {padBottom > 0 && (
              <tr className="spacer">
                <td colSpan={colSpan} style={{ height: padBottom, padding: 0, border: 0 }} />
              </tr>
            )}
          </tbody>
        </table>
      </div>
      <div className="table-foot">
        <span role="status" aria-live="polite">
          {rows.length} {plural} loaded{q.hasNextPage ? ', more available' : ''}
        </span>
        {q.hasNextPage && (
          <button type="button" className="secondary" onClick={() => void q.fetchNextPage()} disabled={q.isFetchingNextPage}>
            {q.isFetchingNextPage ? 'Loading…' : 'Load more'}
          </button>
        )}
      </div>
    </div>
  );
}
