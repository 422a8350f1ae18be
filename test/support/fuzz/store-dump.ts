import { KINDS } from '@edgeplane/protocol';

/** Every object of every kind (through the API, as an admin) plus the audit log: the store as users see it. */
export interface StoreDump {
  /** `<plural>/<name>` -> the object as the API returns it. */
  objects: Map<string, Record<string, unknown>>;
  audit: Record<string, unknown>[];
}

async function getJson(base: string, token: string, path: string): Promise<{ items: Record<string, unknown>[]; metadata?: { continue?: string } }> {
  const res = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${token}` } });
  if (res.status !== 200) throw new Error(`dump: GET ${path} answered ${res.status}: ${(await res.text()).slice(0, 300)}`);
  return res.json();
}

async function allPages(base: string, token: string, path: string): Promise<Record<string, unknown>[]> {
  const items: Record<string, unknown>[] = [];
  let cont: string | undefined;
  for (let page = 0; page < 1000; page++) {
    const sep = path.includes('?') ? '&' : '?';
    const body = await getJson(base, token, `${path}${sep}limit=500${cont ? `&continue=${encodeURIComponent(cont)}` : ''}`);
    items.push(...body.items);
    cont = body.metadata?.continue;
    if (!cont) return items;
  }
  throw new Error(`dump: ${path} has more than 1000 pages`);
}

export async function dumpStore(base: string, adminToken: string): Promise<StoreDump> {
  const objects = new Map<string, Record<string, unknown>>();
  for (const k of KINDS) {
    for (const item of await allPages(base, adminToken, `/api/v1/${k.plural}`)) {
      const name = (item.metadata as { name: string }).name;
      objects.set(`${k.plural}/${name}`, item);
    }
  }
  const audit = await allPages(base, adminToken, '/api/v1/audit');
  return { objects, audit };
}

/** What may differ between two dumps without a 2xx answer explaining it. */
export interface DiffRules {
  /** `<plural>/<name>` keys some 2xx answer wrote (created, changed, deleted). */
  touched: Set<string>;
  /** Hosts the fuzzing agents own: their status, connectivity and resourceVersion move with every frame. */
  agentHosts: Set<string>;
  /** Names (any kind) that appeared in a 2xx answer or its path: audit entries naming them are explained. */
  namesIn2xx: Set<string>;
  /** API tokens the fuzzer sends: their status.lastUsedAt moves with every request. */
  usedTokens: Set<string>;
}

/** Copy of a host without what its own agent reports (status, and the resourceVersion its status writes bump). */
function withoutAgentFields(o: Record<string, unknown>): Record<string, unknown> {
  const { status: _s, ...rest } = o;
  const { resourceVersion: _rv, ...meta } = (o.metadata ?? {}) as Record<string, unknown>;
  return { ...rest, metadata: meta };
}

function involved(o: Record<string, unknown>): string | undefined {
  const io = (o.spec as { involvedObject?: { kind?: string; name?: string } } | undefined)?.involvedObject;
  const kind = KINDS.find((k) => k.kind === io?.kind);
  return kind && io?.name ? `${kind.plural}/${io.name}` : undefined;
}

/** Differences no 2xx answer explains, as readable lines (empty: the store is as expected). */
export function unexplainedDifferences(before: StoreDump, after: StoreDump, rules: DiffRules): string[] {
  const problems: string[] = [];
  const keys = new Set([...before.objects.keys(), ...after.objects.keys()]);
  for (const key of keys) {
    if (rules.touched.has(key)) continue;
    let a = before.objects.get(key);
    let b = after.objects.get(key);
    if (rules.usedTokens.has(key)) [a, b] = [a, b].map((o) => o && { ...o, status: { ...(o.status as object), lastUsedAt: undefined } });
    // Events are written by the system about an object: explained when that object was touched or is a fuzzing agent's host.
    if (key.startsWith('events/')) {
      const about = involved((b ?? a)!);
      if (about && (rules.touched.has(about) || rules.agentHosts.has(about))) continue;
    }
    if (rules.agentHosts.has(key) && a && b) {
      if (JSON.stringify(withoutAgentFields(a)) !== JSON.stringify(withoutAgentFields(b)))
        problems.push(
          `${key}: changed (beyond agent-reported status)\n  before ${JSON.stringify(withoutAgentFields(a)).slice(0, 600)}\n  after  ${JSON.stringify(withoutAgentFields(b)).slice(0, 600)}`,
        );
      continue;
    }
    if (!a) problems.push(`${key}: appeared without a 2xx answer: ${JSON.stringify(b).slice(0, 400)}`);
    else if (!b) problems.push(`${key}: disappeared without a 2xx answer: ${JSON.stringify(a).slice(0, 400)}`);
    else if (JSON.stringify(a) !== JSON.stringify(b))
      problems.push(`${key}: changed\n  before ${JSON.stringify(a).slice(0, 600)}\n  after  ${JSON.stringify(b).slice(0, 600)}`);
  }
  // The audit log only grows: every old entry unchanged, every new one about something a 2xx answer named.
  before.audit.forEach((e, i) => {
    if (JSON.stringify(e) !== JSON.stringify(after.audit[i]))
      problems.push(`audit entry ${i} changed: ${JSON.stringify(e)} -> ${JSON.stringify(after.audit[i])}`);
  });
  for (const e of after.audit.slice(before.audit.length)) {
    const target = String(e.target ?? '');
    const name = target.split('/').pop() ?? '';
    if (!rules.namesIn2xx.has(name) && !rules.namesIn2xx.has(target))
      problems.push(`audit entry not explained by a 2xx answer: ${JSON.stringify(e).slice(0, 400)}`);
  }
  return problems;
}
