import type { TestProject } from 'vitest/node';
import { startEmbeddedPostgres } from './embedded-postgres.js';
import { startLibvirtd } from './libvirtd.js';

/**
 * Starts one embedded PostgreSQL for the whole run (each test gets its own database, see db.ts) and
 * libvirt's QEMU daemon when it is installed but not running (the real-hypervisor tests).
 */
export default async function setup(project: TestProject) {
  const stopLibvirtd = await startLibvirtd();
  const pg = await startEmbeddedPostgres('edgeplane-pg-');
  project.provide('postgresUrl', pg.url);
  return async () => {
    stopLibvirtd();
    await pg.stop();
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    postgresUrl: string;
  }
}
