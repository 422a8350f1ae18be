export {
  deltaTag,
  type FoundDelta,
  type FoundDeltaManifest,
  findDelta,
  findDeltaManifest,
  loadIndex,
  type PatchLayer,
  parseDeltaManifest,
  referrersTag,
} from './artifact.js';
export { type AssembleOptions, assembleSlotImage, type DeltaProgress, type FetchPackRange } from './assemble.js';
export { type ChunkIndex, DELTA_ARTIFACT_TYPE, decodeIndex, encodeIndex } from './chunk-index.js';
export { applyPatch, fetchPatch, makePatch, sha256Prefix } from './patch.js';
export { type PublishDeltaOptions, type PublishedDelta, publishDelta } from './publish.js';
export { buildSlotImage, reproducibleMkfsArgs, reproducibleMkfsEnv } from './slot-image.js';
export { decodeVcdiff } from './vcdiff.js';
