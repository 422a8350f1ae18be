import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { AddonsSpec, AddonsStatus, HostSpec, ManagerError } from '@edgeplane/protocol';
import { stringify } from 'yaml';
import { readJsonFile, removeTree, writeFileAtomic } from '../../atomic-file.js';
import type { Device } from '../../device/device.js';
import { ExecError } from '../../device/exec.js';
import { KubernetesApiError } from '../../device/kube-client.js';
import { driverFor } from '../kubernetes/drivers.js';
import { type Manager, type ManagerContext, ManagerFailure } from '../manager.js';
import { FIELD_MANAGER, helmArgs, helmChartObject, manifestObjects } from './addon-objects.js';

/** Device directory for chart values files handed to `helm --values`. */
export const ADDON_VALUES_DIR = '/var/lib/edgeplane/addons';

/**
 * The `addons` manager. It only acts where the host spec has `addons`, which the server sets on the
 * node that initialized the cluster. Inline manifests are applied with server-side apply (field
 * manager `edgeplane`, conflicts forced: the profile is the source of truth) with the
 * distribution's admin kubeconfig. Chart add-ons become HelmChart objects on k3s and rke2 (their
 * helm-controller installs them) and run `helm upgrade --install` on kubeadm (the OS image must
 * carry helm). Add-ons removed from the profile are not deleted (pruning is not done yet).
 */
export class AddonsManager implements Manager<'addons'> {
  readonly name = 'addons' as const;
  private current?: AddonsStatus;
  private appliedHash?: string;

  constructor(private readonly device: Device) {}

  async status(): Promise<AddonsStatus | undefined> {
    return this.current;
  }

  async converged(desired: AddonsSpec | undefined): Promise<boolean> {
    // Without add-ons, apply still has to run once to forget what was applied before.
    if (!desired) return this.appliedHash === undefined && this.current === undefined;
    return this.appliedHash === hash(desired) && this.current?.phase === 'Applied';
  }

  async prepare(desired: AddonsSpec | undefined, _ctx: ManagerContext, spec: HostSpec): Promise<void> {
    if (!desired) return;
    if (!spec.kubernetes) this.fail('prepare', false, 'add-ons need the kubernetes part of the host spec');
    for (const addon of desired.items) {
      if (!addon.manifest && !addon.chart) this.fail('prepare', false, `add-on ${addon.name} has neither a manifest nor a chart`);
      try {
        manifestObjects(addon);
      } catch (err) {
        this.fail('prepare', false, (err as Error).message);
      }
    }
  }

  async apply(desired: AddonsSpec | undefined, ctx: ManagerContext, spec: HostSpec): Promise<void> {
    if (!desired) {
      // No add-ons here (any more): forget what was applied, so a new cluster on this host gets them.
      this.current = undefined;
      this.appliedHash = undefined;
      await removeTree(join(ctx.dataDir, 'addons', 'state.json'));
      return;
    }
    await this.prepare(desired, ctx, spec);
    const kube = spec.kubernetes!;
    const driver = driverFor(kube.distribution);
    const stateFile = join(ctx.dataDir, 'addons', 'state.json');
    const wanted = hash(desired);
    // The same add-ons in another cluster (re-created on this host) must be applied again.
    const cluster = hash({ cluster: kube.cluster, endpoint: kube.controlPlaneEndpoint, token: kube.token });
    const stored = (await readJsonFile(stateFile).catch(() => undefined)) as { hash?: string; cluster?: string; applied?: AddonsStatus['applied'] } | undefined;
    if (stored?.hash === wanted && stored.cluster === cluster && stored.applied) {
      // Applied before this agent restarted: server-side apply would change nothing.
      this.appliedHash = wanted;
      this.current = { phase: 'Applied', applied: stored.applied, message: `${stored.applied.length} add-on(s) applied` };
      return;
    }
    this.current = { phase: 'Pending', applied: [], message: 'applying add-ons' };
    ctx.reportProgress();
    const client = this.device.kubernetes(driver.adminKubeconfig);
    const applied: AddonsStatus['applied'] = [];
    for (const addon of desired.items) {
      ctx.signal.throwIfAborted();
      let objects = 0;
      try {
        for (const object of manifestObjects(addon)) {
          await client.apply(object, FIELD_MANAGER);
          objects++;
        }
        if (addon.chart && driver.charts === 'helm-controller') {
          await client.apply(helmChartObject(addon), FIELD_MANAGER);
          objects++;
        } else if (addon.chart) {
          const valuesFile = `${ADDON_VALUES_DIR}/${addon.name}.values.yaml`;
          await this.device.files.writeAtomic(valuesFile, stringify(addon.chart.values), 0o600);
          await this.device.exec('helm', helmArgs(addon, valuesFile, driver.adminKubeconfig), { timeoutMs: 15 * 60_000, signal: ctx.signal });
          objects++;
        }
      } catch (err) {
        if (err instanceof ManagerFailure) throw err;
        const message = `add-on ${addon.name}: ${(err as Error).message}`;
        // Invalid objects (400/422) stay invalid; an unreachable API, a CRD or namespace that is not there yet may come.
        const retryable =
          err instanceof KubernetesApiError ? err.status !== 400 && err.status !== 422 : err instanceof ExecError ? (err.retryable ?? true) : true;
        ctx.emitEvent('Warning', 'AddonFailed', message);
        this.current = { phase: 'Failed', applied, message };
        this.fail('apply', retryable, message);
      }
      applied.push({ name: addon.name, objects });
      ctx.log.info({ addon: addon.name, objects }, 'add-on applied');
    }
    await writeFileAtomic(stateFile, `${JSON.stringify({ hash: wanted, cluster, applied })}\n`);
    this.appliedHash = wanted;
    this.current = { phase: 'Applied', applied, message: `${applied.length} add-on(s) applied` };
    ctx.emitEvent('Normal', 'AddonsApplied', `${applied.length} add-on(s) applied with server-side apply`);
  }

  private fail(phase: ManagerError['phase'], retryable: boolean, message: string): never {
    const error: ManagerError = { phase, component: 'addons', retryable, message };
    this.current = { phase: 'Failed', applied: this.current?.applied ?? [], message, error };
    throw new ManagerFailure(error);
  }
}

function hash(spec: unknown): string {
  return createHash('sha256').update(JSON.stringify(spec)).digest('hex');
}
