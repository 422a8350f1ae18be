import type { ApiClient, Resource, ResourceList } from './api-client.js';
import { formatAge, formatCell, renderTable, toYaml } from './output.js';

/** Indents every line of a block. */
function indent(text: string, by = '  '): string {
  return text
    .trimEnd()
    .split('\n')
    .map((line) => (line ? by + line : line))
    .join('\n');
}

const LABEL_WIDTH = 14;

/** `Label:        value`, aligned like kubectl describe; a multi-line value is indented to match. */
function field(label: string, value: string): string {
  return `${`${label}:`.padEnd(LABEL_WIDTH)}${value.split('\n').join(`\n${' '.repeat(LABEL_WIDTH)}`)}\n`;
}

function keyValues(map: unknown): string {
  if (!map || typeof map !== 'object' || Object.keys(map).length === 0) return '<none>';
  return Object.entries(map as Record<string, unknown>)
    .map(([k, v]) => `${k}=${String(v)}`)
    .join('\n');
}

function section(title: string, value: unknown): string {
  if (value === undefined || value === null || (typeof value === 'object' && Object.keys(value).length === 0)) return `${title}:  <none>\n`;
  return `${title}:\n${indent(toYaml(value))}\n`;
}

/** A titled table, indented under its title; `<none>` when there are no rows. */
function tableSection(title: string, headers: string[], rows: string[][]): string {
  return rows.length ? `${title}:\n${indent(renderTable(headers, rows))}\n` : `${title}:  <none>\n`;
}

const cell = (value: unknown) => formatCell(value, '');
const time = (value: unknown, now: Date) => (typeof value === 'string' ? `${value} (${formatAge(value, now)} ago)` : '<none>');
const age = (value: unknown, now: Date) => (typeof value === 'string' ? formatAge(value, now) : '<none>');
const shortDigest = (d: unknown) => (typeof d === 'string' ? `${d.slice(0, 19)}...` : '<none>');

/** A host's OS rollout (EdgeHost status.os) in one line: profile revision, desired and booted image. */
function osLine(os: unknown): string | undefined {
  if (!os || typeof os !== 'object') return undefined;
  const o = os as Record<string, unknown>;
  const short = (d: unknown) => (typeof d === 'string' ? d.slice(0, 19) : 'unknown');
  const from = o.profile ? `profile ${o.profile} revision ${o.revision}, ` : '';
  const running = `running ${short(o.digest)}${o.bootedSlot ? ` in slot ${o.bootedSlot}` : ''}${o.phase ? ` (${o.phase})` : ''}`;
  const verdict = o.upToDate ? 'up to date' : `NOT up to date${o.message ? `: ${o.message}` : ''}`;
  return `${from}desired ${short(o.desiredDigest)}, ${running}; ${verdict}`;
}

/**
 * Who manages a host's OS, from the inventory its agent reported (docs/kubernetes.md "Agent mode");
 * undefined before the host reported one.
 */
/** Where a host's device key lives (EdgeHost status.identity) in one line; a pending key's identity follows. */
export function identityLine(status: unknown): string | undefined {
  const s = (status ?? {}) as { identity?: Row; pendingIdentity?: Row };
  if (!s.identity) return undefined;
  const one = (id: Row) =>
    id.kind === 'tpm'
      ? `tpm: key held in the device's TPM 2.0 (ES256), EK sha256 ${String(id.ekFingerprint ?? '').slice(0, 16)}${id.ekCertificate ? ', EK certificate on file' : ', no EK certificate'}`
      : `file: Ed25519 key in the agent's data dir (no TPM)`;
  return `${one(s.identity)}${s.pendingIdentity ? `\npending key: ${one(s.pendingIdentity)}` : ''}`;
}

export function osModeLine(inventory: unknown): string | undefined {
  if (!inventory || typeof inventory !== 'object') return undefined;
  const inv = inventory as { osMode?: string; os?: { name?: string; version?: string } };
  const os = [inv.os?.name, inv.os?.version].filter(Boolean).join(' ');
  return inv.osMode === 'unmanaged'
    ? `unmanaged OS${os ? ` (${os})` : ''}: the host keeps its own OS; Kubernetes is installed from the profile's artifact`
    : `managed OS${os ? ` (${os})` : ''}: Edgeplane A/B slots; the OS image carries Kubernetes`;
}

