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
}
export interface EventTable extends ResourceColumns {
  involved_kind: string;
  involved_name: string;
  /** Set for agent events: `<host>/<agent event id>`, so a re-sent queued event is stored once. */
  dedupe_key: string | null;
}
export interface Database {
  projects: ProjectTable;
  users: UserTable;
  api_tokens: ApiTokenTable;
  registration_tokens: RegistrationTokenTable;
  edge_hosts: EdgeHostTable;
  events: EventTable;
}

export type ResourceTableName = keyof Database;
