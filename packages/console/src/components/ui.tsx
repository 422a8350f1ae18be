import { type ReactNode, useEffect, useRef, useState } from 'react';
import { ApiError } from '../lib/api';

/** An API error in words a person can act on, with the stable code for searching docs/errors.md. */
export function ErrorBox({ error, title = 'Something went wrong' }: { error: unknown; title?: string }) {
  if (!error) return null;
  const e = error instanceof ApiError ? error : undefined;
  const issues = (e?.details?.issues as { path: string; message: string }[] | undefined) ?? [];
  return (
    <div className="error" role="alert">
      <strong>{title}</strong>
      <p>{error instanceof Error ? error.message : String(error)}</p>
      {issues.length > 0 && (
        <ul>
          {issues.map((i) => (
            <li key={`${i.path}:${i.message}`}>
              <code>{i.path || '(body)'}</code>: {i.message}
            </li>
          ))}
        </ul>
      )}
      {e && <p className="muted">Error code: {e.code}</p>}
    </div>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return (
    <div className="empty" role="status">
      {children}
    </div>
  );
}

export function Loading({ what }: { what: string }) {
  return (
    <p className="muted" role="status" aria-live="polite">
      Loading {what}…
    </p>
  );
}

export function StateBadge({ value }: { value: unknown }) {
  const v = value === undefined || value === null ? 'unknown' : String(value);
  return <span className={`badge badge-${v.replace(/[^a-z-]/gi, '')}`}>{v}</span>;
}

/** A secret shown exactly once, with a copy button; the server never returns it again. */
export function SecretOnce({ label, secret, onDone }: { label: string; secret: string; onDone(): void }) {
  const [copied, setCopied] = useState(false);
  const ref = useRef<HTMLElement>(null);
  useEffect(() => ref.current?.focus(), []);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(secret);
      setCopied(true);
    } catch {
      // Clipboard access can be refused (insecure origin); the secret stays selectable.
      setCopied(false);
    }
  };
  return (
    <section className="secret" aria-label={label} tabIndex={-1} ref={ref}>
      <p>
        <strong>{label}</strong> — copy it now: it is shown only once.
      </p>
      <code className="secret-value" data-testid="secret">
        {secret}
      </code>
      <div className="row">
        <button type="button" onClick={copy}>
          {copied ? 'Copied' : 'Copy'}
        </button>
        <button type="button" className="secondary" onClick={onDone}>
          Done
        </button>
      </div>
    </section>
  );
}
