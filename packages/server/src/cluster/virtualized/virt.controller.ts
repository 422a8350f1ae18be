import { type ClusterSpec, type HostSpec, type ServerMessage, substituteVariables, type VirtSpec, type VirtStatus, type VirtVmSpec } from '@edgeplane/protocol';
import type { Logger } from 'pino';
import type { ConnectionHub } from '../../agent/connection-hub.js';
import { findRevision } from '../../cluster-profile/cluster-profile.repository.js';
import type { PinnedProfileSpec } from '../../cluster-profile/cluster-profile.service.js';
import { Controller } from '../../controller/controller-loop.js';
import { renderUserData } from '../../installer/installer.service.js';
import type { RequestContext } from '../../resource/context.js';
import type { Db } from '../../store/db.js';
import { kubernetesReady } from '../cluster.controller.js';
import { findHosts, findSecret, insertSecretIfAbsent, listClusterRows, writeHost } from '../cluster.repository.js';
import { stableJson, variableValues } from '../render.js';
import type { SecretBox } from '../secret-box.js';
import { type ClusterVmRow, listClusterVms, updateClusterVmSize } from './cluster-vm.repository.js';
import { isVirtualized, VM_TOKEN_SECRET, vmDomainName } from './virtualized.js';
import { ensureVmToken, syncVmRecords } from './vm-hosts.js';

/** Stands for the cluster's VM registration token in stored specs; replaced when the spec is sent. */
export const VM_TOKEN_PLACEHOLDER = '@@edgeplane-vm-registration-token@@';

export interface VirtControllerOptions {
  /** URL the VMs' agents reach the server at (written into their seed). */
  serverUrl: () => string;
  intervalMs?: number;
}

/**
 * The virtualized half of the cluster controller. For each `type: virtualized` cluster it keeps the
 * per-cluster registration token and the VM records (pre-registered VM hosts) in step with
 * spec.vms, and renders each appliance's `virt` host spec: every VM of every cluster on it, with
 * its seed. A vCPU/memory change is handed to the appliance one VM at a time (control plane first),
 * the next only once the previous VM runs at its new size and its node is Ready again. The node-
 * level work (Kubernetes on the VMs) is the ClusterController's, which sees VMs as nodes.
 */
export class VirtController extends Controller {
  private readonly ctx: RequestContext;

  constructor(
    private readonly db: Db,
    private readonly hub: ConnectionHub,
    private readonly secrets: SecretBox,
    private readonly log: Logger,
    private readonly options: VirtControllerOptions,
  ) {
    super();
    this.ctx = { user: 'system:controller/virt', role: 'admin', log: log as never, hosts: hub };
    const previous = hub.specFilter;
    hub.specFilter = async (host, msg) => {
      const m = previous ? await previous(host, msg) : msg;
      return m.type === 'spec' ? this.fillToken(m) : m;
    };
  }

  protected loopSettings() {
    return { name: 'virt controller', log: this.log, intervalMs: this.options.intervalMs ?? 500 };
  }

  /** Puts the cluster's registration token into the VM seeds of a spec on its way to the appliance. */
  private async fillToken(msg: Extract<ServerMessage, { type: 'spec' }>): Promise<ServerMessage> {
    const vms = msg.spec.virt?.vms;
    if (!vms?.length) return msg;
    const filled: VirtVmSpec[] = [];
    for (const vm of vms) {
      const sealed = await findSecret(this.db, vm.cluster, VM_TOKEN_SECRET);
      const token = sealed ? this.secrets.open(sealed, `${vm.cluster}/${VM_TOKEN_SECRET}`) : undefined;
      filled.push(token ? { ...vm, seed: { ...vm.seed, userData: vm.seed.userData.replace(VM_TOKEN_PLACEHOLDER, token) } } : vm);
    }
    return { ...msg, spec: { ...msg.spec, virt: { vms: filled } } };
  }

  async pass(): Promise<void> {
    const clusters = (await listClusterRows(this.db))
      .map((r) => ({ name: r.name, spec: JSON.parse(r.spec) as ClusterSpec }))
      .filter((c) => isVirtualized(c.spec));
    for (const c of clusters) {
      if (this.stopped) return;
      try {
        await this.db.transaction().execute(async (trx) => {
          const secret = await ensureVmToken(trx, c.name, this.ctx);
          if (secret) await insertSecretIfAbsent(trx, c.name, VM_TOKEN_SECRET, this.secrets.seal(secret, `${c.name}/${VM_TOKEN_SECRET}`));
          await syncVmRecords(trx, c.name, c.spec, this.ctx);
        });
        await this.advanceResize(c.name, c.spec);
      } catch (err) {
        this.log.error({ err, cluster: c.name }, 'virtualized cluster sync failed; retrying on the next pass');
      }
    }
    // Appliances: those with VMs, and those whose spec still lists VMs (a deleted cluster's VMs must go).
    const vms = await listClusterVms(this.db);
    const withSpec = await this.db.selectFrom('edge_hosts').select('name').where('spec', 'like', '%"virt":%').execute();
    const appliances = new Set([...vms.map((v) => v.appliance), ...withSpec.map((h) => h.name)]);
    for (const appliance of appliances) {
      try {
        await this.writeApplianceSpec(
          appliance,
          vms.filter((v) => v.appliance === appliance),
          clusters,
        );
      } catch (err) {
        this.log.error({ err, appliance }, 'writing the appliance spec failed; retrying on the next pass');
      }
    }
  }

