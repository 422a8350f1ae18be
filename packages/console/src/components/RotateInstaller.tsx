import { CLOUD_CONFIG_KEY } from '@edgeplane/protocol';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useId, useState } from 'react';
import { parse } from 'yaml';
import { request } from '../lib/api';
import { saveBlob } from './InstallerDownloads';
import { ErrorBox } from './ui';

/**
 * Installer for a token created earlier. The server keeps only a hash of the secret, so the installer
 * can only carry a new one: POST .../installer with `rotate: true` replaces the secret (in the same
 * transaction that renders the user-data) and the old secret stops registering new devices. The
 * person confirms that first; afterwards the new secret is handed back once, like at creation.
 */
export function RotateInstaller({ token, onRotated, onCancel }: { token: string; onRotated(secret: string): void; onCancel(): void }) {
  const qc = useQueryClient();
  const [understood, setUnderstood] = useState(false);
  const id = useId();
  const rotate = useMutation({
    mutationFn: () =>
      request<{ files: Record<string, string>; rotated: boolean }>('POST', `/api/v1/registrationtokens/${encodeURIComponent(token)}/installer?format=json`, {
        rotate: true,
      }),
    onSuccess: (out) => {
      const userData = out.files['user-data'];
      saveBlob(new Blob([userData], { type: 'text/yaml' }), `${token}-user-data.yaml`);
      void qc.invalidateQueries({ queryKey: ['list', 'registrationtokens'] });
      const secret = (parse(userData) as Record<string, { token?: string }> | null)?.[CLOUD_CONFIG_KEY]?.token;
      if (secret) onRotated(secret);
    },
  });
  return (
    <section className="card warning" aria-labelledby={`${id}-h`}>
      <h2 id={`${id}-h`}>Installer for token {token}</h2>
      <p>
        The secret of <strong>{token}</strong> was shown once, when it was created, and the server cannot read it back. An installer made now carries a{' '}
        <strong>new secret</strong>:
      </p>
      <ul>
        <li>installers and devices that still use the old secret can no longer register;</li>
        <li>hosts already registered keep working, and their identity does not change.</li>
      </ul>
      <div className="field check">
        <input id={`${id}-ok`} type="checkbox" checked={understood} onChange={(e) => setUnderstood(e.target.checked)} />
        <label htmlFor={`${id}-ok`}>I understand that the old secret stops working</label>
      </div>
      <div className="row">
        <button type="button" className="danger" disabled={!understood || rotate.isPending} onClick={() => rotate.mutate()}>
          {rotate.isPending ? 'Rotating…' : 'Rotate secret and download user-data'}
        </button>
        <button type="button" className="secondary" onClick={onCancel}>
          Cancel
        </button>
      </div>
      <ErrorBox error={rotate.error} title="Could not rotate the token" />
    </section>
  );
}
