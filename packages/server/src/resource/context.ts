import type { Role } from '@edgeplane/protocol';
import type { FastifyBaseLogger } from 'fastify';

/** Who is asking, for services that record or authorize by caller. */
export interface RequestContext {
  user: string;
  role: Role;
  log: FastifyBaseLogger;
  hosts?: HostNotifier;
}

export type HostChange = 'approved' | 'rejected' | 'deleted' | 'spec';

/** Lets services tell the live agent connections of this server about a change to a host. */
export interface HostNotifier {
  hostChanged(name: string, change: HostChange): void;
}
