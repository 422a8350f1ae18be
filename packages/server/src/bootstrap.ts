import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { DEFAULT_PROJECT } from '@edgeplane/protocol';
import { countRows, findByName, insertRow, type ResourceRow } from './resource/resource.repository.js';
import { hashSecret, newSecret, secretPrefix } from './resource/secrets.js';
import type { Db } from './store/db.js';

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
    await insertRow(trx, 'users', baseRow('admin', { role: 'admin', displayName: 'Administrator', disabled: false }));
    const token = newSecret('ept');
    await insertRow(trx, 'api_tokens', {
      ...baseRow('admin-initial', { user: 'admin', description: 'created on first start' }, { prefix: secretPrefix(token) }),
      token_hash: hashSecret(token),
      user_name: 'admin',
      expires_at: null,
      last_used_at: null,
    });
    // Written inside the transaction: if the file cannot be written, no token exists that nobody knows.
    writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
    return token;
  });
}
