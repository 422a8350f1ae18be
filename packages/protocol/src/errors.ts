import { z } from 'zod';

/**
 * The one registry of error codes. Codes are stable: clients and scripts match on them.
 * `status` is the HTTP status the API answers with; docs/errors.md is kept in sync by a test.
 */
export const ERROR_CODES = {
  MalformedJson: { status: 400, description: 'The request body is not valid JSON.' },
  ValidationFailed: { status: 400, description: 'The request or message does not match its schema; `details.issues` lists each problem with its path.' },
  InvalidLabelSelector: { status: 400, description: 'The `labelSelector` query parameter cannot be parsed.' },
  InvalidContinueToken: { status: 400, description: 'The `continue` token of a list request is not one the server issued.' },
  Unauthenticated: { status: 401, description: 'No bearer token, or the API token is unknown, expired or revoked.' },
  Forbidden: { status: 403, description: "The caller's role does not allow this operation." },
  NotFound: { status: 404, description: 'No resource of this kind with this name.' },
  UnknownKind: { status: 404, description: 'The URL or manifest names a kind (resource type) the server does not know.' },
  MethodNotAllowed: { status: 405, description: 'The kind does not support this operation (for example creating an EdgeHost through the generic API).' },
  AlreadyExists: { status: 409, description: 'A resource of this kind with this name already exists.' },
  Conflict: {
    status: 409,
    description: 'The resourceVersion sent does not match the stored one: someone changed the resource since it was read. Read it again and retry.',
  },
  InvalidState: {
    status: 409,
    description: 'The resource is not in a state that allows this action (for example approving a host that is not pending approval).',
  },
  BodyTooLarge: { status: 413, description: 'The request body exceeds the server limit.' },
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
  HostRejected: { status: 403, description: 'The host was rejected by an operator; the agent may not connect.' },
  RateLimited: { status: 429, description: 'Too many requests; retry after the number of seconds in the Retry-After header.' },
  Internal: { status: 500, description: 'An unexpected server error. It is logged with the request id.' },
  NotReady: { status: 503, description: 'The server is starting or its store is unreachable.' },
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
