import type { Resource } from './api-client.js';
import { formatAge, formatCell, renderTable, toYaml } from './output.js';

/** Indents every line of a block. */
function indent(text: string, by = '  '): string {
  return text
    .trimEnd()
    .split('\n')
    .map((line) => (line ? by + line : line))
    .join('\n');
}

function keyValues(map: unknown): string {
  if (!map || typeof map !== 'object' || Object.keys(map).length === 0) return '<none>';
  return Object.entries(map as Record<string, unknown>)
    .map(([k, v], i) => `${i === 0 ? '' : ' '.repeat(14)}${k}=${String(v)}`)
    .join('\n');
}

function section(title: string, value: unknown): string {
  if (value === undefined || value === null || (typeof value === 'object' && Object.keys(value).length === 0)) return `${title}:  <none>\n`;
  return `${title}:\n${indent(toYaml(value))}\n`;
}

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
 * A human-readable view of one resource, in the manner of `kubectl describe`: metadata as aligned
 * fields, spec and status as indented YAML, then the events about it (oldest first).
 */
export function renderDescribe(resource: Resource, events: Resource[], now: Date = new Date()): string {
  const m = resource.metadata as Record<string, unknown>;
  const created = typeof m.createdAt === 'string' ? `${m.createdAt} (${formatAge(m.createdAt, now)} ago)` : '<none>';
  const field = (label: string, value: string) => `${`${label}:`.padEnd(14)}${value}\n`;
  let out = '';
  out += field('Name', String(m.name));
  out += field('Kind', String(resource.kind ?? '<none>'));
  out += field('Project', String(m.project ?? '<none>'));
  out += field('UID', String(m.uid ?? '<none>'));
  out += field('Labels', keyValues(m.labels));
  out += field('Annotations', keyValues(m.annotations));
  out += field('Generation', String(m.generation ?? '<none>'));
  out += field('Version', String(m.resourceVersion ?? '<none>'));
  out += field('Created', created);
  const os = osLine(resource.status?.os);
  if (os) out += field('OS', os);
  out += section('Spec', resource.spec);
  out += section('Status', resource.status);
  out += renderEvents(events, now);
  return out;
}

export function renderEvents(events: Resource[], now: Date = new Date()): string {
  if (events.length === 0) return 'Events:  <none>\n';
  const sorted = [...events].sort((a, b) => timeOf(a) - timeOf(b));
  const rows = sorted.map((e) => {
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
  return `Events:\n${indent(renderTable(['TYPE', 'REASON', 'AGE', 'FROM', 'MESSAGE'], rows))}\n`;
}

function timeOf(event: Resource): number {
  const t = event.status?.lastTimestamp;
  return typeof t === 'string' ? Date.parse(t) || 0 : 0;
}

/** The events whose involvedObject is this resource. */
export function eventsFor(resource: Resource, events: Resource[]): Resource[] {
  return events.filter((e) => {
    const involved = e.spec?.involvedObject as { kind?: unknown; name?: unknown } | undefined;
    return involved?.kind === resource.kind && involved?.name === resource.metadata.name;
  });
}
