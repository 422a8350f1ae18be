import { createHash } from 'node:crypto';
import { ApproveKeyRequest, deviceKeyFingerprintInput, EdgeplaneError, findKind, type OsStatus, parseOrThrow } from '@edgeplane/protocol';
import { recordEvent } from '../event/event.service.js';
import type { RequestContext } from '../resource/context.js';
import type { ResourceRow } from '../resource/resource.repository.js';
import { type Resource, ResourceService } from '../resource/resource.service.js';
import type { Executor } from '../store/db.js';
import { refuseIfClusterMember } from './host-membership.js';
import { guardHostOs } from './host-os-guard.js';
import { hostSpecForUpdate, osRollout, refuseOsProfileOnCreate } from './host-os-profile.js';
import { preRegistrationColumns, withDerivedName } from './pre-registration.js';

/** Host name for a device: stable, derived from the device UID, safe as a DNS label. */
export function hostNameForDevice(deviceUid: string): string {
  return `edge-${createHash('sha256').update(deviceUid.toLowerCase()).digest('hex').slice(0, 12)}`;
}

/** '' for a pre-registered host, which has no device key yet. */
export function keyFingerprint(publicKeyJson: string): string {
  if (!publicKeyJson) return '';
  return createHash('sha256')
    .update(deviceKeyFingerprintInput(JSON.parse(publicKeyJson) as { x: string; y?: string }))
    .digest('hex');
}

function hostStatus(row: ResourceRow): Record<string, unknown> {
  const stored = JSON.parse(row.status) as Record<string, unknown> & { agent?: { managers?: { os?: OsStatus } } };
  // Derived on read (no write races with agent reports): desired OS (spec.os) against the booted one.
  const rollout = osRollout(JSON.parse(row.spec), stored.agent?.managers?.os);
  return {
    ...stored,
    state: row.state,
    connectivity: row.connectivity,
    ...(row.last_seen ? { lastSeen: row.last_seen } : {}),
    deviceUid: row.device_uid,
    keyFingerprint: keyFingerprint(row.public_key as string),
    ...(row.pending_public_key ? { pendingKeyFingerprint: keyFingerprint(row.pending_public_key as string) } : {}),
    ...(rollout.os ? { os: rollout.os } : {}),
    conditions: [...((stored.conditions as unknown[]) ?? []), ...(rollout.condition ? [rollout.condition] : [])],
  };
}

/** Status without a key change request: its condition and the pending key's identity go; `approved` moves that identity in. */
function withoutKeyChangeCondition(statusJson: string, approved = false): string {
  const { pendingIdentity, ...status } = JSON.parse(statusJson);
  status.conditions = (status.conditions ?? []).filter((c: { type: string }) => c.type !== 'KeyChangePending');
  // A pending key registered before identities were recorded is a file key.
  if (approved) status.identity = pendingIdentity ?? { kind: 'file' };
  return JSON.stringify(status);
}

/** EdgeHosts: a pre-registration may leave out metadata.name; it is derived from the device UID. */
class EdgeHostService extends ResourceService {
  override create(db: Executor, body: unknown, ctx: RequestContext): Promise<Resource> {
    return super.create(db, withDerivedName(body, hostNameForDevice), ctx);
  }
}

