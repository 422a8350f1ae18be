import type { NodeUpgradeTimes } from '@edgeplane/protocol';
import { clock, duration, TimeAxis, timeScale, useNow } from './TimeAxis';
import './charts.css';

export interface TimedNode {
  host: string;
  role: string;
  change: string;
  phase: string;
  message?: string;
  times?: NodeUpgradeTimes;
}

/** The steps of a node's window in order, with the words the timeline uses for them. */
export const UPGRADE_STEPS = [
  { key: 'staged', label: 'write', title: 'new image written to the passive slot' },
  { key: 'started', label: 'cordon', title: 'window opened: new spec sent, node cordoned' },
  { key: 'draining', label: 'drain', title: 'draining workloads' },
  { key: 'rebooting', label: 'reboot', title: 'rebooting' },
  { key: 'verifying', label: 'trial', title: 'trial: new image, reboot or configuration on probation' },
  { key: 'done', label: 'commit', title: 'committed and uncordoned' },
  { key: 'failed', label: 'fallback', title: 'fell back to the previous image, or failed' },
] as const;
export type UpgradeStepKey = (typeof UPGRADE_STEPS)[number]['key'];

/** A node's recorded steps in order, each with its time. */
export function nodeSteps(n: TimedNode): { key: UpgradeStepKey; label: string; title: string; at: string }[] {
  return UPGRADE_STEPS.flatMap((s) => {
    const at = n.times?.[s.key];
    // A failed window is a fallback when the node fell back (its message says so), else a missed health gate.
    const label = s.key === 'failed' && n.phase !== 'FellBack' && !n.message?.includes('fell back') ? 'failed' : s.label;
    return at ? [{ ...s, label, at }] : [];
  });
}

const LEFT = 220;
const WIDTH = 900;
const LANE = 30;
const TOP = 8;

/**
 * Cluster.status.upgrade on a time axis: one lane per node, in the order the upgrade takes them, with
 * a bar per step of its window (cordon, drain, reboot, trial) from the time the control plane recorded
 * it to the next, a mark where the new image was written, and where the window ended (commit or
 * fallback). A node still inside its window grows up to now.
 */
export function UpgradeTimeline({ nodes, startedAt, active }: { nodes: TimedNode[]; startedAt?: string; active: boolean }) {
  const now = useNow(active);
  const all = nodes.flatMap((n) => Object.values(n.times ?? {}).map((t) => Date.parse(t as string)));
  if (all.length === 0) return <p className="muted">No node has reached a step of this upgrade yet.</p>;
  const from = Math.min(...all, startedAt ? Date.parse(startedAt) : Number.POSITIVE_INFINITY);
  const to = Math.max(...all, active ? now : 0, from + 10_000);
  const x = timeScale(from, to, LEFT + 8, WIDTH - 16);
  const height = TOP + nodes.length * LANE + 24;
  return (
    <figure className="chart" data-testid="upgrade-timeline">
      <svg viewBox={`0 0 ${WIDTH} ${height}`} role="img" aria-label={`Upgrade steps per node from ${clock(from)} to ${clock(to)}`}>
        <TimeAxis from={from} to={to} x={x} y={TOP + nodes.length * LANE + 2} height={nodes.length * LANE} />
        {nodes.map((n, i) => {
          const steps = nodeSteps(n);
          const end = steps.find((s) => s.key === 'done' || s.key === 'failed');
          const inWindow = steps.filter((s) => s.key !== 'staged' && s !== end);
          const y = TOP + i * LANE;
          return (
            <g key={n.host} data-host={n.host} data-phase={n.phase}>
              <text className="lane-label" x={8} y={y + 19}>
                {n.host.length > 22 ? `${n.host.slice(0, 21)}…` : n.host}
                <tspan className="muted"> {n.role === 'control-plane' ? 'cp' : 'worker'}</tspan>
              </text>
              <line className="lane" x1={LEFT} x2={WIDTH - 16} y1={y + LANE / 2} y2={y + LANE / 2} />
              {inWindow.map((s, k) => {
                const t0 = Date.parse(s.at);
                const next = inWindow[k + 1] ?? end;
                const t1 = next ? Date.parse(next.at) : active ? now : t0;
                const w = Math.max(2, x(t1) - x(t0));
                return (
                  <g key={s.key} data-step={s.key} data-at={s.at}>
                    <rect className={`step step-${s.key}`} x={x(t0)} y={y + 6} width={w} height={LANE - 12} rx={3}>
                      <title>{`${n.host}: ${s.label} from ${clock(t0)}${next ? ` to ${clock(t1)} (${duration(t1 - t0)})` : ' (running)'} — ${s.title}`}</title>
                    </rect>
                    {w > 44 && (
                      <text className="step-label" x={x(t0) + 4} y={y + 19}>
                        {s.label}
                      </text>
                    )}
                  </g>
                );
              })}
              {steps
                .filter((s) => s.key === 'staged' || s === end)
                .map((s) => (
                  <g key={s.key} data-step={s.key} data-at={s.at}>
                    <path className={`mark mark-${s.key}`} d={`M ${x(Date.parse(s.at))} ${y + 4} l 6 11 l -6 11 l -6 -11 z`}>
                      <title>{`${n.host}: ${s.label} at ${clock(s.at)} — ${s.title}`}</title>
                    </path>
                  </g>
                ))}
            </g>
          );
        })}
      </svg>
      <figcaption className="legend">
        {UPGRADE_STEPS.map((s) => (
          <span key={s.key} title={s.title}>
            <i className={s.key === 'staged' || s.key === 'done' || s.key === 'failed' ? `mark-${s.key}` : `step-${s.key}`} /> {s.label}
          </span>
        ))}
      </figcaption>
    </figure>
  );
}
