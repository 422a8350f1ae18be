export { type BuildImageOptions, type BuiltImage, buildImage, DEFAULT_KERNEL_ARGS, grubConfig } from './build.js';
export { type DiskLayout, diskLayout, type Partition } from './disk-layout.js';
export { DEFAULT_MODULES } from './kernel.js';
export { ImageBuildError } from './tools.js';
