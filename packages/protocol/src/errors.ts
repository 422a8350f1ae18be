import { z } from 'zod';

/**
 * The one registry of error codes. Codes are stable: clients and scripts match on them.
 * `status` is the HTTP status the API answers with; docs/errors.md is kept in sync by a test.
 */
export const ERROR_CODES = {
  MalformedJson: { status: 400, description: 'The request body is not valid JSON.' },
  ValidationFailed: { status: 400, description: 'The request or message does not match its schema; `details.issues` lists each problem with its path.' },
  InvalidLabelSelector: { status: 400, description: 'The `labelSelector` query parameter cannot be parsed.' },
  InvalidFieldSelector: {
    status: 400,
    description: 'The `fieldSelector` query parameter cannot be parsed or names a field the kind cannot be filtered by; `details.supported` lists the fields.',
  },
  InvalidContinueToken: { status: 400, description: 'The `continue` token of a list request is not one the server issued.' },
  Unauthenticated: { status: 401, description: 'No bearer token, or the API token is unknown, expired or revoked.' },
  Forbidden: { status: 403, description: "The caller's role does not allow this operation." },
  NotFound: { status: 404, description: 'No resource of this kind with this name.' },
  UnknownKind: { status: 404, description: 'The URL or manifest names a kind (resource type) the server does not know.' },
  MethodNotAllowed: { status: 405, description: 'The kind does not support this operation (for example creating an Event through the generic API).' },
  AlreadyExists: { status: 409, description: 'A resource of this kind with this name already exists.' },
  Conflict: {
    status: 409,
    description: 'The resourceVersion sent does not match the stored one: someone changed the resource since it was read. Read it again and retry.',
  },
  InvalidState: {
    status: 409,
    description: 'The resource is not in a state that allows this action (for example approving a host that is not pending approval).',
  },
  HostOffline: { status: 409, description: 'The edge host is not connected to this server right now; remote sessions need a connected agent.' },
  SessionEnded: { status: 409, description: 'The remote session has already ended (or was already attached); open a new one.' },
  ReplicaUnreachable: {
    status: 502,
    description: 'The server replica that holds the host’s agent (and serves its remote session) could not be reached from this replica.',
  },
  BodyTooLarge: { status: 413, description: 'The request body exceeds the server limit.' },
  UriTooLong: { status: 414, description: 'A path segment of the URL (for example a name) is longer than the server reads (100 characters).' },
  RequestTimeout: { status: 408, description: 'The client did not send its whole request (headers and body) within the server request timeout.' },
  HeadersTooLarge: { status: 431, description: 'The request headers exceed the size the server reads.' },
  MalformedRequest: { status: 400, description: 'The request is not valid HTTP.' },
  UnsupportedMediaType: { status: 415, description: 'The Content-Type is not accepted for this request (JSON, or merge-patch JSON for PATCH).' },
  RegistrationTokenInvalid: { status: 401, description: 'The registration token is unknown or malformed.' },
  RegistrationTokenExpired: { status: 401, description: 'The registration token is past its `spec.expiresAt`.' },
  RegistrationTokenRevoked: { status: 401, description: 'The registration token was revoked. Hosts already registered with it are not affected.' },
  RegistrationTokenExhausted: { status: 401, description: 'The registration token has been used `spec.maxUses` times.' },
  DeviceProofInvalid: { status: 401, description: 'The registration proof is not a valid signature by the device key sent with the request.' },
  ConnectTokenInvalid: {
    status: 401,
    description: 'The agent connect token is missing, malformed, expired, too long-lived, or not signed by the key registered for the host.',
  },
  ConnectTokenReplayed: { status: 401, description: 'The agent connect token was already used; each connect needs a fresh token.' },
  HostUnknown: {
    status: 401,
    description:
      'The connect token names a host this server does not know (it was deleted, or never registered here); the agent registers again with its credential.',
  },
  PendingKeyChanged: {
    status: 409,
    description:
      'The pending device key of the host is not the one whose fingerprint the approval names (another key registered meanwhile, or none waits). Read the host again and check `status.pendingKeyFingerprint`.',
  },
  DeviceKeyPending: {
    status: 403,
    description:
      "The device key that signed the connect token waits for an operator's approval: the host is still bound to its current key. Approve the key change (`edgeplane approve-key host NAME --fingerprint FP`) or refuse it (`edgeplane reject-key host NAME`).",
  },
  PairingKeyInvalid: { status: 401, description: 'The pairing key is not the one issued for this pre-registered device UID, or it was already used.' },
  PairingInvalid: {
    status: 401,
    description: 'The pairing session is unknown, not claimed yet, already used, expired, or its secret or device key does not match.',
  },
  PairingCodeInvalid: { status: 404, description: 'No pending pairing has this code (mistyped, or never issued).' },
  PairingCodeExpired: { status: 410, description: 'The pairing code expired before it was claimed; the device shows a fresh code.' },
  PairingCodeUsed: { status: 409, description: 'The pairing code was already claimed; codes are single-use.' },
  DeviceNotPreRegistered: {
    status: 403,
    description: 'The registration token only admits pre-registered devices (`spec.preRegisteredOnly`) and no host was pre-registered with this device UID.',
  },
  TpmIdentityRequired: {
    status: 403,
    description:
      'The registration token requires a device key held in a TPM 2.0 (`spec.requireTpm`) and this device registered with a file key (no TPM found); nothing was written.',
  },
  TpmActivationRequired: {
    status: 401,
    description:
      'A registration with a TPM key must prove the key lives in the TPM whose endorsement key it names: the details carry a credential only that TPM can activate and a sealed challenge (a few minutes); the agent answers by registering again. Also returned, with a fresh challenge, when an answer is expired, wrong, or made for another key, TPM or server; nothing was written.',
  },
  DeviceDenied: { status: 403, description: 'The device UID is on the deny-list (`spec.denied` of its EdgeHost): it may not register, pair or connect.' },
  InstallerToolMissing: { status: 501, description: 'Building a seed ISO needs xorriso (or genisoimage) on the server; install it.' },
  HostRejected: { status: 403, description: 'The host was rejected by an operator; the agent may not connect.' },
  ImageResolveFailed: {
    status: 422,
    description: 'The OS image of a cluster profile could not be resolved to a manifest digest (registry unreachable, unknown tag, access refused).',
  },
  RegistryNotAllowed: {
    status: 422,
    description: 'The OS image names a registry outside the allow-list of this server (`--allowed-registries`); nothing was written.',
  },
  UnsupportedKubernetesVersion: { status: 422, description: 'The distribution driver does not support this Kubernetes version.' },
  UndeclaredVariable: { status: 422, description: 'A profile layer references a variable (var.NAME) that the profile does not declare.' },
  ProfileNotFound: { status: 422, description: "The cluster (or a host's spec.osProfile) names a cluster profile that does not exist." },
  ProfileRevisionNotFound: { status: 422, description: "The cluster (or a host's spec.osProfile) names a revision its cluster profile does not have." },
  HostNotFound: { status: 422, description: 'A cluster node names an edge host that does not exist.' },
  HostNotApproved: {
    status: 409,
    description: 'A cluster node or a host OS profile assignment names a host that is not approved (pending approval or rejected).',
  },
  HostInUse: { status: 409, description: 'A cluster node names a host that already belongs to another cluster.' },
  DuplicateHost: { status: 422, description: 'The same host is listed more than once in a cluster.' },
  NoControlPlane: { status: 422, description: 'A cluster needs at least one control-plane node.' },
  ApplianceNotFound: { status: 422, description: 'A virtualized cluster names an appliance (spec.appliance) that is not an edge host.' },
  NotAnAppliance: { status: 422, description: 'The host named in spec.appliance does not report the libvirt capability (agent config virt.libvirtUri).' },
  VmServerUrlLoopback: {
    status: 409,
    description:
      'VMs on a real appliance would be told to reach the server at a loopback address (the server has no --public-url and listens on localhost), which no guest can reach; nothing was created.',
  },
  ApplianceOffline: { status: 409, description: "The appliance's agent is not connected, so its libvirt inventory cannot be trusted; nothing was created." },
  DuplicateVmName: { status: 422, description: 'The same VM name appears more than once in spec.vms.' },
  VmNetworkNotFound: { status: 422, description: 'A VM names a libvirt network the appliance does not have.' },
  VmStoragePoolNotFound: { status: 422, description: 'A VM names a libvirt storage pool the appliance does not have.' },
  ApplianceCapacityExceeded: {
    status: 422,
    description: 'The VMs need more vCPUs, memory (after the overcommit ratio) or pool space than the appliance has free.',
  },
  EvenControlPlanes: {
    status: 422,
    description: 'An even number of control-plane nodes risks losing etcd quorum; use an odd number or set `spec.allowEvenControlPlanes: true`.',
  },
  QuorumGuard: {
    status: 422,
    description: 'The change would remove a majority of the control-plane nodes at once (etcd would lose quorum); remove them one at a time.',
  },
  HostInCluster: {
    status: 409,
    description:
      'The host belongs to a cluster (a node, a VM node, or an appliance running VMs): it cannot be deleted, rejected or reset on its own, nor get a host OS profile (its OS comes from the cluster profile).',
  },
  NoFailedImage: {
    status: 409,
    description:
      'The host has no OS image whose trial boot fell back (`status.agent.managers.os.failedImages` is empty, or its agent has not reported yet): there is nothing to retry.',
  },
  HostRemovalRefused: {
    status: 409,
    description:
      'A forced delete cannot take this host out of its cluster safely (the node that initialized the cluster, its only node, an offline host, or an appliance running VMs); `details.reason` says which.',
  },
  ProfileHasNoKubernetes: {
    status: 422,
    description: 'The cluster profile revision has no kubernetes layer (a host OS profile); clusters need one. Assign it to hosts with spec.osProfile.',
  },
  HostOsModeMismatch: {
    status: 422,
    description:
      "The profile and the host disagree on who manages the host's OS: a profile with an os layer needs hosts with Edgeplane's A/B OS (managed), a profile without one needs hosts that keep their own OS (unmanaged); `details.host`, `details.osMode` and `details.profileOsMode` say which.",
  },
  KubernetesVersionNotInImage: {
    status: 422,
    description:
      'The Kubernetes distribution or version asked for is not the one the OS image (or distribution artifact) carries: on a managed OS a version change is an image change. `details.carries` names what the image records, if anything.',
  },
  HostHasOsProfile: {
    status: 409,
    description: "The host runs a host OS profile (spec.osProfile); a cluster node takes its OS from the cluster's profile. Remove spec.osProfile first.",
  },
  MissingVariable: { status: 422, description: 'The profile declares a required variable the cluster gives no value for.' },
  UnknownVariable: { status: 422, description: 'The cluster gives a value for a variable its profile does not declare.' },
  InvalidTimezone: { status: 422, description: 'The site timezone is not an IANA time zone this server knows (for example Europe/Berlin).' },
  InvalidSchedule: { status: 422, description: 'A maintenance window schedule is not a valid 5-field cron expression.' },
  LastAdmin: {
    status: 409,
    description: 'The change would disable, demote or delete the last enabled admin, leaving nobody able to manage users; nothing was changed.',
  },
  ProjectNotFound: { status: 422, description: 'metadata.project names a project that does not exist; nothing was created.' },
  ProjectNotEmpty: { status: 409, description: 'The project still holds resources; move or delete them before deleting the project.' },
  ProtocolVersionUnsupported: {
    status: 400,
    description:
      'The client (CLI or agent) speaks a protocol major version the server does not (header `edgeplane-protocol-version`); `details` names both versions.',
  },
  RateLimited: { status: 429, description: 'Too many requests; retry after the number of seconds in the Retry-After header.' },
  Internal: { status: 500, description: 'An unexpected server error. It is logged with the request id.' },
  NotReady: { status: 503, description: 'The server is starting, draining for shutdown, or its store is unreachable.' },
  AgentCapacityReached: {
    status: 503,
    description:
      'The server holds as many agent channels as its open-file budget allows; the agent retries after Retry-After (behind a load balancer, on another replica).',
  },
  DataDirInUse: {
    status: 409,
    description: 'Server start-up: another edgeplane server already runs on this SQLite data dir (SQLite takes one server process).',
  },
} as const satisfies Record<string, { status: number; description: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;
export const errorCodes = Object.keys(ERROR_CODES) as ErrorCode[];

export const ErrorBody = z.object({
  error: z.object({
    code: z.enum(errorCodes as [ErrorCode, ...ErrorCode[]]),
    message: z.string(),
    details: z.record(z.string(), z.unknown()).optional(),
  }),
});
export type ErrorBody = z.infer<typeof ErrorBody>;

/** Error carrying a stable code; thrown by services, rendered by the server in one place. */
export class EdgeplaneError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'EdgeplaneError';
  }
  get status(): number {
    return ERROR_CODES[this.code].status;
  }
  toBody(): ErrorBody {
    return { error: { code: this.code, message: this.message, ...(this.details ? { details: this.details } : {}) } };
  }
}

/** Flattens zod issues into the `details.issues` shape every ValidationFailed error uses. */
export function zodIssues(error: z.ZodError): { path: string; message: string }[] {
  return error.issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message }));
}

export function validationError(error: z.ZodError, what = 'request'): EdgeplaneError {
  const issues = zodIssues(error);
  const first = issues[0];
  const summary = first ? `${first.path || '(root)'}: ${first.message}` : 'invalid';
  return new EdgeplaneError('ValidationFailed', `invalid ${what}: ${summary}${issues.length > 1 ? ` (and ${issues.length - 1} more)` : ''}`, { issues });
}

/** Parses with a schema, turning failure into a ValidationFailed EdgeplaneError. */
export function parseOrThrow<T extends z.ZodType>(schema: T, value: unknown, what?: string): z.infer<T> {
  const r = schema.safeParse(value);
  if (!r.success) throw validationError(r.error, what);
  return r.data;
}
