import { randomUUID } from 'node:crypto';
import { API_VERSION, DEFAULT_PROJECT, EdgeplaneError, hasControlChars, type KindInfo, type ObjectMetaInput, parseOrThrow } from '@edgeplane/protocol';
import { lockProject } from '../project/project.repository.js';
import type { Executor } from '../store/db.js';
import { isUniqueViolation, savepoint } from '../store/db.js';
import type { ResourceTableName } from '../store/schema.js';
import type { RequestContext } from './context.js';
import { parseFieldSelector } from './field-selector.js';
import { matchesSelector, parseLabelSelector } from './label-selector.js';
import { applyMergePatch } from './merge-patch.js';
import { deleteRow, findByName, insertRow, listPage, type PageCursor, type ResourceRow, updateRow } from './resource.repository.js';

export interface Resource {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    uid: string;
    project: string;
    labels: Record<string, string>;
    annotations: Record<string, string>;
    generation: number;
    resourceVersion: string;
    createdAt: string;
  };
  spec: Record<string, unknown>;
  status: Record<string, unknown>;
}

type Input = { metadata: ObjectMetaInput; spec: Record<string, unknown> };

/** Per-kind behaviour plugged into the generic service. */
export interface ResourceHooks {
  /** Status as the API shows it; defaults to the stored status JSON. */
  status?(row: ResourceRow): Record<string, unknown>;
  /** Extra columns and initial status for a new row; may return status fields shown once (secrets). */
  prepareCreate?(
    db: Executor,
    input: Input,
    ctx: RequestContext,
  ): Promise<{ columns?: Record<string, unknown>; status?: Record<string, unknown>; shownOnce?: Record<string, unknown> }>;
  /** Extra columns to write when the spec changes; may refuse by throwing. */
  prepareUpdate?(db: Executor, row: ResourceRow, spec: Record<string, unknown>, ctx: RequestContext): Promise<Record<string, unknown>>;
  beforeDelete?(db: Executor, row: ResourceRow, ctx: RequestContext): Promise<void>;
  /** Actions (`POST .../<name>/<verb>`); `body` is the request body, already parsed as JSON (or undefined). */
  actions?: Record<string, (db: Executor, row: ResourceRow, ctx: RequestContext, body?: unknown) => Promise<void>>;
}

export interface ListQuery {
  labelSelector?: string;
  /** `field=value`, `field!=value`, ... (see field-selector.ts for each kind's fields). */
  fieldSelector?: string;
  limit?: number;
  continue?: string;
}

export interface ResourceServiceOptions {
  /**
   * A column lists sort by before the name (events: `event_time`, oldest first, newest last as in
   * `kubectl events`); default: by name.
   */
  listOrder?: string;
}

export const DEFAULT_LIST_LIMIT = 500;
/** Reads a PATCH without a resourceVersion makes before a concurrent writer's Conflict reaches the client. */
const PATCH_ATTEMPTS = 5;
export const MAX_LIST_LIMIT = 1000;

const now = () => new Date().toISOString();
const json = (v: unknown) => JSON.stringify(v ?? {});

function encodeContinue(cursor: PageCursor) {
  return Buffer.from(JSON.stringify({ after: cursor.name, ...(cursor.key !== undefined ? { key: cursor.key } : {}) })).toString('base64url');
}
function decodeContinue(token: string, ordered: boolean): PageCursor {
  // The token is opaque to clients but not tamper-proof: a name with NUL would reach the store.
  const ok = (s: unknown): s is string => typeof s === 'string' && s.length <= 253 && !hasControlChars(s);
  try {
    const v = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
    // A list ordered by a column needs its value; a token from a name-ordered list cannot resume it.
    if (ok(v?.after) && (ordered ? ok(v.key) : v.key === undefined)) return ordered ? { name: v.after, key: v.key } : { name: v.after };
  } catch {}
  throw new EdgeplaneError('InvalidContinueToken', 'the continue token is not one this server issued');
}

/** A resource may only name a project that exists (`default` always does); the project is fixed at creation. */
async function requireProject(db: Executor, project: string): Promise<void> {
  if (project !== DEFAULT_PROJECT && !(await lockProject(db, project)))
    throw new EdgeplaneError('ProjectNotFound', `project "${project}" does not exist; create it first`, { project });
}

/** Generic CRUD for one kind over its table; the kind's hooks add what is special about it. */
export class ResourceService {
  constructor(
    readonly info: KindInfo,
    readonly table: ResourceTableName,
    readonly hooks: ResourceHooks = {},
    readonly options: ResourceServiceOptions = {},
  ) {}

