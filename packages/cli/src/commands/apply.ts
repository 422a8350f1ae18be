import { readFileSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import { findKind } from '@edgeplane/protocol';
import type { KindMeta } from '@edgeplane/protocol/kind-table';
import type { Command } from 'commander';
import { type ApiClient, ApiError, type Resource } from '../api-client.js';
import type { ConnectionFlags } from '../config.js';
import { CliError, formatApiError } from '../errors.js';
import { readAll } from '../io.js';
import { parseManifest } from '../manifest.js';
import { type CommandContext, clientFor, examples, kindOrThrow, withConnectionOptions } from './common.js';

export type ApplyResult = 'created' | 'configured' | 'unchanged';

/** Secrets the server shows only in the answer to a create (tokens); apply must not swallow them. */
export function shownOnceSecret(created: Resource | undefined): string | undefined {
  const token = (created?.status as { token?: unknown } | undefined)?.token;
  return typeof token === 'string' ? token : undefined;
}

/**
 * Creates the resource when the server has none by that name, else replaces it (PUT). When the
 * stored spec, labels and annotations already equal the document's, nothing is sent.
 */
export async function applyResource(client: ApiClient, kind: KindMeta, doc: Resource, onCreated?: (created: Resource) => void): Promise<ApplyResult> {
  const existing = await client.find(kind.plural, doc.metadata.name);
  if (!existing) {
    const created = await client.create(kind.plural, doc);
    onCreated?.(created as Resource);
    return 'created';
  }
  if (isUnchanged(kind, doc, existing)) return 'unchanged';
  await client.replace(kind.plural, doc.metadata.name, doc);
  return 'configured';
}

function isUnchanged(kind: KindMeta, doc: Resource, existing: Resource): boolean {
  // Compare with the schema's defaults applied, as the server stores them; if the document does
  // not parse, send it and let the server explain what is wrong.
  const spec = findKind(kind.kind)?.spec;
  if (!spec) return false;
  const parsed = spec.safeParse(doc.spec ?? {});
  if (!parsed.success || !isDeepStrictEqual(parsed.data, existing.spec ?? {})) return false;
  for (const key of ['labels', 'annotations'] as const) {
    const wanted = doc.metadata[key];
    if (wanted !== undefined && !isDeepStrictEqual(wanted, existing.metadata[key] ?? {})) return false;
  }
  return true;
}

interface ApplyOptions extends ConnectionFlags {
  filename: string[];
}

export function registerApply(program: Command, ctx: CommandContext): void {
  const cmd = program
    .command('apply')
    .summary('create or update resources from YAML or JSON manifests')
    .description(
      'Create or update resources from manifests: YAML (several documents separated by ---) or JSON, ' +
        'each a resource or a <Kind>List. A resource that does not exist is created; one that exists ' +
        'has its spec replaced. Prints <plural>/<name> created, configured or unchanged.',
    )
    .requiredOption('-f, --filename <file>', 'manifest file, or - for standard input (repeatable)', (value: string, prev: string[] = []) => [...prev, value]);
  withConnectionOptions(cmd)
    .addHelpText(
      'after',
      examples(
        'edgeplane apply -f tokens.yaml',
        'edgeplane get tokens -o yaml > all.yaml && edgeplane apply -f all.yaml',
        'cat project.json | edgeplane apply -f -',
      ),
    )
    .action(async (opts: ApplyOptions) => {
      const { io } = ctx;
      const docs: Resource[] = [];
      for (const file of opts.filename) {
        docs.push(...parseManifest(await readSource(file, io.stdin), file === '-' ? '<stdin>' : file));
      }
      if (docs.length === 0) throw new CliError('no resources found in the given manifests');
      // Resolve every kind first, so an unknown kind changes nothing.
      const planned = docs.map((doc) => ({ doc, kind: kindOrThrow(String(doc.kind)) }));
      const client = clientFor(opts, io);
      for (const { doc, kind } of planned) {
        const ref = `${kind.plural}/${doc.metadata.name}`;
        try {
          let secret: string | undefined;
          const result = await applyResource(client, kind, doc, (created) => {
            secret = shownOnceSecret(created);
          });
          io.stdout.write(`${ref} ${result}\n`);
          if (secret) io.stdout.write(`  token: ${secret}\n  (shown only once: store it now)\n`);
        } catch (err) {
          if (!(err instanceof ApiError)) throw err;
          io.stderr.write(formatApiError(err, `${ref}: `));
          ctx.exitCode = 1;
        }
      }
    });
}

async function readSource(file: string, stdin: NodeJS.ReadableStream): Promise<string> {
  if (file === '-') return readAll(stdin);
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read ${file}: ${(err as Error).message}`);
  }
}
