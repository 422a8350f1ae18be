import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DEFAULT_PROJECT } from '@edgeplane/protocol';
import { appendAudit } from './audit/audit.service.js';
import { countRows, findByName, insertRow, type ResourceRow, updateRow } from './resource/resource.repository.js';
import { hashSecret, newSecret, secretPrefix } from './resource/secrets.js';
import { type Db, type Executor, openStore } from './store/db.js';
import { migrateToLatest } from './store/migrations.js';

function baseRow(name: string, spec: unknown, status: unknown = {}): ResourceRow {
  const t = new Date().toISOString();
  return {
    name,
    uid: randomUUID(),
    project: DEFAULT_PROJECT,
    labels: '{}',
    annotations: '{}',
    generation: 1,
    resource_version: 1,
    created_at: t,
    updated_at: t,
    spec: JSON.stringify(spec),
    status: JSON.stringify(status),
  };
}

/**
 * First start against an empty store: default project, user `admin` and an admin API token, written
 * to `tokenFile` (0600). Returns the token only when it was created now; it is never stored in clear.
 */
export async function bootstrap(db: Db, tokenFile: string): Promise<string | undefined> {
  return db.transaction().execute(async (trx) => {
    if (!(await findByName(trx, 'projects', DEFAULT_PROJECT))) {
      await insertRow(trx, 'projects', baseRow(DEFAULT_PROJECT, { description: 'Default project' }));
    }
    if ((await countRows(trx, 'users')) > 0) return undefined;
    const admin = baseRow(ADMIN_USER, { role: 'admin', displayName: 'Administrator', disabled: false });
    await insertRow(trx, 'users', admin);
    const token = await insertToken(trx, 'admin-initial', admin, 'created on first start');
    // Written inside the transaction: if the file cannot be written, no token exists that nobody knows.
    writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
    return token;
  });
}

const ADMIN_USER = 'admin';

async function insertToken(db: Executor, name: string, user: ResourceRow, description: string): Promise<string> {
  const token = newSecret('ept');
  await insertRow(db, 'api_tokens', {
    ...baseRow(name, { user: user.name, description }, { prefix: secretPrefix(token) }),
    token_hash: hashSecret(token),
    user_name: user.name,
    user_uid: user.uid,
    expires_at: null,
    last_used_at: null,
  });
  return token;
}

export interface AdminRecovery {
  token: string;
  tokenName: string;
  tokenFile: string;
  /** What was wrong with user `admin` before: absent, disabled, or a lower role (or nothing). */
  repaired: { created: boolean; previousRole?: string; wasDisabled?: boolean };
}

/**
 * Recovery for a locked-out install (every admin disabled, demoted or deleted, or the admin token
 * lost): run on the server machine with direct store access, never through the API. Re-enables user
 * `admin` with role admin (creates it if it is gone), issues it a fresh API token written to
 * `tokenFile` (0600) and audits `admin.recover`. Other users and tokens are left as they are.
 */
export async function recoverAdmin(db: Db, tokenFile: string): Promise<AdminRecovery> {
  const tokenName = `admin-recovery-${Date.now().toString(36)}`;
  const result = await db.transaction().execute(async (trx) => {
    if (!(await findByName(trx, 'projects', DEFAULT_PROJECT))) {
      await insertRow(trx, 'projects', baseRow(DEFAULT_PROJECT, { description: 'Default project' }));
    }
    let user = await findByName(trx, 'users', ADMIN_USER);
    let repaired: AdminRecovery['repaired'];
    if (!user) {
      user = baseRow(ADMIN_USER, { role: 'admin', displayName: 'Administrator', disabled: false });
      await insertRow(trx, 'users', user);
      repaired = { created: true };
    } else {
      const spec = JSON.parse(user.spec) as { role: string; disabled?: boolean };
      repaired = { created: false, previousRole: spec.role, wasDisabled: spec.disabled === true };
      if (spec.role !== 'admin' || spec.disabled) {
        await updateRow(trx, 'users', ADMIN_USER, {
          spec: JSON.stringify({ ...spec, role: 'admin', disabled: false }),
          generation: Number(user.generation) + 1,
          updated_at: new Date().toISOString(),
        });
      }
    }
    const token = await insertToken(trx, tokenName, user, 'created by edgeplane server admin-token --reset');
    writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
    return { token, tokenName, tokenFile, repaired };
  });
  await appendAudit(db, {
    actor: 'local:server-admin-token-reset',
    action: 'admin.recover',
    target: `users/${ADMIN_USER}`,
    details: { tokenName, ...result.repaired },
  });
  return result;
}

/** `edgeplane server admin-token --reset`: opens the store the server uses, migrates it, recovers the admin. */
export async function resetAdminToken(options: { dataDir: string; databaseUrl?: string }): Promise<AdminRecovery> {
  const dataDir = resolve(options.dataDir);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const store = openStore({ dataDir, databaseUrl: options.databaseUrl, poolSize: 2 });
  try {
    await migrateToLatest(store.db);
    return await recoverAdmin(store.db, join(dataDir, 'admin-token'));
  } finally {
    await store.close();
  }
}
