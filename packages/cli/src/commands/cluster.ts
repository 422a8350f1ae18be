import type { ApiClient, Resource } from '../api-client.js';
import { renderDescribe, renderEvents } from '../describe-output.js';
import { formatAge, formatCell, renderTable } from '../output.js';

function indent(text: string): string {
  return text
    .trimEnd()
    .split('\n')
    .map((l) => (l ? `  ${l}` : l))
    .join('\n');
}

/** Events about one object, filtered by the server. */
export async function eventsOf(client: ApiClient, kind: string, name: string): Promise<Resource[]> {
  const list = await client.request<{ items: Resource[] }>('GET', 'events', {
    query: { fieldSelector: `involvedObject.kind=${kind},involvedObject.name=${name}` },
  });
  return list.items;
}

/**
 * `describe cluster`: the usual fields, then a table of nodes (phase, Ready, Kubernetes version,
 * booted slot and OS image digest) and of conditions, then the cluster's events.
 */
export function renderClusterDescribe(resource: Resource, events: Resource[], now: Date = new Date()): string {
  const { nodes = [], conditions = [], ...status } = (resource.status ?? {}) as { nodes?: Record<string, unknown>[]; conditions?: Record<string, unknown>[] };
  const head = renderDescribe({ ...resource, status }, [], now).replace(/Events: {2}<none>\n$/, '');
  const nodeRows = nodes.map((n) => [
    String(n.host),
    String(n.role),
    String(n.phase),
    String(n.ready),
    formatCell(n.kubernetesVersion, 'kubernetesVersion'),
    formatCell(n.bootedSlot, 'bootedSlot'),
    typeof n.osImageDigest === 'string' ? `${n.osImageDigest.slice(0, 19)}...` : '<none>',
    formatCell(n.message, 'message'),
  ]);
  const condRows = conditions.map((c) => [
    String(c.type),
    String(c.status),
    formatCell(c.reason, 'reason'),
    typeof c.lastTransitionTime === 'string' ? formatAge(c.lastTransitionTime, now) : '<none>',
    formatCell(c.message, 'message'),
  ]);
  let out = head;
  out += nodeRows.length
    ? `Nodes:\n${indent(renderTable(['HOST', 'ROLE', 'PHASE', 'READY', 'KUBERNETES', 'SLOT', 'OS IMAGE', 'MESSAGE'], nodeRows))}\n`
    : 'Nodes:  <none>\n';
  out += condRows.length ? `Conditions:\n${indent(renderTable(['TYPE', 'STATUS', 'REASON', 'AGE', 'MESSAGE'], condRows))}\n` : 'Conditions:  <none>\n';
  return out + renderEvents(events, now);
}
