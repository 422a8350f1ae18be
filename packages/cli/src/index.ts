export { ApiClient, ApiError, NetworkError, type Resource, type ResourceList } from './api-client.js';
export { pushLayout } from './commands/image-options.js';
export { type CliConfig, type Context, configPath, loadConfig, resolveTarget, saveConfig } from './config.js';
export { CliError, renderError } from './errors.js';
export type { CliIo, OutStream } from './io.js';
export { main } from './main.js';
export { buildProgram, cliVersion } from './program.js';
