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
