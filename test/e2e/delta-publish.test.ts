import { createCipheriv, createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { oci } from '@edgeplane/agent';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pushOsImage, startRegistry, type TestRegistry } from '../support/registry.js';

/** Deterministic filler (a few MiB): images of successive versions share most of it, as real releases do. */
function filler(seed: string, mib: number): string {
  const key = createHash('sha256').update(seed).digest().subarray(0, 16);
  const stream = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  return Buffer.concat([stream.update(Buffer.alloc((mib * 1024 * 1024) / 2)), stream.final()]).toString('hex');
}

/** Publishing delta artifacts (`edgeplane image delta`) into the real test registry (no referrers API). */
describe('image delta: publishing next to the image', () => {
  let registry: TestRegistry;
  let dir: string;
  beforeAll(async () => {
    registry = await startRegistry();
    dir = await mkdtemp(join(tmpdir(), 'ep-delta-pub-'));
  });
  afterAll(async () => {
    await registry?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('pushes index + pack under the sha256-<hex>.delta tag and the referrers tag index; a later image uploads only new chunks', async () => {
    const bulk = filler('base', 3);
    const d1 = await pushOsImage(registry, join(dir, 'l1'), '1.0.0', { 'usr/lib/bulk.txt': bulk });
    const ref1 = `${registry.host}/edge/os:1.0.0`;
    const first = await oci.delta.publishDelta({ to: ref1 });
    expect(first.imageDigest).toBe(d1);
    expect(first.via).toBe('tag'); // distribution 2.8 has no referrers API
    expect(first.reusedBytes).toBe(0);
    expect(first.uploadedBytes).toBeGreaterThan(1024 * 1024);

    const client = new oci.RegistryClient({ registry: registry.host, repository: 'edge/os', insecure: true });
    const found = await oci.delta.findDelta(client, d1);
    expect(found?.via).toBe('tag');
    expect(found?.manifestDigest).toBe(first.manifestDigest);
    expect(found?.index.digest).toBe(first.slotDigest);
    // The referrers tag schema index lists the artifact for clients that follow the spec.
    const idx = JSON.parse((await client.getManifest(oci.delta.referrersTag(d1))).bytes.toString());
    expect(idx.manifests).toEqual([expect.objectContaining({ digest: first.manifestDigest, artifactType: oci.delta.DELTA_ARTIFACT_TYPE })]);

    // 2.0.0: one file changed, one added; the rest of the slot is as 1.0.0's.
    const d2 = await pushOsImage(registry, join(dir, 'l2'), '2.0.0', { 'usr/lib/bulk.txt': bulk, 'etc/new.conf': 'x = 1\n' });
    const second = await oci.delta.publishDelta({ to: `${registry.host}/edge/os:2.0.0`, from: ref1 });
    expect(second.imageDigest).toBe(d2);
    expect(second.slotBytes).toBe(first.slotBytes); // the slot size follows --from
    expect(second.reusedBytes).toBeGreaterThan(second.slotBytes / 2);
    expect(second.uploadedBytes).toBeLessThan(first.uploadedBytes / 4);
    const found2 = await oci.delta.findDelta(client, d2);
    expect(found2?.packs.length).toBe(2); // 1.0.0's pack (reused) + the new one
    expect(found2?.packs[0]).toBe(found?.packs[0]);
    // And a patch from 1.0.0's exact slot image, named in the manifest, far smaller than the new chunks.
    expect(found2?.patches).toEqual([
      { digest: second.patch?.digest, size: second.patch?.size, fromImage: d1, fromSlot: first.slotDigest, fromSize: first.slotBytes },
    ]);
    expect(second.patch?.size).toBeLessThan(second.uploadedBytes / 4);
    expect(found2?.slot).toEqual({ digest: second.slotDigest, size: second.slotBytes });
    expect(found2?.manifest.layers.map((l) => l.mediaType)).toEqual([
      'application/vnd.edgeplane.slot.chunk-index.v1+gzip',
      'application/vnd.edgeplane.slot.chunk-pack.v1',
      'application/vnd.edgeplane.slot.chunk-pack.v1',
      'application/vnd.edgeplane.slot.patch.v1.vcdiff.brotli',
    ]);
    const noPatch = await oci.delta.publishDelta({ to: `${registry.host}/edge/os:2.0.0`, from: ref1, patch: false });
    expect(noPatch.patch).toBeUndefined();
    expect((await oci.delta.findDeltaManifest(client, d2))?.patches).toEqual([]);

    // Publishing again replaces the artifact (inode change times come from the extracted tree, so
    // the slot image is not byte-identical): the tag and the referrers index name the new one only.
    const again = await oci.delta.publishDelta({ to: `${registry.host}/edge/os:2.0.0`, from: ref1 });
    expect((await oci.delta.findDelta(client, d2))?.manifestDigest).toBe(again.manifestDigest);
    const idx2 = JSON.parse((await client.getManifest(oci.delta.referrersTag(d2))).bytes.toString());
    expect(idx2.manifests.map((m: { digest: string }) => m.digest)).toEqual([again.manifestDigest]);
  });

  it('refuses --from in another repository, and an image that does not exist', async () => {
    await expect(oci.delta.publishDelta({ to: `${registry.host}/edge/os:1.0.0`, from: `${registry.host}/other/os:1.0.0` })).rejects.toMatchObject({
      code: 'BadReference',
    });
    await expect(oci.delta.publishDelta({ to: `${registry.host}/edge/os:9.9.9` })).rejects.toMatchObject({ code: 'NotFound' });
  });
});
