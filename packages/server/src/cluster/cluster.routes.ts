import type { FastifyInstance } from 'fastify';
import { installAuth, requirePermission } from '../http/auth-hook.js';
import type { Db } from '../store/db.js';
import { clusters } from './cluster.service.js';
import { clusterKubeconfig } from './kubeconfig.js';
import type { SecretBox } from './secret-box.js';

/** GET /api/v1/clusters/<name>/kubeconfig: the admin kubeconfig, pointing at the control-plane endpoint. */
export async function clusterRoutes(app: FastifyInstance, deps: { db: Db; secrets: SecretBox }): Promise<void> {
  installAuth(app, deps.db);
  app.get<{ Params: { name: string } }>('/api/v1/clusters/:name/kubeconfig', async (req, reply) => {
    requirePermission(req, 'clusters:kubeconfig');
    const cluster = await clusters.get(deps.db, req.params.name);
    const endpoint = cluster.status.controlPlaneEndpoint as string | undefined;
    const yaml = await clusterKubeconfig(deps.db, deps.secrets, cluster.metadata.name, endpoint);
    req.log.info({ cluster: cluster.metadata.name, user: req.caller?.user }, 'kubeconfig read');
    // YAML for curl and kubectl users; JSON for API clients that ask for it (the CLI).
    const accept = req.headers.accept ?? '';
    if (accept.includes('application/json') && !accept.includes('yaml'))
      return { apiVersion: 'edgeplane.io/v1', kind: 'Kubeconfig', cluster: cluster.metadata.name, server: endpoint, kubeconfig: yaml };
    return reply.type('application/yaml').send(yaml);
  });
}
