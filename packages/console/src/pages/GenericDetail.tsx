import { useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { labelFor, pathFor } from '../components/Layout';
import { ObjectEvents } from '../components/ObjectEvents';
import { Replay } from '../components/Replay';
import { kindInfo } from '../components/ResourceTable';
import { ErrorBox, Loading, StateBadge } from '../components/ui';
import { api, formatValue, pick } from '../lib/api';
import { useAuth } from '../lib/auth';
import { useResourceAction } from '../lib/mutations';
import { Link, navigate } from '../lib/router';

interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
}

/**
 * Any kind's object: the KINDS columns as a summary, conditions, its verbs as buttons (when the role
 * allows them), spec and status as JSON, and its events. Kinds with their own page replace this.
 */
export function GenericDetail({ plural, name }: { plural: string; name: string }) {
  const { can } = useAuth();
  const info = kindInfo(plural);
  const q = useQuery({ queryKey: ['get', plural, name], queryFn: () => api.get(plural, name) });
  const act = useResourceAction(plural);
  const [replay, setReplay] = useState(false);
  if (q.isPending) return <Loading what={name} />;
  if (q.error) return <ErrorBox error={q.error} title={`Could not load ${name}`} />;
  const o = q.data;
  const conditions = (o.status.conditions ?? []) as Condition[];
  const verbs = (info?.verbs ?? []).filter((v) => can(plural, v));
  return (
    <>
      <p>
        <Link to={pathFor(plural)}>← {labelFor(plural)}</Link>
      </p>
      <h1>
        {name} {o.status.phase !== undefined && <StateBadge value={o.status.phase} />}
        {o.status.state !== undefined && <StateBadge value={o.status.state} />}
      </h1>
      <div className="row">
        {verbs.map((v) => (
          <button key={v} type="button" className="small" disabled={act.isPending} onClick={() => act.mutate({ name, verb: v })}>
            {v[0].toUpperCase() + v.slice(1)}
          </button>
        ))}
        {can(plural, 'delete') && (
          <button
            type="button"
            className="small danger"
            disabled={act.isPending}
            onClick={() => confirm(`Delete ${name}?`) && act.mutate({ name, verb: 'delete' }, { onSuccess: () => navigate(pathFor(plural)) })}
          >
            Delete
          </button>
        )}
      </div>
      <ErrorBox error={act.error} title="Not done" />
      <div className="cards">
        <section className="card" aria-labelledby="sum-h">
          <h2 id="sum-h">Summary</h2>
          <dl>
            {(info?.columns ?? []).map((c) => (
              <div key={c.path} style={{ display: 'contents' }}>
                <dt>{c.header.toLowerCase()}</dt>
                <dd>{formatValue(pick(o, c.path))}</dd>
              </div>
            ))}
          </dl>
        </section>
        {conditions.length > 0 && (
          <section className="card" aria-labelledby="cond-h">
            <h2 id="cond-h">Conditions</h2>
            <dl>
              {conditions.map((c) => (
                <div key={c.type} style={{ display: 'contents' }}>
                  <dt>{c.type}</dt>
                  <dd>
                    <StateBadge value={c.status} /> {c.reason} {c.message ? `— ${c.message}` : ''}
                  </dd>
                </div>
              ))}
            </dl>
          </section>
        )}
      </div>
      {plural === 'remotesessions' && o.spec.kind !== 'bundle' && (
        <>
          <h2>Recording</h2>
          {replay ? (
            <Replay session={name} />
          ) : (
            <button type="button" className="secondary" onClick={() => setReplay(true)}>
              Replay recording
            </button>
          )}
        </>
      )}
      <h2>Spec</h2>
      <pre className="json">{JSON.stringify(o.spec, null, 2)}</pre>
      <h2>Status</h2>
      <pre className="json">{JSON.stringify(o.status, null, 2)}</pre>
      {plural !== 'events' && (
        <>
          <h2>Events</h2>
          <ObjectEvents object={o} emptyText={`No events for ${name}.`} />
        </>
      )}
    </>
  );
}
