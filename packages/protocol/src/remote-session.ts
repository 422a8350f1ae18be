import { z } from 'zod';
import { Name, resourceInputSchema, resourceSchema, Timestamp } from './meta.js';
import { refuseControlChars } from './text.js';

/**
 * Remote troubleshooting sessions: a shell (PTY), a command (exec), a log stream (logs) or a support
 * bundle (bundle) on an edge host, carried over the agent's outbound channel. See docs/architecture.md
 * "Remote sessions" for the operator WebSocket protocol and the flow control.
 */
export const SessionKind = z.enum(['shell', 'exec', 'logs', 'bundle']);
export type SessionKind = z.infer<typeof SessionKind>;

/** Permission a non-admin needs in its User spec `permissions` to open a session. */
export const REMOTE_SHELL_PERMISSION = 'hosts:remote-shell';
export const SESSION_DEFAULT_TTL_SECONDS = 900;
export const SESSION_MAX_TTL_SECONDS = 4 * 3600;
export const SESSION_DEFAULT_IDLE_SECONDS = 600;
/** Unacknowledged bytes one side may have in flight per session and direction. */
export const SESSION_WINDOW_BYTES = 256 * 1024;
/**
 * How far past its window the agent may go: it stops reading a process once its credit is used up, but
 * the read in progress (a pipe or PTY read, at most 64 KiB) is still sent. A receiver ends a session that
 * exceeds window + slack.
 */
export const SESSION_WINDOW_SLACK_BYTES = 128 * 1024;
/** Largest data chunk in one session.output / session.input frame (before base64). */
export const SESSION_MAX_CHUNK_BYTES = 32 * 1024;

export const LogsRequest = z
  .object({
    /** `agent` (the agent's own log), `journal` (journald), or a name from the agent's troubleshoot.logFiles. */
    source: z.string().min(1).max(63).default('agent'),
    follow: z.boolean().default(false),
    lines: z.number().int().min(1).max(100_000).default(200),
  })
  .strict();

const Argv = z.array(z.string().max(4096)).min(1).max(256);

/** Body of `POST /api/v1/edgehosts/<name>/sessions`. */
export const CreateSessionRequest = z
  .object({
    kind: SessionKind,
    reason: z.string().trim().min(3, 'a reason is required (at least 3 characters)').max(1024),
    ttlSeconds: z.number().int().min(1).max(SESSION_MAX_TTL_SECONDS).default(SESSION_DEFAULT_TTL_SECONDS),
    idleTimeoutSeconds: z.number().int().min(1).max(SESSION_MAX_TTL_SECONDS).default(SESSION_DEFAULT_IDLE_SECONDS),
    command: Argv.optional(),
    cols: z.number().int().min(1).max(1000).default(80),
    rows: z.number().int().min(1).max(1000).default(24),
    logs: LogsRequest.optional(),
  })
  .strict()
  .refine((r) => r.kind !== 'exec' || !!r.command, { message: 'exec needs a command (argv array)', path: ['command'] })
  .superRefine(refuseControlChars);
export type CreateSessionRequest = z.output<typeof CreateSessionRequest>;

export const SessionPhase = z.enum(['pending', 'active', 'ended', 'refused']);
export type SessionPhase = z.infer<typeof SessionPhase>;

export const RemoteSessionSpec = z
  .object({
    host: Name,
    kind: SessionKind,
    reason: z.string(),
    user: z.string(),
    ttlSeconds: z.number().int(),
    idleTimeoutSeconds: z.number().int(),
    command: Argv.optional(),
    cols: z.number().int(),
    rows: z.number().int(),
    logs: LogsRequest.optional(),
  })
  .strict();
export const RemoteSessionStatus = z.object({
  phase: SessionPhase,
  /** Operator WebSocket URL path: `/api/v1/remotesessions/<id>/attach`. */
  url: z.string().optional(),
  /** One-time attach ticket for browsers (query `?ticket=`); only in the create response. */
  attachTicket: z.string().optional(),
  expiresAt: Timestamp.optional(),
  startedAt: Timestamp.optional(),
  endedAt: Timestamp.optional(),
  exitCode: z.number().int().nullable().optional(),
  signal: z.string().nullable().optional(),
  /** Why it ended: exit, ttl, idle, terminated, refused, agent-disconnected, operator-detached, ... */
  endReason: z.string().optional(),
  message: z.string().optional(),
  bytesIn: z.number().int().optional(),
  bytesOut: z.number().int().optional(),
});
export const RemoteSession = resourceSchema('RemoteSession', RemoteSessionSpec, RemoteSessionStatus);
export type RemoteSession = z.infer<typeof RemoteSession>;
export const RemoteSessionInput = resourceInputSchema('RemoteSession', RemoteSessionSpec);

