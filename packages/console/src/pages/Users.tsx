import { useState } from 'react';
import { CreateForm, compact, TextField } from '../components/CreateForm';
import { ResourceTable } from '../components/ResourceTable';
import { SecretOnce } from '../components/ui';
import { useAuth } from '../lib/auth';
import { useResourceAction } from '../lib/mutations';

function DeleteButton({ plural, name }: { plural: string; name: string }) {
  const { can } = useAuth();
  const act = useResourceAction(plural);
  if (!can(plural, 'delete')) return null;
  return (
    <button
      type="button"
      className="small danger"
      aria-label={`Delete ${name}`}
      onClick={() => confirm(`Delete ${name}?`) && act.mutate({ name, verb: 'delete' })}
    >
      Delete
    </button>
  );
}

export function Users() {
  const { can } = useAuth();
  return (
    <>
      <h1>Users</h1>
      {can('users', 'create') && (
        <CreateForm
          plural="users"
          title="Create user"
          build={(f) => ({ metadata: { name: String(f.get('name') ?? '') }, spec: compact({ role: f.get('role'), email: f.get('email') }) })}
        >
          <TextField name="name" label="Name" required placeholder="alice" />
          <div className="field">
            <label htmlFor="f-role">Role</label>
            <select id="f-role" name="role" defaultValue="viewer">
              <option value="viewer">viewer — reads everything</option>
              <option value="operator">operator — runs the fleet</option>
              <option value="admin">admin — also manages users and tokens</option>
            </select>
          </div>
          <TextField name="email" label="Email (optional)" />
        </CreateForm>
      )}
      <ResourceTable plural="users" actions={(u) => <DeleteButton plural="users" name={u.metadata.name} />} />
    </>
  );
}

export function ApiTokens() {
  const { can } = useAuth();
  const [secret, setSecret] = useState<{ name: string; token: string }>();
  return (
    <>
      <h1>API tokens</h1>
      {secret && <SecretOnce label={`API token ${secret.name}`} secret={secret.token} onDone={() => setSecret(undefined)} />}
      {can('apitokens', 'create') && !secret && (
        <CreateForm
          plural="apitokens"
          title="Create API token"
          onCreated={(o) => setSecret({ name: o.metadata.name, token: o.status.token })}
          build={(f) => ({ metadata: { name: String(f.get('name') ?? '') }, spec: compact({ user: f.get('user'), description: f.get('description') }) })}
        >
          <TextField name="name" label="Name" required placeholder="alice-laptop" />
          <TextField name="user" label="User" required placeholder="alice" />
          <TextField name="description" label="Description (optional)" />
        </CreateForm>
      )}
      <ResourceTable plural="apitokens" actions={(t) => <DeleteButton plural="apitokens" name={t.metadata.name} />} />
    </>
  );
}