  toObject(row: ResourceRow): Resource {
    return {
      apiVersion: API_VERSION,
      kind: this.info.kind,
      metadata: {
        name: row.name,
        uid: row.uid,
        project: row.project,
        labels: JSON.parse(row.labels),
        annotations: JSON.parse(row.annotations),
        generation: Number(row.generation),
        resourceVersion: String(row.resource_version),
        createdAt: row.created_at,
      },
      spec: JSON.parse(row.spec),
      status: this.hooks.status ? this.hooks.status(row) : JSON.parse(row.status),
    };
  }

  async getRow(db: Executor, name: string): Promise<ResourceRow> {
    const row = await findByName(db, this.table, name);
    if (!row) throw new EdgeplaneError('NotFound', `${this.info.kind} "${name}" not found`, { kind: this.info.kind, name });
    return row;
  }

  async get(db: Executor, name: string): Promise<Resource> {
    return this.toObject(await this.getRow(db, name));
  }

  async list(db: Executor, q: ListQuery = {}): Promise<{ items: Resource[]; continue?: string }> {
    const limit = Math.min(Math.max(q.limit ?? DEFAULT_LIST_LIMIT, 1), MAX_LIST_LIMIT);
    const reqs = q.labelSelector ? parseLabelSelector(q.labelSelector) : [];
    const fields = q.fieldSelector ? parseFieldSelector(this.info.kind, q.fieldSelector) : [];
    const orderBy = this.options.listOrder;
    const cursorOf = (row: ResourceRow): PageCursor => (orderBy ? { name: row.name, key: String(row[orderBy]) } : { name: row.name });
    let after = q.continue ? decodeContinue(q.continue, !!orderBy) : undefined;
    const items: Resource[] = [];
    let last: ResourceRow | undefined;
    // Field selectors filter in SQL; label selectors in code (labels are JSON): read in batches until the page is full.
    const batch = reqs.length ? Math.max(limit, 200) : limit + 1;
    for (;;) {
      const rows = await listPage(db, this.table, { after, limit: batch, orderBy, fields });
      for (const row of rows) {
        if (reqs.length && !matchesSelector(JSON.parse(row.labels), reqs)) continue;
        if (items.length === limit) return { items, continue: encodeContinue(cursorOf(last!)) };
        items.push(this.toObject(row));
        last = row;
      }
      if (rows.length < batch) return { items };
      after = cursorOf(rows[rows.length - 1]);
    }
  }

  async create(db: Executor, body: unknown, ctx: RequestContext): Promise<Resource> {
    if (!this.info.creatable) throw new EdgeplaneError('MethodNotAllowed', `${this.info.kind} objects cannot be created through the API`);
    const input = parseOrThrow(this.info.input, body, this.info.kind) as Input;
    await requireProject(db, input.metadata.project ?? DEFAULT_PROJECT);
    const prepared = (await this.hooks.prepareCreate?.(db, input, ctx)) ?? {};
    const t = now();
    const row: ResourceRow = {
      name: input.metadata.name,
      uid: randomUUID(),
      project: input.metadata.project ?? DEFAULT_PROJECT,
      labels: json(input.metadata.labels),
      annotations: json(input.metadata.annotations),
      generation: 1,
      resource_version: 1,
      created_at: t,
      updated_at: t,
      spec: json(input.spec),
      status: json(prepared.status),
      ...prepared.columns,
    };
    try {
      await insertRow(db, this.table, row);
    } catch (err) {
      if (isUniqueViolation(err))
        throw new EdgeplaneError('AlreadyExists', `${this.info.kind} "${row.name}" already exists`, { kind: this.info.kind, name: row.name });
      throw err;
    }
    const obj = this.toObject(row);
    // A copy: secrets shown once are added to `obj` below and must never reach watchers.
    ctx.changes?.record({ type: 'ADDED', kind: this.info.kind, object: { ...obj } });
    if (prepared.shownOnce) obj.status = { ...obj.status, ...prepared.shownOnce };
    return obj;
  }

