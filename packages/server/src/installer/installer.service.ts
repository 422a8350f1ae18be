import { randomBytes } from 'node:crypto';
import { CLOUD_CONFIG_HEADER, CLOUD_CONFIG_KEY, CloudConfig, EdgeplaneError, InstallerRequest, networkConfigFor, parseOrThrow } from '@edgeplane/protocol';
import { stringify } from 'yaml';
import { registrationTokens } from '../registration-token/registration-token.service.js';
import { hashSecret, newSecret, secretPrefix } from '../resource/secrets.js';
import type { Executor } from '../store/db.js';
import type { SeedFiles } from './seed-iso.js';

export interface InstallerArtifacts {
  files: SeedFiles;
  /** Set when the request rotated the token: the new secret (also inside user-data). */
  rotatedSecret?: string;
}

/** Where Debian's update-ca-certificates (run by cloud-init's ca_certs module) writes the system CA bundle. */
export const SYSTEM_CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

/** Renders the cloud-config; validated against the documented schema before it leaves the server. */
export function renderUserData(opts: {
  server: string;
  token: string;
  site?: string;
  labels?: Record<string, string>;
  ntp?: string[];
  caPem?: string;
  hostname?: string;
}): string {
  const doc = CloudConfig.parse({
    ...(opts.hostname ? { hostname: opts.hostname } : {}),
    ...(opts.ntp?.length ? { ntp: { enabled: true, servers: opts.ntp } } : {}),
    // cloud-init's ca_certs module adds the CA to the system trust store before the agent starts.
    ...(opts.caPem ? { ca_certs: { trusted: [opts.caPem.trim()] } } : {}),
    [CLOUD_CONFIG_KEY]: {
      server: opts.server,
      // Node reads its own CA store, not the system's: point the agent at the bundle that
      // update-ca-certificates rebuilds with the CA above, so it trusts the server's private CA too.
      ...(opts.caPem ? { caFile: SYSTEM_CA_BUNDLE } : {}),
      token: opts.token,
      ...(opts.site ? { site: opts.site } : {}),
      ...(opts.labels && Object.keys(opts.labels).length ? { labels: opts.labels } : {}),
    },
  });
  return `${CLOUD_CONFIG_HEADER}\n# Edgeplane installer user-data for a NoCloud seed; the agent reads the "${CLOUD_CONFIG_KEY}" key.\n${stringify(doc)}`;
}

/**
 * Installer artifacts for one registration token. The secret is stored hashed, so the caller passes
 * it (checked against the token) or asks for a rotation, which replaces the token's secret in the
 * same transaction: installers made with the old secret stop registering new devices, while devices
 * already registered keep their own identity.
 */
export async function installerArtifacts(db: Executor, tokenName: string, body: unknown, defaultServer: string): Promise<InstallerArtifacts> {
  const req = parseOrThrow(InstallerRequest, body ?? {}, 'installer request');
  const row = await registrationTokens.getRow(db, tokenName);
  const token = registrationTokens.toObject(row);
  if (token.status.state === 'revoked' || token.status.state === 'expired')
    throw new EdgeplaneError('InvalidState', `registration token "${tokenName}" is ${token.status.state}; installers need an active token`, {
      state: token.status.state,
    });
  let secret = req.tokenSecret;
  let rotatedSecret: string | undefined;
  if (secret !== undefined) {
    if (hashSecret(secret) !== row.token_hash)
      throw new EdgeplaneError('ValidationFailed', `tokenSecret is not the secret of registration token "${tokenName}"`, {
        issues: [{ path: 'tokenSecret', message: 'does not match the token' }],
      });
  } else {
    secret = newSecret('eprt');
    rotatedSecret = secret;
    const status = { ...JSON.parse(row.status), prefix: secretPrefix(secret) };
    await registrationTokens.touch(db, tokenName, { token_hash: hashSecret(secret), status: JSON.stringify(status) });
  }
  const spec = token.spec as { site?: string };
  const network = networkConfigFor(req.network);
  const hostname = req.hostname ?? `edgeplane-${tokenName}`.slice(0, 63).replace(/-+$/, '');
  const files: SeedFiles = {
    'user-data': renderUserData({
      server: req.server ?? defaultServer,
      token: secret,
      site: req.site ?? spec.site,
      labels: req.labels,
      ntp: req.ntp,
      caPem: req.caPem,
      hostname: req.hostname,
    }),
    // A fresh instance-id per seed: cloud-init runs its per-instance modules once per id.
    'meta-data': `instance-id: edgeplane-${randomBytes(6).toString('hex')}\nlocal-hostname: ${hostname}\n`,
    ...(network ? { 'network-config': stringify(network) } : {}),
  };
  return { files, rotatedSecret };
}
