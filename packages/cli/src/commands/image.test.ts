import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { CliError } from '../errors.js';
import { runCli } from '../test-support.js';
import { pushLayout, readHealthChecksFile } from './image-options.js';

// The build itself runs in test/e2e/image-build.test.ts; these are the checks made before anything is built.
describe('edgeplane image build: flag validation', () => {
  let dir: string;
  let out: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ep-image-cli-'));
    out = join(dir, 'out');
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const build = (...args: string[]) => runCli(['image', 'build', '--version', '1.0.0', '-o', out, ...args]);

  it.each([
    [['--slot-size', '1024'], 'Error: --slot-size and --data-size size the installer disk: add --disk'],
    [['--insecure'], 'Error: --insecure applies to --push only'],
    [['--boot-loader', 'grub'], "Error: --boot-loader is the installer disk's: add --disk"],
    [['--disk', '--boot-loader', 'lilo'], 'Error: --boot-loader must be shim or grub, not "lilo"'],
    [['--previous', 'registry.lan:5000/edge/os:0.9.0'], 'Error: --previous publishes a delta next to the pushed image: add --push'],
    [['--base', 'busybox', '--kernel-package', '/nonexistent/linux.deb'], 'Error: --kernel-package /nonexistent/linux.deb does not exist'],
    [['--airgap-bundle', '/etc/hostname'], 'Error: --airgap-bundle /etc/hostname is not a directory'],
    // The Debian base (the default) carries a real distribution: no simulated Kubernetes on it.
    [
      ['--simulate-kubernetes'],
      'Error: --simulate-kubernetes is for --base busybox (tests and demos); the Debian base carries a real distribution (--kubernetes)',
    ],
    [
      ['--base', 'debian', '--simulate-kubernetes', '--kubernetes', 'k3s=/etc/hostname'],
      'Error: --simulate-kubernetes is for --base busybox (tests and demos); the Debian base carries a real distribution (--kubernetes)',
    ],
    [['--health-check', '[1]'], 'Error: --health-check is not a valid health check:\n  (root): '],
    [
      ['--health-check', '{"name":"a","type":"command","command":["true"]}', '--health-check', '{"name":"b","type":"http","url":"ftp://x"}'],
      'Error: --health-check #2 is not a valid health check:\n  url: must be an http:// or https:// URL',
    ],
    [
      ['--health-check', '{"name":"a","type":"command","command":["true"]}', '--health-check', '{"name":"a","type":"command","command":["false"]}'],
      "Error: the image's health checks are not valid:\n  (root): health check names must be unique",
    ],
  ])('refuses %j before building anything', async (args, message) => {
    const r = await build(...args);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(message);
    expect(existsSync(out)).toBe(false);
  });

  it('refuses a --slot-size that is not a positive integer (commander)', async () => {
    const r = await build('--disk', '--slot-size', 'big');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('--slot-size must be a positive integer');
  });

  it('--help says --simulate-kubernetes is a simulation for tests and demos', async () => {
    const r = await runCli(['image', 'build', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout.replace(/\s+/g, ' ')).toContain('--simulate-kubernetes with --base busybox, for tests and demos only: a SIMULATION.');
  });

  it('--simulate-kubernetes with --base busybox reaches the builder, and the summary says the image simulates Kubernetes', async () => {
    // The builder itself (the marker in the image, its refusal on the Debian base) runs in
    // test/e2e/virtualized-boot.test.ts and the image package's tests; here: what the flag asks of it.
    const buildImage = vi.fn(async (o: { name: string; version: string; output: string }) => ({
      name: o.name,
      version: o.version,
      tag: o.version,
      digest: `sha256:${'a'.repeat(64)}`,
      layoutDir: join(o.output, 'oci'),
      kernel: { release: '6.1.0-test', package: 'linux-image-test.deb' },
      base: 'busybox' as const,
    }));
    vi.doMock('@edgeplane/image', () => ({ buildImage, ImageBuildError: class extends Error {} }));
    try {
      const r = await build('--base', 'busybox', '--simulate-kubernetes');
      expect(r.code, r.stderr).toBe(0);
      expect(buildImage).toHaveBeenCalledTimes(1);
      expect(buildImage.mock.calls[0][0]).toMatchObject({ base: 'busybox', simulateKubernetes: true });
      expect(r.stdout).toContain('kubernetes: SIMULATED by the agent on machines booting this image (tests and demos only)');
      const plain = await build('--base', 'busybox');
      expect(plain.code, plain.stderr).toBe(0);
      expect(buildImage.mock.calls[1][0]).not.toHaveProperty('simulateKubernetes');
      expect(plain.stdout).not.toContain('SIMULATED');
    } finally {
      vi.doUnmock('@edgeplane/image');
    }
  });

  it('needs --version and --output', async () => {
    const r = await runCli(['image', 'build', '-o', out]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("required option '--version <version>' not specified");
  });
});

// Publishing against a real registry: test/e2e/delta-publish.test.ts.
describe('edgeplane image delta: refusals', () => {
  it.each([
    [['--to', 'oci:/tmp/layout:1.0'], 'Error: image delta failed (BadReference): oci:/tmp/layout:1.0 is not a registry image reference'],
    [['--to', '127.0.0.1:1/edge/os:1.0'], 'Error: image delta failed (Unavailable): cannot reach registry 127.0.0.1:1'],
    [['--to', '127.0.0.1:1/edge/os:1.0', '--slot-size', '0'], '--slot-size must be a positive integer'],
    [['--to', '127.0.0.1:1/edge/os:1.0', '--no-patch'], 'Error: --no-patch applies to --from only'],
  ])('%j', async (args, message) => {
    const r = await runCli(['image', 'delta', ...args]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(message);
  });
});

describe('readHealthChecksFile', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ep-hc-file-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('reads a YAML list and applies the schema defaults', async () => {
    const file = join(dir, 'checks.yaml');
    await writeFile(
      file,
      '- name: api\n  type: http\n  url: http://127.0.0.1:8080/healthz\n- name: disk\n  type: command\n  command: [test, -w, /var/lib/edgeplane]\n  retries: 1\n',
    );
    expect(await readHealthChecksFile(file)).toEqual([
      { name: 'api', type: 'http', url: 'http://127.0.0.1:8080/healthz', timeoutSeconds: 10, retries: 3 },
      { name: 'disk', type: 'command', command: ['test', '-w', '/var/lib/edgeplane'], timeoutSeconds: 10, retries: 1 },
    ]);
  });

  it('reads JSON with a healthChecks key (as in a profile)', async () => {
    const file = join(dir, 'checks.json');
    await writeFile(file, JSON.stringify({ healthChecks: [{ name: 'ok', type: 'command', command: ['true'] }] }));
    expect(await readHealthChecksFile(file)).toEqual([{ name: 'ok', type: 'command', command: ['true'], timeoutSeconds: 10, retries: 3 }]);
  });

  it('names the file and each invalid field', async () => {
    const file = join(dir, 'bad.yaml');
    await writeFile(file, '- name: api\n  type: http\n');
    await expect(readHealthChecksFile(file)).rejects.toThrow(
      `--health-checks-file ${file} is not a valid list of health checks:\n  0.url: an http health check needs a url`,
    );
    await expect(readHealthChecksFile(join(dir, 'missing.yaml'))).rejects.toBeInstanceOf(CliError);
  });
});

describe('pushLayout', () => {
  it('names the Debian package when skopeo is missing', async () => {
    const path = process.env.PATH;
    process.env.PATH = '/nonexistent';
    try {
      await expect(pushLayout('/tmp/none', '1.0', 'registry.lan:5000/os:1.0', true)).rejects.toThrow(
        '--push needs skopeo, which is not installed (Debian: apt-get install skopeo)',
      );
    } finally {
      process.env.PATH = path;
    }
  });

  it('reports what skopeo says when the push fails', async () => {
    const err = await pushLayout('/nonexistent-layout', '1.0', 'docker://127.0.0.1:1/os:1.0', true).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CliError);
    expect((err as Error).message).toMatch(/^pushing to 127\.0\.0\.1:1\/os:1\.0 failed \(skopeo exited \d+\): .+/);
  });
});
