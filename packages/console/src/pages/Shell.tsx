import { type FormEvent, useCallback, useRef, useState } from 'react';
import { type ShellState, Terminal } from '../components/Terminal';
import { ErrorBox } from '../components/ui';
import { type Resource, request } from '../lib/api';
import { Link } from '../lib/router';

/** A remote shell on a host: the reason comes first (it goes to the audit log), then the terminal. */
export function Shell({ host }: { host: string }) {
  const [reason, setReason] = useState('');
  const [session, setSession] = useState<{ id: string; url: string }>();
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const [state, setState] = useState<ShellState>({ phase: 'connecting' });
  const terminate = useRef<() => void>(undefined);
  const onState = useCallback((s: ShellState) => setState(s), []);
  const start = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const s = await request<Resource>('POST', `/api/v1/edgehosts/${encodeURIComponent(host)}/sessions`, {
        kind: 'shell',
        reason: reason.trim(),
        cols: 100,
        rows: 30,
      });
      const url = `${s.status.url}?ticket=${encodeURIComponent(s.status.attachTicket)}`;
      setSession({ id: s.metadata.name, url });
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <p>
        <Link to={`/hosts/${encodeURIComponent(host)}`}>← {host}</Link>
      </p>
      <h1>Remote shell on {host}</h1>
      {!session ? (
        <form className="card form" onSubmit={start} aria-label="Start a remote shell">
          <div className="field">
            <label htmlFor="reason">Reason</label>
            <input id="reason" required minLength={3} value={reason} onChange={(e) => setReason(e.target.value)} aria-describedby="reason-help" />
            <small id="reason-help" className="muted">
              Recorded in the audit log with the session; the session itself is recorded for replay.
            </small>
          </div>
          <div className="row">
            <button type="submit" disabled={busy || reason.trim().length < 3}>
              {busy ? 'Starting…' : 'Start shell'}
            </button>
          </div>
          <ErrorBox error={error} title="No session" />
        </form>
      ) : (
        <>
          <div className="row shell-bar">
            <span role="status" aria-live="polite" data-testid="shell-state">
              {state.phase === 'connecting' ? 'Connecting…' : state.phase === 'open' ? `Connected · session ${session.id}` : state.message}
            </span>
            {state.phase === 'open' && (
              <button type="button" className="small danger" onClick={() => terminate.current?.()}>
                End session
              </button>
            )}
            {(state.phase === 'ended' || state.phase === 'failed') && <Link to={`/r/remotesessions/${session.id}`}>Session details</Link>}
          </div>
          <Terminal url={session.url} onState={onState} terminateRef={terminate} />
        </>
      )}
    </>
  );
}
