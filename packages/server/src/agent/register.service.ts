import { createHash, createPublicKey, randomUUID, X509Certificate } from 'node:crypto';
import {
  AGENT_CONNECT_PATH,
  canonicalDeviceKey,
  DEFAULT_PROJECT,
  type DevicePublicKey,
  EdgeplaneError,
  type HostIdentity,
  REGISTER_AUDIENCE,
  type RegisterRequest,
  type RegisterResponse,
  VM_CLUSTER_LABEL,
} from '@edgeplane/protocol';
import { findHostByDeviceUid } from '../edgehost/edgehost.repository.js';
import { edgeHosts, hostNameForDevice, keyFingerprint } from '../edgehost/edgehost.service.js';
import { recordEvent } from '../event/event.service.js';
import type { Db, Executor } from '../store/db.js';
import { isUniqueViolation } from '../store/db.js';
import type { EdgeHostTable } from '../store/schema.js';
import { verifyDeviceToken } from './device-token.js';
import { type Grant, resolveGrant } from './registration-grant.js';
import type { TpmActivation } from './tpm-activation.js';

type Result = RegisterResponse & { created: boolean; via?: Grant['via'] };
const sameKey = (stored: string, canonical: string) => !!stored && canonicalDeviceKey(JSON.parse(stored) as DevicePublicKey) === canonical;

/**
 * What the host records about where its key lives. The EK public key must parse as a public key; its
 * fingerprint is the sha256 of its DER (SubjectPublicKeyInfo). The schema already tied tpm to a P-256 key.
 */
function hostIdentity(req: RegisterRequest): HostIdentity {
  const claim = req.identity;
  if (claim?.kind !== 'tpm') return { kind: 'file' };
  let der: Buffer;
  try {
    der = createPublicKey(claim.ekPublicKey).export({ type: 'spki', format: 'der' });
    if (claim.ekCertificate) new X509Certificate(claim.ekCertificate);
  } catch (err) {
    throw new EdgeplaneError('ValidationFailed', `the TPM endorsement key or certificate does not parse: ${(err as Error).message}`, {
      issues: [{ path: 'identity', message: 'must be a PEM public key (and certificate)' }],
    });
  }
  return {
    kind: 'tpm',
    ekPublicKey: claim.ekPublicKey,
    ...(claim.ekCertificate ? { ekCertificate: claim.ekCertificate } : {}),
    ekFingerprint: createHash('sha256').update(der).digest('hex'),
  };
}
const answer = (host: { name: string; uid: string }, state: string, created: boolean, via?: Grant['via']): Result => ({
  hostName: host.name,
  uid: host.uid,
  state: state as RegisterResponse['state'],
  connectPath: AGENT_CONNECT_PATH,
  created,
  via,
});

/**
 * Registers a device with a token, the pairing key of its pre-registered host, or a claimed pairing
 * session. Each only buys a per-device identity: the host is bound to the device's key. The same
 * device (same key) registering again keeps its host; another key claiming the same device UID never
 * takes the host over silently: it waits for an operator's approval. A denied UID is refused.
 * A `tpm` key is believed only once the TPM has activated a credential for it (tpm-activation.ts).
 * All writes happen in one transaction, so a refused registration writes nothing.
 */
