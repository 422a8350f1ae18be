import { readFile } from 'node:fs/promises';
import { Labels, Name } from '@edgeplane/protocol';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { agentConfigFromCloudConfig, isCloudConfig } from './seed/cloud-config.js';
import { readNoCloudSeed } from './seed/nocloud-seed.js';

export const DEFAULT_DATA_DIR = '/var/lib/edgeplane-agent';

export const TroubleshootConfig = z
  .object({
    /** Allow remote shells and commands (exec). Off: the agent refuses them and says why; logs and bundles still work. */
    remoteShell: z.boolean().default(true),
    /** Local user that sessions run as (the agent must run as root to switch); unset: the agent's own user. */
    runAs: z
      .string()
      .regex(/^[a-z_][a-z0-9_-]*\$?$/, 'must be a local user name')
      .max(32)
      .optional(),
    /** Named log files operators may read with `edgeplane logs HOST --source NAME`. */
    logFiles: z.record(z.string().regex(/^[a-z0-9][a-z0-9._-]*$/, 'log names are lower-case letters, digits, ".", "_", "-"'), z.string().min(1)).default({}),
    /** Also write the agent's own log to <dataDir>/agent.log (served as log source `agent`). */
    logToFile: z.boolean().default(true),
  })
  .strict();
export type TroubleshootConfig = z.output<typeof TroubleshootConfig>;

export const PairingPageConfig = z
  .object({
    enabled: z.boolean().default(true),
    port: z.number().int().min(0).max(65535).default(5080),
    /** Addresses to listen on; default loopback plus this device's private (site LAN) IPv4 addresses. */
    listen: z.array(z.string().min(1).max(64)).max(16).optional(),
  })
  .strict();
export type PairingPageConfig = z.output<typeof PairingPageConfig>;

/** Agent configuration (YAML file, overridden by CLI flags). */
export const AgentConfig = z
  .object({
    /** Base URL of the control plane, e.g. https://edgeplane.example.com */
    server: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }),
    /** PEM file of CA certificates trusted for an https server, in addition to Node's default store. */
    caFile: z.string().min(1).max(4096).optional(),
    /** Registration token; only needed until the device has registered. */
    token: z.string().min(1).max(256).optional(),
    /** One-time key of a host pre-registered by this device's UID (instead of a token). */
    pairingKey: z.string().min(1).max(256).optional(),
    /** Without token and pairing key the agent pairs at the edge: it shows a code and a QR on a local page. */
    pairingPage: PairingPageConfig.default(() => PairingPageConfig.parse({})),
    site: Name.optional(),
    labels: Labels.default({}),
    /** Where identity.json, spec.json and events.json live. */
    dataDir: z.string().min(1).default(DEFAULT_DATA_DIR),
    /** Root of the device's file tree; tests point it at a fake tree. */
    deviceRoot: z.string().min(1).default('/'),
    logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
    /** Remote troubleshooting (see docs/user-guide.md "Remote troubleshooting"); the site decides. */
    troubleshoot: TroubleshootConfig.default(() => TroubleshootConfig.parse({})),
    /** Appliances (Virtualized Edge): the libvirt connection whose VMs this agent manages, e.g. qemu:///system. */
    virt: z
      .object({
        libvirtUri: z.string().min(1).max(256),
        kvm: z.boolean().optional(),
        /** How often the appliance's libvirt inventory is re-read and reported when nothing else changed. */
        inventoryIntervalSeconds: z.number().min(1).max(3600).default(30),
        /**
         * How often the agent looks for VMs that are shut off although the spec wants them (every
         * reset of a VM, a guest reboot included, ends its QEMU) and starts them again.
         */
        restartCheckSeconds: z.number().min(1).max(3600).default(5),
      })
      .strict()
      .optional(),
  })
  .strict();
export type AgentConfig = z.output<typeof AgentConfig>;
export type AgentConfigInput = z.input<typeof AgentConfig>;

export class AgentConfigError extends Error {
  constructor(
    message: string,
    readonly issues: { path: string; message: string }[] = [],
  ) {
    super(message);
    this.name = 'AgentConfigError';
  }
}

/**
 * Loads the agent config from a YAML file (optional) and applies `overrides` (CLI flags) on top;
 * overrides that are `undefined` do not erase file values. The file is either the agent's own YAML
 * or installer user-data (`#cloud-config` with an `edgeplane` key), taken as cloud-init hands it over.
 * Throws AgentConfigError naming the file and every schema issue.
 */
export async function loadAgentConfig(file: string | undefined, overrides: Partial<AgentConfigInput> = {}): Promise<AgentConfig> {
  if (!file) return parseAgentConfig(undefined, undefined, overrides);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new AgentConfigError(`cannot read agent config ${file}: ${(err as Error).message}`);
  }
  return parseAgentConfig(text, file, overrides);
}

/** Loads the config from the user-data of a NoCloud seed (directory, ISO image or /dev/sr0). */
export async function loadAgentConfigFromSeed(seed: string, overrides: Partial<AgentConfigInput> = {}): Promise<AgentConfig> {
  let userData: string;
  try {
    ({ userData } = await readNoCloudSeed(seed));
  } catch (err) {
    throw new AgentConfigError((err as Error).message);
  }
  return parseAgentConfig(userData, `user-data of seed ${seed}`, overrides);
}

function parseAgentConfig(text: string | undefined, file: string | undefined, overrides: Partial<AgentConfigInput>): AgentConfig {
  let fromFile: Record<string, unknown> = {};
  if (text !== undefined) {
    let doc: unknown;
    try {
      doc = parseYaml(text);
    } catch (err) {
      throw new AgentConfigError(`agent config ${file} is not valid YAML: ${(err as Error).message}`);
    }
    if (isCloudConfig(text)) {
      const r = agentConfigFromCloudConfig(doc);
      if ('error' in r) throw new AgentConfigError(`agent config ${file} ${r.error}`);
      doc = r.config;
    }
    if (doc !== null && doc !== undefined) {
      if (typeof doc !== 'object' || Array.isArray(doc)) throw new AgentConfigError(`agent config ${file} must be a YAML mapping`);
      fromFile = doc as Record<string, unknown>;
    }
  }
  const defined = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined));
  const result = AgentConfig.safeParse({ ...fromFile, ...defined });
  if (!result.success) {
    const issues = result.error.issues.map((i) => ({ path: i.path.map(String).join('.') || '(root)', message: i.message }));
    const where = file ? `agent config ${file}` : 'agent config';
    throw new AgentConfigError(`invalid ${where}:\n${issues.map((i) => `  - ${i.path}: ${i.message}`).join('\n')}`, issues);
  }
  return result.data;
}
