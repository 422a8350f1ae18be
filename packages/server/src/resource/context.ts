import type { Role } from '@edgeplane/protocol';
import type { FastifyBaseLogger } from 'fastify';
import type { Change } from '../watch/change-bus.js';

/** Who is asking, for services that record or authorize by caller. */
export interface RequestContext {
  user: string;
  role: Role;
  log: FastifyBaseLogger;
  hosts?: HostNotifier;
  /** Collects committed-to-be changes for watchers; the caller publishes them after commit. */
  changes?: ChangeSink;
  /** Collects audit entries of the write; the caller appends them to the audit log after commit. */
  audit?: AuditSink;
  /** The server URL VMs' seeds carry (--public-url, else the listening address); virtualized clusters check it. */
  vmServerUrl?: string;
  /** This server's OS image resolver (registry policy and cache); profile writes need it. */
  images?: ImageDigests;
}

/** Resolves an OS image reference to its manifest digest (cluster-profile/oci-resolver.ts). */
export interface ImageDigests {
  resolveDigest(ref: string, opts?: { insecure?: boolean }): Promise<string>;
  /** The digest and the manifest's annotations (none for a reference already pinned by digest). */
  resolveImage(ref: string, opts?: { insecure?: boolean }): Promise<{ digest: string; annotations: Record<string, string> }>;
}

/** Where services record security-relevant writes (appended with audit/audit.service.ts appendAudit). */
export interface AuditSink {
  record(entry: { action: string; target: string; details?: Record<string, unknown> }): void;
}

/** Where services record what they changed (see watch/change-bus.ts). */
export interface ChangeSink {
  record(change: Change): void;
}

export type HostChange = 'approved' | 'rejected' | 'deleted' | 'spec';

/** Lets services tell the live agent connections of this server about a change to a host. */
export interface HostNotifier {
  hostChanged(name: string, change: HostChange): void;
}