export async function registerDevice(db: Db, req: RegisterRequest, tpm: TpmActivation): Promise<Result> {
  const proof = await verifyDeviceToken(req.proof, req.publicKey, REGISTER_AUDIENCE, 'DeviceProofInvalid');
  if (proof.sub !== req.deviceUid) throw new EdgeplaneError('DeviceProofInvalid', 'the registration proof was made for another device UID');
  const publicKey = canonicalDeviceKey(req.publicKey);
  const identity = hostIdentity(req);
  // A key that claims to be in a TPM proves it by credential activation before anything is read or written.
  tpm.verify(req);
  const now = new Date().toISOString();
  for (let attempt = 0; ; attempt++) {
    // The grant whose credential this registration used (its use of an unlimited token is counted after the commit).
    let used: Grant | undefined;
    try {
      const result = await db.transaction().execute(async (trx) => {
        const existing = await findHostByDeviceUid(trx, req.deviceUid);
        if (existing && JSON.parse(existing.spec).denied === true)
          throw new EdgeplaneError('DeviceDenied', `device UID ${req.deviceUid} is on the deny-list (host "${existing.name}")`);
        // A known device recovering its identity: its key (proven above) identifies it, whatever
        // credential it carries; none is checked or used up, just as revoking a token never cuts off
        // a registered device.
        if (existing && sameKey(existing.public_key, publicKey)) return answer(existing, existing.state, false);
        const grant = await resolveGrant(trx, req, existing, now);
        if (grant.requireTpm && identity.kind !== 'tpm')
          throw new EdgeplaneError(
            'TpmIdentityRequired',
            `${grant.describe} requires a device key held in a TPM 2.0, and device UID ${req.deviceUid} registered with a file key`,
          );
        // A virtualized cluster's VM token admits only that cluster's pre-registered VMs.
        const vmCluster = grant.labels[VM_CLUSTER_LABEL];
        if (vmCluster !== undefined && (!existing || (JSON.parse(existing.labels) as Record<string, string>)[VM_CLUSTER_LABEL] !== vmCluster))
          throw new EdgeplaneError(
            'DeviceNotPreRegistered',
            `${grant.describe} only admits the VMs of cluster ${vmCluster}; device UID ${req.deviceUid} is not one`,
          );
        if (existing) {
          if (existing.state === 'rejected') throw new EdgeplaneError('HostRejected', `host "${existing.name}" was rejected by an operator`);
          // A pre-registered UID is bound only by its pairing key or a token made for pre-registered
          // devices; any other credential (a generic token, a pairing code) only asks for approval,
          // and the real device's pairing key keeps working meanwhile.
          const targeted = grant.via === 'pairing-key' || grant.preRegisteredOnly;
          const state =
            existing.state === 'pre-registered' && targeted
              ? await bindPreRegistered(trx, existing, req, grant, publicKey, identity, now)
              : await requestKeyChange(trx, existing, req, grant, publicKey, identity, now);
          await grant.consume(trx, existing.name, now);
          used = grant;
          return answer(existing, state, false, grant.via);
        }
        if (grant.preRegisteredOnly)
          throw new EdgeplaneError(
            'DeviceNotPreRegistered',
            `${grant.describe} only admits pre-registered devices, and device UID ${req.deviceUid} is not pre-registered`,
          );
        const host = await insertHost(trx, req, grant, publicKey, identity, now);
        await grant.consume(trx, host.name, now);
        used = grant;
        return answer(host, host.state, true, grant.via);
      });
      // The host is registered: a store error here costs the token's use counter one use, not the registration.
      await used?.countUse?.(db, now).catch(() => {});
      return result;
    } catch (err) {
      // Two registrations of one device racing: the loser retries and finds the winner's host.
      if (attempt === 0 && isUniqueViolation(err)) continue;
      throw err;
    }
  }
}

function registrationStatus(req: RegisterRequest, grant: Grant, identity: HostIdentity, now: string) {
  return {
    registeredAt: now,
    registeredVia: grant.via,
    identity,
    ...(grant.tokenName ? { registrationToken: grant.tokenName } : {}),
    agentVersion: req.agentVersion,
    inventory: req.inventory,
  };
}

async function insertHost(trx: Executor, req: RegisterRequest, grant: Grant, publicKey: string, identity: HostIdentity, now: string) {
  const name = hostNameForDevice(req.deviceUid);
  const state = grant.autoApprove ? 'ready' : 'pending-approval';
  const uid = randomUUID();
  const site = grant.site ?? req.site;
  await trx
    .insertInto('edge_hosts')
    .values({
      name,
      uid,
      project: grant.project ?? DEFAULT_PROJECT,
      // The operator's labels (token, pairing claim) win over what the device says about itself.
      labels: JSON.stringify({ ...(req.labels ?? {}), ...grant.labels }),
      annotations: '{}',
      generation: 1,
      resource_version: 1,
      created_at: now,
      updated_at: now,
      spec: JSON.stringify(site ? { site } : {}),
      status: JSON.stringify({ ...registrationStatus(req, grant, identity, now), conditions: [] }),
      device_uid: req.deviceUid,
      public_key: publicKey,
      pending_public_key: null,
      state,
      connectivity: 'offline',
      last_seen: null,
      pairing_key_hash: null,
    })
    .execute();
  await recordEvent(trx, {
    // The uid is known: no lookup of the row just inserted.
    involvedObject: { kind: 'EdgeHost', name, uid },
    type: 'Normal',
    reason: 'Registered',
    message: `device ${req.deviceUid} registered with ${grant.describe} (${state})`,
    source: 'server',
  });
  return { name, uid, state };
}

