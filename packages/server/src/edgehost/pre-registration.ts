import { randomBytes } from 'node:crypto';
import { EdgeplaneError } from '@edgeplane/protocol';
import { hashSecret } from '../resource/secrets.js';
import type { Executor } from '../store/db.js';
import { findHostByDeviceUid } from './edgehost.repository.js';

/** A pairing key: 192-bit random with a readable prefix, shown once, stored as sha256. */
export function newPairingKey(): string {
  return `eppk_${randomBytes(24).toString('base64url')}`;
}

/**
 * Fills in metadata.name from spec.deviceUid when the caller left it out, so `POST /api/v1/edgehosts`
 * with only a device UID gives the host the same name registration would (edge-<12 hex>).
 */
export function withDerivedName(body: unknown, nameFor: (deviceUid: string) => string): unknown {
  if (!body || typeof body !== 'object' || Array.isArray(body)) return body;
  const b = body as { metadata?: Record<string, unknown>; spec?: Record<string, unknown> };
  const uid = b.spec?.deviceUid;
  if (typeof uid !== 'string' || (b.metadata && typeof b.metadata.name === 'string')) return body;
  return { ...b, metadata: { ...(b.metadata ?? {}), name: nameFor(uid) } };
}

/**
 * Columns of a pre-registered host: bound to a device UID, no device key yet, and a one-time pairing
 * key the device presents to take exactly this host (shown once in the create answer).
 */
export async function preRegistrationColumns(db: Executor, input: { spec: Record<string, unknown> }) {
  const deviceUid = input.spec.deviceUid;
  if (typeof deviceUid !== 'string')
    throw new EdgeplaneError('ValidationFailed', 'pre-registering a host needs spec.deviceUid (the DMI product_uuid, else /etc/machine-id)', {
      issues: [{ path: 'spec.deviceUid', message: 'required' }],
    });
  const existing = await findHostByDeviceUid(db, deviceUid);
  if (existing)
    throw new EdgeplaneError('AlreadyExists', `device UID ${deviceUid} already belongs to host "${existing.name}"`, {
      kind: 'EdgeHost',
      name: existing.name,
    });
  const pairingKey = newPairingKey();
  const denied = input.spec.denied === true;
  return {
    columns: {
      device_uid: deviceUid,
      public_key: '',
      pending_public_key: null,
      // A denied UID needs no key: its host is only the deny-list record.
      state: denied ? 'rejected' : 'pre-registered',
      connectivity: 'offline',
      last_seen: null,
      pairing_key_hash: denied ? null : hashSecret(pairingKey),
    },
    status: { conditions: [] },
    shownOnce: denied ? undefined : { pairingKey },
  };
}
