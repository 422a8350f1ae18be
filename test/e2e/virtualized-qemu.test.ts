import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, AgentConfig, LinuxDevice, type ManagerContext, oci, readDomainXml, VirtManager } from '@edgeplane/agent';
import type { VirtVmSpec } from '@edgeplane/protocol';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS } from '../support/db.js';
import { waitFor } from '../support/device.js';
import { lockQemuSystem, probeQemuLibvirt, virsh as virshAt } from '../support/libvirtd.js';
import { pushOsImage, startRegistry, type TestRegistry } from '../support/registry.js';
import { type TestServer, testServer } from '../support/server.js';
import { createK3sProfile } from '../support/sim-fleet.js';

/**
 * The virt manager against a REAL hypervisor: defines and starts a QEMU domain (KVM, else TCG) from
 * the generated XML, then destroys it. Needs libvirtd + virtlogd + qemu (Debian: libvirt-daemon-system,
 * qemu-system-x86, qemu-utils): `npm test` installs them (scripts/test-deps.sh) and the global setup
 * starts the daemons when they are not running; elsewhere the probe below says in the output why it skips.
 * EDGEPLANE_QEMU_URI picks the connection (default qemu:///system).
 */
const URI = process.env.EDGEPLANE_QEMU_URI ?? 'qemu:///system';

const virsh = (...args: string[]) => virshAt(URI, ...args);

const env = probeQemuLibvirt(URI);
const skipReason = env.ok ? '' : env.reason;
if (!env.ok) console.warn(`[virtualized-qemu] SKIPPED: cannot run real QEMU domains here: ${skipReason}`);
else console.warn(`[virtualized-qemu] running real QEMU domains at ${URI} with ${env.kvm ? 'KVM' : 'TCG (no KVM)'}`);

describe('virt manager on a real QEMU hypervisor', () => {
  const cleanup: (() => Promise<unknown>)[] = [];
  let unlock: (() => void) | undefined;
  // virtualized-boot.test.ts may hold qemu:///system for its whole run (2 VM boots under TCG).
  beforeAll(async () => {
    if (env.ok) unlock = await lockQemuSystem(900_000);
  }, 960_000);
  afterAll(async () => {
    for (const c of cleanup.reverse()) await c().catch(() => undefined);
    unlock?.();
  });

  it.skipIf(!env.ok)(
    `writes the OS image's A/B disk as a base volume, defines, starts and destroys a real domain from the generated XML${env.ok ? '' : ` [SKIPPED: ${skipReason}]`}`,
    async () => {
      const dir = await mkdtemp(join(tmpdir(), 'ep-qemu-'));
      await chmod(dir, 0o755); // qemu runs as its own user and reads the seed ISO from here
      cleanup.push(() => rm(dir, { recursive: true, force: true }));
      const device = new LinuxDevice();
      cleanup.push(() => device.close());
      const lv = device.libvirt(URI);
      // A transient pool and network of our own, so the test needs nothing pre-configured.
      await mkdir(join(dir, 'pool'), { mode: 0o755 });
      await lv.run('pool-create-as', 'ep-test-pool', 'dir', '--target', join(dir, 'pool'));
      cleanup.push(() => lv.run('pool-destroy', 'ep-test-pool'));
      await writeFile(join(dir, 'net.xml'), "<network><name>ep-test-net</name><bridge name='virbr-eptest'/></network>");
      await lv.run('net-create', join(dir, 'net.xml'));
      cleanup.push(() => lv.run('net-destroy', 'ep-test-net'));

      // A tiny OS image (no kernel: the firmware runs, GRUB finds nothing to boot) in an OCI layout.
      const image = await oci.writeOsImage({ layoutDir: join(dir, 'oci'), tag: '1.0.0', name: 'Edgeplane OS', version: '1.0.0' });
      const vm: VirtVmSpec = {
        domain: 'ep-qemutest-vm1',
        uuid: '6f1c0e2a-7d3b-4c55-9a10-000000000abc',
        cluster: 'qemutest',
        vm: 'vm1',
        hostName: 'qemutest-vm1',
        vcpus: 1,
        memoryMiB: 256,
        diskGiB: 1,
        network: 'ep-test-net',
        storagePool: 'ep-test-pool',
        image: { image: `oci:${join(dir, 'oci')}:1.0.0`, digest: image.digest },
        seed: { userData: '#cloud-config\n', metaData: 'instance-id: i-qemutest\n' },
      };
      const ctx: ManagerContext = {
        device,
        dataDir: dir,
        log: pino({ level: 'silent' }),
        emitEvent: () => undefined,
        reportProgress: () => undefined,
        signal: new AbortController().signal,
      };
      const manager = new VirtManager(device, { uri: URI, dataDir: dir, kvm: env.ok && env.kvm, shutdownTimeoutMs: 5000 });
      cleanup.push(() => manager.apply({ vms: [] }, ctx));
      await manager.apply({ vms: [vm] }, ctx);
      expect((await lv.domainInfo(vm.domain))?.state).toBe('running');
      const xml = await lv.dumpxml(vm.domain, false); // the live definition, with the firmware libvirt picked
      expect(readDomainXml(xml)).toMatchObject({
        vcpus: 1,
        memoryMiB: 256,
        network: 'ep-test-net',
        pool: 'ep-test-pool',
        seedVolume: 'ep-qemutest-vm1-seed.iso',
      });
      // The pool holds the image's base disk (GPT with the A/B layout), the VM's qcow2 overlay backed by it, and the seed.
      const base = `ep-base-${image.digest.slice('sha256:'.length, 'sha256:'.length + 16)}.img`;
      expect((await lv.poolVolumes('ep-test-pool')).sort()).toEqual([base, 'ep-qemutest-vm1-seed.iso', 'ep-qemutest-vm1.qcow2'].sort());
      const basePath = (await lv.run('vol-path', base, '--pool', 'ep-test-pool')).trim();
      const gpt = spawnSync('sfdisk', ['--json', basePath], { encoding: 'utf8' });
      expect(JSON.parse(gpt.stdout).partitiontable.partitions.map((p: { name: string }) => p.name)).toEqual(['esp', 'root-a', 'root-b', 'data', 'recovery']);
      expect(await lv.run('vol-dumpxml', 'ep-qemutest-vm1.qcow2', '--pool', 'ep-test-pool')).toContain(`<path>${basePath}</path>`);
      // The seed is not left in the agent's data dir (it carries the registration token).
      expect(existsSync(join(dir, 'virt', 'seeds', `${vm.domain}.iso`))).toBe(false);
      // libvirt resolved UEFI firmware without Secure Boot, with a per-VM NVRAM, and kept the watchdog.
      expect(xml).toMatch(/<loader[^>]*type='pflash'[^>]*>[^<]*OVMF[^<]*<\/loader>/);
      const nvram = /<nvram[^>]*>([^<]+)<\/nvram>/.exec(xml)?.[1];
      expect(nvram && existsSync(nvram)).toBe(true);
      expect(xml).toMatch(/<watchdog model='i6300esb' action='poweroff'/);
      // The firmware really runs: its boot manager writes to the serial console, which virtlogd copies to the file.
      const serialLog = manager.serialLogPath(vm);
      await expect.poll(() => (existsSync(serialLog) ? readFileSync(serialLog, 'utf8') : ''), { timeout: 60_000 }).toContain('BdsDxe');
      await manager.apply({ vms: [] }, ctx);
      expect(await lv.domainInfo(vm.domain)).toBeUndefined();
      expect(existsSync(nvram!)).toBe(false);
      expect(existsSync(serialLog)).toBe(false);
      expect(await lv.poolVolumes('ep-test-pool')).toEqual([]);
    },
    120_000,
  );
});

