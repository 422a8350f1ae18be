import { EdgeplaneError, FIELD_SELECTORS, hasControlChars } from '@edgeplane/protocol';

/**
 * Field selectors (`?fieldSelector=spec.site=shop-1,status.state!=ready`), as in Kubernetes: a
 * comma-separated AND of `field=value`, `field==value` or `field!=value`. Each kind supports a fixed
 * set of fields, each backed by a column or by a JSON path that migration 0013 indexes where lists
 * get large (hosts by site, events by object), so a filtered list pages in SQL, not in code.
 */

/** Where a field lives: a column of the kind's table, or a path inside its spec/status JSON. */
export type FieldSource = { column: string } | { json: 'spec' | 'status'; path: readonly string[] };

export interface FieldRequirement {
  field: string;
  source: FieldSource;
  op: '=' | '!=';
  /** `field=` (empty) matches objects without the field, as in Kubernetes. */
  value: string;
}

const COMMON: Record<string, FieldSource> = {
  'metadata.name': { column: 'name' },
  'metadata.project': { column: 'project' },
};

const spec = (...path: string[]): FieldSource => ({ json: 'spec', path });
const status = (...path: string[]): FieldSource => ({ json: 'status', path });

/** Supported fields per kind, besides metadata.name and metadata.project. */
const BY_KIND: Record<string, Record<string, FieldSource>> = {
  EdgeHost: { 'spec.site': spec('site'), 'status.state': { column: 'state' }, 'status.connectivity': { column: 'connectivity' } },
  Event: {
    'involvedObject.kind': { column: 'involved_kind' },
    'involvedObject.name': { column: 'involved_name' },
    'involvedObject.uid': { column: 'involved_uid' },
    type: spec('type'),
    reason: spec('reason'),
  },
  Cluster: { 'spec.site': spec('site'), 'spec.type': spec('type'), 'spec.profile.name': spec('profile', 'name'), 'status.phase': status('phase') },
  Rollout: { 'status.phase': { column: 'phase' } },
  RemoteSession: { 'spec.host': { column: 'host' }, 'status.phase': { column: 'phase' } },
};

// The protocol lists the fields (OpenAPI, clients); this table says where each lives. They must agree.
for (const kind of new Set([...Object.keys(BY_KIND), ...Object.keys(FIELD_SELECTORS)]))
  if (Object.keys(BY_KIND[kind] ?? {}).join() !== (FIELD_SELECTORS[kind] ?? []).join())
    throw new Error(`field selectors of ${kind} differ between the protocol and the server`);

/** The fields a kind can be filtered by, in the order docs and errors list them. */
export function supportedFields(kind: string): string[] {
  return [...Object.keys(COMMON), ...Object.keys(BY_KIND[kind] ?? {})];
}

const MAX_SELECTOR = 4096;
const MAX_REQUIREMENTS = 20;

function invalid(kind: string, message: string): EdgeplaneError {
  const supported = supportedFields(kind);
  return new EdgeplaneError('InvalidFieldSelector', `${message}; ${kind} supports ${supported.join(', ')} with =, == or !=`, {
    kind,
    supported,
  });
}

/** Parses a field selector for `kind`; throws InvalidFieldSelector naming the supported fields. */
export function parseFieldSelector(kind: string, selector: string): FieldRequirement[] {
  if (selector.length > MAX_SELECTOR) throw invalid(kind, `the field selector is longer than ${MAX_SELECTOR} characters`);
  const fields = { ...COMMON, ...BY_KIND[kind] };
  const parts = selector.split(',').filter((p) => p.trim() !== '');
  if (parts.length > MAX_REQUIREMENTS) throw invalid(kind, `at most ${MAX_REQUIREMENTS} field requirements are allowed`);
  return parts.map((part) => {
    const m = /^\s*([A-Za-z][A-Za-z0-9.]*)\s*(!=|==|=)\s*(.*?)\s*$/.exec(part);
    if (!m) throw invalid(kind, `cannot parse field requirement "${part}"`);
    const [, field, op, value] = m;
    if (!Object.hasOwn(fields, field)) throw invalid(kind, `"${field}" is not a supported field selector`);
    // The value reaches the store as a bound parameter; NUL is refused there (PostgreSQL), so here.
    if (hasControlChars(value) || /[=!]/.test(value) || value.length > 253) throw invalid(kind, `the value in "${part}" is not a valid field value`);
    return { field, source: fields[field], op: op === '!=' ? '!=' : '=', value };
  });
}
