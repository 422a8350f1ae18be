import { useEffect, useRef, useState } from 'react';
import { ApiError, tokenStore } from '../lib/api';
import { XTERM_OPTIONS } from '../lib/xterm-options';
import { ErrorBox } from './ui';

type CastEvent = [number, string, string];

/** Fetches a session recording (asciicast v2) and plays its output in a terminal, gaps capped at 0.5 s. */
export function Replay({ session }: { session: string }) {
  const box = useRef<HTMLDivElement>(null);
  const [error, setError] = useState<unknown>();
  const [done, setDone] = useState(false);
  const skip = useRef<() => void>(undefined);
  useEffect(() => {
    let stopped = false;
    const timers: ReturnType<typeof setTimeout>[] = [];
    let dispose = () => {};
    void (async () => {
      const res = await fetch(`/api/v1/remotesessions/${encodeURIComponent(session)}/recording`, { headers: { authorization: `Bearer ${tokenStore.get()}` } });
      if (!res.ok) {
        const body = (await res.json().catch(() => ({}))) as { error?: { code: string; message: string } };
        throw new ApiError(res.status, body.error?.code ?? 'Unknown', body.error?.message ?? `HTTP ${res.status}`);
      }
      const lines = (await res.text()).trim().split('\n');
      const header = JSON.parse(lines[0]) as { width?: number; height?: number };
      const events = lines.slice(1).map((l) => JSON.parse(l) as CastEvent);
      const [{ Terminal: XTerm }] = await Promise.all([import('@xterm/xterm'), import('@xterm/xterm/css/xterm.css')]);
      if (stopped || !box.current) return;
      const term = new XTerm({ cols: header.width ?? 80, rows: header.height ?? 24, disableStdin: true, ...XTERM_OPTIONS });
      term.open(box.current);
      dispose = () => term.dispose();
      let at = 0;
      let last = 0;
      let i = 0;
      const finish = () => {
        for (; i < events.length; i++) if (events[i][1] === 'o') term.write(events[i][2]);
        timers.forEach(clearTimeout);
        setDone(true);
      };
      skip.current = finish;
      for (const [t, type, data] of events) {
        at += Math.min(0.5, Math.max(0, t - last));
        last = t;
        timers.push(
          setTimeout(() => {
            i++;
            if (type === 'o') term.write(data);
            else if (type === 'r') {
              const [c, r] = data.split('x').map(Number);
              if (c && r) term.resize(c, r);
            }
            if (i === events.length) setDone(true);
          }, at * 1000),
        );
      }
      if (events.length === 0) setDone(true);
    })().catch(setError);
    return () => {
      stopped = true;
      timers.forEach(clearTimeout);
      dispose();
    };
  }, [session]);
  return (
    <section aria-label="Recording">
      <ErrorBox error={error} title="Could not load the recording" />
      <div className="row shell-bar">
        <span role="status">{done ? 'Replay finished.' : 'Replaying…'}</span>
        {!done && (
          <button type="button" className="small secondary" onClick={() => skip.current?.()}>
            Skip to end
          </button>
        )}
      </div>
      <div className="term-box replay" ref={box} data-testid="replay" />
    </section>
  );
}
