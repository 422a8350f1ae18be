import { describe, expect, it } from 'vitest';
import { Progress, progressBar } from './progress.js';

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
});
