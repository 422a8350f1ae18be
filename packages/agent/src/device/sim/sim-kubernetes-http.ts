/**
 * SIMULATION. The simulated cluster registry shared by real machines over their network, for
 * Kubernetes simulated inside real guests (sim-guest-device.ts). The guests of a virtualized cluster
 * share no process and no filesystem, so the in-process registry (sim-kubernetes.ts) alone cannot
 * hold their cluster. The rendezvous is the one real nodes use: the cluster's API endpoint. The node
 * that initializes the cluster keeps the registry and serves it over HTTP on the endpoint's port
 * (6443, plus rke2's supervisor port); every other node reaches it at the address its own
 * configuration names (k3s/rke2 `server`, kubeadm `apiServerEndpoint`, the kubeconfigs' `server`),
 * as a kubelet reaches its API server. Nothing new is needed to find it: the control plane already
 * hands every node that address (the init node's address, or the profile's endpoint).
 *
 * Plain HTTP, not TLS: no real API server listens there and the served registry checks every join
 * token and credential itself, exactly as in-process (a wrong token is refused the same way).
 * Joined nodes post their simulated kubelet's status every HEARTBEAT_MS; the serving node marks a
 * node whose posts stop for LEASE_MS NotReady, as the node lifecycle controller does when a
 * kubelet stops renewing its lease (kube-controller-manager node-monitor-grace-period, 40 s).
 */
import { createServer, type Server } from 'node:http';
import type { Distribution } from '@edgeplane/protocol';
import { parseEndpoint } from '../../managers/kubernetes/endpoint.js';
import { KubernetesApiError } from '../kube-client.js';
import {
  SIM_RKE2_SUPERVISOR_PORT,
  type SimApiSession,
  type SimClusterRegistry,
  type SimClusterSession,
  type SimCredentials,
  type SimInitRequest,
  type SimJoinRequest,
  type SimKubernetes,
  SimRefusal,
} from './sim-kubernetes.js';

export const SIM_API_PATH = '/edgeplane-simulated-kubernetes';
export const HEARTBEAT_MS = 10_000;
export const LEASE_MS = 40_000;
const MAX_BODY = 4 * 1024 * 1024;
const SESSION_METHODS = new Set<keyof SimApiSession>(['readNode', 'apply', 'get', 'list', 'cordon', 'evict', 'deleteNode']);

type Call =
  | { op: 'join'; args: [SimJoinRequest] }
  | { op: 'setNodeReady'; args: [SimCredentials, boolean, string, string?] }
  | { op: 'resetNode'; args: [{ server: string; token: string }, { removeEtcdMember: boolean }] }
  | { op: 'uploadCerts'; args: [{ server: string; token: string }, string] }
  | { op: 'session'; creds: { server: string; token: string }; method: keyof SimApiSession; args: unknown[] };

export interface NetworkedSimKubernetesOptions {
  /** Address the init node's registry listens on (default every address: the other guests reach it on their network). */
  listenHost?: string;
  /** Timeout of one call to another node's registry. */
  timeoutMs?: number;
  /** Told about every HTTP server started (the port) and every lease that expired. */
  log?: (line: string) => void;
}

/**
 * A SimClusterRegistry for a real machine: clusters this node initialized live in `local` (kept in
 * its state dir, so they survive a reboot) and are served to the other nodes; calls about any other
 * cluster go to the registry at the address they name.
 */
export class NetworkedSimKubernetes implements SimClusterRegistry {
  private readonly servers = new Map<number, Server>();
  private readonly leases = new Map<string, { creds: SimCredentials; at: number }>();
  private readonly leaseTimer: NodeJS.Timeout;

  constructor(
    private readonly local: SimKubernetes,
    private readonly options: NetworkedSimKubernetesOptions = {},
  ) {
    this.leaseTimer = setInterval(() => void this.expireLeases(), HEARTBEAT_MS);
    this.leaseTimer.unref();
  }

  /** Serves the clusters `local` already holds (after a restart: the init node's agent starts again). */
  async serveLoaded(): Promise<void> {
    for (const e of this.local.endpoints()) await this.serve(e.apiPort, e.distribution);
  }

  async init(req: SimInitRequest): Promise<{ admin: SimCredentials; node: SimCredentials }> {
    const result = await this.local.init(req);
    await this.serve(req.apiPort, req.distribution);
    return result;
  }

  join(req: SimJoinRequest): Promise<{ admin?: SimCredentials; node: SimCredentials }> {
    if (this.local.servesHost(parseEndpoint(req.server).host)) return this.local.join(req);
    return this.call(req.server, { op: 'join', args: [req] }, true);
  }

  setNodeReady(creds: SimCredentials, running: boolean, message: string, kubeletVersion?: string): Promise<void> {
    if (this.isLocal(creds.server)) return this.local.setNodeReady(creds, running, message, kubeletVersion);
    return this.call(creds.server, { op: 'setNodeReady', args: [creds, running, message, kubeletVersion] }, true);
  }

  resetNode(creds: { server: string; token: string }, options: { removeEtcdMember: boolean }): Promise<void> {
    if (this.isLocal(creds.server)) return this.local.resetNode(creds, options);
    return this.call(creds.server, { op: 'resetNode', args: [creds, options] }, true);
  }

  uploadCerts(creds: { server: string; token: string }, certificateKey: string): Promise<void> {
    if (this.isLocal(creds.server)) return this.local.uploadCerts(creds, certificateKey);
    return this.call(creds.server, { op: 'uploadCerts', args: [creds, certificateKey] }, true);
  }