export const edgeHosts = new EdgeHostService(findKind('EdgeHost')!, 'edge_hosts', {
  status: hostStatus,
  // POST /api/v1/edgehosts pre-registers a device UID (see pre-registration.ts).
  prepareCreate: async (db, input, ctx) => {
    refuseOsProfileOnCreate(input.metadata.name, input.spec);
    await guardHostOs(db, input.metadata.name, undefined, input.spec, ctx);
    return preRegistrationColumns(db, input);
  },
  async prepareUpdate(db, row, spec, ctx) {
    if (spec.deviceUid !== undefined && spec.deviceUid !== row.device_uid)
      throw new EdgeplaneError('ValidationFailed', `spec.deviceUid of host "${row.name}" is ${row.device_uid} and cannot change`, {
        issues: [{ path: 'spec.deviceUid', message: 'immutable' }],
      });
    // A newly denied device loses its connection now; the connect check then refuses it (DeviceDenied).
    const newlyDenied = spec.denied === true && JSON.parse(row.spec).denied !== true;
    // spec.osProfile renders spec.os (host-os-profile.ts); the agent gets the result after commit.
    const next = await hostSpecForUpdate(db, row, spec, ctx);
    // A hand-written spec.os is as strong as a remote shell (host-os-guard.ts).
    await guardHostOs(db, row.name, JSON.parse(row.spec), next, ctx);
    ctx.hosts?.hostChanged(row.name, newlyDenied ? 'deleted' : 'spec');
    return { spec: JSON.stringify(next) };
  },
  async beforeDelete(db, row, ctx) {
    // A cluster member goes through the cluster first (delete --force: cluster/host-removal.ts).
    await refuseIfClusterMember(db, row, 'delete');
    ctx.hosts?.hostChanged(row.name, 'deleted');
  },
  actions: {
    /**
     * Approves a host waiting for approval, bound to the key it registered with. A key change that
     * waits meanwhile is not touched: binding a new key needs approve-key, which names the key.
     * A rejected host may be approved too (the operator changed their mind): it is bound to the key
     * it registered with, the only one it ever had (a rejection drops any key change).
     */
    async approve(db, row, ctx) {
      if (row.state !== 'pending-approval' && row.state !== 'rejected')
        throw new EdgeplaneError(
          'InvalidState',
          `host "${row.name}" is ${row.state}, not pending-approval${row.pending_public_key ? '; to bind its new device key use approve-key with the key fingerprint' : ''}`,
          { state: row.state },
        );
      await edgeHosts.touch(db, row.name, { state: 'ready' });
      await recordEvent(db, {
        involvedObject: { kind: 'EdgeHost', name: row.name },
        type: 'Normal',
        reason: 'Approved',
        message: `approved by ${ctx.user}${row.state === 'rejected' ? ' (it was rejected)' : ''}`,
        source: 'server',
      });
      ctx.hosts?.hostChanged(row.name, 'approved');
    },
    /**
     * Binds the host to its pending key, which the caller names by fingerprint (what the operator
     * checked against the device): a key that registered after that is never bound. The host keeps
     * its state (pending-approval and pre-registered become ready); a channel holding the old key is
     * closed.
     */
    async 'approve-key'(db, row, ctx, body) {
      const { fingerprint } = parseOrThrow(ApproveKeyRequest, body ?? {}, 'approve-key request');
      if (row.state === 'rejected')
        throw new EdgeplaneError(
          'InvalidState',
          `host "${row.name}" is rejected; approve it first (edgeplane approve host ${row.name}), or delete it and let the device register again`,
        );
      const pending = row.pending_public_key ? keyFingerprint(row.pending_public_key as string) : '';
      if (!pending || !pending.startsWith(fingerprint))
        throw new EdgeplaneError(
          'PendingKeyChanged',
          pending
            ? `the key waiting on host "${row.name}" has fingerprint ${pending}, not ${fingerprint}...: read the host again`
            : `host "${row.name}" has no device key waiting for approval`,
          { pendingKeyFingerprint: pending || undefined },
        );
      const state = row.state === 'pending-approval' || row.state === 'pre-registered' ? 'ready' : row.state;
      await edgeHosts.touch(db, row.name, {
        state,
        public_key: row.pending_public_key,
        pending_public_key: null,
        pairing_key_hash: null,
        status: withoutKeyChangeCondition(row.status, true),
      });
      await recordEvent(db, {
        involvedObject: { kind: 'EdgeHost', name: row.name },
        type: 'Normal',
        reason: 'DeviceKeyApproved',
        message: `device key ${pending.slice(0, 16)} approved by ${ctx.user}; the host is now bound to it`,
        source: 'server',
      });
      ctx.hosts?.hostChanged(row.name, 'approved');
    },
    /** Refuses a pending key change and nothing else: the host keeps its key, state and connection. */
    async 'reject-key'(db, row, ctx) {
      if (!row.pending_public_key) throw new EdgeplaneError('InvalidState', `host "${row.name}" has no key change waiting`, { state: row.state });
      await edgeHosts.touch(db, row.name, { pending_public_key: null, status: withoutKeyChangeCondition(row.status) });
      await recordEvent(db, {
        involvedObject: { kind: 'EdgeHost', name: row.name },
        type: 'Normal',
        reason: 'DeviceKeyChangeRejected',
        message: `the new device key ${keyFingerprint(row.pending_public_key as string).slice(0, 16)} was refused by ${ctx.user}; the host keeps its current key`,
        source: 'server',
      });
    },
    async reject(db, row, ctx) {
      if (row.state === 'rejected') return;
      await refuseIfClusterMember(db, row, 'reject');
      await edgeHosts.touch(db, row.name, { state: 'rejected', pending_public_key: null });
      await recordEvent(db, {
        involvedObject: { kind: 'EdgeHost', name: row.name },
        type: 'Warning',
        reason: 'Rejected',
        message: `rejected by ${ctx.user}`,
        source: 'server',
      });
      ctx.hosts?.hostChanged(row.name, 'rejected');
    },
  },
});
