import { createHash, randomBytes } from 'node:crypto';
import { CLUSTER_ANNOTATION, type ClusterSpec, type HostSpec, type OsSpec, PRESTAGE_ANNOTATION, type ServerMessage } from '@edgeplane/protocol';
import type { Logger } from 'pino';
import type { ConnectionHub } from '../agent/connection-hub.js';
import { findRevision } from '../cluster-profile/cluster-profile.repository.js';
import type { PinnedProfileSpec } from '../cluster-profile/cluster-profile.service.js';
import { Controller } from '../controller/controller-loop.js';
import { recordEvent } from '../event/event.service.js';
import type { Db, Executor } from '../store/db.js';
import {
  findHosts,
  findSecret,
  type HostRow,
  insertSecretIfAbsent,
  insertStep,
  listClusterRows,
  listSteps,
  writeClusterStatus,
  writeHost,
} from './cluster.repository.js';
import { clusterStatus } from './cluster-status.js';
import { clusterOf, MANAGED_SPEC_KEYS } from './host-claims.js';
import { finishHostRemovals } from './host-removal.js';
import { endpoints, hasNetworkAddress, hostEndpointAddress, renderHostSpec, stableJson, withRetry } from './render.js';
import type { SecretBox } from './secret-box.js';
import { UpgradeEngine } from './upgrade/upgrade.engine.js';
import { withUpgrade } from './upgrade/upgrade-status.js';
import { effectiveSpec } from './virtualized/virtualized.js';

type ClusterRow = Awaited<ReturnType<typeof listClusterRows>>[number];

/**
 * The cluster's join secret: 48 hex characters (192 bits). k3s and rke2 take it as the server token
 * (a plain `<PASSWORD>`; a kubeadm bootstrap token `abcdef.0123456789abcdef` is refused there:
 * @edgeplane/protocol kubernetes/k3s.ts); the kubeadm driver derives its bootstrap token and
 * certificate key from it.
 */
export function newJoinToken(): string {
  return randomBytes(24).toString('hex');
}

/**
 * How often a kubeadm init node uploads the control-plane certificates again while a control-plane
 * node is waiting to join: well inside their 2 h lifetime (KUBEADM_UPLOADED_CERTS_TTL_MS).
 */
const CERT_UPLOAD_INTERVAL_MS = 60 * 60_000;

export function kubernetesReady(host: HostRow | undefined): boolean {
  const k = (JSON.parse(host?.status ?? '{}') as { agent?: { managers?: { kubernetes?: { ready?: boolean; phase?: string } } } }).agent?.managers?.kubernetes;
  return k?.ready === true && k.phase === 'Ready';
}

/**
 * Turns Clusters into desired host specs and orders the work: the first control-plane node
 * initializes (alone), the others get their specs once it reports Kubernetes Ready. Every step is
 * a row in cluster_steps written in the same transaction as its effect, so a restarted server
 * resumes where it stopped and never initializes a cluster twice. Runs every `intervalMs`, and at
 * once when nudged (a cluster or host status changed).
 */
export class ClusterController extends Controller {
  private readonly upgrades: UpgradeEngine;
  /** kubeadm clusters with a control-plane node waiting to join: the upload request their init node gets (spec.uploadCerts). */
  private readonly certUploads = new Map<string, { host: string; request: string }>();

  constructor(
    private readonly db: Db,
    private readonly hub: ConnectionHub,
    readonly secrets: SecretBox,
    private readonly log: Logger,
    private readonly intervalMs = 500,
  ) {
    super();
    hub.specFilter = (host, msg) => this.fillSecrets(host, msg);
    this.upgrades = new UpgradeEngine(db, log.child({ component: 'upgrade' }));
  }

  /**
   * Completes a spec message on its way to the agent: the cluster join token for a member host, and
   * the host's retry counter in spec.os (any host with an OS image, cluster node or not).
   */
  async fillSecrets(host: string, msg: Extract<ServerMessage, { type: 'spec' }>): Promise<ServerMessage> {
    const k = msg.spec.kubernetes;
    const os = msg.spec.os;
    if (!k && !os) return msg;
    const [row] = await findHosts(this.db, [host]);
    if (!row) return msg;
    const spec = { ...msg.spec, ...(os ? { os: withRetry(os, row.os_retry) } : {}) };
    if (k && clusterOf(row) === k.cluster) {
      const upload = this.certUploads.get(k.cluster);
      spec.kubernetes = {
        ...k,
        token: await this.joinToken(k.cluster),
        ...(k.init && upload?.host === host ? { uploadCerts: upload.request } : {}),
      };
    }
    return { ...msg, spec };
  }

  protected loopSettings() {
    return { name: 'cluster controller', log: this.log, intervalMs: this.intervalMs };
  }

