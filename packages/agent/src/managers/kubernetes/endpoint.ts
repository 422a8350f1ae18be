/**
 * Control-plane endpoint parsing. The host spec carries `controlPlaneEndpoint` as
 * `https://<host>:<port>` (the VIP or first control-plane node); a bare `host` or `host:port` is
 * accepted too. Each distribution joins on its own port: k3s and kubeadm on the API server port
 * (6443), rke2 on its supervisor port (9345).
 */
export const API_SERVER_PORT = 6443;
export const RKE2_SUPERVISOR_PORT = 9345;

export interface Endpoint {
  host: string;
  /** Port written in the endpoint, if any. */
  port?: number;
}

export function parseEndpoint(value: string): Endpoint {
  const text = value.trim().replace(/^[a-z][a-z0-9+.-]*:\/\//i, '');
  // A bare IPv6 address (several colons, no brackets) has no port.
  if (/^[0-9a-f]*:[0-9a-f:]*:[0-9a-f.]*$/i.test(text)) return { host: text };
  // Not `new URL()`: it drops a port equal to the scheme's default (https://vip:443).
  const m = text.match(/^(?:\[([0-9a-fA-F:.]+)\]|([^/:[\]@\s]+))(?::(\d{1,5}))?\/?$/);
  if (!m) throw new Error(`'${value}' is not a valid endpoint (want https://<host>:<port>)`);
  const host = m[1] ?? m[2];
  return m[3] ? { host, port: Number(m[3]) } : { host };
}

/** `host:port` with IPv6 hosts in brackets. */
export function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The API server address of the cluster: `https://<host>:<port, default 6443>`. */
export function apiServerUrl(endpoint: string): string {
  const { host, port } = parseEndpoint(endpoint);
  return `https://${hostPort(host, port ?? API_SERVER_PORT)}`;
}

/**
 * Join address for a non-init node. `server` from the spec wins when it carries a port. Otherwise
 * the host of `server` (or of the endpoint) gets `joinPort`; with `joinPort` undefined the endpoint's
 * own port (default 6443) is used, which is right for distributions that join on the API server.
 */
export function joinUrl(controlPlaneEndpoint: string, server: string | undefined, joinPort?: number): string {
  if (server) {
    const { host, port } = parseEndpoint(server);
    return `https://${hostPort(host, port ?? joinPort ?? API_SERVER_PORT)}`;
  }
  const { host, port } = parseEndpoint(controlPlaneEndpoint);
  return `https://${hostPort(host, joinPort ?? port ?? API_SERVER_PORT)}`;
}
