/** `\nExamples:\n  $ edgeplane ...` lines for --help. Its own module: the root program needs it before any command loads. */
export function examples(...lines: string[]): string {
  return `\nExamples:\n${lines.map((l) => `  $ ${l}`).join('\n')}\n`;
}
