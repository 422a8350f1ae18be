import { useMutation, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { request } from '../lib/api';
import { Link, useLocation } from '../lib/router';
import { ErrorBox } from './ui';

interface ClaimResponse {
  code: string;
  hostName: string;
  site?: string;
}

/**
 * Claims the pairing code a device shows on its console (POST /api/v1/pairings/<code>/claim). The
 * device's QR encodes `<server>/claim?code=CODE`: opened there, the form starts open and filled in.
 */
export function ClaimPairing() {
  const qc = useQueryClient();
  const { path, query } = useLocation();
  const linked = path === '/claim' ? (query.get('code') ?? '') : '';
  const [open, setOpen] = useState(linked !== '');
  const claim = useMutation({
    mutationFn: ({ code, site }: { code: string; site: string }) =>
      request<ClaimResponse>('POST', `/api/v1/pairings/${encodeURIComponent(code)}/claim`, site ? { site } : {}),
    onSuccess: () => void qc.invalidateQueries({ queryKey: ['list', 'edgehosts'] }),
  });
  const submit = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget);
    claim.mutate({ code: String(f.get('code') ?? '').trim(), site: String(f.get('site') ?? '').trim() });
  };
  if (!open)
    return (
      <button type="button" className="secondary" onClick={() => setOpen(true)}>
        Claim pairing code
      </button>
    );
  return (
    <form className="card form" onSubmit={submit} aria-label="Claim pairing code">
      <h2>Claim a pairing code</h2>
      <p className="muted">A device without a token shows a short code on its screen; enter it to adopt the device.</p>
      <div className="field">
        <label htmlFor="f-code">Pairing code</label>
        <input id="f-code" name="code" required autoComplete="off" defaultValue={linked} />
      </div>
      <div className="field">
        <label htmlFor="f-claim-site">Site (optional)</label>
        <input id="f-claim-site" name="site" />
      </div>
      <div className="row">
        <button type="submit" disabled={claim.isPending}>
          Claim
        </button>
        <button type="button" className="secondary" onClick={() => setOpen(false)}>
          Close
        </button>
      </div>
      {claim.data && (
        <p role="status" className="ok">
          Claimed: the device registers as <Link to={`/hosts/${encodeURIComponent(claim.data.hostName)}`}>{claim.data.hostName}</Link>.
        </p>
      )}
      <ErrorBox error={claim.error} title="Not claimed" />
    </form>
  );
}
