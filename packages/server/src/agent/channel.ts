import {
  AgentMessage,
  CLOSE_CODES,
  findTooDeep,
  type HostSpec,
  JSON_DEPTH_MESSAGE,
  PROTOCOL_VERSION,
  type ServerMessage,
  type SessionFromAgent,
  zodIssues,
} from '@edgeplane/protocol';
import type { FastifyBaseLogger } from 'fastify';
import type { WebSocket } from 'ws';
import { type ClusterHooks, takeClusterSecrets } from '../cluster/kubeconfig.js';
import { edgeHosts } from '../edgehost/edgehost.service.js';
import { recordEvent } from '../event/event.service.js';
import type { Metrics } from '../http/metrics.js';
import type { ResourceRow } from '../resource/resource.repository.js';
import type { Db } from '../store/db.js';
import { announceWrite } from '../watch/change-bus.js';
import type { ConnectionHub } from './connection-hub.js';

export interface ChannelDeps {
  db: Db;
  hub: ConnectionHub;
  metrics: Metrics;
  log: FastifyBaseLogger;
  serverVersion: string;
  /** Remote-session broker: gets the session.* frames of this host, and learns when the channel closes. */
  /** Cluster controller hooks: kubeconfig capture and a nudge when agent status changes. */
  clusters?: ClusterHooks;
  sessions?: { onAgentFrame(host: string, msg: SessionFromAgent): void; agentDisconnected(host: string): void };
}

/**
 * Merges agent-reported fields into the host's stored status, writing only when something changed.
 * Returns the row it read (state, spec and generation as read; the status write changes none of them).
 */
async function updateHostStatus(db: Db, host: string, fields: Record<string, unknown>, clusters?: ClusterHooks): Promise<ResourceRow> {
  const row = await edgeHosts.getRow(db, host);
  // An init node's admin kubeconfig is a secret: it goes to encrypted cluster storage, never into host status.
  if (fields.agent) fields = { ...fields, agent: await takeClusterSecrets(db, row, fields.agent, clusters?.secrets) };
  const status = JSON.parse(row.status) as Record<string, unknown>;
  const next = { ...status, ...Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)) };
  if (JSON.stringify(next) !== row.status) {
    await edgeHosts.touch(db, host, { status: JSON.stringify(next) });
    // Watchers (the console's host page: status.os phase, slot, fallback reason) see reports live;
    // the watch hub reads announced hosts back in batches and skips this when nobody watches hosts.
    announceWrite(db, { kind: 'EdgeHost', name: host, type: 'MODIFIED' });
    clusters?.nudge();
  }
  return row;
}

/** The managed part of a host's spec (os, kubernetes, addons) as the agent receives it. */
export function specMessage(row: { spec: string; generation: number }): ServerMessage {
  const { site: _s, displayName: _d, osProfile: _o, ...managed } = JSON.parse(row.spec) as Record<string, unknown>;
  return { type: 'spec', generation: Number(row.generation), spec: managed as HostSpec };
}

