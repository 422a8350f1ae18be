/**
 * The API's kinds as plain data: names, actions and table columns, without their schemas. Commands
 * that only name kinds and print tables (get, describe, delete, actions, completion) import this
 * module (`@edgeplane/protocol/kind-table`) so they start without building every zod schema;
 * kinds.ts adds the schemas.
 */
export interface KindMeta {
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  /** Whether POST /api/v1/<plural> creates one (EdgeHosts come from registration, Events from the system). */
  creatable: boolean;
  /** Actions: POST /api/v1/<plural>/<name>/<verb>. */
  verbs: string[];
  /** Columns for table output: header and a path into the object. */
  columns: { header: string; path: string }[];
  /** Extra columns for `get -o wide` (after `columns`). */
  wideColumns?: { header: string; path: string }[];
}

export const KIND_TABLE: readonly KindMeta[] = [
  {
    kind: 'EdgeHost',
    plural: 'edgehosts',
    singular: 'edgehost',
    shortNames: ['host', 'hosts', 'eh'],
    // Created by registration, or by an operator pre-registering a device UID (state pre-registered).
    creatable: true,
    verbs: ['approve', 'reject', 'approve-key', 'reject-key', 'retry'],
    columns: [
      { header: 'NAME', path: 'metadata.name' },
      { header: 'STATE', path: 'status.state' },
      { header: 'CONNECTIVITY', path: 'status.connectivity' },
      { header: 'SITE', path: 'spec.site' },
      { header: 'AGENT', path: 'status.agentVersion' },
      { header: 'LAST SEEN', path: 'status.lastSeen' },
    ],
    // What an operator needs to decide on a pending host: which device it is and how it came in.
    wideColumns: [
      { header: 'PROJECT', path: 'metadata.project' },
      { header: 'DEVICE UID', path: 'status.deviceUid' },
      { header: 'HOSTNAME', path: 'status.inventory.hostname' },
      { header: 'MODEL', path: 'status.inventory.dmi.productName' },
      { header: 'CPUS', path: 'status.inventory.cpu.cores' },
      { header: 'MEMORY', path: 'status.inventory.memoryBytes' },
      { header: 'VIA', path: 'status.registeredVia' },
      // Appliances (Virtualized Edge): what their libvirt has free for VMs.
      { header: 'APPLIANCE', path: 'status.agent.managers.virt.libvirt.free' },
      // Host OS profiles: the assigned profile revision and whether the host booted its image.
      { header: 'OS PROFILE', path: 'spec.osProfile' },
      { header: 'OS UP TO DATE', path: 'status.os.upToDate' },
    ],
  },
  {
    kind: 'RegistrationToken',
    plural: 'registrationtokens',
    singular: 'registrationtoken',
    shortNames: ['token', 'tokens', 'rt'],
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
    kind: 'ClusterProfile',
    plural: 'clusterprofiles',
    singular: 'clusterprofile',
    shortNames: ['profile', 'profiles', 'cp'],
    creatable: true,
    verbs: [],
    columns: [
      { header: 'NAME', path: 'metadata.name' },
      { header: 'REVISION', path: 'status.latestRevision' },
      { header: 'DISTRIBUTION', path: 'spec.layers.kubernetes.distribution' },
      { header: 'VERSION', path: 'spec.layers.kubernetes.version' },
      { header: 'OS IMAGE', path: 'spec.layers.os.image' },
      { header: 'CREATED', path: 'metadata.createdAt' },
    ],
  },
  {
    kind: 'Cluster',
    plural: 'clusters',
    singular: 'cluster',
    shortNames: [],
    creatable: true,
    // Upgrade actions: POST /api/v1/clusters/<name>/<verb>, served by cluster/upgrade/upgrade.routes.ts.
    verbs: ['pause', 'resume', 'cancel', 'retry'],
    columns: [
      { header: 'NAME', path: 'metadata.name' },
      { header: 'PHASE', path: 'status.phase' },
      { header: 'PROFILE', path: 'spec.profile.name' },
      { header: 'REVISION', path: 'spec.profile.revision' },
      { header: 'NODES', path: 'status.desiredNodes' },
      { header: 'ENDPOINT', path: 'status.controlPlaneEndpoint' },
      { header: 'CREATED', path: 'metadata.createdAt' },
    ],
  },
  {
    kind: 'Event',
    plural: 'events',
    singular: 'event',
    shortNames: ['ev'],
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
  {
    kind: 'RemoteSession',
    plural: 'remotesessions',
    singular: 'remotesession',
    shortNames: ['session', 'sessions', 'rs'],
    // Created by POST /api/v1/edgehosts/<name>/sessions, which checks permission and reason.
    creatable: false,
    verbs: ['terminate'],
    columns: [
      { header: 'NAME', path: 'metadata.name' },
      { header: 'HOST', path: 'spec.host' },
      { header: 'KIND', path: 'spec.kind' },
      { header: 'USER', path: 'spec.user' },
      { header: 'PHASE', path: 'status.phase' },
      { header: 'END', path: 'status.endReason' },
      { header: 'CREATED', path: 'metadata.createdAt' },
    ],
  },
  {
    kind: 'Site',
    plural: 'sites',
    singular: 'site',
    shortNames: [],
    creatable: true,
    verbs: [],
    columns: [
      { header: 'NAME', path: 'metadata.name' },
      { header: 'TIMEZONE', path: 'spec.timezone' },
      { header: 'WINDOW OPEN', path: 'status.windowOpen' },
      { header: 'NEXT WINDOW', path: 'status.nextWindowAt' },
      { header: 'ADDRESS', path: 'spec.address' },
    ],
  },
  {
    kind: 'Rollout',
    plural: 'rollouts',
    singular: 'rollout',
    shortNames: ['ro'],
    creatable: true,
    verbs: ['pause', 'resume', 'abort', 'approve'],
    columns: [
      { header: 'NAME', path: 'metadata.name' },
      { header: 'PHASE', path: 'status.phase' },
      { header: 'PROFILE', path: 'spec.profile.name' },
      { header: 'REVISION', path: 'spec.profile.revision' },
      { header: 'BATCH', path: 'status.currentBatch' },
      { header: 'SUCCEEDED', path: 'status.counts.succeeded' },
      { header: 'FAILED', path: 'status.counts.failed' },
      { header: 'TOTAL', path: 'status.counts.total' },
    ],
  },
];

/** Finds a kind by Kind, plural, singular or short name (case-insensitive), as kubectl does. */
export function findKindMeta(nameOrAlias: string): KindMeta | undefined {
  const n = nameOrAlias.toLowerCase();
  return KIND_TABLE.find((k) => k.kind.toLowerCase() === n || k.plural === n || k.singular === n || k.shortNames.includes(n));
}
