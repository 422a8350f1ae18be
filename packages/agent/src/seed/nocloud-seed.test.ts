import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AgentConfigError, loadAgentConfig, loadAgentConfigFromSeed } from '../config.js';
import { readNoCloudSeed } from './nocloud-seed.js';

const USER_DATA = `#cloud-config
hostname: shop-7
ntp:
  enabled: true
  servers: [pool.ntp.org]
package_update: false
edgeplane:
  server: https://cp.example.com
  token: eprt_abc
  site: shop-7
  labels: {rack: "2"}
`;

describe('installer user-data and NoCloud seeds', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'agent-seed-'));
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  it('takes the agent config from the edgeplane key of a cloud-config, ignoring the other modules', async () => {
    await writeFile(join(dir, 'user-data'), USER_DATA);
    const config = await loadAgentConfig(join(dir, 'user-data'), { dataDir: '/data' });
    expect(config).toMatchObject({ server: 'https://cp.example.com', token: 'eprt_abc', site: 'shop-7', labels: { rack: '2' }, dataDir: '/data' });
  });

  it('refuses a cloud-config without a valid edgeplane section, naming the problem', async () => {
    await writeFile(join(dir, 'user-data'), '#cloud-config\nhostname: x\n');
    await expect(loadAgentConfig(join(dir, 'user-data'))).rejects.toThrow(/cloud-config without a valid "edgeplane" section: edgeplane/);
    await writeFile(join(dir, 'user-data'), '#cloud-config\nedgeplane: {server: ftp://x, token: t}\n');
    await expect(loadAgentConfig(join(dir, 'user-data'))).rejects.toBeInstanceOf(AgentConfigError);
  });

  it('reads a seed directory and a seed ISO without mounting it', async () => {
    const src = join(dir, 'src');
    await mkdir(src);
    await writeFile(join(src, 'user-data'), USER_DATA);
    await writeFile(join(src, 'meta-data'), 'instance-id: i-1\nlocal-hostname: shop-7\n');
    expect((await readNoCloudSeed(src)).metaData).toContain('instance-id: i-1');
    const iso = join(dir, 'seed.iso');
    execFileSync('xorriso', ['-as', 'mkisofs', '-output', iso, '-volid', 'cidata', '-joliet', '-rock', src], { stdio: 'ignore' });
    const config = await loadAgentConfigFromSeed(iso, { dataDir: '/data' });
    expect(config).toMatchObject({ server: 'https://cp.example.com', token: 'eprt_abc', site: 'shop-7' });
    await expect(loadAgentConfigFromSeed(join(dir, 'missing.iso'))).rejects.toThrow(/cannot read seed/);
    await writeFile(join(dir, 'junk.iso'), 'not an iso');
    await expect(loadAgentConfigFromSeed(join(dir, 'junk.iso'))).rejects.toThrow(/seed/);
  });
});