/** The metadata every describe starts with. */
function header(resource: Resource, now: Date): string {
  const m = resource.metadata as Record<string, unknown>;
  let out = '';
  out += field('Name', String(m.name));
  out += field('Kind', String(resource.kind ?? '<none>'));
  out += field('Project', String(m.project ?? '<none>'));
  out += field('UID', String(m.uid ?? '<none>'));
  out += field('Labels', keyValues(m.labels));
  out += field('Annotations', keyValues(m.annotations));
  out += field('Generation', String(m.generation ?? '<none>'));
  out += field('Version', String(m.resourceVersion ?? '<none>'));
  out += field('Created', time(m.createdAt, now));
  return out;
}

type Row = Record<string, unknown>;

function conditionsTable(conditions: Row[], now: Date): string {
  return tableSection(
    'Conditions',
    ['TYPE', 'STATUS', 'REASON', 'AGE', 'MESSAGE'],
    conditions.map((c) => [String(c.type), String(c.status), cell(c.reason), age(c.lastTransitionTime, now), cell(c.message)]),
  );
}

/**
 * A human-readable view of one resource, in the manner of `kubectl describe`: metadata as aligned
 * fields, spec and status as indented YAML, then the events about it (oldest first).
 */
export function renderDescribe(resource: Resource, events: Resource[], now: Date = new Date()): string {
  let out = header(resource, now);
  const mode = resource.kind === 'EdgeHost' ? osModeLine(resource.status?.inventory) : undefined;
  if (mode) out += field('OS Mode', mode);
  const identity = resource.kind === 'EdgeHost' ? identityLine(resource.status) : undefined;
  if (identity) out += field('Identity', identity);
  const os = osLine(resource.status?.os);
  if (os) out += field('OS', os);
  out += section('Spec', resource.spec);
  out += section('Status', resource.status);
  out += renderEvents(events, now);
  return out;
}

/**
 * `describe cluster`: what it runs (profile, site, endpoint, variables), its phase, a table of nodes
 * (or VMs), the latest upgrade with each node's change and phase, conditions, then events.
 */
export function renderClusterDescribe(resource: Resource, events: Resource[], now: Date = new Date()): string {
  const spec = (resource.spec ?? {}) as Row;
  const status = (resource.status ?? {}) as Row;
  const profile = (spec.profile ?? {}) as Row;
  const running = status.profileRevision;
  let out = header(resource, now);
  out += field('Type', String(spec.type ?? 'native'));
  out += field(
    'Profile',
    `${profile.name} revision ${profile.revision}${running !== undefined && running !== profile.revision ? ` (nodes run revision ${running})` : ''}`,
  );
  out += field('Site', cell(spec.site));
  out += field('Phase', cell(status.phase));
  out += field('Endpoint', cell(status.controlPlaneEndpoint ?? spec.controlPlaneEndpoint));
  out += field('Kubeconfig', status.kubeconfigAvailable ? `available (edgeplane kubeconfig ${resource.metadata.name})` : 'not yet');
  out += field('Variables', keyValues(spec.variables));
  if (spec.appliance) out += field('Appliance', String(spec.appliance));
  const strategy = spec.upgradeStrategy as Row | undefined;
  if (strategy)
    out += field(
      'Upgrades',
      Object.entries(strategy)
        .map(([k, v]) => `${k}=${String(v)}`)
        .join(', '),
    );

  const nodes = (status.nodes as Row[] | undefined) ?? [];
  const seen = new Set(nodes.map((n) => n.host));
  const notYet = ((spec.nodes as Row[] | undefined) ?? []).filter((n) => !seen.has(n.host));
  out += tableSection(
    'Nodes',
    ['HOST', 'ROLE', 'PHASE', 'READY', 'KUBERNETES', 'SLOT', 'OS IMAGE', 'MESSAGE'],
    [
      ...nodes.map((n) => [
        String(n.host),
        String(n.role),
        String(n.phase),
        String(n.ready),
        cell(n.kubernetesVersion),
        cell(n.bootedSlot),
        shortDigest(n.osImageDigest),
        cell(n.message),
      ]),
      ...notYet.map((n) => [String(n.host), String(n.role), 'Pending', 'false', '<none>', '<none>', '<none>', '<none>']),
    ],
  );
  const vms = spec.vms as Row[] | undefined;
  if (vms?.length) {
    out += tableSection(
      'VMs',
      ['NAME', 'ROLE', 'VCPUS', 'MEMORY', 'DISK', 'NETWORK'],
      vms.map((v) => [String(v.name), String(v.role), String(v.vcpus), `${v.memoryMiB}Mi`, `${v.diskGiB}Gi`, cell(v.network)]),
    );
  }
  out += upgradeSection(status.upgrade as Row | undefined);
  out += conditionsTable((status.conditions as Row[] | undefined) ?? [], now);
  return out + renderEvents(events, now);
}

