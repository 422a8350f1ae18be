import { readFileSync } from 'node:fs';
import { Labels, Name } from '@edgeplane/protocol';
import { type Command, Option } from 'commander';
import { z } from 'zod';
import type { ConnectionFlags } from '../config.js';
import { CliError } from '../errors.js';
import { renderTable } from '../output.js';
import { type CommandContext, clientFor, examples, withConnectionOptions } from './common.js';

interface ImportOptions extends ConnectionFlags {
  file: string;
  project?: string;
  output: 'table' | 'csv' | 'json';
}

const Row = z.object({
  deviceUid: z
    .string()
    .min(8)
    .max(128)
    .regex(/^[A-Za-z0-9-]+$/, 'must be letters, digits and "-"'),
  site: Name.optional(),
  labels: Labels,
});
export type HostRow = z.infer<typeof Row>;

/** Splits one CSV line, honouring double quotes ("a,b" and "" for a quote). */
function splitCsvLine(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out.map((s) => s.trim());
}

/**
 * Parses hosts.csv: a header naming deviceUid, site, labels (any order; site and labels optional),
 * then one device per line. Labels are `k=v` pairs separated by `;` (or `,` inside quotes).
 * Every row is checked before anything is sent, so a bad file creates nothing.
 */
export function parseHostsCsv(text: string): HostRow[] {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() && !l.trim().startsWith('#'));
  if (!lines.length) throw new CliError('the hosts file is empty');
  const header = splitCsvLine(lines[0]).map((h) => h.toLowerCase());
  const col = (n: string) => header.indexOf(n.toLowerCase());
  if (col('deviceUid') < 0) throw new CliError('the first line of the hosts file must be a header with a deviceUid column (and optionally site, labels)');
  const problems: string[] = [];
  const rows: HostRow[] = [];
  const seen = new Set<string>();
  for (const [i, line] of lines.slice(1).entries()) {
    const cells = splitCsvLine(line);
    const labels: Record<string, string> = {};
    const rawLabels = col('labels') >= 0 ? (cells[col('labels')] ?? '') : '';
    for (const pair of rawLabels
      .split(/[;,]/)
      .map((s) => s.trim())
      .filter(Boolean)) {
      const eq = pair.indexOf('=');
      if (eq <= 0) problems.push(`line ${i + 2}: label "${pair}" is not key=value`);
      else labels[pair.slice(0, eq).trim()] = pair.slice(eq + 1).trim();
    }
    const site = col('site') >= 0 ? cells[col('site')] || undefined : undefined;
    const r = Row.safeParse({ deviceUid: cells[col('deviceUid')], site, labels });
    if (!r.success) problems.push(...r.error.issues.map((x) => `line ${i + 2}: ${x.path.join('.') || 'row'}: ${x.message}`));
    else if (seen.has(r.data.deviceUid.toLowerCase())) problems.push(`line ${i + 2}: device UID ${r.data.deviceUid} is listed twice`);
    else {
      seen.add(r.data.deviceUid.toLowerCase());
      rows.push(r.data);
    }
  }
  if (problems.length) throw new CliError(`the hosts file has errors; nothing was imported:\n  ${problems.join('\n  ')}`);
  return rows;
}

export function registerHosts(program: Command, ctx: CommandContext): void {
  const hosts = program
    .command('hosts')
    .summary('bulk operations on edge hosts')
    .description('Bulk operations on edge hosts, such as pre-registering devices from a CSV file.')
    .addHelpText('after', examples('edgeplane hosts import --file hosts.csv --project stores'));
  const cmd = hosts
    .command('import')
    .summary('pre-register devices by UID from a CSV file')
    .description(
      'Pre-register devices by UID (DMI product_uuid, else /etc/machine-id): each becomes an EdgeHost in ' +
        'state pre-registered with its site and labels, and gets a one-time pairing key, printed once. ' +
        'Install each device with its key (`edgeplane agent --pairing-key KEY`, or `pairingKey:` in the ' +
        'user-data) and it takes exactly its host. CSV columns: deviceUid,site,labels (labels as k=v;k2=v2).',
    )
    .requiredOption('-f, --file <hosts.csv>', 'the CSV file')
    .option('--project <project>', 'project of the hosts (default: default)')
    .addOption(new Option('-o, --output <format>', 'table, csv (name,deviceUid,pairingKey) or json').choices(['table', 'csv', 'json']).default('table'));
  withConnectionOptions(cmd)
    .addHelpText('after', examples('edgeplane hosts import --file hosts.csv', 'edgeplane hosts import -f hosts.csv --project stores -o csv > pairing-keys.csv'))
    .action(async (opts: ImportOptions) => {
      let text: string;
      try {
        text = readFileSync(opts.file, 'utf8');
      } catch (err) {
        throw new CliError(`cannot read ${opts.file}: ${(err as Error).message}`);
      }
      const rows = parseHostsCsv(text);
      const client = clientFor(opts, ctx.io);
      const created: { name: string; deviceUid: string; pairingKey: string; site?: string }[] = [];
      const failed: string[] = [];
      for (const row of rows) {
        try {
          const host = await client.create('edgehosts', {
            metadata: { labels: row.labels, ...(opts.project ? { project: opts.project } : {}) },
            spec: { deviceUid: row.deviceUid, ...(row.site ? { site: row.site } : {}) },
          });
          created.push({ name: host.metadata.name, deviceUid: row.deviceUid, pairingKey: String(host.status?.pairingKey ?? ''), site: row.site });
        } catch (err) {
          failed.push(`${row.deviceUid}: ${(err as Error).message}`);
        }
      }
      if (opts.output === 'json') ctx.io.stdout.write(`${JSON.stringify(created, null, 2)}\n`);
      else if (opts.output === 'csv')
        ctx.io.stdout.write(`name,deviceUid,pairingKey\n${created.map((c) => `${c.name},${c.deviceUid},${c.pairingKey}`).join('\n')}\n`);
      else
        ctx.io.stdout.write(
          renderTable(
            ['NAME', 'DEVICE UID', 'SITE', 'PAIRING KEY'],
            created.map((c) => [c.name, c.deviceUid, c.site ?? '', c.pairingKey]),
          ),
        );
      ctx.io.stderr.write(`Pre-registered ${created.length} of ${rows.length} hosts. The pairing keys are shown only once; store them now.\n`);
      if (failed.length) throw new CliError(`${failed.length} hosts were not imported:\n  ${failed.join('\n  ')}`);
    });
}
