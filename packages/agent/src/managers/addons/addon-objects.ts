import type { Addon } from '@edgeplane/protocol';
import { parseAllDocuments, stringify } from 'yaml';
import type { KubeObject } from '../../device/kube-client.js';

/** Field manager of everything the agent applies (visible in managedFields and `kubectl get --show-managed-fields`). */
export const FIELD_MANAGER = 'edgeplane';

/** The objects of an inline multi-document manifest; `kind: List` is flattened. Throws on invalid YAML or objects. */
export function manifestObjects(addon: Addon): KubeObject[] {
  if (!addon.manifest) return [];
  const out: KubeObject[] = [];
  parseAllDocuments(addon.manifest).forEach((doc, i) => {
    if (doc.errors.length > 0) throw new Error(`add-on ${addon.name}: document ${i + 1}: ${doc.errors[0].message}`);
    const value = doc.toJS() as unknown;
    if (value === null || value === undefined) return; // an empty document between '---'
    const items = isList(value) ? value.items : [value];
    for (const item of items) out.push(checkObject(addon.name, i + 1, item));
  });
  return out;
}

function isList(v: unknown): v is { items: unknown[] } {
  return typeof v === 'object' && v !== null && (v as { kind?: unknown }).kind === 'List' && Array.isArray((v as { items?: unknown }).items);
}

function checkObject(addon: string, doc: number, v: unknown): KubeObject {
  const o = v as Partial<KubeObject> | null;
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new Error(`add-on ${addon}: document ${doc} is not an object`);
  if (typeof o.apiVersion !== 'string' || typeof o.kind !== 'string') throw new Error(`add-on ${addon}: document ${doc} has no apiVersion/kind`);
  if (typeof o.metadata?.name !== 'string' || o.metadata.name === '') throw new Error(`add-on ${addon}: ${o.kind} in document ${doc} has no metadata.name`);
  return o as KubeObject;
}

/** Chart reference as helm takes it: `oci://registry/path/<name>` for OCI repositories, else the name with `--repo`. */
export function chartRef(chart: NonNullable<Addon['chart']>): { chart: string; repo?: string } {
  return chart.repo.startsWith('oci://') ? { chart: `${chart.repo.replace(/\/+$/, '')}/${chart.name}` } : { chart: chart.name, repo: chart.repo };
}

/**
 * The HelmChart object k3s and rke2 install charts from (their built-in helm-controller,
 * https://docs.k3s.io/helm#using-the-helm-controller): created in kube-system, installing into the
 * add-on's namespace.
 */
export function helmChartObject(addon: Addon): KubeObject {
  const chart = addon.chart!;
  const ref = chartRef(chart);
  return {
    apiVersion: 'helm.cattle.io/v1',
    kind: 'HelmChart',
    metadata: { name: addon.name, namespace: 'kube-system', labels: { 'app.kubernetes.io/managed-by': FIELD_MANAGER } },
    spec: {
      ...(ref.repo ? { repo: ref.repo } : {}),
      chart: ref.chart,
      version: chart.version,
      targetNamespace: chart.namespace,
      createNamespace: true,
      ...(Object.keys(chart.values).length > 0 ? { valuesContent: stringify(chart.values) } : {}),
    },
  };
}

/** `helm upgrade --install` arguments for a chart add-on (kubeadm clusters, which have no helm-controller). */
export function helmArgs(addon: Addon, valuesFile: string, kubeconfig: string): string[] {
  const chart = addon.chart!;
  const ref = chartRef(chart);
  return [
    'upgrade',
    '--install',
    addon.name,
    ref.chart,
    ...(ref.repo ? ['--repo', ref.repo] : []),
    '--version',
    chart.version,
    '--namespace',
    chart.namespace,
    '--create-namespace',
    '--values',
    valuesFile,
    '--kubeconfig',
    kubeconfig,
    '--wait',
    '--timeout',
    '10m',
  ];
}
