import { useMemo, useState } from 'react';
import type { Resource } from '../lib/api';
import { StateBadge } from './ui';

export type NodeRole = 'control-plane' | 'worker';

/** Below this many hosts every site group starts open; above it groups open on a filter or a click. */
const OPEN_ALL_UP_TO = 24;
/** Rows drawn per open group: a site with thousands of hosts is narrowed with the filter. */
const ROWS_PER_GROUP = 50;
const NO_SITE = '(no site)';

export const hostnameOf = (h: Resource): string | undefined => h.status.inventory?.hostname;
const siteOf = (h: Resource): string => h.spec.site || NO_SITE;

interface Props {
  /** The free ready hosts; offline ones are shown but cannot be picked. */
  hosts: Resource[];
  chosen: Record<string, NodeRole | ''>;
  onChange(host: string, role: NodeRole | ''): void;
  /** The first option of each host's role select ("not in this cluster", "not added"). */
  noneLabel: string;
  /** Prefix of the select ids, unique on the page. */
  idPrefix: string;
}

/**
 * Picks hosts and a role for each, for the cluster wizard and the scale dialog. Hosts are grouped
 * by site (collapsed when there are many) and a filter matches the host id, the hostname the agent
 * reports and the site, so the picker stays usable with thousands of free hosts: only open groups
 * draw their rows, at most ROWS_PER_GROUP each.
 */
export function HostPicker({ hosts, chosen, onChange, noneLabel, idPrefix }: Props) {
  const [filter, setFilter] = useState('');
  const [toggled, setToggled] = useState<Record<string, boolean>>({});
  const terms = filter.toLowerCase().split(/\s+/).filter(Boolean);
  const groups = useMemo(() => {
    const by = new Map<string, Resource[]>();
    for (const h of [...hosts].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name))) {
      const site = siteOf(h);
      by.set(site, [...(by.get(site) ?? []), h]);
    }
    return [...by.entries()].sort(([a], [b]) => (a === NO_SITE ? 1 : b === NO_SITE ? -1 : a.localeCompare(b, undefined, { numeric: true })));
  }, [hosts]);
  const matches = (h: Resource) => {
    const text = `${h.metadata.name} ${hostnameOf(h) ?? ''} ${siteOf(h)}`.toLowerCase();
    return terms.every((t) => text.includes(t));
  };
  const picked = Object.entries(chosen).filter(([, r]) => r);
  let shownGroups = 0;
  return (
    <div className="host-picker">
      <div className="row">
        <label htmlFor={`${idPrefix}-filter`}>Filter hosts</label>
        <input
          id={`${idPrefix}-filter`}
          type="search"
          placeholder="host id, hostname or site"
          value={filter}
          onChange={(e) => {
            setFilter(e.target.value);
            setToggled({});
          }}
        />
        <span className="muted" role="status" aria-live="polite" data-testid={`${idPrefix}-count`}>
          {hosts.length} hosts in {groups.length} site{groups.length === 1 ? '' : 's'} · {picked.length} chosen
        </span>
      </div>
      {picked.length > 0 && (
        <p className="muted" data-testid={`${idPrefix}-chosen`}>
          Chosen: {picked.map(([h, r]) => `${h} (${r})`).join(', ')}
        </p>
      )}
      {groups.map(([site, all]) => {
        const rows = terms.length ? all.filter(matches) : all;
        if (rows.length === 0) return null;
        shownGroups++;
        const nChosen = all.filter((h) => chosen[h.metadata.name]).length;
        const open = toggled[site] ?? (terms.length > 0 || hosts.length <= OPEN_ALL_UP_TO || nChosen > 0);
        return (
          <details
            key={site}
            open={open}
            onToggle={(e) => {
              const now = e.currentTarget.open;
              if (now !== open) setToggled((t) => ({ ...t, [site]: now }));
            }}
            data-site={site}
          >
            <summary>
              <strong>{site}</strong>{' '}
              <span className="muted">
                {terms.length ? `${rows.length} of ${all.length}` : all.length} host{all.length === 1 ? '' : 's'}
                {nChosen ? ` · ${nChosen} chosen` : ''}
              </span>
            </summary>
            {open &&
              rows.slice(0, ROWS_PER_GROUP).map((h) => {
                const name = h.metadata.name;
                const hostname = hostnameOf(h);
                // The server refuses an offline host as a new node (HostOffline): shown, not pickable.
                const offline = h.status.connectivity !== 'online' && !chosen[name];
                return (
                  <div className="row picker-row" key={name} data-host={name}>
                    <label htmlFor={`${idPrefix}-${name}`} className="node-name">
                      <code>{name}</code> {hostname && <span className="muted">{hostname}</span>} {offline && <StateBadge value="offline" />}
                    </label>
                    <select
                      id={`${idPrefix}-${name}`}
                      value={chosen[name] ?? ''}
                      disabled={offline}
                      onChange={(e) => onChange(name, e.target.value as NodeRole | '')}
                    >
                      <option value="">{noneLabel}</option>
                      <option value="control-plane">control plane</option>
                      <option value="worker">worker</option>
                    </select>
                  </div>
                );
              })}
            {open && rows.length > ROWS_PER_GROUP && (
              <p className="muted">
                {rows.length - ROWS_PER_GROUP} more in {site}: narrow the filter to see them.
              </p>
            )}
          </details>
        );
      })}
      {terms.length > 0 && shownGroups === 0 && <p className="muted">No free host matches “{filter}”.</p>}
    </div>
  );
}
