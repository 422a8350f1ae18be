import { z } from 'zod';

/** Hardware and OS facts an agent reports at registration and in `hello`. */
export const Inventory = z.object({
  hostname: z.string().max(253).default(''),
  machineId: z.string().max(128).default(''),
  dmi: z
    .object({
      productUuid: z.string().max(128).optional(),
      vendor: z.string().max(256).optional(),
      productName: z.string().max(256).optional(),
      serial: z.string().max(256).optional(),
    })
    .default({}),
  cpu: z.object({
    model: z.string().max(256).default(''),
    cores: z.number().int().nonnegative(),
    arch: z.string().max(32).default(''),
  }),
  memoryBytes: z.number().int().nonnegative(),
  disks: z
    .array(
      z.object({
        name: z.string().max(64),
        sizeBytes: z.number().int().nonnegative(),
        model: z.string().max(256).optional(),
        rotational: z.boolean().optional(),
      }),
    )
    .max(256)
    .default([]),
  nics: z
    .array(z.object({ name: z.string().max(64), mac: z.string().max(64).default(''), addresses: z.array(z.string().max(64)).max(64).default([]) }))
    .max(256)
    .default([]),
  os: z
    .object({ name: z.string().max(256).default(''), version: z.string().max(128).default(''), kernel: z.string().max(256).default('') })
    .default({ name: '', version: '', kernel: '' }),
  /** True when the inventory comes from a simulated device (see docs/architecture.md). */
  simulated: z.boolean().optional(),
});
export type Inventory = z.infer<typeof Inventory>;
