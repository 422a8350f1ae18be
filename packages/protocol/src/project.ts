import { z } from 'zod';
import { resourceInputSchema, resourceSchema } from './meta.js';

export const DEFAULT_PROJECT = 'default';

export const ProjectSpec = z.object({ description: z.string().max(1024).optional() }).strict();
export const ProjectStatus = z.object({});
export const Project = resourceSchema('Project', ProjectSpec, ProjectStatus);
export type Project = z.infer<typeof Project>;
export const ProjectInput = resourceInputSchema('Project', ProjectSpec);