  protected async pass(): Promise<void> {
    for (const row of await listClusterRows(this.db)) {
      if (this.stopped) return;
      try {
        await this.reconcile(row);
      } catch (err) {
        this.log.error({ err, cluster: row.name }, 'cluster reconcile failed; retrying on the next pass');
      }
    }
    // Hosts a forced delete took out of their cluster are deleted once they left it (host-removal.ts).
    await finishHostRemovals(this.db, this.hub, this.log).catch((err) => this.log.error({ err }, 'finishing host removals failed; retrying on the next pass'));
  }

  private async joinToken(cluster: string): Promise<string> {
    const sealed =
      (await findSecret(this.db, cluster, 'join-token')) ??
      (await insertSecretIfAbsent(this.db, cluster, 'join-token', this.secrets.seal(newJoinToken(), `${cluster}/join-token`)));
    return this.secrets.open(sealed, `${cluster}/join-token`);
  }

  async reconcile(row: ClusterRow): Promise<void> {
    const cluster = row.name;
    // A virtualized cluster's nodes are its VMs' hosts (cluster/virtualized/).
    const spec = effectiveSpec(cluster, JSON.parse(row.spec) as ClusterSpec);
    const prevStatus = JSON.parse(row.status) as Record<string, unknown>;
    const rev = await findRevision(this.db, spec.profile.name, spec.profile.revision);
    const hosts = new Map(
      (
        await findHosts(
          this.db,
          spec.nodes.map((n) => n.host),
        )
      ).map((h) => [h.name, h]),
    );
    const steps = await listSteps(this.db, cluster);
    const profile = rev ? (JSON.parse(rev.spec) as PinnedProfileSpec) : undefined;
    // No kubernetes layer (a host OS profile) is refused by validation; a revision like that is as good as missing.
    const k = profile?.layers.kubernetes;
    if (!profile || !k) {
      await this.saveStatus(row, clusterStatus({ row, spec, hosts, steps, prev: prevStatus, profileMissing: true }));
      return;
    }
    const initHost = steps.get('init') ?? spec.nodes.find((n) => n.role === 'control-plane')!.host;
    const initRow = hosts.get(initHost);
    // A pre-registered init host (a virtualized cluster's VM still booting) has no address yet.
    const registeredInit = initRow?.state !== 'pre-registered' ? initRow : undefined;
    // Once chosen, the endpoint stays (it is in every certificate and kubeconfig): the status keeps it.
    // A host whose network is still coming up (only loopback and link-local addresses): wait for it.
    const chosen = registeredInit && hasNetworkAddress(registeredInit) ? hostEndpointAddress(registeredInit) : undefined;
    const vip = spec.vip ? `https://${spec.vip.address}:6443` : undefined;
    const endpoint =
      spec.controlPlaneEndpoint ?? vip ?? (prevStatus.controlPlaneEndpoint as string | undefined) ?? (chosen ? `https://${chosen.address}:6443` : undefined);
    if (!endpoint) {
      // A registered init host without a reachable address: say so.
      if (registeredInit)
        await this.saveStatus(
          row,
          clusterStatus({
            row,
            spec,
            hosts,
            steps,
            prev: prevStatus,
            profile,
            initWaiting: `waiting for ${initHost} to report an address other nodes can reach (it reports only loopback or link-local addresses); spec.controlPlaneEndpoint names one instead`,
          }),
        );
      return;
    }
    const endpointFrom = spec.controlPlaneEndpoint
      ? 'spec.controlPlaneEndpoint'
      : vip
        ? 'spec.vip (kube-vip)'
        : ((prevStatus.controlPlaneEndpointFrom as string | undefined) ?? (chosen ? `init node address: ${chosen.from}` : undefined));
    await this.joinToken(cluster); // generated before any node can need it
    const render = (host: string, init: boolean) =>
      renderHostSpec({ cluster, spec, profile, node: spec.nodes.find((n) => n.host === host)!, init, controlPlaneEndpoint: endpoint });

    // Day 2 (the cluster ran once): the upgrade engine owns the specs of nodes that joined.
    const dayTwo = steps.has('running');
    // 1. The first control-plane node initializes the cluster: exactly once, ever.
    if (!steps.has('init')) {
      await this.writeSpec(cluster, initHost, render(initHost, true), {
        step: 'init',
        reason: 'InitializingControlPlane',
        message: `initializing the control plane on ${initHost} (${k.distribution} ${k.version})`,
      });
    } else if (!dayTwo) {
      await this.writeSpec(cluster, initHost, render(initHost, true));
    }

    // 2. The others join once the first node's Kubernetes is Ready.
    if (kubernetesReady(hosts.get(initHost))) {
      for (const n of spec.nodes) {
        if (n.host === initHost || (dayTwo && steps.has(`join:${n.host}`))) continue;
        await this.writeSpec(cluster, n.host, render(n.host, false), {
          step: `join:${n.host}`,
          reason: 'JoiningNode',
          message: `${n.host} joins as ${n.role} through ${endpoint}`,
        });
      }
    }

    // 2a. kubeadm: control-plane nodes join with the certificates the init node uploaded; they
    // expire 2 h after an upload, so while one waits to join the init node uploads them again.
    if (k.distribution === 'kubeadm') await this.requestCertUpload(cluster, spec, initHost, hosts, steps);

    // 2b. Day-2 changes: classify, stage, roll (cluster/upgrade/).
    const joined = new Set([...steps.entries()].filter(([k]) => k === 'init' || k.startsWith('join:')).map(([, h]) => h as string));
    const upgrade = dayTwo
      ? await this.upgrades.drive({
          cluster,
          generation: Number(row.generation),
          spec,
          joined,
          previousRevision: prevStatus.profileRevision as number | undefined,
          render: (host) => render(host, host === initHost),
          prestage: await this.prestage(row, spec, endpoint),
          write: (host, desired, once) => this.writeSpec(cluster, host, desired, once),
        })
      : undefined;

    // 3. Status from what the agents report (re-read: step 1/2 may have changed hosts).
    const fresh = new Map(
      (
        await findHosts(
          this.db,
          spec.nodes.map((n) => n.host),
        )
      ).map((h) => [h.name, h]),
    );
    const status = withUpgrade(
      clusterStatus({
        row,
        spec,
        hosts: fresh,
        steps: await listSteps(this.db, cluster),
        prev: prevStatus,
        profile,
        controlPlaneEndpoint: endpoints(k.distribution, endpoint).controlPlaneEndpoint,
        controlPlaneEndpointFrom: endpointFrom,
        kubeconfigAvailable: (await findSecret(this.db, cluster, 'kubeconfig')) !== undefined,
      }),
      { spec, prev: prevStatus, upgrade },
    );
    if (status.phase === 'Running' && !steps.has('running')) {
      await this.db.transaction().execute(async (trx) => {
        if (await insertStep(trx, cluster, 'running'))
          await recordEvent(trx, {
            involvedObject: { kind: 'Cluster', name: cluster },
            type: 'Normal',
            reason: 'ClusterRunning',
            message: `all ${spec.nodes.length} node(s) Ready`,
            source: 'controller/cluster',
          });
      });
    }
    await this.saveStatus(row, status);
  }

