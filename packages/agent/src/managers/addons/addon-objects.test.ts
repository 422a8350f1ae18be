import { Addon } from '@edgeplane/protocol';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { helmArgs, helmChartObject, manifestObjects } from './addon-objects.js';

describe('add-on objects', () => {
  it('splits multi-document manifests, skips empty documents and flattens a List', () => {
    const addon = Addon.parse({
      name: 'app',
      manifest:
        '---\napiVersion: v1\nkind: Namespace\nmetadata: {name: app}\n---\n---\napiVersion: v1\nkind: List\nitems:\n  - {apiVersion: v1, kind: ConfigMap, metadata: {name: a, namespace: app}}\n  - {apiVersion: v1, kind: ConfigMap, metadata: {name: b, namespace: app}}\n',
    });
    expect(manifestObjects(addon).map((o) => `${o.kind}/${o.metadata.name}`)).toEqual(['Namespace/app', 'ConfigMap/a', 'ConfigMap/b']);
  });

  it('names the document that is not a Kubernetes object', () => {
    expect(() => manifestObjects(Addon.parse({ name: 'x', manifest: 'apiVersion: v1\nkind: Secret\nmetadata: {}\n' }))).toThrow(
      /document 1 has no metadata.name/,
    );
    expect(() => manifestObjects(Addon.parse({ name: 'x', manifest: 'a: [1\n' }))).toThrow(/add-on x: document 1/);
  });

  it('renders a HelmChart for helm-controller and helm CLI arguments, with OCI charts as chart references', () => {
    const http = Addon.parse({
      name: 'metrics',
      chart: { repo: 'https://charts.example.test', name: 'metrics-server', version: '3.12.1', namespace: 'monitoring', values: { replicas: 2 } },
    });
    const chart = helmChartObject(http);
    expect(chart).toMatchObject({ apiVersion: 'helm.cattle.io/v1', kind: 'HelmChart', metadata: { name: 'metrics', namespace: 'kube-system' } });
    expect(chart.spec).toMatchObject({
      repo: 'https://charts.example.test',
      chart: 'metrics-server',
      version: '3.12.1',
      targetNamespace: 'monitoring',
      createNamespace: true,
    });
    expect(parse((chart.spec as { valuesContent: string }).valuesContent)).toEqual({ replicas: 2 });

    const oci = Addon.parse({ name: 'cilium', chart: { repo: 'oci://registry.local/charts/', name: 'cilium', version: '1.16.0' } });
    expect(helmChartObject(oci).spec).toMatchObject({ chart: 'oci://registry.local/charts/cilium' });
    expect(helmChartObject(oci).spec).not.toHaveProperty('repo');
    const args = helmArgs(oci, '/v.yaml', '/etc/kubernetes/admin.conf');
    expect(args.slice(0, 4)).toEqual(['upgrade', '--install', 'cilium', 'oci://registry.local/charts/cilium']);
    expect(args).not.toContain('--repo');
    expect(args).toEqual(expect.arrayContaining(['--namespace', 'default', '--values', '/v.yaml', '--kubeconfig', '/etc/kubernetes/admin.conf']));
  });
});
