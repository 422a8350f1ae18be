import type { BatchView } from '../lib/rollout-progress';
import './charts.css';

const H = 150;
const TOP = 18;
const BOTTOM = 34;
const LEFT = 38;
const COL = 84;

/**
 * Each batch's outcome against its success threshold: a column per batch, succeeded (green) and failed
 * (red) as shares of the clusters that count (skipped ones do not), with the successThreshold drawn as
 * a dashed line across it: a batch closes Failed when its green part ends below the line. Beside it,
 * failed clusters summed over the batches against the rollout's maxFailures (red line): more than
 * that stops the rollout.
 */
export function BatchOutcomes({ batches, maxFailures }: { batches: BatchView[]; maxFailures?: number }) {
  const width = LEFT + batches.length * COL + 8;
  const y = (pct: number) => TOP + (1 - pct / 100) * (H - TOP - BOTTOM);
  let sum = 0;
  const cumulative = batches.map((b) => (sum += b.failed));
  const top = Math.max(1, maxFailures === undefined ? 0 : maxFailures + 1, ...cumulative);
  const fy = (n: number) => TOP + (1 - n / top) * (H - TOP - BOTTOM);
  const fWidth = LEFT + batches.length * COL + 8;
  return (
    <figure className="chart" data-testid="batch-outcomes">
      <div className="chart-row">
        <div>
          <h3>Success per batch</h3>
          <svg
            className="fixed"
            width={width}
            height={H}
            viewBox={`0 0 ${width} ${H}`}
            role="img"
            aria-label="Succeeded and failed share of each batch against its success threshold"
          >
            {[0, 50, 100].map((p) => (
              <g key={p} className="time-axis">
                <line className="grid" x1={LEFT} x2={width - 4} y1={y(p)} y2={y(p)} />
                <text x={LEFT - 4} y={y(p) + 4} textAnchor="end">
                  {p}%
                </text>
              </g>
            ))}
            {batches.map((b, i) => {
              const x0 = LEFT + i * COL + 20;
              const w = COL - 40;
              const ok = b.considered ? (b.succeeded / b.considered) * 100 : 0;
              const bad = b.considered ? (b.failed / b.considered) * 100 : 0;
              return (
                <g key={b.name} data-batch={b.name} data-succeeded={b.succeeded} data-failed={b.failed} data-threshold={b.threshold}>
                  <rect className="out-rest" x={x0} y={y(100)} width={w} height={y(0) - y(100)} />
                  <rect className="out-succeeded" x={x0} y={y(ok)} width={w} height={y(0) - y(ok)}>
                    <title>{`${b.name}: ${b.succeeded} of ${b.considered} succeeded`}</title>
                  </rect>
                  <rect className="out-failed" x={x0} y={y(ok + bad)} width={w} height={y(ok) - y(ok + bad)}>
                    <title>{`${b.name}: ${b.failed} of ${b.considered} failed`}</title>
                  </rect>
                  <line className="threshold" x1={x0 - 6} x2={x0 + w + 6} y1={y(b.threshold)} y2={y(b.threshold)}>
                    <title>{`${b.name}: at least ${b.threshold}% must succeed`}</title>
                  </line>
                  <text x={x0 + w / 2} y={H - BOTTOM + 14} textAnchor="middle">
                    {b.name.length > 9 ? `${b.name.slice(0, 8)}…` : b.name}
                  </text>
                  <text className="muted small" x={x0 + w / 2} y={H - BOTTOM + 28} textAnchor="middle">
                    {b.succeeded}/{b.considered} ≥{b.threshold}%
                  </text>
                </g>
              );
            })}
          </svg>
        </div>
        <div>
          <h3>Failures across the rollout</h3>
          <svg
            className="fixed"
            width={fWidth}
            height={H}
            viewBox={`0 0 ${fWidth} ${H}`}
            role="img"
            aria-label={`Failed clusters so far against ${maxFailures === undefined ? 'no failure limit' : `a limit of ${maxFailures}`}`}
          >
            {[0, top].map((n) => (
              <g key={n} className="time-axis">
                <line className="grid" x1={LEFT} x2={fWidth - 4} y1={fy(n)} y2={fy(n)} />
                <text x={LEFT - 4} y={fy(n) + 4} textAnchor="end">
                  {n}
                </text>
              </g>
            ))}
            {batches.map((b, i) => {
              const x0 = LEFT + i * COL + 12;
              return (
                <g key={b.name} data-batch={b.name} data-failed-total={cumulative[i]}>
                  <rect className="out-failed" x={x0} y={fy(cumulative[i])} width={COL - 24} height={fy(0) - fy(cumulative[i])}>
                    <title>{`${cumulative[i]} cluster(s) failed up to batch ${b.name}`}</title>
                  </rect>
                  <text x={x0 + (COL - 24) / 2} y={H - BOTTOM + 14} textAnchor="middle">
                    {b.name.length > 9 ? `${b.name.slice(0, 8)}…` : b.name}
                  </text>
                </g>
              );
            })}
            {maxFailures !== undefined && (
              <g data-max-failures={maxFailures}>
                <line className="threshold error" x1={LEFT} x2={fWidth - 4} y1={fy(maxFailures)} y2={fy(maxFailures)} />
                <text className="muted small" x={LEFT + 2} y={fy(maxFailures) - 4}>
                  stops above {maxFailures}
                </text>
              </g>
            )}
          </svg>
        </div>
      </div>
      <figcaption className="legend">
        <span>
          <i className="out-succeeded" /> succeeded
        </span>
        <span>
          <i className="out-failed" /> failed
        </span>
        <span>
          <i className="th-line" /> success threshold
        </span>
        <span>
          <i className="th-line th-error" /> {maxFailures === undefined ? 'no failure limit (maxFailures unset)' : `maxFailures: ${maxFailures}`}
        </span>
      </figcaption>
    </figure>
  );
}
