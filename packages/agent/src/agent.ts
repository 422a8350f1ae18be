import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import {
  AGENT_CONNECT_PATH,
  AgentEventMessage,
  type AgentMessage,
  type AgentStatus,
  CLOSE_CODES,
  type DesiredHostSpec,
  type HostState,
  type Inventory,
  PROTOCOL_VERSION,
  type ServerMessage,
} from '@edgeplane/protocol';
import type { Logger } from 'pino';
import { Backoff, sleep } from './backoff.js';
import { Channel, type ChannelOutcome, handedOff } from './channel.js';
import type { AgentConfig } from './config.js';
import type { Device } from './device/device.js';
import { EventQueue } from './event-queue.js';
import { DeviceIdentity, normalizeServerUrl, type Registration } from './identity.js';
import { InventoryReporter } from './inventory-reporter.js';
import type { Manager } from './managers/manager.js';
import { createManagers, ManagerRunner } from './managers/runner.js';
import type { PairingInfo } from './pairing/pairing-flow.js';
import { ensureRegistered } from './register.js';
import { loadSpec, saveSpec } from './spec-store.js';
import { type AgentTiming, DEFAULT_TIMING } from './timing.js';
import { type ServerTrust, serverTrust } from './tls-trust.js';
import { createAgentLogger } from './troubleshoot/agent-log.js';
import { TroubleshootService } from './troubleshoot/troubleshoot.service.js';
import { AGENT_VERSION } from './version.js';

export interface AgentEvents {
  registered: [Registration];
  connected: [{ hostName: string; state: HostState }];
  disconnected: [ChannelOutcome];
  spec: [{ generation: number; spec: DesiredHostSpec }];
  state: [HostState];
  /** Restarted in-process after a simulated reboot. */
  restarted: [];
  /** At-the-edge pairing: a code to show (a new one after each expiry), undefined once claimed. */
  pairing: [PairingInfo | undefined];
}

/** Below the server's event budget per host (burst 50, 1 per second), so nothing queued is dropped. */
const EVENT_SEND_BURST = 40;
const EVENT_SEND_PER_SECOND = 0.9;
/** Runs a received spec instead of the manager runner (tests and embedders); may return a new status to report. */
// biome-ignore lint/suspicious/noConfusingVoidType: lets a hook that reports nothing be a plain `async () => {}`
export type SpecHook = (spec: DesiredHostSpec, generation: number) => Promise<AgentStatus | void>;

export interface AgentOptions {
  config: AgentConfig;
  device: Device;
  logger?: Logger;
  version?: string;
  timing?: Partial<AgentTiming>;
  onSpec?: SpecHook;
  /**
   * Managers converging received specs (through a ManagerRunner, which reports status as it
   * changes). Default: createManagers(device); `false` or an `onSpec` hook disables the runner.
   */
  managers?: Manager[] | false;
  /** Long-poll length while waiting for a pairing claim (default 30 s); tests shorten it. */
  pairingPollWaitSeconds?: number;
}

/**
 * The edge agent: registers the device once, then keeps an outbound WebSocket to the server open,
 * reconnecting with backoff, and reports heartbeats, status and events. The last spec and the
 * unsent events are persisted in the data dir so the agent works on while the site is offline.
 */
export class Agent extends EventEmitter<AgentEvents> {
  readonly config: AgentConfig;
  readonly device: Device;
  readonly version: string;
  private readonly logger: Logger;
  private readonly timing: AgentTiming;
  private readonly onSpec?: SpecHook;
  private readonly managers?: Manager[] | false;
  private runner?: ManagerRunner;
  private readonly events: EventQueue;
  /** Remote sessions (shell, exec, logs, support bundle) over the channel. */
  readonly troubleshoot: TroubleshootService;
  private abort = new AbortController();
  private identity?: DeviceIdentity;
  private registration?: Registration;
  private channel?: Channel;
  private loop?: Promise<void>;
  private starting?: Promise<void>;
  /** stop() was called (and start() not since): a restart in flight must not start the agent again. */
  private halted = false;
  private welcomed = false;
  private hostState?: HostState;
  private generation?: number;
  private status: AgentStatus = {};
  private readonly inventory: InventoryReporter;
  private heartbeatSeq = 0;
  /** A local token bucket that keeps event sends under the server's per-host budget. */
  private eventTokens = EVENT_SEND_BURST;
  private eventTokensAt = Date.now();
  private eventPacer?: NodeJS.Timeout;
  /** Specs are applied one after another, in the order received. */
  private specChain: Promise<void> = Promise.resolve();

