export {
  assertFits,
  type BuildImageOptions,
  type BuiltImage,
  buildImage,
  DEFAULT_KERNEL_ARGS,
  grubConfig,
  SLOT_HEADROOM,
  slotMiBFor,
} from './build.js';
export { DEFAULT_PACKAGES_FILE, defaultCacheDir, readPackageList } from './debian.js';
export { type DiskLayout, diskLayout, type Partition } from './disk-layout.js';
export { DEFAULT_MODULES } from './kernel.js';
export { KUBERNETES_ANNOTATION, type KubernetesBinary, type KubernetesRecord, parseKubernetesFlag } from './kubernetes.js';
export { MASKED_UNITS, OS2_INITRAMFS_MODULES, PERSISTENT_BINDS, PERSISTENT_OVERLAYS } from './os2.js';
export { ImageBuildError } from './tools.js';
