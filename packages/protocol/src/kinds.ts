import type { z } from 'zod';
import { EdgeHost, EdgeHostInput, EdgeHostSpec } from './edgehost.js';
import { Event, EventInput, EventSpec } from './event.js';
import { Project, ProjectInput, ProjectSpec } from './project.js';
import { RegistrationToken, RegistrationTokenInput, RegistrationTokenSpec } from './registration-token.js';
import { ApiToken, ApiTokenInput, ApiTokenSpec, User, UserInput, UserSpec } from './user.js';

export interface KindInfo {
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  schema: z.ZodType;
  input: z.ZodType;
  spec: z.ZodType;
  /** Whether POST /api/v1/<plural> creates one (EdgeHosts come from registration, Events from the system). */
  creatable: boolean;
  /** Actions: POST /api/v1/<plural>/<name>/<verb>. */
  verbs: string[];
  /** Columns for table output: header and a path into the object. */
  columns: { header: string; path: string }[];
}

export const KINDS: KindInfo[] = [
  {
    kind: 'EdgeHost',
    plural: 'edgehosts',
    singular: 'edgehost',
    shortNames: ['host', 'hosts', 'eh'],
    schema: EdgeHost,
    input: EdgeHostInput,
    spec: EdgeHostSpec,
    creatable: false,
    verbs: ['approve', 'reject'],
    columns: [
      { header: 'NAME', path: 'metadata.name' },
      { header: 'STATE', path: 'status.state' },
      { header: 'CONNECTIVITY', path: 'status.connectivity' },
      { header: 'SITE', path: 'spec.site' },
      { header: 'AGENT', path: 'status.agentVersion' },
      { header: 'LAST SEEN', path: 'status.lastSeen' },
    ],
  },
  {
    kind: 'RegistrationToken',
    plural: 'registrationtokens',
    singular: 'registrationtoken',
    shortNames: ['token', 'tokens', 'rt'],
    schema: RegistrationToken,
    input: RegistrationTokenInput,
    spec: RegistrationTokenSpec,
    creatable: true,
    verbs: ['revoke'],
    columns: [
      { header: 'NAME', path: 'metadata.name' },
      { header: 'STATE', path: 'status.state' },
      { header: 'AUTO-APPROVE', path: 'spec.autoApprove' },
      { header: 'SITE', path: 'spec.site' },
      { header: 'USES', path: 'status.uses' },
      { header: 'MAX', path: 'spec.maxUses' },
      { header: 'EXPIRES', path: 'spec.expiresAt' },
    ],
  },
  {
    kind: 'Project',
    plural: 'projects',
    singular: 'project',
    shortNames: ['proj'],
    schema: Project,
    input: ProjectInput,
    spec: ProjectSpec,
    creatable: true,
    verbs: [],
    columns: [
      { header: 'NAME', path: 'metadata.name' },
      { header: 'DESCRIPTION', path: 'spec.description' },
      { header: 'CREATED', path: 'metadata.createdAt' },
    ],
  },
  {
    kind: 'User',
    plural: 'users',
    singular: 'user',
    shortNames: [],
    schema: User,
    input: UserInput,
    spec: UserSpec,
    creatable: true,
    verbs: [],
    columns: [
      { header: 'NAME', path: 'metadata.name' },
      { header: 'ROLE', path: 'spec.role' },
      { header: 'DISABLED', path: 'spec.disabled' },
      { header: 'CREATED', path: 'metadata.createdAt' },
    ],
  },
  {
    kind: 'ApiToken',
    plural: 'apitokens',
    singular: 'apitoken',
    shortNames: [],
    schema: ApiToken,
    input: ApiTokenInput,
    spec: ApiTokenSpec,
    creatable: true,
    verbs: [],
    columns: [
      { header: 'NAME', path: 'metadata.name' },
      { header: 'USER', path: 'spec.user' },
      { header: 'PREFIX', path: 'status.prefix' },
      { header: 'EXPIRES', path: 'spec.expiresAt' },
      { header: 'LAST USED', path: 'status.lastUsedAt' },
    ],
  },
  {
    kind: 'Event',
    plural: 'events',
    singular: 'event',
    shortNames: ['ev'],
    schema: Event,
    input: EventInput,
    spec: EventSpec,
    creatable: false,
    verbs: [],
    columns: [
      { header: 'LAST SEEN', path: 'status.lastTimestamp' },
      { header: 'TYPE', path: 'spec.type' },
      { header: 'REASON', path: 'spec.reason' },
      { header: 'OBJECT', path: 'spec.involvedObject.name' },
      { header: 'MESSAGE', path: 'spec.message' },
    ],
  },
];

/** Finds a kind by Kind, plural, singular or short name (case-insensitive), as kubectl does. */
export function findKind(nameOrAlias: string): KindInfo | undefined {
  const n = nameOrAlias.toLowerCase();
  return KINDS.find((k) => k.kind.toLowerCase() === n || k.plural === n || k.singular === n || k.shortNames.includes(n));
}
