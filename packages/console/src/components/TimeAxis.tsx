import { useEffect, useState } from 'react';

/** The current time, re-read every second while `active` (a running bar grows up to "now"). */
export function useNow(active: boolean): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!active) return;
    setNow(Date.now());
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, [active]);
  return now;
}

/** Local wall-clock time of an ISO timestamp, to the second. */
export function clock(iso: string | number): string {
  return new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });
}

/** A duration in the largest two units that matter: "42 s", "3 min 5 s", "2 h 10 min". */
export function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min${s % 60 ? ` ${s % 60} s` : ''}`;
  const m = Math.round(s / 60);
  return `${Math.floor(m / 60)} h${m % 60 ? ` ${m % 60} min` : ''}`;
}

/** Maps times in [from, to] onto x in [left, right] (a zero-length range maps to `left`). */
export function timeScale(from: number, to: number, left: number, right: number): (t: number) => number {
  const span = Math.max(1, to - from);
  return (t) => left + ((Math.min(Math.max(t, from), to) - from) / span) * (right - left);
}

const STEPS_MS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21_600, 43_200, 86_400].map((s) => s * 1000);

/** Tick marks and labels along the bottom of a time chart: about five, at round intervals (labels at the ends kept inside). */
export function TimeAxis({ from, to, x, y, height }: { from: number; to: number; x: (t: number) => number; y: number; height: number }) {
  const step = STEPS_MS.find((s) => (to - from) / s <= 6) ?? 86_400_000;
  const ticks: number[] = [];
  for (let t = Math.ceil(from / step) * step; t <= to; t += step) ticks.push(t);
  return (
    <g className="time-axis">
      <line x1={x(from)} x2={x(to)} y1={y} y2={y} />
      {ticks.map((t) => (
        <g key={t}>
          <line className="grid" x1={x(t)} x2={x(t)} y1={y - height} y2={y} />
          <text x={x(t)} y={y + 14} textAnchor={x(to) - x(t) < 28 ? 'end' : x(t) - x(from) < 28 ? 'start' : 'middle'}>
            {clock(t)}
          </text>
        </g>
      ))}
    </g>
  );
}
