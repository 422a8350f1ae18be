import { EdgeplaneError, findKind, type Role } from '@edgeplane/protocol';
import type { RequestContext } from '../resource/context.js';
import type { ResourceRow } from '../resource/resource.repository.js';
import { ResourceService } from '../resource/resource.service.js';
import type { Executor } from '../store/db.js';
import { deleteApiTokensOfUser } from './api-token.repository.js';
import { apiTokens } from './api-token.service.js';
import { enabledAdmins, lockUsers } from './user.repository.js';

type UserSpecJson = { role: Role; disabled?: boolean };
const isEnabledAdmin = (spec: UserSpecJson) => spec.role === 'admin' && spec.disabled !== true;

/**
 * Refuses (LastAdmin) a change that would leave no enabled admin: nobody could manage users any
 * more, and only `edgeplane server admin-token --reset` on the server machine would help.
 */
async function keepAnAdmin(db: Executor, row: ResourceRow, what: string): Promise<void> {
  if (!isEnabledAdmin(JSON.parse(row.spec))) return;
  // Lock the admin rows first: two requests demoting two different admins at once must not both pass.
  const admins = await lockUsers(db, await enabledAdmins(db));
  if (admins.filter((a) => a !== row.name).length === 0)
    throw new EdgeplaneError('LastAdmin', `user "${row.name}" is the last enabled admin; ${what} would lock every admin out`, { user: row.name });
}

export const users = new ResourceService(findKind('User')!, 'users', {
  async prepareUpdate(db, row, spec) {
    if (!isEnabledAdmin(spec as UserSpecJson)) await keepAnAdmin(db, row, 'disabling or demoting it');
    return {};
  },
  async beforeDelete(db, row, ctx: RequestContext) {
    await keepAnAdmin(db, row, 'deleting it');
    if (row.name === ctx.user) throw new EdgeplaneError('InvalidState', 'you cannot delete your own user');
    // A user's API tokens go with it, in the same transaction: none of them can come back with a
    // user re-created under the same name (tokens are also bound to the user's uid).
    for (const token of await deleteApiTokensOfUser(db, row)) {
      ctx.changes?.record({ type: 'DELETED', kind: 'ApiToken', object: apiTokens.toObject(token) });
    }
  },
});