function upgradeSection(u: Row | undefined): string {
  if (!u) return 'Upgrade:  <none>\n';
  const nodes = (u.nodes as Row[] | undefined) ?? [];
  const done = nodes.filter((n) => n.phase === 'Done' || n.phase === 'Skipped').length;
  let out = `Upgrade:\n`;
  out += indent(field('Upgrade', `${u.id}: revision ${u.fromRevision ?? 'new'} -> ${u.toRevision}`));
  out += `\n${indent(field('State', `${u.state}, ${done}/${nodes.length} node(s) done`))}\n`;
  if (u.failedNode) out += `${indent(field('Failed node', String(u.failedNode)))}\n`;
  if (u.message) out += `${indent(field('Message', String(u.message)))}\n`;
  out += `${indent(
    renderTable(
      ['HOST', 'ROLE', 'CHANGE', 'WHAT', 'PHASE', 'MESSAGE'],
      nodes.map((n) => [
        String(n.host),
        String(n.role),
        String(n.change),
        ((n.reasons as string[] | undefined) ?? []).join(', ') || '-',
        String(n.phase),
        cell(n.message),
      ]),
    ),
  )}\n`;
  return out;
}

/**
 * `describe rollout`: what it rolls out to which clusters and how (batches, budgets, approval),
 * its phase, a table of batches and one of clusters (batch, site, state, reason), conditions, events.
 */
export function renderRolloutDescribe(resource: Resource, events: Resource[], now: Date = new Date()): string {
  const spec = (resource.spec ?? {}) as Row;
  const status = (resource.status ?? {}) as Row;
  const profile = (spec.profile ?? {}) as Row;
  const targets = (spec.targets ?? {}) as Row;
  const strategy = (spec.strategy ?? {}) as Row;
  let out = header(resource, now);
  out += field('Profile', `${profile.name} revision ${profile.revision}`);
  const names = targets.names as string[] | undefined;
  out += field(
    'Targets',
    [names ? `names ${names.join(', ')}` : '', targets.selector ? `selector ${targets.selector}` : ''].filter(Boolean).join('; ') || '<none>',
  );
  const limits = [
    strategy.maxFailures !== undefined ? `max failures ${strategy.maxFailures}` : '',
    strategy.maxParallel !== undefined ? `max parallel ${strategy.maxParallel}` : '',
    `approval ${strategy.requireApproval ? 'required before each batch after the first' : 'not required'}`,
    `cluster timeout ${strategy.clusterTimeout ?? '2h'}`,
    `pre-stage ${strategy.prestageAhead ?? '2h'} ahead`,
  ];
  out += field('Strategy', limits.filter(Boolean).join(', '));
  const budgets = (strategy.disruptionBudgets as Row[] | undefined) ?? [];
  if (budgets.length) out += field('Budgets', budgets.map((b) => `at most ${b.maxUnavailable} per ${b.labelKey}`).join(', '));
  out += field('Phase', cell(status.phase));
  if (status.message) out += field('Message', String(status.message));
  if (status.stopReason) out += field('Stopped', String(status.stopReason));
  out += field('Started', time(status.startedAt, now));
  if (status.finishedAt) out += field('Finished', time(status.finishedAt, now));

  const specBatches = (strategy.batches as Row[] | undefined) ?? [];
  const batches = (status.batches as Row[] | undefined) ?? [];
  const current = status.currentBatch;
  out += tableSection(
    'Batches',
    ['#', 'NAME', 'LIMIT', 'PHASE', 'CLUSTERS', 'SUCCEEDED', 'FAILED', 'APPROVED'],
    (batches.length ? batches : specBatches).map((b, i) => [
      `${i + 1}${i === current ? '*' : ''}`,
      String(b.name ?? specBatches[i]?.name ?? `batch-${i + 1}`),
      String(specBatches[i]?.limit ?? '<none>'),
      String(b.phase ?? 'Pending'),
      String(b.total ?? 0),
      String(b.succeeded ?? 0),
      String(b.failed ?? 0),
      // Only batches after the first wait for approval, and only with requireApproval.
      i === 0 || !strategy.requireApproval ? '-' : b.approved ? 'yes' : 'no',
    ]),
  );
  const clusters = (status.clusters as Row[] | undefined) ?? [];
  out += tableSection(
    'Clusters',
    ['NAME', 'BATCH', 'SITE', 'STATE', 'FROM', 'STARTED', 'FINISHED', 'NEXT WINDOW', 'REASON', 'MESSAGE'],
    clusters.map((c) => [
      String(c.name),
      typeof c.batch === 'number' && c.batch >= 0 ? String(c.batch + 1) : '-',
      cell(c.site),
      String(c.state),
      cell(c.fromRevision),
      age(c.startedAt, now),
      age(c.finishedAt, now),
      age(c.nextWindowAt, now),
      cell(c.reason),
      cell(c.message),
    ]),
  );
  out += conditionsTable((status.conditions as Row[] | undefined) ?? [], now);
  return out + renderEvents(events, now);
}