  private readonly pairingPollWaitSeconds?: number;
  /** fetch and CAs for the server, from config.caFile; read once at start. */
  private trust?: ServerTrust;

  constructor(options: AgentOptions) {
    super();
    this.pairingPollWaitSeconds = options.pairingPollWaitSeconds;
    this.config = options.config;
    this.device = options.device;
    this.version = options.version ?? AGENT_VERSION;
    this.logger = options.logger ?? createAgentLogger(options.config);
    this.timing = { ...DEFAULT_TIMING, ...options.timing };
    this.inventory = new InventoryReporter(this.device, this.logger, this.timing.inventoryCheckMs);
    this.onSpec = options.onSpec;
    this.managers = options.onSpec ? false : options.managers;
    // SIMULATION only: a simulated reboot restarts this agent in-process (a real one ends the process).
    this.device.onReboot(() => void this.restart());
    this.events = new EventQueue(join(this.config.dataDir, 'events.json'), this.logger);
    this.troubleshoot = new TroubleshootService({
      config: this.config,
      logger: this.logger.child({ component: 'troubleshoot' }),
      send: (msg) => (this.channel && this.welcomed ? this.channel.send(msg) : false),
      device: this.device,
      bundle: {
        state: () => ({
          hostName: this.hostName,
          state: this.hostState,
          connected: this.welcomed,
          observedGeneration: this.generation,
          agentVersion: this.version,
          status: this.status,
        }),
        inventory: () => this.device.inventory(),
      },
    });
  }

  get hostName(): string | undefined {
    return this.registration?.hostName;
  }
  get state(): HostState | undefined {
    return this.hostState;
  }
  /** True between the server's welcome and the end of that connection. */
  get connected(): boolean {
    return this.welcomed;
  }
  get observedGeneration(): number | undefined {
    return this.generation;
  }
  get publicKey() {
    return this.identity?.publicKey;
  }

  /** Loads identity, last spec and queued events, then starts registration and connection in the background. */
  start(): Promise<void> {
    this.halted = false;
    this.starting ??= this.doStart().catch((err) => {
      this.starting = undefined; // a failed start (e.g. unreadable data dir) may be retried
      throw err;
    });
    return this.starting;
  }