/**
 * A real appliance (an agent on this machine's LinuxDevice driving qemu:///system) connected to a
 * server that would hand its VMs a loopback URL (no --public-url, listening on 127.0.0.1): the guests
 * could never reach it, so the cluster is refused before anything is written or defined.
 */
describe.each(DIALECTS)('a real appliance behind a server without a public URL (%s)', (dialect) => {
  let t: TestServer;
  let registry: TestRegistry;
  let agent: Agent | undefined;
  let dir: string;
  afterAll(async () => {
    await agent?.stop();
    await Promise.all([t?.close(), registry?.stop()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it.skipIf(!env.ok)(
    `refuses a virtualized cluster with VmServerUrlLoopback and creates nothing${env.ok ? '' : ` [SKIPPED: ${skipReason}]`}`,
    async () => {
      dir = await mkdtemp(join(tmpdir(), 'ep-qemu-appliance-'));
      [t, registry] = await Promise.all([testServer(dialect), startRegistry()]);
      await pushOsImage(registry, join(dir, 'layout'), '1.0.0');
      await createK3sProfile(t, registry, 'vm-profile');
      const token = (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'appliance' }, spec: { autoApprove: true } })).body.status.token;
      const config = AgentConfig.parse({ server: t.url, token, dataDir: join(dir, 'agent'), virt: { libvirtUri: URI, kvm: false } });
      agent = new Agent({ config, device: new LinuxDevice(), logger: pino({ level: 'silent' }) });
      await agent.start();
      const appliance = await waitFor(async () => {
        const items = (await t.api('GET', '/api/v1/edgehosts')).body.items as any[];
        const h = items.find((i) => i.status.connectivity === 'online' && i.status.agent?.managers?.virt?.libvirt);
        return h?.metadata.name as string | undefined;
      }, 30_000);
      const inv = (await t.api('GET', `/api/v1/edgehosts/${appliance}`)).body.status.agent.managers.virt.libvirt;
      expect(inv.simulated).toBeUndefined();
      const network = inv.networks[0]?.name ?? 'default';
      const storagePool = inv.pools[0]?.name ?? 'default';
      const domainsBefore = virsh('list', '--all', '--name').out;
      const r = await t.api('POST', '/api/v1/clusters', {
        metadata: { name: 'loopback' },
        spec: {
          type: 'virtualized',
          profile: { name: 'vm-profile', revision: 1 },
          appliance,
          vms: [{ name: 'cp1', role: 'control-plane', vcpus: 1, memoryMiB: 512, diskGiB: 2, network, storagePool }],
        },
      });
      expect(r.status, JSON.stringify(r.body)).toBe(409);
      expect(r.body.error.code).toBe('VmServerUrlLoopback');
      expect(r.body.error.message).toContain('--public-url');
      expect((await t.api('GET', '/api/v1/clusters/loopback')).status).toBe(404);
      expect((await t.api('GET', '/api/v1/registrationtokens/vm-loopback')).status).toBe(404);
      expect((await t.api('GET', '/api/v1/edgehosts?labelSelector=edgeplane.io/vm-cluster=loopback')).body.items).toEqual([]);
      expect(virsh('list', '--all', '--name').out).toBe(domainsBefore);
    },
    120_000,
  );
});
