import { useState } from 'react';
import { ApiError, tokenStore } from '../lib/api';
import { ErrorBox } from './ui';

/** Saves a response body as a file through a temporary object URL (the request needs our bearer token). */
async function download(path: string, body: unknown, filename: string): Promise<void> {
  const res = await fetch(path, {
    method: 'POST',
    headers: { authorization: `Bearer ${tokenStore.get()}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!res.ok) {
    const e = ((await res.json().catch(() => ({}))) as { error?: { code: string; message: string; details?: Record<string, unknown> } }).error;
    throw new ApiError(res.status, e?.code ?? 'Unknown', e?.message ?? `HTTP ${res.status}`, e?.details);
  }
  saveBlob(await res.blob(), filename);
}

/** Hands a blob to the browser as a download. */
export function saveBlob(blob: Blob, filename: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/**
 * Installer artifacts for a token whose secret is known right now (just created): the cloud-config
 * user-data and a NoCloud seed ISO (POST /api/v1/registrationtokens/<name>/installer).
 */
export function InstallerDownloads({ token, secret }: { token: string; secret: string }) {
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const get = async (format: 'user-data' | 'iso') => {
    setBusy(true);
    setError(undefined);
    try {
      await download(
        `/api/v1/registrationtokens/${encodeURIComponent(token)}/installer?format=${format}`,
        { tokenSecret: secret },
        format === 'iso' ? `${token}-seed.iso` : `${token}-user-data.yaml`,
      );
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="row">
      <button type="button" className="secondary" disabled={busy} onClick={() => get('user-data')}>
        Download user-data
      </button>
      <button type="button" className="secondary" disabled={busy} onClick={() => get('iso')}>
        Download seed ISO
      </button>
      <ErrorBox error={error} title="Could not build the installer" />
    </div>
  );
}
