import { z } from 'zod';
import { NonNegativeInt32, noControlChars, PlainString, SafeText, TIMESTAMP_MAX_LENGTH } from './text.js';

export const API_VERSION = 'edgeplane.io/v1';

/** DNS-1123 label: what Kubernetes accepts as a name, so names survive a trip into kubectl. */
export const Name = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be lower-case letters, digits and "-", starting and ending with a letter or digit');

const labelKey = z
  .string()
  .min(1)
  .max(253)
  .regex(/^([a-z0-9.-]+\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/, 'invalid label key');
const labelValue = z
  .string()
  .max(63)
  .regex(/^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/, 'invalid label value');

export const Labels = z.record(labelKey, labelValue);
export const Annotations = z.record(PlainString.min(1).max(253), SafeText.max(65536));
/** ISO-8601 with an offset; bounded in length (any sub-second precision fits, a runaway fraction does not). */
export const Timestamp = z.iso.datetime({ offset: true }).max(TIMESTAMP_MAX_LENGTH);

export const ObjectMeta = z.object({
  name: Name,
  uid: z.string(),
  project: Name,
  labels: Labels,
  annotations: Annotations,
  generation: z.number().int().nonnegative(),
  resourceVersion: z.string(),
  createdAt: Timestamp,
});
export type ObjectMeta = z.infer<typeof ObjectMeta>;

/** What a client may send: server-owned fields are accepted (round-trip of `get -o yaml`) but only resourceVersion is honoured. */
export const ObjectMetaInput = z.object({
  name: Name,
  uid: PlainString.max(64).optional(),
  project: Name.optional(),
  labels: Labels.optional(),
  annotations: Annotations.optional(),
  generation: NonNegativeInt32.optional(),
  resourceVersion: PlainString.max(32).optional(),
  createdAt: Timestamp.optional(),
});
export type ObjectMetaInput = z.infer<typeof ObjectMetaInput>;

export const Condition = z.object({
  type: PlainString,
  status: z.enum(['True', 'False', 'Unknown']),
  reason: PlainString.optional(),
  message: SafeText.optional(),
  lastTransitionTime: Timestamp.optional(),
});
export type Condition = z.infer<typeof Condition>;

/** Full resource as the API returns it. */
export function resourceSchema<K extends string, S extends z.ZodType, T extends z.ZodType>(kind: K, spec: S, status: T) {
  return z.object({
    apiVersion: z.literal(API_VERSION),
    kind: z.literal(kind),
    metadata: ObjectMeta,
    spec,
    status,
  });
}

/**
 * Resource as a client sends it (POST, PUT, apply). Unknown top-level keys are refused, and so are
 * control characters anywhere in it (tab, newline and CR are allowed in string values: free text).
 */
export function resourceInputSchema<K extends string, S extends z.ZodType>(kind: K, spec: S) {
  const schema = z
    .object({
      apiVersion: z.literal(API_VERSION).optional(),
      kind: z.literal(kind).optional(),
      metadata: ObjectMetaInput,
      spec,
      status: z.unknown().optional(),
    })
    .strict();
  return noControlChars(schema);
}

export function listSchema<T extends z.ZodType>(kind: string, item: T) {
  return z.object({
    apiVersion: z.literal(API_VERSION),
    kind: z.literal(`${kind}List`),
    items: z.array(item),
    metadata: z.object({ continue: z.string().optional() }),
  });
}
