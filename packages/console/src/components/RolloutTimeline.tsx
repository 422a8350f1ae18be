import { BATCH_STATE_LABEL, type BatchView } from '../lib/rollout-progress';
import { clock, duration, TimeAxis, timeScale, useNow } from './TimeAxis';
import './charts.css';

const LEFT = 300;
const WIDTH = 900;
const LANE = 40;
const TOP = 6;

const iso = (t: number | undefined) => (t === undefined ? undefined : new Date(t).toISOString());

/** What a lane says under the batch's name: outcome counts and its times. */
function caption(b: BatchView, now: number): string {
  const counts = `${b.succeeded}/${b.total} ok${b.failed ? `, ${b.failed} failed` : ''}`;
  if (b.state === 'waiting-for-window') return `${counts} · window opens ${b.windowAt ? new Date(b.windowAt).toLocaleString() : 'later'}`;
  if (b.state === 'waiting-for-approval') return `waiting ${duration(now - (b.turnAt ?? now))} for approval`;
  if (b.startedAt === undefined) return counts;
  return `${counts} · ${clock(b.startedAt)}–${b.finishedAt ? `${clock(b.finishedAt)} (${duration(b.finishedAt - b.startedAt)})` : 'now'}`;
}

/**
 * A rollout's batches as a progress timeline: one lane per batch on a shared time axis, a hatched
 * bar while its turn has come but no cluster started yet (waiting for approval or a maintenance
 * window), then a bar from its first cluster's start to its last cluster's end, coloured by state.
 * Lanes grow up to now while the rollout is open.
 */
export function RolloutTimeline({ batches, startedAt, finishedAt, open }: { batches: BatchView[]; startedAt?: string; finishedAt?: string; open: boolean }) {
  const now = useNow(open);
  const times = batches.flatMap((b) => [b.turnAt, b.startedAt, b.finishedAt]).filter((t): t is number => t !== undefined);
  const from = Math.min(...times, startedAt ? Date.parse(startedAt) : now);
  const to = Math.max(...times, open ? now : finishedAt ? Date.parse(finishedAt) : from, from + 10_000);
  const x = timeScale(from, to, LEFT + 4, WIDTH - 16);
  const height = TOP + batches.length * LANE + 24;
  return (
    <figure className="chart" data-testid="rollout-timeline">
      <svg
        viewBox={`0 0 ${WIDTH} ${height}`}
        role="img"
        aria-label={`Batches from ${clock(from)}: ${batches.map((b) => `${b.name} ${BATCH_STATE_LABEL[b.state]}`).join(', ')}`}
      >
        <defs>
          <pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">
            <rect width="6" height="6" fill="#fff" />
            <line className="hatch-line" x1="0" y1="0" x2="0" y2="6" />
          </pattern>
        </defs>
        <TimeAxis from={from} to={to} x={x} y={TOP + batches.length * LANE + 2} height={batches.length * LANE} />
        {batches.map((b, i) => {
          const y = TOP + i * LANE;
          const waitEnd = b.startedAt ?? (b.state === 'waiting-for-window' || b.state === 'waiting-for-approval' || b.state === 'paused' ? now : undefined);
          const runEnd = b.finishedAt ?? (b.startedAt !== undefined && open ? now : b.startedAt);
          return (
            <g
              key={b.name}
              data-batch={b.name}
              data-state={b.state}
              data-started={iso(b.startedAt)}
              data-finished={iso(b.finishedAt)}
              aria-current={b.state === 'running' || b.state.startsWith('waiting') ? 'step' : undefined}
            >
              <text className="lane-label" x={8} y={y + 16}>
                {b.name} <tspan className={`state-text st-${b.state}`}>{BATCH_STATE_LABEL[b.state]}</tspan>
              </text>
              <text className="muted" x={8} y={y + 32}>
                {caption(b, now)}
              </text>
              <line className="lane" x1={LEFT} x2={WIDTH - 16} y1={y + LANE / 2} y2={y + LANE / 2} />
              {b.turnAt !== undefined && waitEnd !== undefined && waitEnd > b.turnAt && (
                <rect
                  className={`bs-${b.startedAt === undefined ? b.state : 'waiting-for-window'}`}
                  x={x(b.turnAt)}
                  y={y + 10}
                  width={Math.max(2, x(waitEnd) - x(b.turnAt))}
                  height={LANE - 20}
                  rx={3}
                >
                  <title>{`${b.name}: its turn from ${clock(b.turnAt)}, first cluster ${b.startedAt ? `started ${clock(b.startedAt)}` : 'not started yet'}`}</title>
                </rect>
              )}
              {b.startedAt !== undefined && runEnd !== undefined && (
                <rect className={`bs-${b.state}`} x={x(b.startedAt)} y={y + 8} width={Math.max(3, x(runEnd) - x(b.startedAt))} height={LANE - 16} rx={3}>
                  <title>{`${b.name}: ${BATCH_STATE_LABEL[b.state]}, ${caption(b, now)}`}</title>
                </rect>
              )}
            </g>
          );
        })}
      </svg>
      <figcaption className="legend">
        {(['done', 'running', 'waiting-for-approval', 'failed', 'queued'] as const).map((s) => (
          <span key={s}>
            <i className={`bs-${s}`} /> {s === 'waiting-for-approval' ? 'waiting (window or approval)' : BATCH_STATE_LABEL[s]}
          </span>
        ))}
      </figcaption>
    </figure>
  );
}
