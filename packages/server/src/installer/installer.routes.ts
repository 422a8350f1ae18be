import { EdgeplaneError } from '@edgeplane/protocol';
import type { FastifyInstance } from 'fastify';
import { installAuth, requirePermission } from '../http/auth-hook.js';
import type { Db } from '../store/db.js';
import { installerArtifacts } from './installer.service.js';
import { buildSeedIso } from './seed-iso.js';

const FORMATS = ['user-data', 'iso', 'json'] as const;
type Format = (typeof FORMATS)[number];

/**
 * POST /api/v1/registrationtokens/<name>/installer: the token's cloud-config user-data (text/yaml),
 * `?format=iso` a NoCloud seed ISO, `?format=json` every seed file. One transaction, so a rotation is
 * never half-done: when the ISO cannot be built, the token keeps its old secret.
 */
export async function installerRoutes(app: FastifyInstance, deps: { db: Db; publicUrl?: string }): Promise<void> {
  installAuth(app, deps.db);
  app.post<{ Params: { name: string }; Querystring: { format?: string } }>('/api/v1/registrationtokens/:name/installer', async (req, reply) => {
    requirePermission(req, 'registrationtokens:installer');
    const format = (req.query.format ?? 'user-data') as Format;
    if (!FORMATS.includes(format))
      throw new EdgeplaneError('ValidationFailed', `format must be one of ${FORMATS.join(', ')}`, { issues: [{ path: 'format', message: 'unknown format' }] });
    // A configured public URL wins: the Host header is the client's to choose. Without one, the request's
    // own scheme and host (X-Forwarded-Proto/-Host only from trusted proxies).
    const defaultServer = deps.publicUrl?.replace(/\/+$/, '') ?? `${req.protocol}://${req.host}`;
    const out = await deps.db.transaction().execute(async (trx) => {
      const artifacts = await installerArtifacts(trx, req.params.name, req.body, defaultServer);
      return { ...artifacts, iso: format === 'iso' ? await buildSeedIso(artifacts.files) : undefined };
    });
    if (out.rotatedSecret) reply.header('x-edgeplane-token-rotated', 'true');
    req.log.info({ token: req.params.name, format, rotated: !!out.rotatedSecret }, 'installer artifacts issued');
    if (out.iso) return reply.type('application/x-iso9660-image').header('content-disposition', 'attachment; filename="seed.iso"').send(out.iso);
    if (format === 'json') return { files: out.files, rotated: !!out.rotatedSecret };
    return reply.type('text/yaml; charset=utf-8').send(out.files['user-data']);
  });
}
