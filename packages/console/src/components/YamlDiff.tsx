import { structuredPatch } from 'diff';
import { useMemo } from 'react';
import { stringify } from 'yaml';

/** YAML with map keys sorted, so two revisions differ only where their content does. */
export function toYaml(value: unknown): string {
  return stringify(value ?? {}, { sortMapEntries: true, lineWidth: 0 });
}

interface Line {
  kind: 'add' | 'del' | 'ctx';
  text: string;
  oldNo?: number;
  newNo?: number;
}

/**
 * A unified diff of two YAML documents (jsdiff's structuredPatch with 3 lines of context), with old
 * and new line numbers and +/- markers as text, so it reads the same without colour.
 */
export function YamlDiff({ before, after, beforeLabel, afterLabel }: { before: string; after: string; beforeLabel: string; afterLabel: string }) {
  const hunks = useMemo(() => {
    const patch = structuredPatch(beforeLabel, afterLabel, before, after, '', '', { context: 3 });
    return patch.hunks.map((h) => {
      let o = h.oldStart;
      let n = h.newStart;
      const lines: Line[] = h.lines
        .filter((l) => !l.startsWith('\\')) // "\ No newline at end of file"
        .map((l) => {
          const text = l.slice(1);
          if (l[0] === '+') return { kind: 'add', text, newNo: n++ };
          if (l[0] === '-') return { kind: 'del', text, oldNo: o++ };
          return { kind: 'ctx', text, oldNo: o++, newNo: n++ };
        });
      return { header: `@@ -${h.oldStart},${h.oldLines} +${h.newStart},${h.newLines} @@`, lines };
    });
  }, [before, after, beforeLabel, afterLabel]);
  if (hunks.length === 0) return <p className="muted">No differences: both revisions have the same spec.</p>;
  const added = hunks.reduce((s, h) => s + h.lines.filter((l) => l.kind === 'add').length, 0);
  const removed = hunks.reduce((s, h) => s + h.lines.filter((l) => l.kind === 'del').length, 0);
  return (
    <div className="diff" data-testid="diff">
      <p className="muted">
        {beforeLabel} → {afterLabel}: {added} line{added === 1 ? '' : 's'} added, {removed} removed
      </p>
      <div className="diff-scroll">
        <table>
          <caption className="sr-only">
            Differences between {beforeLabel} and {afterLabel}
          </caption>
          <thead className="sr-only">
            <tr>
              <th scope="col">old line</th>
              <th scope="col">new line</th>
              <th scope="col">change</th>
            </tr>
          </thead>
          {hunks.map((h) => (
            <tbody key={h.header}>
              <tr className="diff-hunk">
                <td colSpan={3}>{h.header}</td>
              </tr>
              {h.lines.map((l) => (
                <tr key={`${l.oldNo ?? ''}:${l.newNo ?? ''}`} className={`diff-${l.kind}`}>
                  <td className="diff-no">{l.oldNo ?? ''}</td>
                  <td className="diff-no">{l.newNo ?? ''}</td>
                  <td className="diff-text">
                    {l.kind === 'add' ? '+ ' : l.kind === 'del' ? '- ' : '  '}
                    {l.text}
                  </td>
                </tr>
              ))}
            </tbody>
          ))}
        </table>
      </div>
    </div>
  );
}
