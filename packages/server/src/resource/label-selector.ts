import { EdgeplaneError } from '@edgeplane/protocol';

/**
 * Kubernetes label selector syntax (k=v, k==v, k!=v, k, !k, k in (a,b), k notin (a,b); comma = AND).
 * Hand-written: the only maintained parser lives inside @kubernetes/client-node's internals, which
 * would pull the whole Kubernetes client into the server for ~40 lines.
 */
export type Requirement =
  | { key: string; op: 'eq' | 'neq'; value: string }
  | { key: string; op: 'in' | 'notin'; values: string[] }
  | { key: string; op: 'exists' | 'notexists' };

export function parseLabelSelector(input: string): Requirement[] {
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of input) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (cur.trim() !== '' || parts.length > 0) parts.push(cur);
  const key = '([A-Za-z0-9][-A-Za-z0-9_./]*)';
  const value = '([A-Za-z0-9][-A-Za-z0-9_.]*|)';
  return parts.map((raw) => {
    const p = raw.trim();
    let m = p.match(new RegExp(`^${key}\\s*(==|=|!=)\\s*${value}$`));
    if (m) return { key: m[1], op: m[2] === '!=' ? 'neq' : 'eq', value: m[3] } as Requirement;
    m = p.match(new RegExp(`^${key}\\s+(in|notin)\\s*\\(([^)]*)\\)$`));
    if (m) return { key: m[1], op: m[2] as 'in' | 'notin', values: m[3].split(',').map((v) => v.trim()) };
    m = p.match(new RegExp(`^(!?)${key}$`));
    if (m) return { key: m[2], op: m[1] ? 'notexists' : 'exists' };
    throw new EdgeplaneError('InvalidLabelSelector', `cannot parse label selector requirement "${p}"`, { selector: input });
  });
}

export function matchesSelector(labels: Record<string, string>, reqs: Requirement[]): boolean {
  return reqs.every((r) => {
    const has = Object.hasOwn(labels, r.key);
    const v = labels[r.key];
    switch (r.op) {
      case 'eq':
        return has && v === r.value;
      case 'neq':
        return !has || v !== r.value;
      case 'in':
        return has && r.values.includes(v);
      case 'notin':
        return !has || !r.values.includes(v);
      case 'exists':
        return has;
      case 'notexists':
        return !has;
      default:
        return false;
    }
  });
}
