export { buildApp, SERVER_VERSION } from './app.js';
export { type AdminRecovery, recoverAdmin, resetAdminToken } from './bootstrap.js';
export type { RunningServer, ServerOptions } from './options.js';
export { startServer } from './server.js';
export { openStore, type Store } from './store/db.js';
export { migrateToLatest } from './store/migrations.js';
