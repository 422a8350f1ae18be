import { DEFAULT_PROJECT, EdgeplaneError, findKind } from '@edgeplane/protocol';
import { ResourceService } from '../resource/resource.service.js';
import { countInProject, lockProject } from './project.repository.js';

/**
 * Projects group resources (metadata.project); they are not tenants: roles are global. A resource
 * may only name an existing project (resource.service.ts checks on create), and a project that
 * still holds resources cannot be deleted, so no resource is left in a project that is gone.
 */
export const projects = new ResourceService(findKind('Project')!, 'projects', {
  async beforeDelete(db, row) {
    if (row.name === DEFAULT_PROJECT) throw new EdgeplaneError('InvalidState', 'the default project cannot be deleted');
    // Lock first, count second: a create in this project that is under way commits before we count.
    await lockProject(db, row.name);
    const resources = await countInProject(db, row.name);
    const total = Object.values(resources).reduce((a, b) => a + b, 0);
    if (total > 0)
      throw new EdgeplaneError('ProjectNotEmpty', `project "${row.name}" still holds ${total} resource(s); delete them or move them out first`, {
        project: row.name,
        resources,
      });
  },
});
