import type { z } from 'zod';
import { FLEET_SUMMARY_PATH, FleetSummary } from './fleet.js';

type Json = Record<string, unknown>;

/** OpenAPI path of the fleet summary (the console's site map, fleet health and versions). */
export function addFleetPaths(paths: Json, schemas: Json, schema: (s: z.ZodType, io?: 'input' | 'output') => Json, errorResponse: Json): void {
  schemas.FleetSummary = schema(FleetSummary);
  paths[FLEET_SUMMARY_PATH] = {
    get: {
      operationId: 'fleetSummary',
      tags: ['Console'],
      summary: "Every site's health, host and cluster counts and position, and the OS images and Kubernetes versions cluster nodes run",
      description: 'Needs sites:list and edgehosts:list; cluster counts and versions are included when the caller may list clusters.',
      responses: {
        200: { description: 'OK', content: { 'application/json': { schema: { $ref: '#/components/schemas/FleetSummary' } } } },
        default: errorResponse,
      },
    },
  };
}