  private async doStart(): Promise<void> {
    this.abort = new AbortController();
    // An unreadable CA file fails the start with its name, instead of every request failing later.
    this.trust = serverTrust(this.config.caFile);
    await mkdir(this.config.dataDir, { recursive: true, mode: 0o700 });
    this.identity = await DeviceIdentity.loadOrCreate(this.config.dataDir, { device: this.device, logger: this.logger });
    this.registration = this.identity.registrationFor(this.config.server);
    this.hostState = this.registration?.state;
    let stored: Awaited<ReturnType<typeof loadSpec>>;
    try {
      stored = await loadSpec(this.config.dataDir);
      this.generation = stored?.generation;
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'ignoring stored spec; the server sends it again');
    }
    await this.events.load();
    if (this.managers !== false && !this.runner) {
      this.runner = new ManagerRunner({
        device: this.device,
        dataDir: this.config.dataDir,
        log: this.logger.child({ component: 'managers' }),
        managers:
          this.managers ?? (await createManagers(this.device, { dataDir: this.config.dataDir, ...(this.config.virt ? { virt: this.config.virt } : {}) })),
        report: (status) => this.reportStatus(status),
        emitEvent: (type, reason, message) => void this.emitEvent(type, reason, message),
      });
    }
    this.loop = this.run().catch((err) => this.logger.error({ err }, 'agent loop failed'));
    // Offline autonomy and reboots: keep converging to the last spec without waiting for the server.
    if (this.runner && stored) void this.runner.submit(stored.spec, stored.generation);
    else if (this.runner) void this.runner.reportNow();
    // An appliance's libvirt changes without a spec (domains stop, pools fill): report it periodically.
    if (this.runner && this.config.virt) {
      const timer = setInterval(() => void this.runner?.reportNow(), this.config.virt.inventoryIntervalSeconds * 1000);
      timer.unref();
      // A VM whose guest rebooted is shut off (domain-xml.ts: every reset is a power cycle): start it again.
      const restart = setInterval(() => void this.runner?.reconcileDrift(), this.config.virt.restartCheckSeconds * 1000);
      restart.unref();
      this.abort.signal.addEventListener(
        'abort',
        () => {
          clearInterval(timer);
          clearInterval(restart);
        },
        { once: true },
      );
    }
  }

  /** Closes the connection without reconnecting and stops every timer; a restart in flight does not start it again. */
  async stop(): Promise<void> {
    this.halted = true;
    await this.halt();
  }

  private async halt(): Promise<void> {
    if (!this.starting) return;
    await this.starting.catch(() => {});
    this.abort.abort();
    clearTimeout(this.eventPacer);
    this.eventPacer = undefined;
    await this.runner?.stop();
    await this.channel?.close(1000, 'agent stopping', this.timing.closeTimeoutMs);
    await this.loop;
    await this.specChain;
    await this.events.flush();
    this.starting = undefined;
  }

  /** Sets the status (e.g. the managers' status) and sends it now when connected, else with the next hello. */
  reportStatus(status: AgentStatus): void {
    this.status = status;
    if (this.channel && this.welcomed) this.sendStatus(this.channel);
  }

  /** The current status (with an inventory that changed since the hello, when given). */
  private sendStatus(channel: Channel, inventory?: Inventory): void {
    this.send(channel, {
      type: 'status',
      ...(this.generation !== undefined ? { observedGeneration: this.generation } : {}),
      status: this.status,
      ...(inventory ? { inventory } : {}),
    });
  }

  /** The managers' runner (undefined with an onSpec hook or `managers: false`). */
  get managerRunner(): ManagerRunner | undefined {
    return this.runner;
  }

  /** Stops and starts again on the same data dir, as after a (simulated) reboot. */
  async restart(): Promise<void> {
    if (!this.starting || this.halted) return; // stopped on purpose: stay stopped
    this.logger.info('restarting the agent after a reboot');
    await this.halt();
    // stop() called while this restart was halting (a simulator shutting down): stay stopped.
    if (this.halted) return;
    await this.start();
    this.emit('restarted');
  }

  /** Queues an event for the server; sent now if connected, else after the next connect. Returns its id. */
  emitEvent(eventType: 'Normal' | 'Warning', reason: string, message: string): string {
    const event = AgentEventMessage.parse({
      type: 'event',
      id: randomUUID(),
      eventType,
      reason,
      message: message.slice(0, 4096),
      timestamp: new Date().toISOString(),
    });
    this.events.push(event);
    if (this.welcomed) this.flushEvents();
    return event.id;
  }

  private async run(): Promise<void> {
    const { signal } = this.abort;
    const identity = this.identity as DeviceIdentity;
    if (!(await this.register(identity, false))) return;
    const backoff = new Backoff({ baseMs: this.timing.backoffBaseMs, capMs: this.timing.backoffCapMs });
    while (!signal.aborted) {
      // The server no longer knows this host (deleted): register again with this device's credential.
      if (!this.registration && !(await this.register(identity, true))) break;
      const registration = this.registration as Registration;
      const outcome = await this.connectOnce(registration, identity).catch((err): ChannelOutcome => {
        this.logger.error({ err: (err as Error).message }, 'cannot open a connection');
        return { opened: false, openMs: 0, code: 0, reason: '' };
      });
      if (signal.aborted) break;
      if (outcome.openMs >= this.timing.stableAfterMs) backoff.reset();
      let delayMs = backoff.next();
      if (handedOff(outcome)) {
        // A draining replica asked us to move: the load balancer picks another one. Jitter below the
        // backoff base spreads its agents; the backoff starts over.
        backoff.reset();
        delayMs = Math.floor(Math.random() * this.timing.backoffBaseMs);
        this.logger.info({ code: outcome.code, retryInMs: delayMs }, 'server is draining; reconnecting elsewhere');
        if (!(await sleep(delayMs, signal))) break;
        continue;
      }
      if (outcome.errorCode === 'HostUnknown') {
        // Deleted on the server: the old identity is gone for good. Registering again gives a new
        // host, pending approval unless the credential auto-approves (never the old one back).
        this.logger.warn({ host: registration.hostName, errorCode: outcome.errorCode }, 'the server no longer knows this host; registering again');
        this.registration = undefined;
        if (!(await sleep(delayMs, signal))) break;
        continue;
      }
      const rejected = outcome.code === CLOSE_CODES.rejected || outcome.errorCode === 'HostRejected';
      // This device's key waits for an operator (the host is bound to another key): nothing to do but wait.
      const keyPending = outcome.errorCode === 'DeviceKeyPending';
      // What the server shows as status.pendingKeyFingerprint.
      const keyFingerprint = identity.fingerprint;
      if (rejected || keyPending) delayMs = Math.max(delayMs, this.timing.slowRetryMs);
      const log = { code: outcome.code, reason: outcome.reason || undefined, httpStatus: outcome.httpStatus, errorCode: outcome.errorCode, retryInMs: delayMs };
      if (rejected) this.logger.error(log, 'host is rejected by the server; an operator must approve it again');
      else if (keyPending)
        this.logger.warn(
          log,
          `this device's key (fingerprint ${keyFingerprint}) waits for an operator's approval; host ${registration.hostName} is bound to another key: edgeplane approve-key host ${registration.hostName} --fingerprint ${keyFingerprint.slice(0, 16)}`,
        );
      else if (outcome.httpStatus)
        this.logger.error({ ...log, message: outcome.errorMessage }, `server refused the connection: ${outcome.errorCode ?? `HTTP ${outcome.httpStatus}`}`);
      else this.logger.info(log, outcome.opened ? 'disconnected; reconnecting' : 'cannot connect; retrying');
      if (!(await sleep(delayMs, signal))) break;
    }
  }

  /**
   * Registers the device unless it holds a registration (`fresh`: register anew although it holds
   * one, because the server no longer knows its host). False when stopped meanwhile.
   */
  private async register(identity: DeviceIdentity, fresh: boolean): Promise<boolean> {
    if (this.registration && !fresh) return true;
    const registration = await ensureRegistered({
      config: this.config,
      device: this.device,
      identity,
      logger: this.logger,
      agentVersion: this.version,
      timing: this.timing,
      signal: this.abort.signal,
      fresh,
      onPairing: (info) => this.emit('pairing', info),
      pairingPollWaitSeconds: this.pairingPollWaitSeconds,
      trust: this.trust,
    });
    if (!registration) return false;
    this.registration = registration;
    this.emit('registered', registration);
    if (registration.state) this.setState(registration.state);
    return true;
  }

  /** One connection, from handshake to close. */
  private async connectOnce(registration: Registration, identity: DeviceIdentity): Promise<ChannelOutcome> {
    const base = normalizeServerUrl(this.config.server).replace(/^http/, 'ws');
    const channel = new Channel({
      url: `${base}${registration.connectPath ?? AGENT_CONNECT_PATH}`,
      token: await identity.signConnectToken(registration.hostName),
      logger: this.logger,
      handshakeTimeoutMs: this.timing.requestTimeoutMs,
      ca: this.trust?.ca,
    });
    this.channel = channel;
    // stop() may have run while the token was being signed; it could not see this channel yet.
    if (this.abort.signal.aborted) void channel.close(1000, 'agent stopping', this.timing.closeTimeoutMs);
    channel.on('open', () => void this.sendHello(channel));
    channel.on('message', (msg) => this.onMessage(channel, msg));
    const outcome = await channel.closed;
    this.channel = undefined;
    this.troubleshoot.closeAll('agent-disconnected');
    if (this.welcomed) {
      this.welcomed = false;
      this.emit('disconnected', outcome);
    }
    return outcome;
  }

  private async sendHello(channel: Channel): Promise<void> {
    const inventory = await this.inventory.forHello();
    // hello must be the first message on the connection: nothing else is sent before the welcome.
    channel.send({
      type: 'hello',
      protocolVersion: PROTOCOL_VERSION,
      agentVersion: this.version,
      ...(this.generation !== undefined ? { observedGeneration: this.generation } : {}),
      ...(inventory ? { inventory } : {}),
      status: this.status,
    });
  }

  private onMessage(channel: Channel, msg: ServerMessage): void {
    switch (msg.type) {
      case 'welcome': {
        if (this.registration && msg.hostName !== this.registration.hostName)
          this.logger.warn({ hostName: msg.hostName }, 'server knows this host under another name');
        this.welcomed = true;
        this.setState(msg.state);
        channel.startHeartbeat(msg.heartbeatIntervalSeconds * 1000, () => this.send(channel, { type: 'heartbeat', seq: this.heartbeatSeq++ }));
        this.inventory.watch(channel, (inventory) => this.sendStatus(channel, inventory));
        this.logger.info({ hostName: msg.hostName, state: msg.state, serverVersion: msg.serverVersion }, 'connected');
        this.emit('connected', { hostName: msg.hostName, state: msg.state });
        this.flushEvents();
        break;
      }
      case 'spec':
        this.specChain = this.specChain.then(() => this.applySpec(msg.generation, msg.spec));
        break;
      case 'state':
        this.setState(msg.state);
        break;
      case 'ping':
        this.send(channel, { type: 'heartbeat', seq: this.heartbeatSeq++ });
        break;
      case 'error':
        this.logger.warn({ code: msg.code }, `server reported an error: ${msg.message}`);
        break;
      case 'session.open':
      case 'session.input':
      case 'session.resize':
      case 'session.eof':
      case 'session.close':
      case 'session.ack':
        this.troubleshoot.handle(msg);
        break;
    }
  }

  /** Persists the spec first (so it survives a restart), then runs the managers' hook, then reports. */
  private async applySpec(generation: number, spec: DesiredHostSpec): Promise<void> {
    try {
      await saveSpec(this.config.dataDir, { generation, spec });
    } catch (err) {
      this.logger.error({ err: (err as Error).message, generation }, 'cannot persist spec');
    }
    this.generation = generation;
    if (this.onSpec) {
      try {
        const status = await this.onSpec(spec, generation);
        if (status) this.status = status;
      } catch (err) {
        this.logger.error({ err: (err as Error).message, generation }, 'applying spec failed');
      }
    } else if (this.runner) {
      // Not awaited: managers converge for minutes (downloads, reboots) and report status as they go.
      void this.runner.submit(spec, generation);
    }
    this.emit('spec', { generation, spec });
    if (this.channel && this.welcomed) this.sendStatus(this.channel);
  }

  private setState(state: HostState): void {
    if (state === this.hostState) return;
    this.hostState = state;
    this.emit('state', state);
  }

  private send(channel: Channel, msg: AgentMessage): void {
    channel.send(msg, (err) => err && this.logger.debug({ err: err.message, type: msg.type }, 'send failed'));
  }

  /**
   * Sends queued events at the pace the server accepts (it drops events over a per-host budget of
   * 50 at once, then 1 per second): a backlog queued while offline drains instead of being dropped.
   */
  private flushEvents(): void {
    const channel = this.channel;
    if (!channel) return;
    const now = Date.now();
    this.eventTokens = Math.min(EVENT_SEND_BURST, this.eventTokens + ((now - this.eventTokensAt) / 1000) * EVENT_SEND_PER_SECOND);
    this.eventTokensAt = now;
    const batch = this.events.take();
    const allowed = Math.floor(this.eventTokens);
    for (const [i, event] of batch.entries()) {
      if (i >= allowed) {
        this.events.unsent(event.id);
        continue;
      }
      this.eventTokens--;
      const accepted = channel.send(event, (err) => (err ? this.events.unsent(event.id) : this.events.sent(event.id)));
      if (!accepted) this.events.unsent(event.id);
    }
    if (batch.length > allowed && !this.eventPacer) {
      this.eventPacer = setTimeout(() => {
        this.eventPacer = undefined;
        if (!this.abort.signal.aborted) this.flushEvents();
      }, 1000 / EVENT_SEND_PER_SECOND);
      this.eventPacer.unref?.();
    }
  }
}
