import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { type WrittenImage, writeOciImage } from './image-writer.js';

/**
 * The Edgeplane OS image convention (docs/architecture.md "OS images and A/B slots"): an OCI image
 * whose layers hold a complete root filesystem, with
 *  - /etc/os-release carrying at least NAME and VERSION_ID, and
 *  - /usr/lib/edgeplane/image.json {name, version} naming the image, and optionally
 *    `slotFilesystem`: what a slot holding it is written as, 'ext4' (the default: mkfs.ext4 -d) or
 *    'squashfs' (Edgeplane OS 2: compressed, read-only; device/linux/squashfs.ts).
 */
export const IMAGE_INFO_PATH = 'usr/lib/edgeplane/image.json';
export const ImageInfo = z.object({
  name: z.string().min(1),
  version: z.string().min(1),
  slotFilesystem: z.enum(['ext4', 'squashfs']).optional(),
});
export type ImageInfo = z.infer<typeof ImageInfo>;

/** Reads image.json from an extracted root filesystem; undefined when the tree does not follow the convention. */
export async function readImageInfo(rootfs: string): Promise<ImageInfo | undefined> {
  const text = await readFile(join(rootfs, IMAGE_INFO_PATH), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    const parsed = ImageInfo.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

export interface OsImageOptions {
  layoutDir: string;
  tag: string;
  name: string;
  version: string;
  /** Extra files, path (relative to /) -> content. */
  files?: Record<string, string>;
  arch?: string;
}

/** Builds a (tiny) OS image following the convention into an OCI layout. */
export async function writeOsImage(options: OsImageOptions): Promise<WrittenImage> {
  const rootfs = await mkdtemp(join(tmpdir(), 'ep-osimage-'));
  try {
    const files: Record<string, string> = {
      'etc/os-release': `NAME="${options.name}"\nID=edgeplane\nVERSION_ID=${options.version}\nPRETTY_NAME="${options.name} ${options.version}"\n`,
      [IMAGE_INFO_PATH]: `${JSON.stringify({ name: options.name, version: options.version })}\n`,
      ...options.files,
    };
    for (const [path, content] of Object.entries(files)) {
      await mkdir(dirname(join(rootfs, path)), { recursive: true });
      await writeFile(join(rootfs, path), content);
    }
    return await writeOciImage({
      rootfs,
      layoutDir: options.layoutDir,
      tag: options.tag,
      arch: options.arch,
      labels: { 'org.opencontainers.image.title': options.name, 'org.opencontainers.image.version': options.version },
    });
  } finally {
    await rm(rootfs, { recursive: true, force: true });
  }
}
