import { parseAllDocuments } from 'yaml';
import type { Resource } from './api-client.js';
import { CliError } from './errors.js';

/**
 * Reads the resources of a manifest: one or more YAML documents (JSON is YAML too), where a
 * document may also be a `<Kind>List` or a plain array; lists are flattened in order.
 */
export function parseManifest(text: string, source: string): Resource[] {
  const resources: Resource[] = [];
  const documents = parseAllDocuments(text);
  const docs = Array.isArray(documents) ? documents : [documents];
  docs.forEach((doc, index) => {
    if (doc.errors.length > 0) {
      throw new CliError(`${source}: document ${index + 1} is not valid YAML or JSON: ${doc.errors[0].message}`);
    }
    collect(doc.toJS(), `${source} document ${index + 1}`, resources);
  });
  return resources;
}

function collect(value: unknown, where: string, out: Resource[]): void {
  if (value == null) return; // an empty document, e.g. a trailing `---`
  if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) collect(v, `${where} item ${i + 1}`, out);
    return;
  }
  if (typeof value !== 'object') throw new CliError(`${where}: expected a resource (a mapping with kind and metadata.name)`);
  const obj = value as Record<string, unknown>;
  if (typeof obj.kind === 'string' && obj.kind.endsWith('List') && Array.isArray(obj.items)) {
    for (const [i, v] of obj.items.entries()) collect(v, `${where} item ${i + 1}`, out);
    return;
  }
  if (typeof obj.kind !== 'string' || !obj.kind) throw new CliError(`${where}: missing "kind"`);
  const metadata = obj.metadata as Record<string, unknown> | undefined;
  if (!metadata || typeof metadata.name !== 'string' || !metadata.name) throw new CliError(`${where}: ${obj.kind} is missing "metadata.name"`);
  out.push(obj as Resource);
}
