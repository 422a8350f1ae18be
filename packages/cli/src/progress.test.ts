import { describe, expect, it } from 'vitest';
import { LiveView, Progress, progressBar } from './progress.js';

describe('progress', () => {
  it('draws a bar', () => {
    expect(progressBar(5, 10, 'done', 10)).toBe('[#####.....] 5/10 done');
    expect(progressBar(0, 0, 'done', 4)).toBe('[####] 0/0 done');
  });

  it('redraws in place on a terminal and prints lines otherwise, only on change', () => {
    let tty = '';
    const bar = new Progress({ write: (s: string) => (tty += s), isTTY: true }, 2, 'up');
    bar.update(1);
    bar.update(1);
    bar.update(2);
    bar.finish();
    expect(tty).toBe(`\r${progressBar(1, 2, 'up')}\r${progressBar(2, 2, 'up')}\n`);
    let plain = '';
    const lines = new Progress({ write: (s: string) => (plain += s) }, 2, 'up');
    lines.update(0);
    lines.update(0);
    lines.update(2);
    lines.finish();
    expect(plain).toBe('0/2 up\n2/2 up\n');
  });

  it('redraws a block in place on a terminal, and prints the summary line per change otherwise', () => {
    let tty = '';
    const live = new LiveView({ write: (s: string) => (tty += s), isTTY: true, columns: 40 });
    live.update({ line: 'x', block: ['head', '  a Pending', '  b Pending'] });
    live.update({ line: 'x', block: ['head', '  a Pending', '  b Pending'] });
    live.update({ line: 'y', block: ['head', `  a ${'Ready '.repeat(10)}`] });
    live.finish();
    // Back up over the 3 lines drawn (cursor on the last one), clear, draw; long lines are cut to the width.
    expect(tty).toBe(`\r\x1b[Jhead\n  a Pending\n  b Pending\r\x1b[2A\x1b[Jhead\n  a ${'Ready '.repeat(5)}Re...\n`);
    let plain = '';
    const lines = new LiveView({ write: (s: string) => (plain += s) });
    lines.update({ line: 'Provisioning: 0/1', block: ['a'] });
    lines.update({ line: 'Provisioning: 0/1', block: ['b'] });
    lines.update({ line: 'Running: 1/1', block: ['b'] });
    lines.finish();
    expect(plain).toBe('Provisioning: 0/1\nRunning: 1/1\n');
  });
});