  /**
   * Sets (or clears) the certificate upload request of a kubeadm cluster's init node: while a
   * control-plane node that got its join spec is not Ready, the init node is asked (through its spec
   * message, like the join token; never stored) to upload the certificates again: for each new set
   * of waiting nodes, and again every CERT_UPLOAD_INTERVAL_MS. A changed request is pushed to the
   * init node at once.
   */
  private async requestCertUpload(
    cluster: string,
    spec: ClusterSpec,
    initHost: string,
    hosts: Map<string, HostRow>,
    steps: Map<string, string | null>,
  ): Promise<void> {
    const waiting = spec.nodes
      .filter((n) => n.role === 'control-plane' && n.host !== initHost && steps.has(`join:${n.host}`) && !kubernetesReady(hosts.get(n.host)))
      .map((n) => n.host)
      .sort();
    const previous = this.certUploads.get(cluster);
    if (waiting.length === 0) {
      this.certUploads.delete(cluster);
      return;
    }
    // New joiners, or another interval: a new request (the init node uploads once per request).
    const joiners = createHash('sha256').update(waiting.join(',')).digest('hex').slice(0, 12);
    const request = `${Math.floor(Date.now() / CERT_UPLOAD_INTERVAL_MS)}-${joiners}`;
    if (previous?.request === request && previous.host === initHost) return;
    this.certUploads.set(cluster, { host: initHost, request });
    this.log.info({ cluster, host: initHost, joining: waiting }, 'asking the init node to upload the control-plane certificates');
    await this.hub.pushSpec(initHost);
  }

  /**
   * The OS image of the revision a rollout asked this cluster to pre-stage (PRESTAGE_ANNOTATION, set
   * ahead of the site's maintenance window), rendered per node like the upgrade will render it.
   */
  private async prestage(row: ClusterRow, spec: ClusterSpec, endpoint: string): Promise<((host: string) => OsSpec | undefined) | undefined> {
    const wanted = Number((JSON.parse(row.annotations) as Record<string, string>)[PRESTAGE_ANNOTATION]);
    if (!Number.isInteger(wanted) || wanted === spec.profile.revision) return undefined;
    const rev = await findRevision(this.db, spec.profile.name, wanted);
    if (!rev) return undefined;
    const profile = JSON.parse(rev.spec) as PinnedProfileSpec;
    const next = { ...spec, profile: { ...spec.profile, revision: wanted } };
    return (host) => {
      const node = spec.nodes.find((n) => n.host === host);
      if (!node) return undefined;
      try {
        return renderHostSpec({ cluster: row.name, spec: next, profile, node, init: false, controlPlaneEndpoint: endpoint }).os;
      } catch (err) {
        // Not renderable with this cluster's variables: the upgrade itself will report why; stage nothing.
        this.log.warn({ err, cluster: row.name, revision: wanted }, 'pre-stage revision does not render; not pre-staging');
        return undefined;
      }
    };
  }

