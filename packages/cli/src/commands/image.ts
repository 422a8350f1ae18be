import { resolve } from 'node:path';
import type { BuiltImage } from '@edgeplane/image';
import type { HealthCheck } from '@edgeplane/protocol';
import type { Command } from 'commander';
import { CliError } from '../errors.js';
import type { OutStream } from '../io.js';
import { toJson } from '../output.js';
import { intArg } from '../parse.js';
import { Progress } from '../progress.js';
import { type CommandContext, examples } from './common.js';
import { mergeHealthChecks, parseHealthCheckFlags, pushLayout, readHealthChecksFile, requirePath } from './image-options.js';

interface ImageBuildFlags {
  name: string;
  version: string;
  output: string;
  tag?: string;
  disk?: boolean;
  installer?: boolean;
  installerSeed?: string;
  bootLoader?: string;
  kernelPackage?: string;
  cacheDir?: string;
  module?: string[];
  kernelArgs?: string;
  healthCheck?: string[];
  healthChecksFile?: string;
  airgapBundle?: string;
  slotSize?: number;
  dataSize?: number;
  push?: string;
  previous?: string;
  insecure?: boolean;
  json?: boolean;
  base?: string;
  packages?: string;
  kubernetes?: string[];
  refreshBase?: boolean;
  simulateKubernetes?: boolean;
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

/** `edgeplane image build`: an Edgeplane OS image (OCI layout) and optionally its installer disk. */
export function registerImage(program: Command, ctx: CommandContext): void {
  const image = program
    .command('image')
    .summary('build Edgeplane OS images (OCI OS image, A/B installer disk)')
    .description(
      'Build Edgeplane OS: a Debian root filesystem (systemd, containerd, cloud-init) with its own kernel and initramfs, a Node runtime and the agent, ' +
        'as a single-layer OCI image that OS profiles pin by digest, and a bootable GPT installer disk ' +
        '(esp, root-a, root-b, data). See docs/os-images.md.',
    )
    .addHelpText(
      'after',
      examples('edgeplane image build --version 1.2.3 --disk -o out/', 'edgeplane image build --version 1.2.4 -o out/ --push registry.lan:5000/edge/os:1.2.4'),
    );

  image
    .command('build')
    .summary('build an OS image and, with --disk, the installer disk')
    .description(
      'Build Edgeplane OS 2 from Debian packages and npm only: mmdebstrap installs the package list (systemd, containerd, runc, ' +
        'cloud-init, chrony, the kernel and firmware; --packages replaces it) from the Debian mirror this machine is configured with, ' +
        'cached by the hash of its inputs (EDGEPLANE_IMAGE_CACHE, default ~/.cache/edgeplane/image); the agent runs as a systemd unit; ' +
        '/etc, /var and the Kubernetes state live on the data partition. --kubernetes places a distribution binary you supply and its units ' +
        'into the image and records it (OCI annotation io.edgeplane.kubernetes). --base busybox builds the original small busybox image. ' +
        'Writes OUTPUT/oci (OCI image layout, tagged --tag), OUTPUT/build.json and, with --disk, OUTPUT/disk.img (sparse GPT disk: esp with GRUB, ' +
        'grub.cfg and grubenv; root-a and recovery with this image; empty root-b; data). Prints the manifest digest an OS profile pins and the sizes. ' +
        'Needs Debian tools: mmdebstrap, busybox-static, cpio, e2fsprogs, grub-common, and for --disk dosfstools, mtools, fdisk, shim-signed, grub-efi-amd64-signed (grub-efi-amd64-bin with --boot-loader grub); ' +
        '--push needs skopeo. See docs/os-images.md.',
    )
    .requiredOption('--version <version>', 'image version (os-release, image.json, OCI labels; the default tag)')
    .requiredOption('-o, --output <dir>', 'output directory: oci/ (OCI image layout), build.json, disk.img with --disk')
    .option('--name <name>', 'image name', 'Edgeplane OS')
    .option('--tag <tag>', 'tag of the image in the OCI layout (default: the version)')
    .option('--disk', 'also write the installer disk image OUTPUT/disk.img')
    .option(
      '--installer',
      'also write the installer ISO OUTPUT/installer.iso (and disk.img): boots live from a CD or USB stick, under Secure Boot too, and installs the image to the ' +
        "machine's largest non-removable disk (or install.device of the user-data), then reboots into slot A (docs/install.md; needs xorriso)",
    )
    .option('--installer-seed <dir>', 'with --installer: a NoCloud seed directory (user-data, meta-data) the ISO carries for the devices it installs')
    .option(
      '--boot-loader <loader>',
      "with --disk: shim (default: Debian's signed shim and GRUB, boots with Secure Boot on or off; needs shim-signed, grub-efi-amd64-signed) or grub (unsigned GRUB from grub-mkimage, Secure Boot off only)",
    )
    .option('--base <base>', 'debian (Edgeplane OS 2, default) or busybox (the small busybox image: no systemd, no container runtime)', 'debian')
    .option('--packages <file>', 'Debian package list, one per line, # comments (default: packages/image/files/packages.txt)')
    .option(
      '--kubernetes <name=file>',
      'Kubernetes binary to put into the image with its units: k3s=FILE, rke2=FILE, or kubeadm=FILE with kubelet=FILE; FILE may be an image reference (docker://REF, oci:DIR:TAG) holding /bin/NAME (repeatable)',
      collect,
    )
    .option(
      '--simulate-kubernetes',
      'with --base busybox, for tests and demos only: a SIMULATION. Machines booting the image run their Kubernetes layer simulated by the agent ' +
        '(no distribution, container runtime or API server is in the image; the OS, A/B slots, reboots and network are real), and say so in ' +
        'their status, logs and remote shells. See docs/virtualized-edge.md',
    )
    .option('--refresh-base', "build the Debian base again even when the cache has one for the same inputs (picks up the mirror's updates)")
    .option(
      '--kernel-package <deb>',
      'with --base busybox: Debian linux-image-*.deb to take the kernel and modules from (default: newest in the cache, else apt-get download)',
    )
    .option(
      '--cache-dir <dir>',
      'build cache: Debian bases, compressed layers, kernel packages (default $EDGEPLANE_IMAGE_CACHE, else ${XDG_CACHE_HOME:-~/.cache}/edgeplane/image)',
    )
    .option('--module <name>', 'extra kernel module the initramfs loads, with its dependencies (repeatable)', collect)
    .option('--kernel-args <args>', 'kernel command line arguments (default "console=tty0 console=ttyS0,115200")')
    .option('--health-check <json>', 'health check the agent runs after a trial boot of this image, a HealthCheck object as JSON (repeatable)', collect)
    .option('--health-checks-file <file>', 'YAML or JSON list of health checks baked into the image')
    .option('--airgap-bundle <dir>', 'air-gap bundle directory with Kubernetes distribution binaries (bin/*) and images')
    .option(
      '--slot-size <MiB>',
      'size of root-a, root-b and recovery in MiB with --disk (default: the image as a squashfs slot plus 25% headroom, in 64 MiB steps; 512 with --base busybox)',
      intArg('--slot-size'),
    )
    .option('--data-size <MiB>', 'size of the data partition in MiB with --disk (default 1024)', intArg('--data-size'))
    .option('--push <ref>', 'after building, push the image to a registry with skopeo, e.g. registry.lan:5000/edge/os:1.2.3')
    .option('--insecure', 'with --push: plain HTTP or an untrusted certificate (skopeo --dest-tls-verify=false)')
    .option(
      '--previous <ref>',
      'with --push: also publish the delta artifact, reusing the chunks published with this earlier image (as edgeplane image delta --from)',
    )
    .option('--json', 'print the result as JSON (digest, tag, layout, disk layout, kernel) instead of a summary')
    .addHelpText(
      'after',
      examples(
        'edgeplane image build --version 1.2.3 --disk -o out/',
        'edgeplane image build --version 1.2.4 -o out/ --push 10.0.0.2:5000/edge/os:1.2.4 --insecure',
        `edgeplane image build --version 1.2.5 -o out/ --health-check '{"name":"api","type":"http","url":"http://127.0.0.1:8080/healthz"}'`,
        'edgeplane image build --version 2.0.0 --disk --slot-size 2048 --data-size 4096 --kubernetes k3s=./k3s -o out/',
        'edgeplane image build --version 2.0.1 --packages ./my-packages.txt -o out/',
        'edgeplane image build --base busybox --version 1.9.0 --disk -o out/',
        'edgeplane image build --base busybox --version 1.9.0 --installer -o out/   # out/installer.iso: dd to a USB stick',
        'edgeplane image build --base busybox --simulate-kubernetes --version 1.9.0-sim -o out/   # tests and demos: Kubernetes SIMULATED',
      ),
    )
    .action(async (flags: ImageBuildFlags) => {
      const options = await validate(flags);
      // Loaded here, not at the top: the builder pulls in esbuild, which no other command needs.
      const { buildImage, ImageBuildError } = await loadImageBuilder();
      const steps = new StepProgress(ctx.io.stderr);
      let built: BuiltImage;
      try {
        built = await buildImage({
          ...options,
          ...(flags.push ? { imageRef: flags.push } : {}),
          onStep: (step, index, total) => steps.step(step, index, total),
        });
      } catch (err) {
        steps.finish();
        if (err instanceof ImageBuildError) throw new CliError(`image build failed (${err.code}): ${err.message}`);
        throw err;
      }
      steps.done();
      let pushed: { ref: string; digest: string } | undefined;
      if (flags.push) {
        ctx.io.stderr.write(`Pushing ${built.tag} to ${flags.push}...\n`);
        pushed = { ref: flags.push, digest: await pushLayout(built.layoutDir, built.tag, flags.push, Boolean(flags.insecure)) };
        if (flags.previous) {
          const { oci } = await import('@edgeplane/agent');
          const delta = await oci.delta
            .publishDelta({
              to: flags.push.replace(/^docker:\/\//, ''),
              from: flags.previous,
              ...(flags.insecure ? { insecure: true } : {}),
              log: (line) => ctx.io.stderr.write(`${line}\n`),
            })
            .catch((err: unknown) => {
              if (err instanceof oci.OciError) throw new CliError(`the image is pushed, but publishing its delta failed (${err.code}): ${err.message}`);
              throw err;
            });
          ctx.io.stderr.write(`Delta published: ${delta.manifestDigest} (${(delta.uploadedBytes / 1024 / 1024).toFixed(1)} MiB of new chunks)\n`);
        }
      }
      const simulated = options.simulateKubernetes ? { simulateKubernetes: true } : {};
      if (flags.json) return void ctx.io.stdout.write(toJson({ ...built, ...simulated, ...(pushed ? { pushed } : {}) }));
      ctx.io.stdout.write(summary(built, pushed, Boolean(options.simulateKubernetes)));
    });
  registerImageDelta(image, ctx);
}

/**
 * `edgeplane image delta`: publishes the chunk index (and the chunks the registry lacks) of an OS
 * image next to it in its registry, so agents fill the passive slot from what they already have
 * (docs/delta-updates.md).
 */
function registerImageDelta(image: Command, ctx: CommandContext): void {
  image
    .command('delta')
    .summary('publish the delta artifact (chunk index + new chunks) of a pushed OS image')
    .description(
      'Pulls the OS image --to from its registry, writes its slot image (reproducible mkfs.ext4, or mksquashfs for an image with squashfs slots), cuts it into content-defined chunks ' +
        'and pushes the chunk index and a pack of the chunks the registry does not hold yet, as an OCI artifact whose subject is the image ' +
        '(found through the referrers API, or the tag sha256-<digest>.delta where the registry has none). With --from, chunks already ' +
        'published with that earlier image are pointed to, not uploaded again, and a binary patch (xdelta3) from its exact slot image is added: ' +
        'devices that run it download only the patch, others only the chunks their slots lack. Needs e2fsprogs or squashfs-tools (and xdelta3 for the patch). Anonymous push only.',
    )
    .requiredOption('--to <ref>', 'the pushed OS image, registry/repository:tag or @sha256:...')
    .option('--from <ref>', 'an earlier image in the same repository whose delta artifact holds chunks to reuse')
    .option('--no-patch', 'with --from: no binary patch, the chunk index only')
    .option(
      '--slot-size <MiB>',
      "size of an ext4 slot image in MiB (default: --from's, else twice the tree in 64 MiB steps; a squashfs one has its own size)",
      intArg('--slot-size'),
    )
    .option('--insecure', 'plain HTTP (default only for a registry on 127.0.0.1/localhost)')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', examples('edgeplane image delta --from registry.lan:5000/edge/os:2.0.0 --to registry.lan:5000/edge/os:2.0.1'))
    .action(async (flags: { to: string; from?: string; patch?: boolean; slotSize?: number; insecure?: boolean; json?: boolean }) => {
      if (flags.patch === false && !flags.from) throw new CliError('--no-patch applies to --from only');
      const { oci } = await import('@edgeplane/agent');
      let result: Awaited<ReturnType<typeof oci.delta.publishDelta>>;
      try {
        result = await oci.delta.publishDelta({
          to: flags.to,
          ...(flags.from ? { from: flags.from } : {}),
          ...(flags.patch === false ? { patch: false } : {}),
          ...(flags.slotSize ? { slotSizeBytes: flags.slotSize * 1024 * 1024 } : {}),
          ...(flags.insecure ? { insecure: true } : {}),
          log: (line) => ctx.io.stderr.write(`${line}\n`),
        });
      } catch (err) {
        if (err instanceof oci.OciError) throw new CliError(`image delta failed (${err.code}): ${err.message}`);
        throw err;
      }
      if (flags.json) return void ctx.io.stdout.write(toJson(result));
      const mib = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;
      ctx.io.stdout.write(
        `Delta of ${result.image} (${result.imageDigest}) published as ${result.manifestDigest} (${result.via === 'referrers' ? 'referrers API' : 'tag sha256-<digest>.delta'})\n` +
          `  slot image ${mib(result.slotBytes)}, ${result.chunks} chunks; uploaded ${mib(result.uploadedBytes)} of new chunks, ${mib(result.reusedBytes)} already in the registry; index ${mib(result.indexBytes)}\n` +
          (result.patch ? `  patch from ${result.patch.fromImage}: ${mib(result.patch.size)}\n` : ''),
      );
    });
}

/** Flags -> BuildImageOptions, with every user mistake reported before anything is built or written. */
async function validate(flags: ImageBuildFlags) {
  const checks: HealthCheck[] = parseHealthCheckFlags(flags.healthCheck ?? []);
  if (flags.healthChecksFile) checks.push(...(await readHealthChecksFile(flags.healthChecksFile)));
  const healthChecks = mergeHealthChecks(checks);
  if (!flags.disk && !flags.installer && (flags.slotSize !== undefined || flags.dataSize !== undefined))
    throw new CliError('--slot-size and --data-size size the installer disk: add --disk');
  if (flags.bootLoader !== undefined && !flags.disk && !flags.installer) throw new CliError("--boot-loader is the installer disk's: add --disk");
  if (flags.installerSeed !== undefined && !flags.installer) throw new CliError("--installer-seed is the installer ISO's: add --installer");
  if (flags.installerSeed !== undefined) await requirePath('--installer-seed', flags.installerSeed, 'directory');
  if (flags.bootLoader !== undefined && flags.bootLoader !== 'shim' && flags.bootLoader !== 'grub')
    throw new CliError(`--boot-loader must be shim or grub, not "${flags.bootLoader}"`);
  if (flags.insecure && !flags.push) throw new CliError('--insecure applies to --push only');
  if (flags.previous && !flags.push) throw new CliError('--previous publishes a delta next to the pushed image: add --push');
  const base = flags.base ?? 'debian';
  if (base !== 'debian' && base !== 'busybox') throw new CliError(`--base must be debian or busybox, not "${flags.base}"`);
  if (flags.kernelPackage && base !== 'busybox')
    throw new CliError('--kernel-package applies to --base busybox (OS 2 installs its kernel from the package list)');
  if (base === 'busybox' && (flags.packages || flags.kubernetes?.length || flags.refreshBase))
    throw new CliError('--packages, --kubernetes and --refresh-base build the Debian base: drop --base busybox');
  // The same refusal as the builder's, before anything is built: OS 2 carries a real distribution.
  if (flags.simulateKubernetes && base !== 'busybox')
    throw new CliError('--simulate-kubernetes is for --base busybox (tests and demos); the Debian base carries a real distribution (--kubernetes)');
  if (flags.kernelPackage) await requirePath('--kernel-package', flags.kernelPackage, 'file');
  if (flags.packages) await requirePath('--packages', flags.packages, 'file');
  const kubernetes = (flags.kubernetes ?? []).map((value) => {
    const m = /^(k3s|rke2|kubeadm|kubelet)=(.+)$/.exec(value);
    if (!m) throw new CliError(`--kubernetes ${value}: expected NAME=FILE with NAME one of k3s, rke2, kubeadm, kubelet (e.g. --kubernetes k3s=./k3s)`);
    const ref = /^(docker:\/\/|oci:|oci-archive:)/.test(m[2]);
    return { name: m[1] as 'k3s' | 'rke2' | 'kubeadm' | 'kubelet', file: ref ? m[2] : resolve(m[2]), ref };
  });
  for (const k of kubernetes) if (!k.ref) await requirePath(`--kubernetes ${k.name}`, k.file, 'file');
  if (flags.airgapBundle) await requirePath('--airgap-bundle', flags.airgapBundle, 'directory');
  if (!flags.version.trim()) throw new CliError('--version must not be empty');
  return {
    name: flags.name,
    version: flags.version,
    output: resolve(flags.output),
    base: base as 'debian' | 'busybox',
    ...(flags.packages ? { packagesFile: resolve(flags.packages) } : {}),
    ...(kubernetes.length ? { kubernetes: kubernetes.map(({ name, file }) => ({ name, file })) } : {}),
    ...(flags.refreshBase ? { refreshBase: true } : {}),
    ...(flags.simulateKubernetes ? { simulateKubernetes: true } : {}),
    ...(flags.tag ? { tag: flags.tag } : {}),
    disk: Boolean(flags.disk),
    ...(flags.installer ? { installer: true } : {}),
    ...(flags.installerSeed ? { installerSeed: resolve(flags.installerSeed) } : {}),
    ...(flags.bootLoader ? { bootLoader: flags.bootLoader as 'shim' | 'grub' } : {}),
    ...(flags.kernelPackage ? { kernelPackage: resolve(flags.kernelPackage) } : {}),
    ...(flags.cacheDir ? { cacheDir: resolve(flags.cacheDir) } : {}),
    ...(flags.module?.length ? { modules: flags.module } : {}),
    ...(flags.kernelArgs ? { kernelArgs: flags.kernelArgs } : {}),
    ...(healthChecks ? { healthChecks } : {}),
    ...(flags.airgapBundle ? { airgapBundle: resolve(flags.airgapBundle) } : {}),
    ...(flags.slotSize !== undefined ? { slotMiB: flags.slotSize } : {}),
    ...(flags.dataSize !== undefined ? { dataMiB: flags.dataSize } : {}),
  };
}

function summary(built: BuiltImage, pushed?: { ref: string; digest: string }, simulatedKubernetes = false): string {
  const lines = [
    `Built ${built.name} ${built.version} (kernel ${built.kernel.release} from ${built.kernel.package}).`,
    `  OCI image: ${built.layoutDir} (tag ${built.tag})`,
  ];
  if (built.disk && built.layout) {
    const parts = built.layout.partitions.map((p) => `${p.number} ${p.name} ${p.sizeMiB} MiB`).join(', ');
    lines.push(`  disk:      ${built.disk} (${built.layout.sizeMiB} MiB, sparse; ${parts})`);
  }
  if (built.installerIso) lines.push(`  installer: ${built.installerIso} (hybrid ISO: CD or USB stick; docs/install.md)`);
  if (built.kubernetes) lines.push(`  kubernetes: ${built.kubernetes.distribution} ${built.kubernetes.version}`);
  if (simulatedKubernetes) lines.push('  kubernetes: SIMULATED by the agent on machines booting this image (tests and demos only)');
  if (built.sizes) {
    const mib = (n: number) => `${(n / 1024 / 1024).toFixed(0)} MiB`;
    const slot = built.sizes.slotBytes ? `; slot ${mib(built.sizes.slotUsedBytes ?? 0)} used of ${mib(built.sizes.slotBytes)}` : '';
    lines.push(`  sizes:     layer ${mib(built.sizes.layerBytes)} compressed, root filesystem ${mib(built.sizes.treeBytes)}${slot}`);
  }
  if (built.cache)
    lines.push(`  cache:     ${built.cache.dir} (Debian base ${built.cache.base ? 'reused' : 'built'}, layer ${built.cache.layer ? 'reused' : 'compressed'})`);
  if (pushed) lines.push(`  pushed:    ${pushed.ref} (${pushed.digest})`);
  lines.push(`  digest:    ${built.digest}`);
  return `${lines.join('\n')}\n`;
}

/**
 * The builder's steps as a progress bar on a terminal (one line per step otherwise), on stderr so
 * that --json output stays clean.
 */
class StepProgress {
  private current?: Progress;
  private total = 0;
  private readonly width = 'root filesystem...'.length;

  constructor(private readonly out: OutStream) {}

  step(name: string, index: number, total: number): void {
    this.total = total;
    this.current = new Progress(this.out, total, `${name}...`.padEnd(this.width));
    this.current.update(index);
  }

  done(): void {
    if (!this.total) return;
    this.current = new Progress(this.out, this.total, 'done'.padEnd(this.width));
    this.current.update(this.total);
    this.finish();
  }

  finish(): void {
    this.current?.finish();
    this.current = undefined;
  }
}

/**
 * The image builder runs from the TypeScript sources of a checkout (it bundles the agent from them
 * into the image), so the built command leaves it out of its bundle. Run from a checkout's build
 * (node_modules/.bin/edgeplane), the sources are there but plain node cannot load .ts: tsx (a dev
 * dependency of the checkout) is registered as a loader for them. An installed package has neither.
 */
async function loadImageBuilder(): Promise<typeof import('@edgeplane/image')> {
  try {
    return await import('@edgeplane/image');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_UNKNOWN_FILE_EXTENSION') {
      const tsx = await import('tsx/esm/api').catch(() => undefined);
      // tsImport loads it under its own namespace: the failed plain import above stays cached.
      if (tsx) return tsx.tsImport('@edgeplane/image', import.meta.url) as Promise<typeof import('@edgeplane/image')>;
    }
    throw new CliError(`the image builder (@edgeplane/image) cannot be loaded here: ${(err as Error).message}; run it from an Edgeplane source checkout`);
  }
}
