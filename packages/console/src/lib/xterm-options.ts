import type { ITerminalOptions } from '@xterm/xterm';

/**
 * The options every console terminal (live shell, recording replay) uses.
 *
 * xterm's DOM renderer makes each row exactly one cell high with `overflow: hidden`, and with the
 * default line height (1.0) a cell is the font's ascent + descent rounded to device pixels. At a
 * device scale factor of 1 that rounding lands the underscore (drawn at the very bottom of the
 * descent) outside the row, so `x86_64` showed as `x86 64`; at 2x the rounding happened to keep it.
 * A little leading gives the descent room at every scale.
 */
export const XTERM_OPTIONS = {
  fontSize: 14,
  lineHeight: 1.2,
  fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, "Liberation Mono", monospace',
} satisfies ITerminalOptions;
