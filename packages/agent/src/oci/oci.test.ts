import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pushOciLayout, startRegistry, type TestRegistry } from '../../../../test/support/registry.js';
import {
  BlobStore,
  extractImage,
  isLoopback,
  OciError,
  parseImageReference,
  pullImage,
  RegistryClient,
  readImageInfo,
  sourceFor,
  writeOsImage,
} from './index.js';
import { startLayoutServer } from './testing-layout-server.js';

let dir: string;
let registry: TestRegistry;
let layout: string;
const images: Record<string, { digest: string; pushed: string; layer: string }> = {};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ep-oci-'));
  layout = join(dir, 'layout');
  registry = await startRegistry();
  for (const version of ['1.0.0', '1.1.0']) {
    // A bigger file makes the layer large enough to cut in the middle.
    const written = await writeOsImage({
      layoutDir: layout,
      tag: version,
      name: 'Edgeplane OS',
      version,
      files: { 'usr/share/blob': 'x'.repeat(40_000) + version },
    });
    const pushed = await pushOciLayout(layout, `${registry.host}/edge/os:${version}`);
    images[version] = { digest: written.digest, pushed, layer: written.layer.digest };
  }
});
afterAll(async () => {
  await registry?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function pullAndExtract(image: string, digest: string, insecure?: boolean) {
  const store = new BlobStore(await mkdtemp(join(dir, 'store-')));
  const pulled = await pullImage({ source: sourceFor(image, { insecure }), digest, store });
  const rootfs = join(store.dir, 'rootfs');
  await extractImage(store, pulled.manifest, rootfs);
  return { store, rootfs, pulled };
}

describe('OCI client', () => {
  it('writes reproducible images and skopeo keeps the manifest digest', async () => {
    expect(images['1.0.0'].pushed).toBe(images['1.0.0'].digest);
    expect(images['1.0.0'].digest).not.toBe(images['1.1.0'].digest);
    const again = await writeOsImage({
      layoutDir: join(dir, 'again'),
      tag: 'x',
      name: 'Edgeplane OS',
      version: '1.0.0',
      files: { 'usr/share/blob': `${'x'.repeat(40_000)}1.0.0` },
    });
    expect(again.digest).toBe(images['1.0.0'].digest);
  });

  it('pulls both images by digest from a real registry (loopback: plain HTTP) and extracts their root filesystems', async () => {
    for (const version of ['1.0.0', '1.1.0']) {
      const { rootfs, pulled } = await pullAndExtract(`${registry.host}/edge/os:${version}`, images[version].digest);
      expect(pulled.manifestDigest).toBe(images[version].digest);
      expect(await readImageInfo(rootfs)).toEqual({ name: 'Edgeplane OS', version });
      expect(await readFile(join(rootfs, 'etc/os-release'), 'utf8')).toContain(`VERSION_ID=${version}`);
    }
  });

  it('refuses a digest the registry does not hold', async () => {
    const missing = `sha256:${'0'.repeat(64)}`;
    const err = await pullAndExtract(`${registry.host}/edge/os:1.0.0`, missing).catch((e) => e);
    expect(err).toBeInstanceOf(OciError);
    expect(err.code).toBe('NotFound');
  });

  it('pulls from an OCI layout directory (air-gapped)', async () => {
    const { rootfs } = await pullAndExtract(`oci:${layout}:1.1.0`, images['1.1.0'].digest);
    expect((await readImageInfo(rootfs))?.version).toBe('1.1.0');
  });

  it('gets an anonymous bearer token when the registry asks for one', async () => {
    const server = await startLayoutServer({ layoutDir: layout, token: 'tok-123' });
    try {
      const { rootfs } = await pullAndExtract(`${server.host}/edge/os:1.0.0`, images['1.0.0'].digest);
      expect((await readImageInfo(rootfs))?.version).toBe('1.0.0');
      expect(server.requests.some((r) => r.path === '/token')).toBe(true);
      expect(server.requests.filter((r) => r.path.startsWith('/v2/')).at(-1)?.authorization).toBe('Bearer tok-123');
    } finally {
      await server.close();
    }
  });

  it('refuses and deletes a tampered blob', async () => {
    const server = await startLayoutServer({ layoutDir: layout, tamper: images['1.0.0'].layer });
    try {
      const store = new BlobStore(await mkdtemp(join(dir, 'store-')));
      const err = await pullImage({ source: sourceFor(`${server.host}/edge/os:1.0.0`, { insecure: true }), digest: images['1.0.0'].digest, store }).catch(
        (e) => e,
      );
      expect(err).toBeInstanceOf(OciError);
      expect(err.code).toBe('DigestMismatch');
      expect(err.retryable).toBe(false);
      expect(err.message).toContain(images['1.0.0'].layer);
      const left = await readdir(join(store.dir, 'blobs', 'sha256'));
      expect(left.some((f) => f.startsWith(images['1.0.0'].layer.slice(7)))).toBe(false);
    } finally {
      await server.close();
    }
  });

  it('resumes an interrupted blob download with a Range request', async () => {
    const server = await startLayoutServer({ layoutDir: layout, cut: { digest: images['1.1.0'].layer, afterBytes: 100 } });
    try {
      const store = new BlobStore(await mkdtemp(join(dir, 'store-')));
      const source = new RegistryClient({ registry: server.host, repository: 'edge/os', insecure: true });
      const first = await pullImage({ source, digest: images['1.1.0'].digest, store }).catch((e) => e);
      expect(first).toBeInstanceOf(OciError);
      expect(first.retryable).toBe(true);
      const partial = `${store.path(images['1.1.0'].layer)}.partial`;
      expect(existsSync(partial)).toBe(true);
      await pullImage({ source, digest: images['1.1.0'].digest, store });
      const layerRequests = server.requests.filter((r) => r.path.endsWith(images['1.1.0'].layer));
      expect(layerRequests.at(-1)?.range).toMatch(/^bytes=\d+-$/);
      expect(Number(/\d+/.exec(layerRequests.at(-1)?.range ?? '')?.[0])).toBeGreaterThan(0);
      expect(existsSync(partial)).toBe(false);
      expect(await store.has({ digest: images['1.1.0'].layer, size: (await readFile(store.path(images['1.1.0'].layer))).length })).toBe(true);
    } finally {
      await server.close();
    }
  });

  it('parses references', () => {
    expect(parseImageReference('registry.local:5000/edge/os:1.2')).toEqual({
      kind: 'registry',
      registry: 'registry.local:5000',
      repository: 'edge/os',
      tag: '1.2',
    });
    expect(parseImageReference('oci:/mnt/usb/images:1.2')).toEqual({ kind: 'layout', dir: '/mnt/usb/images', tag: '1.2' });
    expect(parseImageReference('alpine').kind === 'registry' && parseImageReference('alpine')).toMatchObject({ repository: 'library/alpine' });
    expect(() => parseImageReference('host:5000/Bad Repo')).toThrow(OciError);
    expect(['localhost:5000', '127.0.0.1:5000', '[::1]:5000'].map(isLoopback)).toEqual([true, true, true]);
    expect(['registry.lab:5000', '10.0.0.1'].map(isLoopback)).toEqual([false, false]);
  });
});
