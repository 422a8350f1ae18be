import { z } from 'zod';
import { AGENT_CONNECT_PATH, AGENT_REGISTER_PATH, RegisterRequest, RegisterResponse } from './agent.js';
import { ErrorBody } from './errors.js';
import { addFleetPaths } from './fleet-openapi.js';
import { KINDS } from './kinds.js';
import { addOperationPaths } from './operations-openapi.js';
import { addRegistrationPaths } from './registration-openapi.js';
import { addRemoteSessionPaths } from './remote-session-openapi.js';
import { addVirtPaths } from './virt-openapi.js';

type Json = Record<string, unknown>;

/**
 * The fields each kind's list can be filtered by with `fieldSelector` (besides metadata.name and
 * metadata.project, which every kind has); the server maps each to a column or an indexed JSON path.
 */
export const FIELD_SELECTORS: Record<string, readonly string[]> = {
  EdgeHost: ['spec.site', 'status.state', 'status.connectivity'],
  Event: ['involvedObject.kind', 'involvedObject.name', 'involvedObject.uid', 'type', 'reason'],
  Cluster: ['spec.site', 'spec.type', 'spec.profile.name', 'status.phase'],
  Rollout: ['status.phase'],
  RemoteSession: ['spec.host', 'status.phase'],
};

function schema(s: z.ZodType, io: 'input' | 'output' = 'output'): Json {
  // Component refs would be nicer, but inlined JSON Schema keeps every path self-contained and is what zod emits.
  const { $schema: _drop, ...rest } = z.toJSONSchema(s, { io, unrepresentable: 'any' }) as Json;
  return rest;
}

const errorResponse = { description: 'Error', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } };

/** OpenAPI 3.1 document generated from the protocol's zod schemas; served at /api/v1/openapi.json. */
export function buildOpenApi(version: string): Json {
  const schemas: Json = { Error: schema(ErrorBody) };
  const paths: Json = {};
  for (const k of KINDS) {
    schemas[k.kind] = schema(k.schema);
    schemas[`${k.kind}Input`] = schema(k.input, 'input');
    const ref = { $ref: `#/components/schemas/${k.kind}` };
    const inputRef = { $ref: `#/components/schemas/${k.kind}Input` };
    const ok = (s: Json, description = 'OK') => ({ description, content: { 'application/json': { schema: s } } });
    const listSchema = {
      type: 'object',
      properties: {
        apiVersion: { type: 'string' },
        kind: { const: `${k.kind}List` },
        items: { type: 'array', items: ref },
        metadata: { type: 'object', properties: { continue: { type: 'string' } } },
      },
    };
    const nameParam = { name: 'name', in: 'path', required: true, schema: { type: 'string' } };
    const coll: Json = {
      get: {
        operationId: `list${k.kind}`,
        tags: [k.kind],
        parameters: [
          { name: 'labelSelector', in: 'query', schema: { type: 'string' }, description: 'k=v, k!=v, k, !k, k in (a,b), k notin (a,b); comma-separated (AND)' },
          {
            name: 'fieldSelector',
            in: 'query',
            schema: { type: 'string' },
            description: `field=value, field==value, field!=value; comma-separated (AND). Fields: ${['metadata.name', 'metadata.project', ...(FIELD_SELECTORS[k.kind] ?? [])].join(', ')}. Anything else is InvalidFieldSelector.`,
          },
          { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 1000 } },
          { name: 'continue', in: 'query', schema: { type: 'string' } },
        ],
        responses: { 200: ok(listSchema), default: errorResponse },
      },
    };
    if (k.creatable)
      coll.post = {
        operationId: `create${k.kind}`,
        tags: [k.kind],
        requestBody: { required: true, content: { 'application/json': { schema: inputRef } } },
        responses: { 201: ok(ref, 'Created'), default: errorResponse },
      };
    paths[`/api/v1/${k.plural}`] = coll;
    paths[`/api/v1/${k.plural}/{name}`] = {
      parameters: [nameParam],
      get: { operationId: `get${k.kind}`, tags: [k.kind], responses: { 200: ok(ref), default: errorResponse } },
      put: {
        operationId: `replace${k.kind}`,
        tags: [k.kind],
        requestBody: { required: true, content: { 'application/json': { schema: inputRef } } },
        responses: { 200: ok(ref), default: errorResponse },
      },
      patch: {
        operationId: `patch${k.kind}`,
        tags: [k.kind],
        requestBody: { required: true, content: { 'application/merge-patch+json': { schema: { type: 'object' } } } },
        responses: { 200: ok(ref), default: errorResponse },
      },
      delete: { operationId: `delete${k.kind}`, tags: [k.kind], responses: { 200: ok(ref), default: errorResponse } },
    };
    for (const verb of k.verbs) {
      paths[`/api/v1/${k.plural}/{name}/${verb}`] = {
        parameters: [nameParam],
        post: { operationId: `${verb}${k.kind}`, tags: [k.kind], responses: { 200: ok(ref), default: errorResponse } },
      };
    }
  }
  schemas.RegisterRequest = schema(RegisterRequest, 'input');
  schemas.RegisterResponse = schema(RegisterResponse);
  paths[AGENT_REGISTER_PATH] = {
    post: {
      operationId: 'registerAgent',
      tags: ['Agent'],
      security: [],
      requestBody: { required: true, content: { 'application/json': { schema: { $ref: '#/components/schemas/RegisterRequest' } } } },
      responses: {
        200: { description: 'Registered', content: { 'application/json': { schema: { $ref: '#/components/schemas/RegisterResponse' } } } },
        default: errorResponse,
      },
    },
  };
  paths[AGENT_CONNECT_PATH] = {
    get: {
      operationId: 'connectAgent',
      tags: ['Agent'],
      security: [],
      description: 'WebSocket upgrade. Authorization: Bearer <JWT signed by the device key, aud edgeplane-connect>. Messages: see docs/architecture.md.',
      responses: { 101: { description: 'Switching protocols' }, default: errorResponse },
    },
  };
  addRegistrationPaths(paths, schemas, schema, errorResponse);
  addRemoteSessionPaths(paths, schemas, schema, errorResponse);
  addVirtPaths(paths, schemas, schema, errorResponse);
  addOperationPaths(paths, schemas, schema, errorResponse);
  addFleetPaths(paths, schemas, schema, errorResponse);
  return {
    openapi: '3.1.0',
    info: { title: 'Edgeplane API', version, license: { name: 'Apache-2.0', identifier: 'Apache-2.0' } },
    servers: [{ url: '/' }],
    security: [{ bearer: [] }],
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } }, schemas },
    paths,
  };
}