const withoutPendingIdentity = ({ pendingIdentity: _p, ...status }: Record<string, unknown>) => status;

/** The device an operator pre-registered arrives: it takes exactly that host, its labels and site. */
async function bindPreRegistered(
  trx: Executor,
  host: EdgeHostTable,
  req: RegisterRequest,
  grant: Grant,
  publicKey: string,
  identity: HostIdentity,
  now: string,
) {
  const state = grant.autoApprove ? 'ready' : 'pending-approval';
  const spec = JSON.parse(host.spec);
  const site = spec.site ?? grant.site ?? req.site;
  const status = JSON.parse(host.status);
  await edgeHosts.touch(trx, host.name, {
    public_key: publicKey,
    // A key that asked for this UID with another credential meanwhile is superseded by the real device.
    pending_public_key: null,
    pairing_key_hash: null,
    state,
    // Pre-registered labels are the operator's word about this very device: they win.
    labels: JSON.stringify({ ...(req.labels ?? {}), ...grant.labels, ...JSON.parse(host.labels) }),
    spec: JSON.stringify(site ? { ...spec, site } : spec),
    status: JSON.stringify({
      ...withoutPendingIdentity(status),
      ...registrationStatus(req, grant, identity, now),
      conditions: (status.conditions ?? []).filter((c: { type: string }) => c.type !== 'KeyChangePending'),
    }),
  });
  await recordEvent(trx, {
    involvedObject: { kind: 'EdgeHost', name: host.name },
    type: 'Normal',
    reason: 'Registered',
    message: `pre-registered device ${req.deviceUid} registered with ${grant.describe} (${state})`,
    source: 'server',
  });
  return state;
}

/**
 * Another key claims a device UID that is bound (re-install or impostor) or pre-registered: the key
 * waits for an operator's decision. The host keeps its state, its key and its connection; the new
 * key opens no channel (DeviceKeyPending) until it is approved.
 */
async function requestKeyChange(
  trx: Executor,
  host: EdgeHostTable,
  req: RegisterRequest,
  grant: Grant,
  publicKey: string,
  identity: HostIdentity,
  now: string,
) {
  const status = JSON.parse(host.status);
  // A host bound to a TPM key that is offered a file key: say so, since approving it gives up the
  // TPM binding (a copied data dir or a re-installed device without its TPM looks exactly like this).
  const downgrade = status.identity?.kind === 'tpm' && identity.kind !== 'tpm' ? ' (a file key replacing the TPM-bound key)' : '';
  const conditions = (status.conditions ?? []).filter((c: { type: string }) => c.type !== 'KeyChangePending');
  conditions.push({
    type: 'KeyChangePending',
    status: 'True',
    reason: 'NewDeviceKey',
    message: `a device presenting ${identity.kind} key ${keyFingerprint(publicKey).slice(0, 16)}${downgrade} claimed this device UID with ${grant.describe}; approve to bind the host to it, or reject-key to refuse it`,
    lastTransitionTime: now,
  });
  await edgeHosts.touch(trx, host.name, { pending_public_key: publicKey, status: JSON.stringify({ ...status, pendingIdentity: identity, conditions }) });
  await recordEvent(trx, {
    involvedObject: { kind: 'EdgeHost', name: host.name },
    type: 'Warning',
    reason: 'DeviceKeyChanged',
    message: `device UID ${req.deviceUid} registered with a different ${identity.kind} key${downgrade} (${grant.describe}); the host keeps its current key until an operator approves or refuses the new one`,
    source: 'server',
  });
  return 'pending-approval';
}
