import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HealthCheck, HealthChecks } from '@edgeplane/protocol';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { CliError } from '../errors.js';

/** One zod issue per line, `  path: message`, as the CLI prints API validation errors. */
function issueLines(error: z.ZodError): string {
  return error.issues.map((i) => `  ${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`).join('\n');
}

/** `--health-check JSON` values: each a HealthCheck object, validated with the protocol's schema. */
export function parseHealthCheckFlags(values: string[]): HealthCheck[] {
  return values.map((text, i) => {
    const which = values.length > 1 ? `--health-check #${i + 1}` : '--health-check';
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new CliError(
        `${which} is not valid JSON (${(err as Error).message}); pass one health check object, e.g. '{"name":"api","type":"http","url":"http://127.0.0.1:8080/healthz"}'`,
      );
    }
    const parsed = HealthCheck.safeParse(value);
    if (!parsed.success) throw new CliError(`${which} is not a valid health check:\n${issueLines(parsed.error)}`);
    return parsed.data;
  });
}

/** `--health-checks-file`: a YAML or JSON list of health checks (or an object with a `healthChecks` list). */
export async function readHealthChecksFile(path: string): Promise<HealthCheck[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read --health-checks-file ${path}: ${(err as Error).message}`);
  }
  let value: unknown;
  try {
    value = parseYaml(text); // YAML 1.2 is a superset of JSON: one parser for both
  } catch (err) {
    throw new CliError(`--health-checks-file ${path} is neither YAML nor JSON: ${(err as Error).message}`);
  }
  if (value && typeof value === 'object' && !Array.isArray(value) && 'healthChecks' in value) value = (value as { healthChecks: unknown }).healthChecks;
  const parsed = HealthChecks.safeParse(value);
  if (!parsed.success) throw new CliError(`--health-checks-file ${path} is not a valid list of health checks:\n${issueLines(parsed.error)}`);
  return parsed.data;
}

/** All health checks baked into the image: at most 20, names unique (as in a profile). */
export function mergeHealthChecks(checks: HealthCheck[]): HealthCheck[] | undefined {
  if (!checks.length) return undefined;
  const parsed = HealthChecks.safeParse(checks);
  if (!parsed.success) throw new CliError(`the image's health checks are not valid:\n${issueLines(parsed.error)}`);
  return parsed.data;
}

/** Fails early (before anything is built) on a path option that names nothing usable. */
export async function requirePath(flag: string, path: string, kind: 'file' | 'directory'): Promise<void> {
  const st = await stat(path).catch(() => undefined);
  if (!st) throw new CliError(`${flag} ${path} does not exist`);
  if (kind === 'directory' ? !st.isDirectory() : !st.isFile()) throw new CliError(`${flag} ${path} is not a ${kind}`);
}

/**
 * Pushes the image tagged `tag` in an OCI layout to a registry with `skopeo copy` (skopeo keeps
 * the OCI manifest as it is, so the pushed digest is the built one). Returns the pushed digest.
 */
export async function pushLayout(layoutDir: string, tag: string, ref: string, insecure: boolean): Promise<string> {
  const dest = ref.replace(/^docker:\/\//, '');
  const tmp = await mkdtemp(join(tmpdir(), 'edgeplane-push-'));
  const digestFile = join(tmp, 'digest');
  try {
    const args = [
      'copy',
      '--quiet',
      '--digestfile',
      digestFile,
      ...(insecure ? ['--dest-tls-verify=false'] : []),
      `oci:${layoutDir}:${tag}`,
      `docker://${dest}`,
    ];
    await new Promise<void>((resolve, reject) => {
      const child = spawn('skopeo', args, { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => {
        stderr = (stderr + d.toString()).slice(-4000);
      });
      child.on('error', (err: NodeJS.ErrnoException) =>
        reject(
          err.code === 'ENOENT'
            ? new CliError('--push needs skopeo, which is not installed (Debian: apt-get install skopeo); the image is built in the output directory')
            : err,
        ),
      );
      child.on('close', (code) =>
        code === 0 ? resolve() : reject(new CliError(`pushing to ${dest} failed (skopeo exited ${code}): ${stderr.trim() || 'no output'}`)),
      );
    });
    return (await readFile(digestFile, 'utf8')).trim();
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