  /** PUT: replaces spec, labels and annotations; honours metadata.resourceVersion when sent. */
  async replace(db: Executor, name: string, body: unknown, ctx: RequestContext): Promise<Resource> {
    const input = parseOrThrow(this.info.input, body, this.info.kind) as Input;
    if (input.metadata.name !== name)
      throw new EdgeplaneError('ValidationFailed', `metadata.name "${input.metadata.name}" does not match the URL name "${name}"`, {
        issues: [{ path: 'metadata.name', message: 'does not match the URL' }],
      });
    const row = await this.getRow(db, name);
    const expected = input.metadata.resourceVersion;
    if (expected !== undefined && expected !== String(row.resource_version)) {
      throw new EdgeplaneError(
        'Conflict',
        `${this.info.kind} "${name}" was modified (resourceVersion ${row.resource_version}, request has ${expected}); read it again and retry`,
        { currentResourceVersion: String(row.resource_version) },
      );
    }
    const specChanged = json(input.spec) !== row.spec;
    const extra = specChanged ? ((await this.hooks.prepareUpdate?.(db, row, input.spec, ctx)) ?? {}) : {};
    const values = {
      labels: json(input.metadata.labels),
      annotations: json(input.metadata.annotations),
      spec: json(input.spec),
      generation: Number(row.generation) + (specChanged ? 1 : 0),
      updated_at: now(),
      ...extra,
    };
    if (!(await updateRow(db, this.table, name, values, Number(row.resource_version)))) {
      throw new EdgeplaneError('Conflict', `${this.info.kind} "${name}" was modified concurrently; read it again and retry`);
    }
    return this.changed(db, name, ctx);
  }

  /**
   * PATCH with a JSON merge patch over metadata (labels, annotations) and spec. A patch that sends
   * metadata.resourceVersion is a precondition (Conflict when the object moved on). One that does not
   * is applied to the object as it is: when a controller's or agent's write (status) lands between
   * reading and writing, the patch is merged again onto the newer object, as Kubernetes' API server
   * does for patches; only the side-effect-free version check is retried.
   */
  async patch(db: Executor, name: string, patch: unknown, ctx: RequestContext): Promise<Resource> {
    if (patch === null || typeof patch !== 'object' || Array.isArray(patch))
      throw new EdgeplaneError('ValidationFailed', 'a merge patch must be a JSON object', { issues: [{ path: '', message: 'expected object' }] });
    const { status: _ignored, ...rest } = patch as Record<string, unknown>;
    const precondition = (rest.metadata as { resourceVersion?: unknown } | undefined)?.resourceVersion !== undefined;
    // In a transaction each attempt runs under a savepoint: a conflict found after the kind's hooks
    // wrote other rows (host claims) rolls those back before the next attempt.
    const savepoints = db.isTransaction;
    for (let attempt = 1; ; attempt++) {
      if (savepoints) await savepoint.set(db, 'edgeplane_patch');
      const current = await this.get(db, name);
      const base = {
        metadata: { name, labels: current.metadata.labels, annotations: current.metadata.annotations, resourceVersion: current.metadata.resourceVersion },
        spec: current.spec,
      };
      const merged = applyMergePatch(base, rest) as Input;
      try {
        const patched = await this.replace(db, name, merged, ctx);
        if (savepoints) await savepoint.release(db, 'edgeplane_patch');
        return patched;
      } catch (err) {
        const conflict = err instanceof EdgeplaneError && err.code === 'Conflict';
        // Outside a transaction only the check made before any write may be retried.
        const retryable = conflict && (savepoints || err.details?.currentResourceVersion !== undefined);
        if (precondition || !retryable || attempt >= PATCH_ATTEMPTS) throw err;
        if (savepoints) await savepoint.rollback(db, 'edgeplane_patch');
      }
    }
  }

  async delete(db: Executor, name: string, ctx: RequestContext): Promise<Resource> {
    const row = await this.getRow(db, name);
    await this.hooks.beforeDelete?.(db, row, ctx);
    await deleteRow(db, this.table, name);
    const obj = this.toObject(row);
    ctx.changes?.record({ type: 'DELETED', kind: this.info.kind, object: obj });
    return obj;
  }

  /** True when the kind has an action `verb`; own properties only, so `constructor` or `valueOf` are no actions. */
  hasAction(verb: string): boolean {
    return !!this.hooks.actions && Object.hasOwn(this.hooks.actions, verb);
  }

  /** Throws NotFound unless the kind has an action `verb`. */
  requireAction(verb: string): void {
    if (!this.hasAction(verb))
      throw new EdgeplaneError('NotFound', `${this.info.kind} has no action "${verb}"`, { actions: Object.keys(this.hooks.actions ?? {}) });
  }

  async action(db: Executor, name: string, verb: string, ctx: RequestContext, body?: unknown): Promise<Resource> {
    this.requireAction(verb);
    const fn = this.hooks.actions![verb];
    await fn(db, await this.getRow(db, name), ctx, body);
    return this.changed(db, name, ctx);
  }

  /** Reads the object after a write and records the change for watchers. */
  private async changed(db: Executor, name: string, ctx: RequestContext): Promise<Resource> {
    const obj = await this.get(db, name);
    ctx.changes?.record({ type: 'MODIFIED', kind: this.info.kind, object: obj });
    return obj;
  }

  async touch(db: Executor, name: string, values: Record<string, unknown>): Promise<void> {
    await updateRow(db, this.table, name, { ...values, updated_at: now() });
  }
}
