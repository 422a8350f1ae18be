import type { ResourceTableName } from './schema.js';

/**
 * The table of each kind events can be about, so an event records the uid of the object it is
 * about (events of a deleted object never show under a new one with the same name).
 */
export const EVENT_KIND_TABLES: readonly (readonly [string, Exclude<ResourceTableName, 'events'>])[] = [
  ['EdgeHost', 'edge_hosts'],
  ['Cluster', 'clusters'],
  ['ClusterProfile', 'cluster_profiles'],
  ['Rollout', 'rollouts'],
  ['Site', 'sites'],
  ['RemoteSession', 'remote_sessions'],
  ['RegistrationToken', 'registration_tokens'],
  ['Project', 'projects'],
  ['User', 'users'],
  ['ApiToken', 'api_tokens'],
];
