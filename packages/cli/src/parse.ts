import { InvalidArgumentError, Option } from 'commander';

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** Parses `90s`, `30m`, `24h`, `7d`, `2w` or a combination like `1d12h` into milliseconds. */
export function parseDuration(text: string): number {
  const trimmed = text.trim();
  if (!/^(\d+[smhdw])+$/.test(trimmed)) {
    throw new InvalidArgumentError(`"${text}" is not a duration; use a number with a unit, like 90s, 30m, 24h, 7d or 2w`);
  }
  let ms = 0;
  for (const [, n, unit] of trimmed.matchAll(/(\d+)([smhdw])/g)) ms += Number(n) * UNITS[unit];
  if (ms <= 0) throw new InvalidArgumentError(`duration "${text}" must be positive`);
  return ms;
}

/**
 * A duration flag (`--timeout <duration>`): parsed to milliseconds, with its default written the
 * way a user types it, so --help says `(default: 10m)` rather than `(default: 600000)`.
 */
export function durationOption(flags: string, description: string, defaultText?: string): Option {
  const option = new Option(flags, description).argParser(parseDuration);
  return defaultText ? option.default(parseDuration(defaultText), defaultText) : option;
}

/** Parses `k=v,k2=v2` into a label map. */
export function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const part of text
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new InvalidArgumentError(`"${part}" is not a label; use key=value[,key=value...]`);
    labels[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
  }
  return labels;
}

/** Commander argument parser for a positive (or, with allowZero, non-negative) integer. */
export function intArg(name: string, { allowZero = false } = {}): (value: string) => number {
  return (value: string) => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || (!allowZero && n === 0)) {
      throw new InvalidArgumentError(`${name} must be a ${allowZero ? 'non-negative' : 'positive'} integer`);
    }
    return n;
  };
}
