import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import type { Command } from 'commander';
import { CliError } from '../errors.js';
import { type CommandContext, examples } from './common.js';
import { describeEnd, type SessionFlags, sessionLimits, startSession, withSessionOptions } from './session.js';

export function registerSupportBundle(program: Command, ctx: CommandContext): void {
  const cmd = program
    .command('support-bundle')
    .summary('download a support bundle (state, configs, logs, inventory) from an edge host')
    .description(
      "Collect a support bundle on an edge host and download it as a .tar.gz: the agent's state and " +
        'identity (public key only), last spec, config, queued events, logs and hardware inventory. ' +
        'Secrets (tokens, keys, passwords) are redacted on the device before anything leaves it. Needs the ' +
        'hosts:remote-shell permission and a reason; the download is audited.',
    )
    .argument('<host>', 'edge host name')
    .requiredOption('-o, --output <file>', 'where to write the bundle (.tar.gz)');
  withSessionOptions(cmd)
    .addHelpText('after', examples('edgeplane support-bundle nuc-01 -o nuc-01.tar.gz --reason "INC-42 vendor escalation"', 'tar tzf nuc-01.tar.gz'))
    .action(async (host: string, flags: SessionFlags & { output: string }) => {
      const { io } = ctx;
      const partial = `${flags.output}.partial`;
      const file = createWriteStream(partial, { mode: 0o600 });
      let bytes = 0;
      try {
        const { attached } = await startSession(ctx, flags, host, { kind: 'bundle', reason: flags.reason!, ...sessionLimits(flags) });
        attached.on('output', (_s, data) => {
          bytes += data.length;
          if (!file.write(data)) {
            attached.pause();
            file.once('drain', () => attached.resume());
          }
        });
        const end = await attached.done;
        await new Promise<void>((resolve, reject) => file.end(() => resolve()).on('error', reject));
        if (end.refused || end.code !== 0) throw new CliError(`support bundle failed: ${describeEnd(end) ?? `collector exited ${end.code}`}`);
        await rename(partial, flags.output);
        io.stderr.write(`Wrote ${flags.output} (${bytes} bytes)\n`);
      } catch (err) {
        file.destroy();
        await rm(partial, { force: true });
        throw err;
      }
    });
}