  /** One resize at a time per cluster: the next VM's new size is told only when the cluster is settled. */
  private async advanceResize(cluster: string, spec: ClusterSpec): Promise<void> {
    const rows = await listClusterVms(this.db, cluster);
    const wanted = new Map((spec.vms ?? []).map((v) => [v.name, v]));
    const pending = rows
      .filter((r) => wanted.has(r.vm) && (wanted.get(r.vm)!.vcpus !== r.vcpus || wanted.get(r.vm)!.memoryMiB !== r.memory_mib))
      .sort((a, b) => Number(wanted.get(a.vm)!.role !== 'control-plane') - Number(wanted.get(b.vm)!.role !== 'control-plane'));
    if (!pending.length || !spec.appliance) return;
    const [appliance] = await findHosts(this.db, [spec.appliance]);
    const domains = (JSON.parse(appliance?.status ?? '{}') as { agent?: { managers?: { virt?: VirtStatus } } }).agent?.managers?.virt?.domains ?? [];
    const hosts = new Map(
      (
        await findHosts(
          this.db,
          rows.map((r) => r.host),
        )
      ).map((h) => [h.name, h]),
    );
    const settled = rows.every((r) => {
      const d = domains.find((x) => x.domain === vmDomainName(cluster, r.vm));
      if (d?.state !== 'running' || d.vcpus !== r.vcpus || d.memoryMiB !== r.memory_mib) return false;
      const h = hosts.get(r.host);
      // A VM whose node runs Kubernetes must be Ready again before the next one goes down (quorum).
      return !h || h.state === 'pre-registered' || !(JSON.parse(h.spec) as HostSpec).kubernetes || kubernetesReady(h);
    });
    if (!settled) return;
    const next = pending[0];
    const to = wanted.get(next.vm)!;
    await updateClusterVmSize(this.db, cluster, next.vm, to.vcpus, to.memoryMiB);
    this.log.info({ cluster, vm: next.vm, vcpus: to.vcpus, memoryMiB: to.memoryMiB }, 'resizing VM');
  }

  private async writeApplianceSpec(appliance: string, rows: ClusterVmRow[], clusters: { name: string; spec: ClusterSpec }[]): Promise<void> {
    const vms: VirtVmSpec[] = [];
    const profiles = new Map<string, PinnedProfileSpec | undefined>();
    for (const r of rows) {
      const cluster = clusters.find((c) => c.name === r.cluster);
      const vm = cluster?.spec.vms?.find((v) => v.name === r.vm);
      if (!cluster || !vm) continue;
      const key = `${cluster.spec.profile.name}@${cluster.spec.profile.revision}`;
      if (!profiles.has(key)) {
        const rev = await findRevision(this.db, cluster.spec.profile.name, cluster.spec.profile.revision);
        profiles.set(key, rev ? (JSON.parse(rev.spec) as PinnedProfileSpec) : undefined);
      }
      const profile = profiles.get(key);
      if (!profile) continue;
      const os = substituteVariables(profile.layers, variableValues(profile, cluster.spec)).os;
      if (!os) continue; // refused when the cluster was written (os-mode.ts requireOsLayer)
      vms.push({
        domain: vmDomainName(r.cluster, r.vm),
        uuid: r.uuid,
        cluster: r.cluster,
        vm: r.vm,
        hostName: r.host,
        vcpus: r.vcpus,
        memoryMiB: r.memory_mib,
        diskGiB: vm.diskGiB,
        network: vm.network,
        storagePool: vm.storagePool,
        image: { image: os.image, digest: os.digest, ...(os.insecure ? { insecure: true } : {}) },
        seed: {
          userData: renderUserData({ server: this.options.serverUrl(), token: VM_TOKEN_PLACEHOLDER, hostname: r.host, labels: vm.labels }),
          // instance-id = the VM's UUID: cloud-init runs its per-instance modules once per VM.
          metaData: `instance-id: ${r.uuid}\nlocal-hostname: ${r.host}\n`,
        },
      });
    }
    const desired: VirtSpec = { vms };
    const [h] = await findHosts(this.db, [appliance]);
    if (!h) return;
    const spec = JSON.parse(h.spec) as Record<string, unknown>;
    if (stableJson(spec.virt) === stableJson(desired)) return;
    // An appliance with no VMs left keeps `virt: {vms: []}`: that is what tells its agent to remove them.
    const ok = await writeHost(this.db, appliance, Number(h.resource_version), {
      spec: JSON.stringify({ ...spec, virt: desired }),
      bumpGeneration: true,
    });
    if (!ok) return; // changed meanwhile: the next pass retries
    this.log.info({ appliance, vms: vms.map((v) => v.domain) }, 'appliance virt spec written');
    await this.hub.pushSpec(appliance);
  }
}
