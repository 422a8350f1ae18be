import { useState } from 'react';
import { CreateForm, compact, TextField } from '../components/CreateForm';
import { InstallerDownloads } from '../components/InstallerDownloads';
import { ResourceTable } from '../components/ResourceTable';
import { RotateInstaller } from '../components/RotateInstaller';
import { ErrorBox, SecretOnce } from '../components/ui';
import type { Resource } from '../lib/api';
import { useAuth } from '../lib/auth';
import { useResourceAction } from '../lib/mutations';

function TokenActions({ token, onInstaller }: { token: Resource; onInstaller(name: string): void }) {
  const { can } = useAuth();
  const act = useResourceAction('registrationtokens');
  const name = token.metadata.name;
  return (
    <span className="row">
      {can('registrationtokens', 'installer') && token.status.state === 'active' && (
        <button type="button" className="small secondary" aria-label={`Installer for ${name}`} onClick={() => onInstaller(name)}>
          Installer…
        </button>
      )}
      {can('registrationtokens', 'revoke') && token.status.state === 'active' && (
        <button
          type="button"
          className="small secondary"
          aria-label={`Revoke ${name}`}
          disabled={act.isPending}
          onClick={() => act.mutate({ name, verb: 'revoke' })}
        >
          Revoke
        </button>
      )}
      {can('registrationtokens', 'delete') && (
        <button
          type="button"
          className="small danger"
          aria-label={`Delete ${name}`}
          disabled={act.isPending}
          onClick={() => confirm(`Delete token ${name}? Hosts already registered with it keep working.`) && act.mutate({ name, verb: 'delete' })}
        >
          Delete
        </button>
      )}
      {act.error && <ErrorBox error={act.error} title={`Could not update ${name}`} />}
    </span>
  );
}

export function Tokens() {
  const { can } = useAuth();
  const [secret, setSecret] = useState<{ name: string; token: string; rotated?: boolean }>();
  const [installerFor, setInstallerFor] = useState<string>();
  return (
    <>
      <h1>Registration tokens</h1>
      <p className="muted">Devices present a registration token once, at first boot, to join this control plane.</p>
      {secret && (
        <>
          <SecretOnce
            label={secret.rotated ? `New secret of token ${secret.name}` : `Token ${secret.name}`}
            secret={secret.token}
            onDone={() => setSecret(undefined)}
          />
          {can('registrationtokens', 'installer') && <InstallerDownloads token={secret.name} secret={secret.token} />}
        </>
      )}
      {installerFor && !secret && (
        <RotateInstaller
          token={installerFor}
          onCancel={() => setInstallerFor(undefined)}
          onRotated={(token) => {
            setInstallerFor(undefined);
            setSecret({ name: installerFor, token, rotated: true });
          }}
        />
      )}
      {can('registrationtokens', 'create') && !secret && !installerFor && (
        <CreateForm
          plural="registrationtokens"
          title="Create registration token"
          onCreated={(o) => setSecret({ name: o.metadata.name, token: o.status.token })}
          build={(f) => ({
            metadata: { name: String(f.get('name') ?? '') },
            spec: compact({
              site: f.get('site'),
              autoApprove: f.get('autoApprove') === 'on',
              maxUses: f.get('maxUses') ? Number(f.get('maxUses')) : undefined,
            }),
          })}
        >
          <TextField name="name" label="Name" required placeholder="berlin-rollout" />
          <TextField name="site" label="Site (optional)" placeholder="berlin" help="Hosts registering with this token get this site." />
          <TextField name="maxUses" label="Maximum uses (optional)" placeholder="100" />
          <div className="field check">
            <input id="f-autoApprove" name="autoApprove" type="checkbox" />
            <label htmlFor="f-autoApprove">Approve hosts automatically</label>
          </div>
        </CreateForm>
      )}
      <ResourceTable
        plural="registrationtokens"
        actions={(t) => (
          <TokenActions
            token={t}
            onInstaller={(name) => {
              setSecret(undefined);
              setInstallerFor(name);
            }}
          />
        )}
        emptyText="No registration tokens yet."
      />
    </>
  );
}
