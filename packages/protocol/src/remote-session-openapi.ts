import type { z } from 'zod';
import { AuditList, AuditVerifyResult } from './audit.js';
import { CreateSessionRequest } from './remote-session.js';

type Json = Record<string, unknown>;

/** OpenAPI paths of remote sessions and the audit log (see docs/architecture.md "Remote sessions and the audit log"). */
export function addRemoteSessionPaths(paths: Json, schemas: Json, schema: (s: z.ZodType, io?: 'input' | 'output') => Json, errorResponse: Json): void {
  schemas.CreateSessionRequest = schema(CreateSessionRequest, 'input');
  schemas.AuditEntryList = schema(AuditList);
  schemas.AuditVerifyResult = schema(AuditVerifyResult);
  const json = (name: string) => ({ 'application/json': { schema: { $ref: `#/components/schemas/${name}` } } });
  const host = { name: 'name', in: 'path', required: true, schema: { type: 'string' } };
  const id = { name: 'id', in: 'path', required: true, schema: { type: 'string' } };
  paths['/api/v1/edgehosts/{name}/sessions'] = {
    post: {
      operationId: 'createRemoteSession',
      tags: ['RemoteSession'],
      description:
        'Opens a remote session (shell, exec, logs, bundle) on a connected host. Needs hosts:remote-shell (admins; operators if granted) and a reason. ' +
        'The answer carries status.url (operator WebSocket) and a one-time status.attachTicket.',
      parameters: [host],
      requestBody: { required: true, content: json('CreateSessionRequest') },
      responses: { 201: { description: 'Created', content: json('RemoteSession') }, default: errorResponse },
    },
  };
  paths['/api/v1/remotesessions/{id}/attach'] = {
    get: {
      operationId: 'attachRemoteSession',
      tags: ['RemoteSession'],
      description: 'WebSocket upgrade for the operator: Authorization: Bearer <API token>, or ?ticket=<attachTicket>. Frames: see docs/architecture.md.',
      parameters: [id, { name: 'ticket', in: 'query', required: false, schema: { type: 'string' } }],
      responses: { 101: { description: 'Switching protocols' }, default: errorResponse },
    },
  };
  paths['/api/v1/remotesessions/{id}/terminate'] = {
    post: {
      operationId: 'terminateRemoteSession',
      tags: ['RemoteSession'],
      description: 'Ends a session now (its owner, or an admin); the recording is kept.',
      parameters: [id],
      responses: { 200: { description: 'OK', content: json('RemoteSession') }, default: errorResponse },
    },
  };
  paths['/api/v1/remotesessions/{id}/recording'] = {
    get: {
      operationId: 'getRemoteSessionRecording',
      tags: ['RemoteSession'],
      parameters: [id],
      responses: { 200: { description: 'asciicast v2', content: { 'application/x-asciicast': { schema: { type: 'string' } } } }, default: errorResponse },
    },
  };
  paths['/api/v1/audit'] = {
    get: {
      operationId: 'listAudit',
      tags: ['Audit'],
      parameters: ['limit', 'continue', 'actor', 'action', 'target'].map((name) => ({ name, in: 'query', required: false, schema: { type: 'string' } })),
      responses: { 200: { description: 'OK', content: json('AuditEntryList') }, default: errorResponse },
    },
  };
  paths['/api/v1/audit/verify'] = {
    get: {
      operationId: 'verifyAudit',
      tags: ['Audit'],
      responses: { 200: { description: 'OK', content: json('AuditVerifyResult') }, default: errorResponse },
    },
  };
}
