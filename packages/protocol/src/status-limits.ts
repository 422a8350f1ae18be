import { z } from 'zod';

/**
 * Bounds of what an agent reports about itself (it lands in host status, which every host list
 * carries). Identifiers (components, versions, names) are short. Free text is kept up to `text`
 * characters; longer text up to `textHardMax` is clipped (ending in "…") rather than refused, because
 * the agent validates its own status with these schemas and a failing command's long stderr in one
 * manager error must not void the whole status. Anything longer is refused (ValidationFailed).
 */
export const STATUS_LIMITS = { identifier: 256, text: 4096, textHardMax: 64 * 1024, kubeconfig: 64 * 1024 } as const;

/** A short one-line value an agent reports: a component, version, reason or name. */
export const StatusIdentifier = z.string().max(STATUS_LIMITS.identifier);
/** Free text an agent reports (messages): clipped to STATUS_LIMITS.text, refused beyond textHardMax. */
export const StatusText = z
  .string()
  .max(STATUS_LIMITS.textHardMax)
  .transform((s) => (s.length > STATUS_LIMITS.text ? `${s.slice(0, STATUS_LIMITS.text - 1)}…` : s));
