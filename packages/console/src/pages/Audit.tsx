import type { AuditEntry, AuditList, AuditVerifyResult } from '@edgeplane/protocol';
import { useInfiniteQuery, useMutation } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { Empty, ErrorBox, Loading } from '../components/ui';
import { formatValue, request } from '../lib/api';

type Filters = { actor?: string; action?: string; target?: string };

/** The audit log (GET /api/v1/audit): who did what, oldest first, with a check of its hash chain. */
export function Audit() {
  const [filters, setFilters] = useState<Filters>({});
  const q = useInfiniteQuery({
    queryKey: ['audit', filters],
    queryFn: ({ pageParam }) => {
      const p = new URLSearchParams({ limit: '100' });
      for (const [k, v] of Object.entries(filters)) if (v) p.set(k, v);
      if (pageParam) p.set('continue', pageParam);
      return request<AuditList>('GET', `/api/v1/audit?${p}`);
    },
    initialPageParam: '',
    getNextPageParam: (last) => last.metadata.continue,
  });
  const verify = useMutation({ mutationFn: () => request<AuditVerifyResult>('GET', '/api/v1/audit/verify') });
  const submit = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    setFilters({ actor: String(f.get('actor') ?? '').trim(), action: String(f.get('action') ?? '').trim(), target: String(f.get('target') ?? '').trim() });
  };
  const rows: AuditEntry[] = q.data?.pages.flatMap((p) => p.items) ?? [];
  return (
    <>
      <h1>Audit log</h1>
      <div className="filters">
        <search>
          <form className="row" onSubmit={submit} aria-label="Filter the audit log">
            <label htmlFor="a-actor">Actor</label>
            <input id="a-actor" name="actor" />
            <label htmlFor="a-action">Action</label>
            <input id="a-action" name="action" />
            <label htmlFor="a-target">Target</label>
            <input id="a-target" name="target" />
            <button type="submit" className="secondary">
              Apply
            </button>
          </form>
        </search>
        <button type="button" className="secondary" onClick={() => verify.mutate()} disabled={verify.isPending}>
          Verify chain
        </button>
      </div>
      {verify.data && (
        <p role="status" className={verify.data.ok ? 'ok' : 'error'}>
          {verify.data.ok
            ? `The hash chain of all ${verify.data.entries} entries is intact.`
            : `The chain is broken at entry ${verify.data.firstBadSeq}: ${verify.data.problem}`}
        </p>
      )}
      <ErrorBox error={verify.error} title="Could not verify" />
      {q.isPending && <Loading what="the audit log" />}
      <ErrorBox error={q.error} title="Could not load the audit log" />
      {q.data && rows.length === 0 && <Empty>No audit entries{filters.actor || filters.action || filters.target ? ' match these filters' : ' yet'}.</Empty>}
      {rows.length > 0 && (
        <div className="table-wrap">
          <div className="table-scroll">
            <table>
              <thead>
                <tr>
                  {['#', 'time', 'actor', 'action', 'target', 'reason'].map((h) => (
                    <th key={h} scope="col">
                      {h}
                    </th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {rows.map((e) => (
                  <tr key={e.seq} data-row={e.seq}>
                    <td>{e.seq}</td>
                    <td>{formatValue(e.time)}</td>
                    <td>{e.actor}</td>
                    <td>{e.action}</td>
                    <td>{e.target}</td>
                    <td>{formatValue(e.reason)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <div className="table-foot">
            <span role="status">
              {rows.length} entries loaded{q.hasNextPage ? ', more available' : ''}
            </span>
            {q.hasNextPage && (
              <button type="button" className="secondary" onClick={() => void q.fetchNextPage()} disabled={q.isFetchingNextPage}>
                Load more
              </button>
            )}
          </div>
        </div>
      )}
    </>
  );
}
