import { appendFileSync, existsSync } from 'node:fs';
import type { Command } from 'commander';
import { CliError } from '../errors.js';
import { type CommandContext, examples } from './common.js';

interface InstallOsOptions {
  media: string;
  seed: string[];
  exclude: string[];
  screen: boolean;
  reboot: boolean;
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

/**
 * `edgeplane installer install-os`: what the live system of the installer ISO runs (its agent
 * service starts it when the kernel command line carries edgeplane.install). Writes the image on the
 * medium to this machine's disk and reboots into slot A. Every line goes to the serial console
 * (stdout) and to the screen (/dev/tty0), so a technician at either sees the same thing.
 */
export function registerInstallOs(installer: Command, ctx: CommandContext): void {
  installer
    .command('install-os')
    .summary('install Edgeplane OS from the installer ISO to this machine (run by the ISO itself)')
    .description(
      'Run by the live system of the installer ISO (`edgeplane image build --installer`). Picks the target disk ' +
        '(install.device in the user-data, else the largest non-removable disk; two disks of the same size are refused), ' +
        'writes the A/B layout (esp, root-a, root-b, recovery, data) with the image in slot A and recovery, copies the ' +
        'user-data to the data partition, and reboots into slot A. ERASES THE TARGET DISK (install.keepData keeps its data partition). See docs/install.md.',
    )
    .option('--media <dir>', 'the mounted install medium', '/mnt')
    .option('--seed <dir>', 'NoCloud seed directory to take user-data from, first match wins (repeatable)', collect, [])
    .option('--exclude <device>', 'a device that is never the target besides the medium, e.g. the seed volume (repeatable)', collect, [])
    .option('--no-screen', 'do not also print to /dev/tty0')
    .option('--no-reboot', 'do not reboot when done')
    .addHelpText('after', examples('edgeplane installer install-os --media /mnt --seed /run/edgeplane/seed --seed /mnt/edgeplane/seed'))
    .action(async (opts: InstallOsOptions) => {
      const { installOs, InstallError, runTool } = await import('@edgeplane/agent');
      const say = (line: string) => {
        const text = `edgeplane-install: ${line}\n`;
        ctx.io.stdout.write(text);
        if (opts.screen && existsSync('/dev/tty0')) {
          try {
            appendFileSync('/dev/tty0', text);
          } catch {
            // No screen (a headless board): the serial console has the line.
          }
        }
      };
      try {
        await installOs({ media: opts.media, seedDirs: opts.seed, exclude: opts.exclude, say });
      } catch (err) {
        if (err instanceof InstallError) {
          say(`NOT INSTALLED: ${err.message}`);
          throw new CliError(err.message);
        }
        say(`NOT INSTALLED: the install failed: ${(err as Error).message}`);
        throw err;
      }
      if (opts.reboot) {
        say('done: rebooting into slot A (remove the install medium, or leave it: the disk boots first once installed)');
        await runTool('reboot', []);
      }
    });
}
