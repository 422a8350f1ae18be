/** Columns every resource table has. JSON is stored as text so both dialects read it the same way. */
export interface ResourceColumns {
  name: string;
  uid: string;
  project: string;
  labels: string;
  annotations: string;
  generation: number;
  resource_version: number;
  created_at: string;
  updated_at: string;
  spec: string;
  status: string;
}

export interface ProjectTable extends ResourceColumns {}
export interface UserTable extends ResourceColumns {}
export interface ApiTokenTable extends ResourceColumns {
  token_hash: string;
  user_name: string;
  /** uid of the user the token was issued to: a user re-created under the same name never inherits it. */
  user_uid: string | null;
  expires_at: string | null;
  last_used_at: string | null;
}
export interface RegistrationTokenTable extends ResourceColumns {
  token_hash: string;
  uses: number;
  max_uses: number | null;
  expires_at: string | null;
  revoked_at: string | null;
  last_used_at: string | null;
}
export interface EdgeHostTable extends ResourceColumns {
  device_uid: string;
  public_key: string;
  pending_public_key: string | null;
  state: string;
  connectivity: string;
  last_seen: string | null;
  /** sha256 of the one-time pairing key of a pre-registered host; cleared when the device uses it. */
  pairing_key_hash: string | null;
  /** Operator requests to try OS images again (retry, reset, joining a cluster): sent as spec.os.retry. Defaults to 0. */
  os_retry?: number;
  /** The server replica holding the host's channel while it is online (replicas table); null otherwise. */
  replica?: string | null;
}
export interface EventTable extends ResourceColumns {
  involved_kind: string;
  involved_name: string;
  /** Set for agent events: `<host>/<agent event id>`, so a re-sent queued event is stored once. */
  dedupe_key: string | null;
  /** uid of the involved object when the event was recorded: a re-created object with the same name does not inherit it. */
  involved_uid: string | null;
  /** When it happened (the event's timestamp, never later than when it was recorded); lists sort by it. */
  event_time: string;
}
export interface ClusterProfileTable extends ResourceColumns {}
export interface ClusterProfileRevisionTable {
  profile: string;
  revision: number;
  /** The profile spec at this revision, with layers.os.digest pinned. Never updated. */
  spec: string;
  created_at: string;
}
export interface ClusterTable extends ResourceColumns {}
/** Cluster secrets (join token, admin kubeconfig), AES-256-GCM encrypted (see cluster/secret-box.ts). */
export interface ClusterSecretTable {
  cluster: string;
  name: string;
  ciphertext: string;
  updated_at: string;
}
/** Steps the cluster controller has taken, one row each, so a restart never repeats one. */
/** A cluster upgrade (server/src/cluster/upgrade/); `plan` is JSON (nodes, classes, pre-upgrade host specs). */
export interface ClusterUpgradeTable {
  cluster: string;
  id: number;
  generation: number;
  from_revision: number | null;
  to_revision: number;
  /** Staging | Rolling | Paused | Failed | Cancelled | Succeeded */
  state: string;
  plan: string;
  failed_host: string | null;
  message: string | null;
  created_at: string;
  updated_at: string;
}
export interface ClusterStepTable {
  cluster: string;
  step: string;
  host: string | null;
  created_at: string;
}
/** A VM of a virtualized cluster (cluster/virtualized/). vcpus/memory_mib: the size the appliance was told. */
export interface ClusterVmTable {
  cluster: string;
  vm: string;
  host: string;
  uuid: string;
  appliance: string;
  vcpus: number;
  memory_mib: number;
  created_at: string;
}
export interface Database {
  projects: ProjectTable;
  users: UserTable;
  api_tokens: ApiTokenTable;
  registration_tokens: RegistrationTokenTable;
  edge_hosts: EdgeHostTable;
  cluster_profiles: ClusterProfileTable;
  cluster_profile_revisions: ClusterProfileRevisionTable;
  clusters: ClusterTable;
  cluster_secrets: ClusterSecretTable;
  cluster_steps: ClusterStepTable;
  cluster_upgrades: ClusterUpgradeTable;
  cluster_vms: ClusterVmTable;
  events: EventTable;
  pairings: PairingTable;
  remote_sessions: RemoteSessionTable;
  audit_log: AuditLogTable;
  sites: SiteTable;
  rollouts: RolloutTable;
  connect_token_uses: ConnectTokenUseTable;
  replicas: ReplicaTable;
  rate_limit_buckets: RateLimitBucketTable;
  controller_leases: ControllerLeaseTable;
}

/** Who runs the controllers: `holder` (a replica id) until `expires_at`; `epoch` counts holders. */
export interface ControllerLeaseTable {
  name: string;
  holder: string;
  epoch: number;
  expires_at: string;
}

/** A running server replica; it renews `expires_at`, and its hosts go offline once that passed. */
export interface ReplicaTable {
  id: string;
  started_at: string;
  expires_at: string;
  /** Where the other replicas reach this one (remote sessions proxied between replicas). */
  url?: string | null;
}
/** A token bucket shared by all replicas: `tokens` left at `at` (epoch milliseconds). */
export interface RateLimitBucketTable {
  key: string;
  tokens: number;
  at: number;
}

export interface SiteTable extends ResourceColumns {}
/** A connect token's id (jti), kept until the token expires (epoch seconds) so it is never accepted twice. */
export interface ConnectTokenUseTable {
  jti: string;
  expires_at: number;
}
export interface RolloutTable extends ResourceColumns {
  /** Mirrors status.phase (Pending, Progressing, ..., Succeeded, Failed, Aborted). */
  phase: string;
}

export interface RemoteSessionTable extends ResourceColumns {
  host: string;
  user_name: string;
  /** pending | active | ended | refused; sessions left active by a stopped server are ended on start. */
  phase: string;
  /** The replica serving the session (holding the host's agent channel); other replicas proxy to it. */
  replica?: string | null;
}
export interface AuditLogTable {
  seq: number;
  time: string;
  actor: string;
  action: string;
  target: string;
  reason: string | null;
  details: string;
  prev_hash: string;
  hash: string;
}

/** At-the-edge pairing sessions (not a resource kind: short-lived, never listed through the API). */
export interface PairingTable {
  id: string;
  code: string;
  device_uid: string;
  public_key: string;
  inventory: string;
  agent_version: string;
  poll_secret_hash: string;
  /** pending -> claimed -> completed; expiry is computed from expires_at. */
  state: string;
  created_at: string;
  expires_at: string;
  source_ip: string;
  claimed_by: string | null;
  claimed_at: string | null;
  project: string | null;
  site: string | null;
  labels: string | null;
  host_name: string | null;
}

/** Tables holding resource kinds (all share ResourceColumns). */
export type ResourceTableName = Exclude<
  keyof Database,
  | 'pairings'
  | 'cluster_profile_revisions'
  | 'cluster_secrets'
  | 'cluster_steps'
  | 'cluster_vms'
  | 'cluster_upgrades'
  | 'connect_token_uses'
  | 'replicas'
  | 'rate_limit_buckets'
  | 'controller_leases'
>;
