import { EdgeplaneError, findKind } from '@edgeplane/protocol';
import { ResourceService } from '../resource/resource.service.js';

export const users = new ResourceService(findKind('User')!, 'users', {
  async beforeDelete(_db, row, ctx) {
    if (row.name === ctx.user) throw new EdgeplaneError('InvalidState', 'you cannot delete your own user');
  },
});
