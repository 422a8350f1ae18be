import { DEFAULT_PROJECT, EdgeplaneError, findKind } from '@edgeplane/protocol';
import { ResourceService } from '../resource/resource.service.js';

export const projects = new ResourceService(findKind('Project')!, 'projects', {
  async beforeDelete(_db, row) {
    if (row.name === DEFAULT_PROJECT) throw new EdgeplaneError('InvalidState', 'the default project cannot be deleted');
  },
});
