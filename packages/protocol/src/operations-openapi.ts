import type { z } from 'zod';
import { ClusterSpec } from './cluster.js';
import { UpgradePlan } from './cluster-upgrade.js';
import { WATCH_PROTOCOL, Whoami } from './watch.js';

type Json = Record<string, unknown>;

const nameParam = { name: 'name', in: 'path', required: true, schema: { type: 'string' } };

/**
 * OpenAPI paths outside the generic resource routes: operational endpoints (health, readiness,
 * metrics, this document), the caller, the watch stream, the console's summary, profile revisions,
 * cluster kubeconfig and plan, and host reset.
 */
export function addOperationPaths(paths: Json, schemas: Json, schema: (s: z.ZodType, io?: 'input' | 'output') => Json, errorResponse: Json): void {
  schemas.Whoami = schema(Whoami);
  schemas.UpgradePlan = schema(UpgradePlan);
  schemas.ClusterSpecInput = schema(ClusterSpec, 'input');
  const json = (s: Json) => ({ 'application/json': { schema: s } });
  const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
  const open = { security: [] };
  paths['/healthz'] = {
    get: {
      operationId: 'healthz',
      tags: ['Operations'],
      summary: 'Liveness: the process answers',
      ...open,
      responses: { 200: { description: 'OK', content: json({ type: 'object', properties: { status: { const: 'ok' } } }) } },
    },
  };
  paths['/readyz'] = {
    get: {
      operationId: 'readyz',
      tags: ['Operations'],
      summary: 'Readiness: the last background store check succeeded recently and the server is not draining',
      ...open,
      responses: {
        200: {
          description: 'Ready',
          content: json({
            type: 'object',
            properties: {
              status: { const: 'ready' },
              store: { enum: ['sqlite', 'postgres'] },
              storeCheck: {
                type: 'object',
                description: 'The last store check: how long ago it finished and how long it took',
                properties: { ageMs: { type: 'number' }, latencyMs: { type: 'number' } },
              },
              agentsConnected: { type: 'integer' },
              agentChannelLimit: { type: ['integer', 'null'], description: 'Agent connections this server accepts (null: no limit)' },
            },
          }),
        },
        503: errorResponse,
      },
    },
  };
  paths['/metrics'] = {
    get: {
      operationId: 'metrics',
      tags: ['Operations'],
      summary: 'Prometheus metrics (text exposition format)',
      ...open,
      responses: { 200: { description: 'OK', content: { 'text/plain': { schema: { type: 'string' } } } } },
    },
  };
  paths['/api/v1/openapi.json'] = {
    get: {
      operationId: 'openapi',
      tags: ['Operations'],
      summary: 'This document',
      ...open,
      responses: { 200: { description: 'OpenAPI 3.1', content: json({ type: 'object' }) } },
    },
  };
  paths['/api/v1/version'] = {
    get: {
      operationId: 'version',
      tags: ['Operations'],
      summary: "The server's release, protocol and API versions",
      ...open,
      responses: {
        200: {
          description: 'OK',
          content: json({
            type: 'object',
            required: ['serverVersion', 'protocolVersion', 'apiVersion'],
            properties: { serverVersion: { type: 'string' }, protocolVersion: { type: 'integer', minimum: 1 }, apiVersion: { type: 'string' } },
          }),
        },
      },
    },
  };
  paths['/api/v1/whoami'] = {
    get: {
      operationId: 'whoami',
      tags: ['User'],
      summary: 'The caller: user, role and permissions',
      responses: { 200: { description: 'OK', content: json(ref('Whoami')) }, default: errorResponse },
    },
  };
  paths['/api/v1/watch'] = {
    get: {
      operationId: 'watch',
      tags: ['Watch'],
      summary: 'Live changes of every kind the caller may read',
      description: `WebSocket upgrade (subprotocol ${WATCH_PROTOCOL}). Messages: READY, RESYNC, ADDED/MODIFIED/DELETED with the object; see docs/architecture.md.`,
      responses: { 101: { description: 'Switching protocols' }, default: errorResponse },
    },
  };
  paths['/api/v1/summary'] = {
    get: {
      operationId: 'summary',
      tags: ['Console'],
      summary: "Counts by state and recent warnings (the console's overview)",
      responses: { 200: { description: 'OK', content: json({ type: 'object' }) }, default: errorResponse },
    },
  };
  paths['/api/v1/clusterprofiles/{name}/revisions'] = {
    parameters: [nameParam],
    get: {
      operationId: 'listClusterProfileRevisions',
      tags: ['ClusterProfile'],
      summary: "A profile's immutable revisions",
      responses: {
        200: { description: 'OK', content: json({ type: 'object', properties: { items: { type: 'array', items: { type: 'object' } } } }) },
        default: errorResponse,
      },
    },
  };
  paths['/api/v1/clusterprofiles/{name}/revisions/{revision}'] = {
    parameters: [nameParam, { name: 'revision', in: 'path', required: true, schema: { type: 'integer', minimum: 1 } }],
    get: {
      operationId: 'getClusterProfileRevision',
      tags: ['ClusterProfile'],
      summary: 'One revision of a profile',
      responses: { 200: { description: 'OK', content: json({ type: 'object' }) }, default: errorResponse },
    },
  };
  paths['/api/v1/clusters/{name}/kubeconfig'] = {
    parameters: [nameParam],
    get: {
      operationId: 'getClusterKubeconfig',
      tags: ['Cluster'],
      summary: "The cluster's admin kubeconfig (YAML; JSON with Accept: application/json)",
      responses: {
        200: { description: 'OK', content: { 'application/yaml': { schema: { type: 'string' } }, ...json({ type: 'object' }) } },
        default: errorResponse,
      },
    },
  };
  paths['/api/v1/clusters/{name}/plan'] = {
    parameters: [nameParam],
    post: {
      operationId: 'planCluster',
      tags: ['Cluster'],
      summary: 'Dry run: what applying this spec would do to each node',
      requestBody: { required: true, content: json({ oneOf: [ref('ClusterInput'), ref('ClusterSpecInput')] }) },
      responses: { 200: { description: 'OK', content: json(ref('UpgradePlan')) }, default: errorResponse },
    },
  };
  // Deleting a host has its own option: force takes a cluster node out of its cluster first.
  const hostDelete = (paths['/api/v1/edgehosts/{name}'] as Json).delete as Json;
  hostDelete.parameters = [
    {
      name: 'force',
      in: 'query',
      required: false,
      schema: { type: 'boolean', default: false },
      description:
        'A host a cluster depends on leaves the cluster first (drained, removed from Kubernetes), then is deleted. Without it such a delete is refused with HostInCluster.',
    },
  ];
  hostDelete.responses = {
    ...(hostDelete.responses as Json),
    202: {
      description: 'Accepted (force on a cluster node): the removal steps; the host is deleted once it left its cluster',
      content: json({ type: 'object', properties: { kind: { const: 'HostRemoval' } } }),
    },
  };
  paths['/api/v1/edgehosts/{name}/reset'] = {
    parameters: [nameParam],
    post: {
      operationId: 'resetEdgeHost',
      tags: ['EdgeHost'],
      summary: 'Returns a free host to idle (its managers reset); identity and registration are kept',
      responses: { 200: { description: 'OK', content: json(ref('EdgeHost')) }, default: errorResponse },
    },
  };
}
