import { randomUUID } from 'node:crypto';
import type { Db, Executor } from '../store/db.js';
import type { Clock } from './rollout.controller.js';

/**
 * SIMULATION for tests and benchmarks, not a product component: stands in for the cluster upgrade
 * controller by flipping cluster status per the contract in docs/architecture.md
 * "Rollouts": a cluster whose spec.profile.revision differs from status.profileRevision starts
 * "upgrading" (status.upgrade.state Rolling), and `upgradeMs` of clock time later either converges
 * (phase Running, observedGeneration = generation, profileRevision = the new revision) or, for the
 * names in `failing`, ends Degraded with upgrade.state Failed naming its node.
 */
export class SimulatedClusterUpgrades {
  readonly failing = new Set<string>();
  private readonly startedAt = new Map<string, number>();
  /** Clusters upgrading at the same time, sampled at every tick: [clock ms, names]. */
  readonly log: { at: number; started: string[]; finished: string[] }[] = [];

  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
    readonly upgradeMs: number,
  ) {}

  async tick(): Promise<void> {
    const now = this.clock.now().getTime();
    const rows = await this.db.selectFrom('clusters').select(['name', 'spec', 'status', 'generation']).execute();
    const entry = { at: now, started: [] as string[], finished: [] as string[] };
    for (const r of rows) {
      const spec = JSON.parse(r.spec) as { profile: { revision: number }; nodes: { host: string }[] };
      const status = JSON.parse(r.status) as { profileRevision?: number; upgrade?: { state: string; toRevision: number } } & Record<string, unknown>;
      const want = spec.profile.revision;
      if (status.profileRevision === want || status.upgrade?.state === 'Failed') continue;
      const gen = Number(r.generation);
      if (!this.startedAt.has(r.name) || status.upgrade?.toRevision !== want) {
        this.startedAt.set(r.name, now);
        entry.started.push(r.name);
        await write(this.db, r.name, {
          ...status,
          observedGeneration: gen,
          upgrade: { id: 1, state: 'Rolling', toRevision: want, generation: gen, nodes: [] },
        });
        continue;
      }
      if (now - this.startedAt.get(r.name)! < this.upgradeMs) continue;
      entry.finished.push(r.name);
      this.startedAt.delete(r.name);
      if (this.failing.has(r.name)) {
        const node = spec.nodes[0]?.host ?? r.name;
        await write(this.db, r.name, {
          ...status,
          phase: 'Degraded',
          observedGeneration: gen,
          upgrade: { ...status.upgrade, state: 'Failed', failedNode: node, message: 'simulated health check failure' },
          conditions: [{ type: 'Ready', status: 'False', reason: 'UpgradeFailed', message: `node ${node} failed its health check` }],
        });
      } else {
        await write(this.db, r.name, {
          ...status,
          phase: 'Running',
          observedGeneration: gen,
          profileRevision: want,
          upgrade: { ...status.upgrade, state: 'Succeeded' },
        });
      }
    }
    if (entry.started.length || entry.finished.length) this.log.push(entry);
  }
}

async function write(db: Executor, name: string, status: unknown): Promise<void> {
  await db
    .updateTable('clusters')
    .set({ status: JSON.stringify(status) })
    .where('name', '=', name)
    .execute();
}

/** Inserts a profile revision row (the rollout only checks that its target revision exists). */
export async function seedProfileRevisions(db: Executor, profile: string, revisions: number[]): Promise<void> {
  // A minimal pinned cluster profile (rollouts refuse a revision without a kubernetes layer).
  const spec = JSON.stringify({
    layers: {
      os: { image: 'registry.local/edge/os:sim', digest: `sha256:${'0'.repeat(64)}` },
      kubernetes: { distribution: 'k3s', version: 'v1.30.4+k3s1', config: {} },
      addons: [],
    },
    variables: [],
  });
  for (const revision of revisions)
    await db.insertInto('cluster_profile_revisions').values({ profile, revision, spec, created_at: new Date().toISOString() }).execute();
}

/** Inserts a Running single-node cluster row at `revision` (no hosts: for rollout tests and benchmarks). */
export async function seedCluster(
  db: Executor,
  c: { name: string; profile: string; revision: number; site?: string; labels?: Record<string, string> },
): Promise<void> {
  const t = new Date().toISOString();
  await db
    .insertInto('clusters')
    .values({
      name: c.name,
      uid: randomUUID(),
      project: 'default',
      labels: JSON.stringify(c.labels ?? {}),
      annotations: '{}',
      generation: 1,
      resource_version: 1,
      created_at: t,
      updated_at: t,
      spec: JSON.stringify({
        type: 'native',
        profile: { name: c.profile, revision: c.revision },
        site: c.site,
        nodes: [{ host: `${c.name}-n1`, role: 'control-plane' }],
      }),
      status: JSON.stringify({ phase: 'Running', observedGeneration: 1, profileRevision: c.revision, conditions: [], nodes: [] }),
    })
    .execute();
}