  /**
   * Writes the managed keys of a host's spec when they differ from `desired` (bumping generation)
   * and pushes it to the agent after commit. With `once`, the step row is written in the same
   * transaction, and its event only the first time the step is taken.
   */
  private async writeSpec(cluster: string, host: string, desired: HostSpec, once?: { step: string; reason: string; message: string }): Promise<void> {
    const wrote = await this.db.transaction().execute(async (trx: Executor) => {
      const [h] = await findHosts(trx, [host]);
      if (!h || clusterOf(h) !== cluster) return false; // released meanwhile (cluster deleted or node removed)
      const current = JSON.parse(h.spec) as Record<string, unknown>;
      const managed = Object.fromEntries(MANAGED_SPEC_KEYS.filter((k) => current[k] !== undefined).map((k) => [k, current[k]]));
      const firstTime = once ? await insertStep(trx, cluster, once.step, host) : false;
      if (firstTime && once)
        await recordEvent(trx, {
          involvedObject: { kind: 'Cluster', name: cluster },
          type: 'Normal',
          reason: once.reason,
          message: once.message,
          source: 'controller/cluster',
        });
      if (stableJson(managed) === stableJson(desired)) return false;
      const next = { ...Object.fromEntries(Object.entries(current).filter(([k]) => !MANAGED_SPEC_KEYS.includes(k as never))), ...desired };
      const annotations = { ...JSON.parse(h.annotations), [CLUSTER_ANNOTATION]: cluster };
      const ok = await writeHost(trx, host, Number(h.resource_version), {
        spec: JSON.stringify(next),
        annotations: JSON.stringify(annotations),
        // A pre-registered VM host stays so until its device registers (and takes exactly this host).
        state: h.state === 'pre-registered' ? h.state : 'in-use',
        bumpGeneration: true,
      });
      // Lost a race with another writer: roll back (the step too) and retry on the next pass.
      if (!ok) throw new Error(`host ${host} changed concurrently`);
      return true;
    });
    if (wrote) {
      this.log.info({ cluster, host, step: once?.step }, 'host spec written');
      await this.hub.pushSpec(host);
    }
  }

  private async saveStatus(row: ClusterRow, status: Record<string, unknown>): Promise<void> {
    const prev = JSON.parse(row.status) as { phase?: string };
    if (stableJson(prev) === stableJson(status)) return;
    await this.db.transaction().execute(async (trx) => {
      await writeClusterStatus(trx, row.name, JSON.stringify(status));
      // A cluster turning Failed or Degraded is worth an event; the Ready condition says why.
      if (prev.phase !== status.phase && (status.phase === 'Failed' || status.phase === 'Degraded')) {
        const ready = (status.conditions as { type: string; message?: string }[]).find((c) => c.type === 'Ready');
        await recordEvent(trx, {
          involvedObject: { kind: 'Cluster', name: row.name },
          type: 'Warning',
          reason: status.phase === 'Failed' ? 'ClusterFailed' : 'ClusterDegraded',
          message: ready?.message ?? String(status.phase),
          source: 'controller/cluster',
        });
      }
      // Adding nodes is a planned step: Normal events when it starts and when every node is Ready.
      const scaling = prev.phase !== status.phase && (status.phase === 'Scaling' || prev.phase === 'Scaling') ? scalingEvent(status, prev.phase) : undefined;
      if (scaling) await recordEvent(trx, { involvedObject: { kind: 'Cluster', name: row.name }, type: 'Normal', source: 'controller/cluster', ...scaling });
    });
  }
}

function scalingEvent(status: Record<string, unknown>, prevPhase: string | undefined): { reason: string; message: string } | undefined {
  const nodes = (status.nodes as { ready: boolean }[] | undefined) ?? [];
  if (status.phase === 'Scaling') {
    const ready = (status.conditions as { type: string; message?: string }[]).find((c) => c.type === 'Ready');
    return { reason: 'ClusterScaling', message: `adding node(s): ${ready?.message ?? ''}`.trim() };
  }
  if (prevPhase === 'Scaling' && status.phase === 'Running') return { reason: 'ClusterScaled', message: `all ${nodes.length} node(s) Ready` };
  return undefined;
}
