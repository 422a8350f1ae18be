import { readFile } from 'node:fs/promises';
import { Labels, Name } from '@edgeplane/protocol';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

export const DEFAULT_DATA_DIR = '/var/lib/edgeplane-agent';

/** Agent configuration (YAML file, overridden by CLI flags). */
export const AgentConfig = z
  .object({
    /** Base URL of the control plane, e.g. https://edgeplane.example.com */
    server: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }),
    /** Registration token; only needed until the device has registered. */
    token: z.string().min(1).max(256).optional(),
    site: Name.optional(),
    labels: Labels.default({}),
    /** Where identity.json, spec.json and events.json live. */
    dataDir: z.string().min(1).default(DEFAULT_DATA_DIR),
    /** Root of the device's file tree; tests point it at a fake tree. */
    deviceRoot: z.string().min(1).default('/'),
    logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
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
 * overrides that are `undefined` do not erase file values. Throws AgentConfigError naming the file
 * and every schema issue.
 */
export async function loadAgentConfig(file: string | undefined, overrides: Partial<AgentConfigInput> = {}): Promise<AgentConfig> {
  let fromFile: Record<string, unknown> = {};
  if (file) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw new AgentConfigError(`cannot read agent config ${file}: ${(err as Error).message}`);
    }
    let doc: unknown;
    try {
      doc = parseYaml(text);
    } catch (err) {
      throw new AgentConfigError(`agent config ${file} is not valid YAML: ${(err as Error).message}`);
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
