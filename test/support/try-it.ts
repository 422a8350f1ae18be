/**
 * Reads the runnable steps of a Markdown guide (docs/try-it.md) and matches their output.
 *
 * Steps are fenced blocks whose info string is `sh try-it`; they run in document order. A fenced
 * block `text try-it-output` right after a step (prose in between is fine) is what that step must
 * print, matched loosely by `outputMatches`. Any other fence (plain `sh`, `yaml`) is prose.
 */

export interface TryItStep {
  /** 1-based position among the steps. */
  index: number;
  /** The Markdown heading the step is under. */
  section: string;
  /** Line of the opening fence (1-based). */
  line: number;
  script: string;
  /** Expected-output patterns, one per non-blank line of the following `text try-it-output` block. */
  expect: string[];
}

const FENCE = /^(`{3,}|~{3,})\s*(.*)$/;

export function parseTryIt(markdown: string): TryItStep[] {
  const lines = markdown.split('\n');
  const steps: TryItStep[] = [];
  let section = '';
  for (let i = 0; i < lines.length; i++) {
    const heading = /^#{1,6}\s+(.*)$/.exec(lines[i]);
    if (heading) {
      section = heading[1].trim();
      continue;
    }
    const open = FENCE.exec(lines[i]);
    if (!open) continue;
    const [marker, info] = [open[1], open[2].trim().split(/\s+/)];
    const body: string[] = [];
    const start = i;
    for (i++; i < lines.length && !lines[i].startsWith(marker); i++) body.push(lines[i]);
    if (i >= lines.length) throw new Error(`line ${start + 1}: code fence is never closed`);
    if (info[0] === 'sh' && info[1] === 'try-it') {
      steps.push({ index: steps.length + 1, section, line: start + 1, script: body.join('\n'), expect: [] });
    } else if (info[1] === 'try-it-output') {
      const step = steps.at(-1);
      if (!step) throw new Error(`line ${start + 1}: a try-it-output block before any try-it step`);
      if (step.expect.length) throw new Error(`line ${start + 1}: a second try-it-output block for the step at line ${step.line}`);
      step.expect = body.map((l) => l.trim()).filter(Boolean);
    }
  }
  return steps;
}

/** Terminal noise a human never sees as text: colours, cursor movement; `\r` redraws become lines. */
export function plainLines(output: string): string[] {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI escape sequences are what this removes
  const noAnsi = output.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
  return noAnsi.split(/\r\n|\r|\n/).map((l) => l.trimEnd());
}

/**
 * One pattern against one output line, both without leading and trailing whitespace (indented
 * tables). `/.../` is a regular expression searched in the line.
 * Anything else is literal text for the whole (trimmed) line, where a run of whitespace matches any
 * run of whitespace (table columns change width) and `...` matches any text (with the spaces around it).
 */
export function lineMatches(pattern: string, line: string): boolean {
  if (pattern.length > 2 && pattern.startsWith('/') && pattern.endsWith('/')) return new RegExp(pattern.slice(1, -1)).test(line.trim());
  const re = pattern
    .trim()
    .split(/\s*\.\.\.\s*/)
    .map((part) =>
      part
        .split(/\s+/)
        .map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
        .join('\\s+'),
    )
    .join('.*');
  return new RegExp(`^${re}$`).test(line.trim());
}

/**
 * Whether `output` shows every pattern, in order (other lines may come in between). Returns the
 * first pattern that has no matching line after the previous match, or undefined when all match.
 */
export function firstUnmatched(patterns: string[], output: string): string | undefined {
  const lines = plainLines(output);
  let at = 0;
  for (const p of patterns) {
    const found = lines.findIndex((l, i) => i >= at && lineMatches(p, l));
    if (found < 0) return p;
    at = found + 1;
  }
  return undefined;
}