// ---- agent channel frames (multiplexed by session id) ----
const Id = z.string().min(1).max(63);
const B64 = z.string().max(Math.ceil(SESSION_MAX_CHUNK_BYTES / 3) * 4 + 4);

/** server -> agent */
export const SessionOpenMessage = z.object({
  type: z.literal('session.open'),
  id: Id,
  kind: SessionKind,
  command: Argv.optional(),
  cols: z.number().int().min(1).max(1000),
  rows: z.number().int().min(1).max(1000),
  logs: LogsRequest.optional(),
  /** Hard limit, seconds from open, and idle limit, seconds; the agent enforces both too. */
  ttlSeconds: z.number().int().positive(),
  idleTimeoutSeconds: z.number().int().positive(),
  /** Initial credit: bytes the agent may send before the first ack. */
  window: z.number().int().positive(),
});
export const SessionInputMessage = z.object({ type: z.literal('session.input'), id: Id, data: B64 });
export const SessionResizeMessage = z.object({
  type: z.literal('session.resize'),
  id: Id,
  cols: z.number().int().min(1).max(1000),
  rows: z.number().int().min(1).max(1000),
});
/** server -> agent: end input (exec stdin EOF) without ending the session. */
export const SessionEofMessage = z.object({ type: z.literal('session.eof'), id: Id });
export const SessionCloseMessage = z.object({ type: z.literal('session.close'), id: Id, reason: z.string().max(256) });
/** Both directions: the receiver consumed `bytes` more of the sender's data. */
export const SessionAckMessage = z.object({ type: z.literal('session.ack'), id: Id, bytes: z.number().int().positive() });

/** agent -> server */
export const SessionOpenedMessage = z.object({ type: z.literal('session.opened'), id: Id, user: z.string().max(64).optional() });
export const SessionOutputMessage = z.object({
  type: z.literal('session.output'),
  id: Id,
  data: B64,
  seq: z.number().int().nonnegative(),
  stream: z.enum(['stdout', 'stderr']).default('stdout'),
});
export const SessionExitMessage = z.object({
  type: z.literal('session.exit'),
  id: Id,
  code: z.number().int().nullable(),
  signal: z.string().max(32).nullable(),
  reason: z.string().max(256),
});
export const SessionRefusedMessage = z.object({ type: z.literal('session.refused'), id: Id, reason: z.string().max(1024) });

export const SessionServerMessages = [
  SessionOpenMessage,
  SessionInputMessage,
  SessionResizeMessage,
  SessionEofMessage,
  SessionCloseMessage,
  SessionAckMessage,
] as const;
export const SessionAgentMessages = [SessionOpenedMessage, SessionOutputMessage, SessionExitMessage, SessionRefusedMessage, SessionAckMessage] as const;
export type SessionToAgent = z.infer<(typeof SessionServerMessages)[number]>;
export type SessionFromAgent = z.infer<(typeof SessionAgentMessages)[number]>;

// ---- operator WebSocket (/api/v1/remotesessions/<id>/attach), JSON text frames ----
export const OperatorClientMessage = z.discriminatedUnion('type', [
  z.object({ type: z.literal('input'), data: B64 }),
  z.object({ type: z.literal('resize'), cols: z.number().int().min(1).max(1000), rows: z.number().int().min(1).max(1000) }),
  z.object({ type: z.literal('eof') }),
  z.object({ type: z.literal('terminate') }),
]);
export type OperatorClientMessage = z.infer<typeof OperatorClientMessage>;
export const OperatorServerMessage = z.discriminatedUnion('type', [
  z.object({ type: z.literal('opened'), id: Id, kind: SessionKind, user: z.string().optional() }),
  z.object({ type: z.literal('output'), stream: z.enum(['stdout', 'stderr']), data: z.string() }),
  z.object({ type: z.literal('exit'), code: z.number().int().nullable(), signal: z.string().nullable(), reason: z.string() }),
  z.object({ type: z.literal('refused'), reason: z.string() }),
  z.object({ type: z.literal('error'), code: z.string(), message: z.string() }),
]);
export type OperatorServerMessage = z.infer<typeof OperatorServerMessage>;
