import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** Latest modification time (ms) of a file or of anything below a directory, skipping node_modules and dist; 0 when missing. */
export function newest(path) {
  if (!existsSync(path)) return 0;
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let m = st.mtimeMs;
  for (const e of readdirSync(path)) if (e !== 'node_modules' && e !== 'dist') m = Math.max(m, newest(join(path, e)));
  return m;
}