  session(creds: { server: string; token: string }): SimClusterSession {
    if (this.isLocal(creds.server)) return this.local.session(creds);
    const remote =
      (method: keyof SimApiSession) =>
      (...args: unknown[]) =>
        this.call(creds.server, { op: 'session', creds, method, args }, false);
    return {
      readNode: remote('readNode'),
      apply: remote('apply'),
      get: remote('get'),
      list: remote('list'),
      cordon: remote('cordon'),
      evict: remote('evict'),
      deleteNode: remote('deleteNode'),
    } as SimClusterSession;
  }

  /** Stops serving (the agent stops). */
  async close(): Promise<void> {
    clearInterval(this.leaseTimer);
    await Promise.all([...this.servers.values()].map((s) => new Promise((r) => s.close(r))));
    this.servers.clear();
  }

  private isLocal(server: string): boolean {
    return this.local.inspect(server) !== undefined;
  }

  /** Starts the HTTP server of the registry on `apiPort` (and rke2's supervisor port) once. */
  private async serve(apiPort: number, distribution: Distribution): Promise<void> {
    const ports = distribution === 'rke2' ? [apiPort, SIM_RKE2_SUPERVISOR_PORT] : [apiPort];
    for (const port of ports) {
      if (this.servers.has(port)) continue;
      const server = createServer((req, res) => void this.handle(req, res));
      this.servers.set(port, server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, this.options.listenHost ?? '0.0.0.0', () => resolve());
      }).catch((err) => {
        this.servers.delete(port);
        throw new SimRefusal(`cannot serve the simulated cluster API on port ${port}: ${(err as Error).message}`, true);
      });
      this.options.log?.(`simulated Kubernetes API (plain HTTP, SIMULATION) served on port ${port} for the other guests`);
    }
  }

  private async handle(req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse): Promise<void> {
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body ?? null));
    };
    if (req.method !== 'POST' || req.url !== SIM_API_PATH) return reply(404, { error: 'NotFound', message: 'simulated Kubernetes registry: POST only' });
    let size = 0;
    const chunks: Buffer[] = [];
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > MAX_BODY) return reply(413, { error: 'TooLarge', message: 'request too large' });
      chunks.push(chunk as Buffer);
    }
    let call: Call;
    try {
      call = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Call;
    } catch {
      return reply(400, { error: 'BadRequest', message: 'not JSON' });
    }
    try {
      reply(200, { result: await this.dispatch(call) });
    } catch (err) {
      if (err instanceof SimRefusal) return reply(409, { error: 'SimRefusal', message: err.message, retryable: err.retryable });
      if (err instanceof KubernetesApiError) return reply(409, { error: 'KubernetesApiError', message: err.message, status: err.status });
      reply(400, { error: 'BadRequest', message: (err as Error).message });
    }
  }

  /** Only what another node may ask: joining, its own kubelet's status and reset, certificates, API sessions (never init). */
  private dispatch(call: Call): Promise<unknown> | unknown {
    switch (call.op) {
      case 'join':
        return this.local.join(call.args[0]);
      case 'setNodeReady': {
        const [creds, running] = call.args;
        if (running) this.leases.set(creds.token, { creds, at: Date.now() });
        else this.leases.delete(creds.token);
        return this.local.setNodeReady(...call.args);
      }
      case 'resetNode':
        this.leases.delete(call.args[0].token);
        return this.local.resetNode(...call.args);
      case 'uploadCerts':
        return this.local.uploadCerts(...call.args);
      case 'session': {
        if (!SESSION_METHODS.has(call.method)) throw new Error(`unknown session method ${String(call.method)}`);
        const session = this.local.session(call.creds) as unknown as Record<string, (...a: unknown[]) => unknown>;
        return session[call.method](...call.args);
      }
      default:
        throw new Error(`unknown operation ${(call as { op?: string }).op}`);
    }
  }

  /** A joined node whose kubelet stopped posting (its guest is down) goes NotReady. */
  private async expireLeases(): Promise<void> {
    const now = Date.now();
    for (const [token, lease] of this.leases) {
      if (now - lease.at < LEASE_MS) continue;
      this.leases.delete(token);
      this.options.log?.(`simulated kubelet of ${lease.creds.server} credential …${token.slice(-6)} stopped posting for ${LEASE_MS / 1000} s: NotReady`);
      await this.local.setNodeReady(lease.creds, false, 'Kubelet stopped posting node status.').catch(() => undefined);
    }
  }

  /** One call to the registry serving `server`; its refusals come back as the same errors. */
  private async call<T>(server: string, call: Call, refusal: boolean): Promise<T> {
    const { host, port } = parseEndpoint(server);
    const url = `http://${host.includes(':') ? `[${host}]` : host}:${port ?? 443}${SIM_API_PATH}`;
    let res: Response;
    try {
      res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(call),
        signal: AbortSignal.timeout(this.options.timeoutMs ?? 15_000),
      });
    } catch (err) {
      const cause = ((err as { cause?: Error }).cause ?? (err as Error)).message;
      const message = `dial tcp ${host}:${port}: ${cause} (no simulated Kubernetes registry answers at ${server})`;
      // Nothing listens there (yet, or the init node is rebooting): the node retries, as real agents do.
      throw refusal ? new SimRefusal(message, true) : new KubernetesApiError(message);
    }
    const body = (await res.json().catch(() => ({}))) as { result?: T; error?: string; message?: string; retryable?: boolean; status?: number };
    if (res.ok) return body.result as T;
    if (body.error === 'SimRefusal') throw new SimRefusal(body.message ?? 'refused', body.retryable ?? false);
    throw new KubernetesApiError(body.message ?? `HTTP ${res.status}`, body.status);
  }
}
