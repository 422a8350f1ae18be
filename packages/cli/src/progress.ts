import type { Resource } from './api-client.js';
import type { OutStream } from './io.js';

/** `[##########..........] 12/40 agents connected` */
export function progressBar(done: number, total: number, label: string, width = 30): string {
  const ratio = total > 0 ? Math.min(1, done / total) : 1;
  const filled = Math.round(ratio * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} ${label}`;
}

/**
 * Progress of a count towards a total: a bar redrawn in place on a terminal, a plain line per
 * change otherwise (logs and CI stay readable).
 */
export class Progress {
  private last = -1;

  constructor(
    private readonly out: OutStream,
    private readonly total: number,
    private readonly label: string,
  ) {}

  update(done: number): void {
    if (done === this.last) return;
    this.last = done;
    if (this.out.isTTY) this.out.write(`\r${progressBar(done, this.total, this.label)}`);
    else this.out.write(`${done}/${this.total} ${this.label}\n`);
  }

  /** Ends the in-place line so that what follows starts on its own line. */
  finish(): void {
    if (this.out.isTTY && this.last >= 0) this.out.write('\n');
  }
}

/** What a live view shows: one summary line for logs, and a block of lines for a terminal. */
export interface View {
  /** One line that says everything that changed (printed once per change when not on a terminal). */
  line: string;
  /** The block drawn on a terminal: a bar, then one line per node or cluster. */
  block: string[];
}

/**
 * A view that changes over time. On a terminal the block is redrawn in place (cursor up over the
 * previous block, clear to the end of the screen); elsewhere the summary line is printed each time
 * it changes, so logs and CI get one line per change.
 */
export class LiveView {
  private drawn = 0;
  private last = '';

  constructor(private readonly out: OutStream & { columns?: number }) {}

  update(view: View): void {
    if (!this.out.isTTY) {
      if (view.line !== this.last) this.out.write(`${view.line}\n`);
      this.last = view.line;
      return;
    }
    const text = view.block.join('\n');
    if (text === this.last) return;
    this.last = text;
    // A line wider than the terminal wraps, and the cursor-up count would be off: cut it.
    // A pty that reports 0 columns does not know its width.
    const width = Math.max(20, (this.out.columns || 120) - 1);
    const lines = view.block.map((l) => (l.length > width ? `${l.slice(0, width - 3)}...` : l));
    const up = this.drawn > 1 ? `\x1b[${this.drawn - 1}A` : '';
    this.out.write(`\r${up}\x1b[J${lines.join('\n')}`);
    this.drawn = lines.length;
  }

  /** Leaves the last block on screen and moves below it. */
  finish(): void {
    if (this.out.isTTY && this.drawn > 0) this.out.write('\n');
    this.drawn = 0;
  }
}

/** At most this many per-item lines under the bar; the rest are counted. */
const MAX_ITEMS = 15;

function items(lines: string[]): string[] {
  if (lines.length <= MAX_ITEMS) return lines;
  return [...lines.slice(0, MAX_ITEMS), `  ... and ${lines.length - MAX_ITEMS} more`];
}

/** Aligned columns without a header (cells padded to the widest of their column). */
function columns(rows: string[][]): string[] {
  const widths = rows.reduce<number[]>((w, r) => r.map((c, i) => Math.max(w[i] ?? 0, c.length)), []);
  return rows.map((r) => `  ${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')}`.trimEnd());
}

type NodeStatus = { host: string; role?: string; phase: string; ready: boolean; message?: string };
type UpgradeNode = { host: string; role: string; change: string; phase: string; message?: string };
export type UpgradeStatus = {
  id: number;
  state: string;
  fromRevision?: number;
  toRevision: number;
  generation: number;
  message?: string;
  failedNode?: string;
  nodes: UpgradeNode[];
};

export const ACTIVE_UPGRADE_STATES = ['Staging', 'Rolling', 'Paused'];

/** The cluster's upgrade worth showing: one in progress, or the one for its current generation. */
export function currentUpgrade(r: Resource): UpgradeStatus | undefined {
  const u = r.status?.upgrade as UpgradeStatus | undefined;
  if (!u) return undefined;
  return ACTIVE_UPGRADE_STATES.includes(u.state) || u.generation === Number(r.metadata.generation) ? u : undefined;
}

function revisions(u: UpgradeStatus): string {
  return `revision ${u.fromRevision ?? 'new'} -> ${u.toRevision}`;
}

/**
 * A cluster's progress. While an upgrade runs (or has just finished): its state and each node's
 * upgrade phase (Pending, Staged, Draining, Rebooting, Verifying, Done...). Otherwise: the cluster
 * phase and each node's phase.
 */
export function clusterView(r: Resource): View {
  const u = currentUpgrade(r);
  if (u) {
    const done = u.nodes.filter((n) => n.phase === 'Done' || n.phase === 'Skipped').length;
    const each = u.nodes.map((n) => `${n.host} ${n.phase}`).join(', ');
    const head = `Upgrade ${u.id} (${revisions(u)}) ${u.state}`;
    return {
      line: `${head}: ${done}/${u.nodes.length} nodes upgraded${each ? ` (${each})` : ''}${u.message ? `; ${u.message}` : ''}`,
      block: [
        `${progressBar(done, u.nodes.length, 'nodes upgraded', 20)}  ${u.state}  ${revisions(u)}${u.message ? `  ${u.message}` : ''}`,
        ...items(columns(u.nodes.map((n) => [n.host, n.role, n.change, n.phase, n.message ?? '']))),
      ],
    };
  }
  const nodes = (r.status?.nodes as NodeStatus[] | undefined) ?? [];
  // A virtualized cluster lists its VMs elsewhere in the spec: count whichever is larger.
  const desired = typeof r.status?.desiredNodes === 'number' ? r.status.desiredNodes : 0;
  const total = Math.max(((r.spec?.nodes as unknown[] | undefined) ?? []).length, desired, nodes.length);
  const ready = nodes.filter((n) => n.ready).length;
  const phase = String(r.status?.phase ?? 'Pending');
  const each = nodes.map((n) => `${n.host} ${n.phase}`).join(', ');
  return {
    line: `${phase}: ${ready}/${total} nodes Ready${each ? ` (${each})` : ''}`,
    block: [`${progressBar(ready, total, 'nodes Ready', 20)}  ${phase}`, ...items(columns(nodes.map((n) => [n.host, n.role ?? '', n.phase, n.message ?? ''])))],
  };
}

type RolloutCluster = { name: string; batch: number; state: string; reason?: string; message?: string };
type RolloutBatch = { name: string; phase: string; total: number; succeeded: number; failed: number };

/** A rollout's progress: phase, current batch, clusters done, and each cluster that has started. */
export function rolloutView(r: Resource): View {
  const s = r.status ?? {};
  const phase = String(s.phase ?? 'Pending');
  const clusters = (s.clusters as RolloutCluster[] | undefined) ?? [];
  const batches = (s.batches as RolloutBatch[] | undefined) ?? [];
  const count = (state: string) => clusters.filter((c) => c.state === state).length;
  const finished = count('succeeded') + count('failed') + count('skipped');
  const batch =
    typeof s.currentBatch === 'number' && batches[s.currentBatch] ? `batch ${s.currentBatch + 1}/${batches.length} (${batches[s.currentBatch].name})` : '';
  const tally = `${count('succeeded')} succeeded, ${count('failed')} failed, ${count('skipped')} skipped of ${clusters.length}`;
  const approve = phase === 'AwaitingApproval' ? `; approve the next batch: edgeplane approve rollout ${r.metadata.name}` : '';
  const message = typeof s.message === 'string' && s.message ? `; ${s.message}` : '';
  const active = clusters.filter((c) => c.state !== 'pending').map((c) => `${c.name} ${c.state}`);
  return {
    line: `${phase}${batch ? ` ${batch}` : ''}: ${tally}${active.length ? ` (${active.join(', ')})` : ''}${message}${approve}`,
    block: [
      `${progressBar(finished, clusters.length, 'clusters done', 20)}  ${phase}${batch ? `  ${batch}` : ''}${message ? `  ${String(s.message)}` : ''}`,
      ...items(
        columns(
          clusters
            .filter((c) => c.state !== 'pending')
            .map((c) => [c.name, c.batch >= 0 ? `batch ${c.batch + 1}` : '-', c.state, [c.reason, c.message].filter(Boolean).join(': ')]),
        ),
      ),
      ...(approve ? [approve.slice(2)] : []),
    ],
  };
}
