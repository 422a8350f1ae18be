import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

/** jsQR is a CommonJS bundle whose module.exports is the decoder (its types call it `default`). */
const jsQR: (rgba: Uint8ClampedArray, width: number, height: number) => { data: string } | null = createRequire(import.meta.url)('jsqr');

/**
 * The text on a QEMU screen dump. Under UEFI the guest's tty0 is a graphical framebuffer console
 * (efifb + fbcon: light grey on black, the 8x16 VGA font), not VGA text mode, so there is no text
 * buffer to read: the dump is OCRed with tesseract (Debian tesseract-ocr). The image is turned into
 * dark text on white and scaled up 3x (nearest neighbour, so glyph edges stay sharp) first: tesseract
 * reads light-on-dark, 16-pixel-high text poorly as it is.
 */
export function ocrScreen(ppmFile: string, workPrefix: string): string {
  const pgm = `${workPrefix}.pgm`;
  writeFileSync(pgm, darkOnLight(readFileSync(ppmFile), 3));
  // --psm 6: one uniform block of text (a console), lines kept in order.
  return execFileSync('tesseract', [pgm, 'stdout', '--psm', '6'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export function tesseractInstalled(): boolean {
  return !spawnSync('tesseract', ['--version']).error;
}

/**
 * The QR code on a QEMU screen dump, decoded (jsQR): the pairing banner draws the claim URL as a QR
 * code under the text, which is what a technician's phone reads. Undefined when none is found.
 */
export function decodeScreenQr(ppmFile: string): string | undefined {
  const { w, h, i, ppm } = readPpm(readFileSync(ppmFile));
  const rgba = new Uint8ClampedArray(w * h * 4);
  for (let p = 0; p < w * h; p++) {
    rgba.set(ppm.subarray(i + p * 3, i + p * 3 + 3), p * 4);
    rgba[p * 4 + 3] = 255;
  }
  return jsQR(rgba, w, h)?.data;
}

/** A binary PPM (P6, what QEMU's screendump writes): its size and where its pixels start. */
function readPpm(ppm: Buffer): { w: number; h: number; i: number; ppm: Buffer } {
  // Header: "P6" whitespace width whitespace height whitespace maxval, one whitespace byte, pixels.
  const fields: string[] = [];
  let i = 0;
  while (fields.length < 4) {
    while (/\s/.test(String.fromCharCode(ppm[i]))) i++;
    let field = '';
    while (!/\s/.test(String.fromCharCode(ppm[i]))) field += String.fromCharCode(ppm[i++]);
    fields.push(field);
  }
  i++;
  if (fields[0] !== 'P6') throw new Error(`screendump is not a binary PPM (${fields[0]})`);
  return { w: Number(fields[1]), h: Number(fields[2]), i, ppm };
}

/** A binary PPM as a binary PGM: inverted, thresholded, scaled `k` times. */
function darkOnLight(ppmBytes: Buffer, k: number): Buffer {
  const { w, h, i, ppm } = readPpm(ppmBytes);
  const out = Buffer.alloc(w * k * h * k);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const p = i + (y * w + x) * 3;
      const lit = ppm[p] + ppm[p + 1] + ppm[p + 2] > 3 * 80;
      const v = lit ? 0 : 255;
      for (let dy = 0; dy < k; dy++) out.fill(v, (y * k + dy) * w * k + x * k, (y * k + dy) * w * k + x * k + k);
    }
  }
  return Buffer.concat([Buffer.from(`P5\n${w * k} ${h * k}\n255\n`), out]);
}
