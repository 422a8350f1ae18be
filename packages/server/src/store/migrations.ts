import { type CreateTableBuilder, type Kysely, type Migration, type MigrationProvider, Migrator, sql } from 'kysely';
import { EVENT_KIND_TABLES } from './event-kinds.js';
import { jsonText } from './json-field.js';

/** Adds the columns every resource table shares (see ResourceColumns). */
function resourceColumns<T extends string>(t: CreateTableBuilder<T, never>) {
  return t
    .addColumn('name', 'varchar(63)', (c) => c.primaryKey())
    .addColumn('uid', 'varchar(64)', (c) => c.notNull().unique())
    .addColumn('project', 'varchar(63)', (c) => c.notNull())
    .addColumn('labels', 'text', (c) => c.notNull())
    .addColumn('annotations', 'text', (c) => c.notNull())
    .addColumn('generation', 'integer', (c) => c.notNull())
    .addColumn('resource_version', 'integer', (c) => c.notNull())
    .addColumn('created_at', 'varchar(40)', (c) => c.notNull())
    .addColumn('updated_at', 'varchar(40)', (c) => c.notNull())
    .addColumn('spec', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull());
}

// Migrations are code, versioned by their key, forward-only: never edit one that has shipped; add the next.
// biome-ignore lint/suspicious/noExplicitAny: migrations run before (and independent of) the typed schema.
type AnyDb = Kysely<any>;
const migrations: Record<string, Migration> = {
  '0001_initial': {
    async up(db: AnyDb) {
      await resourceColumns(db.schema.createTable('projects')).execute();
      await resourceColumns(db.schema.createTable('users')).execute();
      await resourceColumns(db.schema.createTable('api_tokens'))
        .addColumn('token_hash', 'varchar(64)', (c) => c.notNull().unique())
        .addColumn('user_name', 'varchar(63)', (c) => c.notNull())
        .addColumn('expires_at', 'varchar(40)')
        .addColumn('last_used_at', 'varchar(40)')
        .execute();
      await resourceColumns(db.schema.createTable('registration_tokens'))
        .addColumn('token_hash', 'varchar(64)', (c) => c.notNull().unique())
        .addColumn('uses', 'integer', (c) => c.notNull())
        .addColumn('max_uses', 'integer')
        .addColumn('expires_at', 'varchar(40)')
        .addColumn('revoked_at', 'varchar(40)')
        .addColumn('last_used_at', 'varchar(40)')
        .execute();
      await resourceColumns(db.schema.createTable('edge_hosts'))
        .addColumn('device_uid', 'varchar(128)', (c) => c.notNull().unique())
        .addColumn('public_key', 'text', (c) => c.notNull())
        .addColumn('pending_public_key', 'text')
        .addColumn('state', 'varchar(32)', (c) => c.notNull())
        .addColumn('connectivity', 'varchar(16)', (c) => c.notNull())
        .addColumn('last_seen', 'varchar(40)')
        .execute();
      await resourceColumns(db.schema.createTable('events'))
        .addColumn('involved_kind', 'varchar(63)', (c) => c.notNull())
        .addColumn('involved_name', 'varchar(253)', (c) => c.notNull())
        .addColumn('dedupe_key', 'varchar(200)', (c) => c.unique())
        .execute();
      await db.schema.createIndex('events_involved').on('events').columns(['involved_kind', 'involved_name']).execute();
      await db.schema.createIndex('edge_hosts_connectivity').on('edge_hosts').column('connectivity').execute();
    },
  },
  '0002_clusters': {
    async up(db: AnyDb) {
      await resourceColumns(db.schema.createTable('cluster_profiles')).execute();
      await db.schema
        .createTable('cluster_profile_revisions')
        .addColumn('profile', 'varchar(63)', (c) => c.notNull())
        .addColumn('revision', 'integer', (c) => c.notNull())
        .addColumn('spec', 'text', (c) => c.notNull())
        .addColumn('created_at', 'varchar(40)', (c) => c.notNull())
        .addPrimaryKeyConstraint('cluster_profile_revisions_pk', ['profile', 'revision'])
        .execute();
      await resourceColumns(db.schema.createTable('clusters')).execute();
      await db.schema
        .createTable('cluster_secrets')
        .addColumn('cluster', 'varchar(63)', (c) => c.notNull())
        .addColumn('name', 'varchar(63)', (c) => c.notNull())
        .addColumn('ciphertext', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'varchar(40)', (c) => c.notNull())
        .addPrimaryKeyConstraint('cluster_secrets_pk', ['cluster', 'name'])
        .execute();
      await db.schema
        .createTable('cluster_steps')
        .addColumn('cluster', 'varchar(63)', (c) => c.notNull())
        .addColumn('step', 'varchar(160)', (c) => c.notNull())
        .addColumn('host', 'varchar(63)')
        .addColumn('created_at', 'varchar(40)', (c) => c.notNull())
        .addPrimaryKeyConstraint('cluster_steps_pk', ['cluster', 'step'])
        .execute();
    },
  },
  '0003_registration': {
    async up(db: AnyDb) {
      await db.schema.alterTable('edge_hosts').addColumn('pairing_key_hash', 'varchar(64)').execute();
      await db.schema
        .createTable('pairings')
        .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
        .addColumn('code', 'varchar(16)', (c) => c.notNull().unique())
        .addColumn('device_uid', 'varchar(128)', (c) => c.notNull())
        .addColumn('public_key', 'text', (c) => c.notNull())
        .addColumn('inventory', 'text', (c) => c.notNull())
        .addColumn('agent_version', 'varchar(64)', (c) => c.notNull())
        .addColumn('poll_secret_hash', 'varchar(64)', (c) => c.notNull())
        .addColumn('state', 'varchar(16)', (c) => c.notNull())
        .addColumn('created_at', 'varchar(40)', (c) => c.notNull())
        .addColumn('expires_at', 'varchar(40)', (c) => c.notNull())
        .addColumn('source_ip', 'varchar(64)', (c) => c.notNull())
        .addColumn('claimed_by', 'varchar(63)')
        .addColumn('claimed_at', 'varchar(40)')
        .addColumn('project', 'varchar(63)')
        .addColumn('site', 'varchar(63)')
        .addColumn('labels', 'text')
        .addColumn('host_name', 'varchar(63)')
        .execute();
      await db.schema.createIndex('pairings_expires').on('pairings').column('expires_at').execute();
    },
  },
  '0004_sessions_audit': {
    async up(db: AnyDb) {
      await resourceColumns(db.schema.createTable('remote_sessions'))
        .addColumn('host', 'varchar(63)', (c) => c.notNull())
        .addColumn('user_name', 'varchar(63)', (c) => c.notNull())
        .addColumn('phase', 'varchar(16)', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('remote_sessions_phase').on('remote_sessions').column('phase').execute();
      // Append-only: the application never updates or deletes rows; each row chains to the previous by hash.
      await db.schema
        .createTable('audit_log')
        .addColumn('seq', 'integer', (c) => c.primaryKey())
        .addColumn('time', 'varchar(40)', (c) => c.notNull())
        .addColumn('actor', 'varchar(128)', (c) => c.notNull())
        .addColumn('action', 'varchar(64)', (c) => c.notNull())
        .addColumn('target', 'varchar(256)', (c) => c.notNull())
        .addColumn('reason', 'text')
        .addColumn('details', 'text', (c) => c.notNull())
        .addColumn('prev_hash', 'varchar(64)', (c) => c.notNull())
        .addColumn('hash', 'varchar(64)', (c) => c.notNull())
        .execute();
    },
  },
  '0005_upgrades': {
    async up(db: AnyDb) {
      // One row per cluster upgrade (day-2 change); its per-node steps are cluster_steps rows 'u<id>:<host>:<step>'.
      await db.schema
        .createTable('cluster_upgrades')
        .addColumn('cluster', 'varchar(63)', (c) => c.notNull())
        .addColumn('id', 'integer', (c) => c.notNull())
        .addColumn('generation', 'integer', (c) => c.notNull())
        .addColumn('from_revision', 'integer')
        .addColumn('to_revision', 'integer', (c) => c.notNull())
        .addColumn('state', 'varchar(16)', (c) => c.notNull())
        .addColumn('plan', 'text', (c) => c.notNull())
        .addColumn('failed_host', 'varchar(63)')
        .addColumn('message', 'text')
        .addColumn('created_at', 'varchar(40)', (c) => c.notNull())
        .addColumn('updated_at', 'varchar(40)', (c) => c.notNull())
        .addPrimaryKeyConstraint('cluster_upgrades_pk', ['cluster', 'id'])
        .execute();
    },
  },
  '0006_virt': {
    async up(db: AnyDb) {
      // The VMs of virtualized clusters: the node (host) each became, its domain UUID (= device UID)
      // and the size the appliance was last told (a resize is rolled out one VM at a time).
      await db.schema
        .createTable('cluster_vms')
        .addColumn('cluster', 'varchar(63)', (c) => c.notNull())
        .addColumn('vm', 'varchar(63)', (c) => c.notNull())
        .addColumn('host', 'varchar(63)', (c) => c.notNull().unique())
        .addColumn('uuid', 'varchar(64)', (c) => c.notNull().unique())
        .addColumn('appliance', 'varchar(63)', (c) => c.notNull())
        .addColumn('vcpus', 'integer', (c) => c.notNull())
        .addColumn('memory_mib', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'varchar(40)', (c) => c.notNull())
        .addPrimaryKeyConstraint('cluster_vms_pk', ['cluster', 'vm'])
        .execute();
    },
  },
  '0007_rollouts_sites': {
    async up(db: AnyDb) {
      await resourceColumns(db.schema.createTable('sites')).execute();
      // `phase` mirrors status.phase so the controller finds unfinished rollouts without reading every status.
      await resourceColumns(db.schema.createTable('rollouts'))
        .addColumn('phase', 'varchar(20)', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('rollouts_phase').on('rollouts').column('phase').execute();
    },
  },
  '0008_connect_token_uses': {
    async up(db: AnyDb) {
      // Connect-token ids seen until they expire: a captured token is refused again after a restart too.
      await db.schema
        .createTable('connect_token_uses')
        .addColumn('jti', 'varchar(128)', (c) => c.primaryKey())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('connect_token_uses_expires').on('connect_token_uses').column('expires_at').execute();
    },
  },
  '0009_token_user_uid': {
    async up(db: AnyDb) {
      // API tokens are bound to their user's uid, not only its name: a user deleted and re-created
      // under the same name must not inherit the old user's tokens.
      await db.schema.alterTable('api_tokens').addColumn('user_uid', 'varchar(64)').execute();
      await sql`update api_tokens set user_uid = (select users.uid from users where users.name = api_tokens.user_name)`.execute(db);
      // Tokens whose user is gone could only ever come back with a re-created user: remove them.
      await db.deleteFrom('api_tokens').where('user_uid', 'is', null).execute();
      await db.schema.createIndex('api_tokens_user_uid').on('api_tokens').column('user_uid').execute();
    },
  },
  '0010_pairing_events': {
    async up(db: AnyDb) {
      // Event retention deletes by age and keeps the newest events per object; the pairing caps count
      // pending sessions per source address.
      await db.schema.createIndex('events_created').on('events').column('created_at').execute();
      await db.schema.createIndex('events_involved_created').on('events').columns(['involved_kind', 'involved_name', 'created_at']).execute();
      await db.schema.createIndex('pairings_source').on('pairings').columns(['source_ip', 'state']).execute();
    },
  },
  '0013_list_order_fields': {
    async up(db: AnyDb) {
      // Events list in time order and belong to one incarnation of their object (by uid).
      await db.schema.alterTable('events').addColumn('involved_uid', 'varchar(64)').execute();
      await db.schema.alterTable('events').addColumn('event_time', 'varchar(40)').execute();
      const last = jsonText(db, 'status', ['lastTimestamp']);
      await sql`update events set event_time = case when ${last} is not null and ${last} < created_at then ${last} else created_at end`.execute(db);
      // Existing events go to the object of that name that existed when they were recorded.
      for (const [kind, table] of EVENT_KIND_TABLES)
        await sql`update events set involved_uid = (select t.uid from ${sql.table(table)} t where t.name = events.involved_name and t.created_at <= events.created_at) where involved_kind = ${kind}`.execute(
          db,
        );
      await db.schema.createIndex('events_time').on('events').columns(['event_time', 'name']).execute();
      await db.schema.createIndex('events_involved_time').on('events').columns(['involved_kind', 'involved_name', 'event_time']).execute();
      await db.schema.createIndex('events_uid_time').on('events').columns(['involved_uid', 'event_time']).execute();
      // Field selectors on hosts: by state and by site (a JSON field; the query repeats this expression).
      await db.schema.createIndex('edge_hosts_state').on('edge_hosts').column('state').execute();
      await sql`create index edge_hosts_site on edge_hosts ((${jsonText(db, 'spec', ['site'])}))`.execute(db);
    },
  },
  '0012_os_retry': {
    async up(db: AnyDb) {
      // Counts operator requests to try OS images again (retry, reset, joining a cluster); the agent
      // receives it as spec.os.retry, part of what makes an attempt at an image a new one.
      await db.schema
        .alterTable('edge_hosts')
        .addColumn('os_retry', 'integer', (c) => c.notNull().defaultTo(0))
        .execute();
    },
  },
  '0015_replicas_connectivity': {
    async up(db: AnyDb) {
      // Server replicas on one PostgreSQL store: each renews its row; a host is online through the
      // replica that holds its channel, and goes offline when that replica's lease runs out.
      await db.schema
        .createTable('replicas')
        .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
        .addColumn('started_at', 'varchar(40)', (c) => c.notNull())
        .addColumn('expires_at', 'varchar(40)', (c) => c.notNull())
        .execute();
      await db.schema.alterTable('edge_hosts').addColumn('replica', 'varchar(64)').execute();
      // Token buckets every replica shares (pairing claims and starts per source and per code).
      await db.schema
        .createTable('rate_limit_buckets')
        .addColumn('key', 'varchar(200)', (c) => c.primaryKey())
        .addColumn('tokens', 'real', (c) => c.notNull())
        .addColumn('at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('rate_limit_buckets_at').on('rate_limit_buckets').column('at').execute();
    },
  },
  '0015_replicas_leases': {
    async up(db: AnyDb) {
      // The controllers run on one replica at a time: the holder of this row's lease. `epoch` grows
      // with every new holder, so a holder that lost the lease cannot renew it again by accident.
      await db.schema
        .createTable('controller_leases')
        .addColumn('name', 'varchar(63)', (c) => c.primaryKey())
        .addColumn('holder', 'varchar(64)', (c) => c.notNull())
        .addColumn('epoch', 'integer', (c) => c.notNull())
        .addColumn('expires_at', 'varchar(40)', (c) => c.notNull())
        .execute();
    },
  },
  '0016_replica_sessions': {
    async up(db: AnyDb) {
      // Remote sessions across replicas: a replica advertises the address its peers reach it at, and a
      // session row names the replica serving it (the one holding the host's agent channel).
      await db.schema.alterTable('replicas').addColumn('url', 'varchar(300)').execute();
      await db.schema.alterTable('remote_sessions').addColumn('replica', 'varchar(64)').execute();
    },
  },
};

const provider: MigrationProvider = { getMigrations: async () => migrations };

/** Brings the schema up to date; throws with the failing migration's name. */
export async function migrateToLatest(db: AnyDb): Promise<void> {
  const migrator = new Migrator({
    db,
    provider,
    migrationTableName: 'edgeplane_migrations',
    migrationLockTableName: 'edgeplane_migrations_lock',
    allowUnorderedMigrations: true,
  });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === 'Error');
  if (error) throw new Error(`store migration ${failed?.migrationName ?? ''} failed: ${String((error as Error).message ?? error)}`);
}