/** At most this many events are shown: the latest ones. */
const MAX_EVENTS = 30;

/** Events oldest first, like kubectl; when there are many, only the latest MAX_EVENTS. */
export function renderEvents(events: Resource[], now: Date = new Date()): string {
  if (events.length === 0) return 'Events:  <none>\n';
  const sorted = [...events].sort((a, b) => timeOf(a) - timeOf(b));
  const shown = sorted.slice(-MAX_EVENTS);
  const rows = shown.map((e) => {
    const spec = e.spec ?? {};
    const status = e.status ?? {};
    const count = typeof status.count === 'number' && status.count > 1 ? ` (x${status.count})` : '';
    return [
      formatCell(spec.type, 'spec.type'),
      formatCell(spec.reason, 'spec.reason'),
      typeof status.lastTimestamp === 'string' ? `${formatAge(status.lastTimestamp, now)}${count}` : '<none>',
      formatCell(spec.source, 'spec.source'),
      formatCell(spec.message, 'spec.message'),
    ];
  });
  const older = sorted.length - shown.length;
  const note = older > 0 ? `  (${older} older event(s) not shown)\n` : '';
  return `Events:\n${note}${indent(renderTable(['TYPE', 'REASON', 'AGE', 'FROM', 'MESSAGE'], rows))}\n`;
}

function timeOf(event: Resource): number {
  const t = event.status?.lastTimestamp;
  return typeof t === 'string' ? Date.parse(t) || 0 : 0;
}

/**
 * Events about one object: selected by kind and name on the server (every page), without those
 * that name another uid (an earlier object of the same name).
 */
export async function eventsOf(client: ApiClient, resource: Resource): Promise<Resource[]> {
  const { name, uid } = resource.metadata as { name: string; uid?: unknown };
  const items: Resource[] = [];
  const seen = new Set<string>();
  let next: string | undefined;
  do {
    const page = await client.request<ResourceList>('GET', 'events', {
      query: { fieldSelector: `involvedObject.kind=${resource.kind},involvedObject.name=${name}`, continue: next },
    });
    items.push(...page.items);
    next = page.metadata?.continue;
    // A server handing out the same token twice would loop forever.
    if (next && seen.has(next)) break;
    if (next) seen.add(next);
  } while (next);
  // Checked here too: a server that does not know a selector field answers with more than asked.
  const about = (e: Resource) => {
    const of = (e.spec?.involvedObject ?? {}) as { kind?: unknown; name?: unknown; uid?: unknown };
    return of.kind === resource.kind && of.name === name && !(typeof of.uid === 'string' && typeof uid === 'string' && of.uid !== uid);
  };
  return items.filter(about);
}
