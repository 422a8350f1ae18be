import { HealthCheck } from '@edgeplane/protocol';
import { z } from 'zod';
import { sleep } from '../../backoff.js';
import type { Device } from '../../device/device.js';
import { ExecError } from '../../device/exec.js';
import { HttpError } from '../../device/http.js';

export interface ProfileHealthOptions {
  /** Pause between attempts of one check. */
  retryDelayMs?: number;
  signal?: AbortSignal;
}

/** Output kept in a failure message: enough to say why, small enough for a status field. */
const MAX_OUTPUT = 512;

/**
 * Runs the profile's health checks (OsSpec.healthChecks) after a trial boot, in order. Resolves to
 * the first failing check's reason ("health check "<name>" failed: <output>"), undefined when all pass.
 */
export async function runProfileHealthChecks(device: Device, checks: HealthCheck[], options: ProfileHealthOptions = {}): Promise<string | undefined> {
  for (const check of checks) {
    const retries = check.retries ?? 3;
    let problem = '';
    for (let attempt = 1; attempt <= retries; attempt++) {
      options.signal?.throwIfAborted();
      problem = (await attemptCheck(device, check, options.signal)) ?? '';
      if (!problem) break;
      if (attempt < retries) await sleep(options.retryDelayMs ?? 3000, options.signal ?? new AbortController().signal);
    }
    if (problem) return `health check "${check.name}" failed after ${retries} attempt(s): ${problem.trim().slice(0, MAX_OUTPUT)}`;
  }
  return undefined;
}

/** One attempt: undefined when healthy, else what went wrong (status and body, or the command's output). */
async function attemptCheck(device: Device, check: HealthCheck, signal?: AbortSignal): Promise<string | undefined> {
  const timeoutMs = (check.timeoutSeconds ?? 10) * 1000;
  if (check.type === 'http') {
    if (!check.url) return 'no url';
    try {
      const res = await device.httpGet(check.url, { timeoutMs, signal });
      return res.ok ? undefined : `GET ${check.url}: HTTP ${res.status} ${res.body}`;
    } catch (err) {
      signal?.throwIfAborted();
      if (!(err instanceof HttpError)) return `GET ${check.url}: ${(err as Error).message}`;
      return err.timedOut ? `GET ${check.url}: no answer within ${check.timeoutSeconds ?? 10}s` : `GET ${check.url}: ${err.reason}`;
    }
  }
  const [command, ...args] = check.command ?? [];
  if (!command) return 'no command';
  try {
    await device.exec(command, args, { timeoutMs, signal });
    return undefined;
  } catch (err) {
    signal?.throwIfAborted();
    if (err instanceof ExecError) return `${[command, ...args].join(' ')} exited ${err.exitCode ?? 'abnormally'}: ${err.stderr.trim() || 'no output'}`;
    return (err as Error).message;
  }
}

/** Health checks an OS image carries itself (written by `edgeplane image build --health-check`). */
export const IMAGE_HEALTH_CHECKS_PATH = 'usr/lib/edgeplane/health-checks.json';

/** The running image's own health checks; none when the file is absent; throws when it is not valid. */
export async function readImageHealthChecks(device: Pick<Device, 'files'>): Promise<HealthCheck[]> {
  const text = await device.files.readText(IMAGE_HEALTH_CHECKS_PATH).catch(() => undefined);
  if (text === undefined) return [];
  const parsed = z.array(HealthCheck).safeParse(JSON.parse(text));
  if (!parsed.success) throw new Error(z.prettifyError(parsed.error));
  return parsed.data;
}
