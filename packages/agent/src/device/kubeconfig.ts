import { parse, parseDocument, stringify } from 'yaml';

/** The first cluster's server and the first user's bearer token of a kubeconfig (the shapes Edgeplane reads). */
export interface KubeconfigCredentials {
  server: string;
  token?: string;
}

interface Kubeconfig {
  clusters?: { name?: string; cluster?: { server?: string } }[];
  users?: { name?: string; user?: { token?: string } }[];
}

/** Parses a kubeconfig; throws when it is not one. */
export function kubeconfigCredentials(text: string): KubeconfigCredentials {
  const doc = parse(text) as Kubeconfig | null;
  const server = doc?.clusters?.[0]?.cluster?.server;
  if (typeof server !== 'string' || server === '') throw new Error('kubeconfig has no cluster server');
  const token = doc?.users?.[0]?.user?.token;
  return typeof token === 'string' ? { server, token } : { server };
}

/**
 * The same kubeconfig with every cluster's server set to `server`. A distribution writes its admin
 * kubeconfig for use on the node itself (k3s and rke2 say https://127.0.0.1:6443); the copy handed
 * to operators must name the control-plane endpoint.
 */
export function withServer(text: string, server: string): string {
  // Edit the document rather than the parsed value so comments and key order survive.
  const doc = parseDocument(text);
  const clusters = (doc.toJS() as Kubeconfig | null)?.clusters ?? [];
  clusters.forEach((c, i) => {
    if (c.cluster) doc.setIn(['clusters', i, 'cluster', 'server'], server);
  });
  return doc.toString();
}

/** A token-authenticated kubeconfig (what the simulated clusters hand out). */
export function tokenKubeconfig(options: { clusterName: string; server: string; user: string; token: string; comment?: string }): string {
  const doc = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: options.clusterName, cluster: { server: options.server } }],
    users: [{ name: options.user, user: { token: options.token } }],
    contexts: [{ name: options.clusterName, context: { cluster: options.clusterName, user: options.user } }],
    'current-context': options.clusterName,
  };
  return (options.comment ? `# ${options.comment}\n` : '') + stringify(doc);
}