/** Serves one agent's channel after the upgrade was authenticated. */
export function serveChannel(deps: ChannelDeps, socket: WebSocket, host: string, publicKey: string): void {
  const { db, hub, metrics } = deps;
  const log = deps.log.child({ host });
  hub.attach(host, socket, publicKey);
  // Messages are handled one at a time, in order: a status must not overtake the hello before it.
  let queue = Promise.resolve();
  const helloTimer = setTimeout(() => socket.close(CLOSE_CODES.invalidMessage, 'expected hello'), 15_000);
  // An agent that keeps sending what it should not is broken or hostile: after this many invalid
  // messages the channel closes (4400); the agent reconnects with backoff.
  const maxInvalid = hub.options.maxInvalidMessages ?? 20;
  let invalid = 0;
  let closing = false;

  socket.on('message', (data) => {
    if (closing) return;
    hub.touch(host);
    queue = queue.then(() => handle(data.toString())).catch((err) => log.error({ err }, 'agent message handling failed'));
  });
  socket.on('close', () => {
    clearTimeout(helloTimer);
    hub.detach(host, socket);
    deps.sessions?.agentDisconnected(host);
  });
  // The websocket plugin's error handler logs the error (one line for a client's protocol error,
  // e.g. a frame over maxPayload) and drops the socket; nothing more to say here.
  socket.on('error', (err) => log.debug({ code: (err as { code?: string }).code, reason: err.message }, 'agent socket error'));

  /** Answers an invalid message with an error frame; the last one allowed closes the channel. */
  function refuse(code: 'MalformedJson' | 'ValidationFailed', message: string, detail: Record<string, unknown>): void {
    invalid++;
    const w = hub.invalidMessageLogs.allow(host);
    if (w.log) log.warn({ ...detail, invalidOnChannel: invalid, heldBackSinceLastWarning: w.held }, 'invalid agent message');
    else log.debug({ ...detail, invalidOnChannel: invalid }, 'invalid agent message');
    socket.send(JSON.stringify({ type: 'error', code, message }));
    if (invalid >= maxInvalid) {
      closing = true;
      log.warn({ invalid }, 'closing agent channel: too many invalid messages');
      socket.close(CLOSE_CODES.invalidMessage, 'too many invalid messages');
    }
  }

  async function handle(raw: string): Promise<void> {
    if (closing) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      metrics.agentMessages.inc({ type: 'malformed' });
      refuse('MalformedJson', 'message is not JSON', { bytes: raw.length });
      return;
    }
    // Before the schema: nothing walks a message nested thousands deep, and the store takes none deeper than the limit.
    const deep = findTooDeep(parsed);
    if (deep) {
      metrics.agentMessages.inc({ type: 'invalid' });
      const issue = { path: deep.join('.'), message: JSON_DEPTH_MESSAGE };
      refuse('ValidationFailed', `invalid message: ${issue.path}: ${issue.message}`, { issues: [issue] });
      return;
    }
    const r = AgentMessage.safeParse(parsed);
    if (!r.success) {
      metrics.agentMessages.inc({ type: 'invalid' });
      const issues = zodIssues(r.error).slice(0, 10);
      refuse('ValidationFailed', `invalid message: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`, { issues });
      return;
    }
    const msg = r.data;
    metrics.agentMessages.inc({ type: msg.type });
    switch (msg.type) {
      case 'hello': {
        clearTimeout(helloTimer);
        // One read of the host serves the status merge, the welcome and the spec.
        const row = await updateHostStatus(
          db,
          host,
          { agentVersion: msg.agentVersion, inventory: msg.inventory, observedGeneration: msg.observedGeneration, agent: msg.status },
          deps.clusters,
        );
        hub.send(host, {
          type: 'welcome',
          protocolVersion: PROTOCOL_VERSION,
          serverVersion: deps.serverVersion,
          hostName: host,
          state: row.state as 'ready',
          heartbeatIntervalSeconds: hub.options.heartbeatIntervalSeconds,
        });
        // A host waiting for approval gets no work: its spec follows the approval (ConnectionHub.hostChanged).
        if (row.state !== 'pending-approval') await hub.sendSpec(host, row);
        break;
      }
      case 'heartbeat':
        break;
      case 'session.opened':
      case 'session.output':
      case 'session.exit':
      case 'session.refused':
      case 'session.ack':
        deps.sessions?.onAgentFrame(host, msg);
        break;
      case 'status':
        await updateHostStatus(db, host, { observedGeneration: msg.observedGeneration, agent: msg.status, inventory: msg.inventory }, deps.clusters);
        break;
      case 'event':
        // Tell the agent once per warning window too, so the drop shows in its own log.
        if (!hub.events.take(host, log, () => hub.send(host, { type: 'error', code: 'RateLimited', message: 'events over the rate limit are dropped' }))) break;
        await recordEvent(db, {
          involvedObject: { kind: 'EdgeHost', name: host },
          type: msg.eventType,
          reason: msg.reason,
          message: msg.message,
          source: `agent/${host}`,
          timestamp: msg.timestamp,
          dedupeKey: `${host}/${msg.id}`,
        });
        break;
    }
  }
}
