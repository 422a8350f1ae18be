// Preload (`node --import tsx --import ./test/support/module-log.mjs ...`) that appends the URL of
// every ES module the process resolves to the file named by EDGEPLANE_MODULE_LOG: what tests of
// the CLI's start-up cost assert on. Registered after tsx, so it sees tsx's final resolution.
import { register } from 'node:module';

register('./module-log-hooks.mjs', import.meta.url);
