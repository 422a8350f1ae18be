import type { z } from 'zod';
import { InstallerRequest } from './installer.js';
import { AGENT_PAIRINGS_PATH, PairingClaimRequest, PairingClaimResponse, PairingPollResponse, PairingStartRequest, PairingStartResponse } from './pairing.js';

type Json = Record<string, unknown>;

/** OpenAPI paths of the registration endpoints that are not generic resource routes (pairing, installer). */
export function addRegistrationPaths(paths: Json, schemas: Json, schema: (s: z.ZodType, io?: 'input' | 'output') => Json, errorResponse: Json): void {
  const json = (name: string) => ({ 'application/json': { schema: { $ref: `#/components/schemas/${name}` } } });
  schemas.PairingStartRequest = schema(PairingStartRequest, 'input');
  schemas.PairingStartResponse = schema(PairingStartResponse);
  schemas.PairingPollResponse = schema(PairingPollResponse);
  schemas.PairingClaimRequest = schema(PairingClaimRequest, 'input');
  schemas.PairingClaimResponse = schema(PairingClaimResponse);
  schemas.InstallerRequest = schema(InstallerRequest, 'input');
  paths[AGENT_PAIRINGS_PATH] = {
    post: {
      operationId: 'startPairing',
      tags: ['Agent'],
      security: [],
      requestBody: { required: true, content: json('PairingStartRequest') },
      responses: { 201: { description: 'Pairing session opened', content: json('PairingStartResponse') }, default: errorResponse },
    },
  };
  paths[`${AGENT_PAIRINGS_PATH}/{id}`] = {
    get: {
      operationId: 'pollPairing',
      tags: ['Agent'],
      security: [],
      description: 'Authorization: Bearer <pollSecret>. With waitSeconds (max 30) the server answers when the state changes or the time is up.',
      parameters: [
        { name: 'id', in: 'path', required: true, schema: { type: 'string' } },
        { name: 'waitSeconds', in: 'query', schema: { type: 'integer', minimum: 0, maximum: 30 } },
      ],
      responses: { 200: { description: 'OK', content: json('PairingPollResponse') }, default: errorResponse },
    },
  };
  paths['/api/v1/pairings/{code}/claim'] = {
    post: {
      operationId: 'claimPairing',
      tags: ['EdgeHost'],
      description: 'Claim the pairing code a device shows (permission edgehosts:create). Rate-limited per source and per code (429 RateLimited, Retry-After).',
      parameters: [{ name: 'code', in: 'path', required: true, schema: { type: 'string' } }],
      requestBody: { content: json('PairingClaimRequest') },
      responses: { 200: { description: 'Claimed', content: json('PairingClaimResponse') }, default: errorResponse },
    },
  };
  paths['/api/v1/registrationtokens/{name}/installer'] = {
    post: {
      operationId: 'installerRegistrationToken',
      tags: ['RegistrationToken'],
      description: 'Installer artifacts for the token: cloud-config user-data (text/yaml); ?format=iso a NoCloud seed ISO; ?format=json every seed file.',
      parameters: [
        { name: 'name', in: 'path', required: true, schema: { type: 'string' } },
        { name: 'format', in: 'query', schema: { enum: ['user-data', 'iso', 'json'] } },
      ],
      requestBody: { required: true, content: json('InstallerRequest') },
      responses: {
        200: {
          description: 'user-data, seed ISO or seed files',
          content: { 'text/yaml': { schema: { type: 'string' } }, 'application/x-iso9660-image': { schema: { type: 'string', format: 'binary' } } },
        },
        default: errorResponse,
      },
    },
  };
}
