import { randomUUID } from 'node:crypto';
import { AGENT_CONNECT_PATH, DEFAULT_PROJECT, EdgeplaneError, REGISTER_AUDIENCE, type RegisterRequest, type RegisterResponse } from '@edgeplane/protocol';
import { findHostByDeviceUid } from '../edgehost/edgehost.repository.js';
import { edgeHosts, hostNameForDevice, keyFingerprint } from '../edgehost/edgehost.service.js';
import { recordEvent } from '../event/event.service.js';
import { markTokenUsed, takeTokenUse } from '../registration-token/registration-token.repository.js';
import { checkRegistrationToken } from '../registration-token/registration-token.service.js';
import type { Db } from '../store/db.js';
import { isUniqueViolation } from '../store/db.js';
import { verifyDeviceToken } from './device-token.js';

const sameKey = (a: string, b: { x: string }) => (JSON.parse(a) as { x: string }).x === b.x;

/**
 * Registers a device. The shared token buys a per-device identity: the host is bound to the device's
 * key. The same device (same key) registering again keeps its host; another key claiming the same
 * device UID never takes the host over silently: it waits for an operator's approval.
 * All writes happen in one transaction, so a refused registration writes nothing.
 */
export async function registerDevice(db: Db, req: RegisterRequest): Promise<RegisterResponse & { created: boolean }> {
  const proof = await verifyDeviceToken(req.proof, req.publicKey, REGISTER_AUDIENCE, 'DeviceProofInvalid');
  if (proof.sub !== req.deviceUid) throw new EdgeplaneError('DeviceProofInvalid', 'the registration proof was made for another device UID');
  const publicKey = JSON.stringify({ kty: 'OKP', crv: 'Ed25519', x: req.publicKey.x });
  const now = new Date().toISOString();
  for (let attempt = 0; ; attempt++) {
    try {
      return await db.transaction().execute(async (trx) => {
        const existing = await findHostByDeviceUid(trx, req.deviceUid);
        if (existing && sameKey(existing.public_key, req.publicKey)) {
          const token = await checkRegistrationToken(trx, req.token, false);
          await markTokenUsed(trx, token.name, now);
          return {
            hostName: existing.name,
            uid: existing.uid,
            state: existing.state as RegisterResponse['state'],
            connectPath: AGENT_CONNECT_PATH,
            created: false,
          };
        }
        const token = await checkRegistrationToken(trx, req.token, true);
        if (!(await takeTokenUse(trx, token.name, now)))
          throw new EdgeplaneError('RegistrationTokenExhausted', `registration token "${token.name}" is used up`);
        if (existing) {
          if (existing.state === 'rejected') throw new EdgeplaneError('HostRejected', `host "${existing.name}" was rejected by an operator`);
          const status = JSON.parse(existing.status);
          const conditions = (status.conditions ?? []).filter((c: { type: string }) => c.type !== 'KeyChangePending');
          conditions.push({
            type: 'KeyChangePending',
            status: 'True',
            reason: 'NewDeviceKey',
            message: `a device presenting key ${keyFingerprint(publicKey).slice(0, 16)} claimed this device UID; approve to bind the host to it`,
            lastTransitionTime: now,
          });
          await edgeHosts.touch(trx, existing.name, {
            pending_public_key: publicKey,
            state: 'pending-approval',
            status: JSON.stringify({ ...status, conditions }),
          });
          await recordEvent(trx, {
            involvedObject: { kind: 'EdgeHost', name: existing.name },
            type: 'Warning',
            reason: 'DeviceKeyChanged',
            message: `device UID ${req.deviceUid} registered with a different key (token "${token.name}"); approval required`,
            source: 'server',
          });
          return { hostName: existing.name, uid: existing.uid, state: 'pending-approval' as const, connectPath: AGENT_CONNECT_PATH, created: false };
        }
        const name = hostNameForDevice(req.deviceUid);
        const state = token.spec.autoApprove ? 'ready' : 'pending-approval';
        const uid = randomUUID();
        const site = token.spec.site ?? req.site;
        await trx
          .insertInto('edge_hosts')
          .values({
            name,
            uid,
            project: DEFAULT_PROJECT,
            // The token's labels are the operator's and win over what the device says about itself.
            labels: JSON.stringify({ ...(req.labels ?? {}), ...token.spec.labels }),
            annotations: '{}',
            generation: 1,
            resource_version: 1,
            created_at: now,
            updated_at: now,
            spec: JSON.stringify(site ? { site } : {}),
            status: JSON.stringify({
              registeredAt: now,
              registrationToken: token.name,
              agentVersion: req.agentVersion,
              inventory: req.inventory,
              conditions: [],
            }),
            device_uid: req.deviceUid,
            public_key: publicKey,
            pending_public_key: null,
            state,
            connectivity: 'offline',
            last_seen: null,
          })
          .execute();
        await recordEvent(trx, {
          involvedObject: { kind: 'EdgeHost', name },
          type: 'Normal',
          reason: 'Registered',
          message: `device ${req.deviceUid} registered with token "${token.name}" (${state})`,
          source: 'server',
        });
        return { hostName: name, uid, state, connectPath: AGENT_CONNECT_PATH, created: true };
      });
    } catch (err) {
      // Two registrations of one device racing: the loser retries and finds the winner's host.
      if (attempt === 0 && isUniqueViolation(err)) continue;
      throw err;
    }
  }
}
