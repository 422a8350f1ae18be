import type { z } from 'zod';
import { Cluster, ClusterInput, ClusterSpec } from './cluster.js';
import { ClusterProfile, ClusterProfileInput, ClusterProfileSpec } from './cluster-profile.js';
import { EdgeHost, EdgeHostInput, EdgeHostSpec } from './edgehost.js';
import { Event, EventInput, EventSpec } from './event.js';
import { KIND_TABLE, type KindMeta } from './kind-table.js';
import { Project, ProjectInput, ProjectSpec } from './project.js';
import { RegistrationToken, RegistrationTokenInput, RegistrationTokenSpec } from './registration-token.js';
import { RemoteSession, RemoteSessionInput, RemoteSessionSpec } from './remote-session.js';
import { Rollout, RolloutInput, RolloutSpec } from './rollout.js';
import { Site, SiteInput, SiteSpec } from './site.js';
import { ApiToken, ApiTokenInput, ApiTokenSpec, User, UserInput, UserSpec } from './user.js';

/** A kind with its schemas: the whole resource, what a client may send, and the spec. */
export interface KindInfo extends KindMeta {
  schema: z.ZodType;
  input: z.ZodType;
  spec: z.ZodType;
}

const SCHEMAS: Record<string, Pick<KindInfo, 'schema' | 'input' | 'spec'>> = {
  EdgeHost: { schema: EdgeHost, input: EdgeHostInput, spec: EdgeHostSpec },
  RegistrationToken: { schema: RegistrationToken, input: RegistrationTokenInput, spec: RegistrationTokenSpec },
  Project: { schema: Project, input: ProjectInput, spec: ProjectSpec },
  User: { schema: User, input: UserInput, spec: UserSpec },
  ApiToken: { schema: ApiToken, input: ApiTokenInput, spec: ApiTokenSpec },
  ClusterProfile: { schema: ClusterProfile, input: ClusterProfileInput, spec: ClusterProfileSpec },
  Cluster: { schema: Cluster, input: ClusterInput, spec: ClusterSpec },
  Event: { schema: Event, input: EventInput, spec: EventSpec },
  RemoteSession: { schema: RemoteSession, input: RemoteSessionInput, spec: RemoteSessionSpec },
  Site: { schema: Site, input: SiteInput, spec: SiteSpec },
  Rollout: { schema: Rollout, input: RolloutInput, spec: RolloutSpec },
};

export const KINDS: KindInfo[] = KIND_TABLE.map((k) => ({ ...k, ...SCHEMAS[k.kind] }));

/** Finds a kind by Kind, plural, singular or short name (case-insensitive), as kubectl does. */
export function findKind(nameOrAlias: string): KindInfo | undefined {
  const n = nameOrAlias.toLowerCase();
  return KINDS.find((k) => k.kind.toLowerCase() === n || k.plural === n || k.singular === n || k.shortNames.includes(n));
}
