// Types of build-dist.mjs for the TypeScript that imports it (packages/image/src/agent-bundle.ts).
export declare const CLI_ENTRY: string;
export declare const CLI_DIST: string;
export declare const EXTERNAL: string[];
export declare function bundleCli(outdir: string, options?: { minify?: boolean }): Promise<void>;
export declare function copyNativeModules(nodeModules: string, names: string[]): void;
export declare function nativePlatform(): { platform: string; arch: string; node: string; nodeAbi: string };
export declare function installAgent(dest: string, version: string, options?: { prebuilt?: string }): Promise<void>;
export declare function buildCli(options?: { force?: boolean }): Promise<void>;
export declare function pack(): Promise<void>;
