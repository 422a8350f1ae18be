import { open } from 'node:fs/promises';
import { OciError } from '../types.js';

/**
 * A VCDIFF decoder (RFC 3284) that reads the source through positioned reads, so the source may be
 * a block device: the active slot partition. xdelta3's own decoder treats every source that is not a
 * regular file as a stream (xdelta3-main.h main_file_stat: "! S_ISREG -> ESPIPE") and then fails
 * with "non-seekable source in decode" as soon as a copy reaches back further than its source
 * buffer (-B); giving it a buffer of the slot's size costs the slot's size in memory. The npm
 * decoders hold source and target in memory too. So this one is written here: the patches are made
 * by Debian's xdelta3 (publish.ts) with secondary compression off (`-S none`), which leaves plain
 * RFC 3284 with the default code table, plus xdelta3's two extensions handled below (an application
 * header in the file header, an Adler-32 of each target window).
 *
 * The result is checked by the caller against the slot image's sha256: a decoding mistake or a
 * wrong source ends in a mismatch, never in a slot that is taken for the right one.
 */

const MAGIC = Buffer.from([0xd6, 0xc3, 0xc4, 0x00]);
const VCD_DECOMPRESS = 0x01;
const VCD_CODETABLE = 0x02;
const VCD_APPHEADER = 0x04; // xdelta3 extension (xdelta3.h)
const VCD_SOURCE = 0x01;
const VCD_TARGET = 0x02;
const VCD_ADLER32 = 0x04; // xdelta3 extension: Adler-32 of the target window after the section lengths
/** Largest target window accepted (xdelta3 writes at most 16 MiB, -W). */
const MAX_WINDOW = 64 * 1024 * 1024;

const NOOP = 0;
const ADD = 1;
const RUN = 2;
const COPY = 3;
interface Inst {
  type: number;
  size: number;
  mode: number;
}

/** The default instruction code table of RFC 3284 section 5.6: 256 opcodes, each one or two instructions. */
const CODE_TABLE: [Inst, Inst][] = (() => {
  const none: Inst = { type: NOOP, size: 0, mode: 0 };
  const t: [Inst, Inst][] = [];
  t.push([{ type: RUN, size: 0, mode: 0 }, none]);
  for (let s = 0; s <= 17; s++) t.push([{ type: ADD, size: s, mode: 0 }, none]);
  for (let m = 0; m <= 8; m++) {
    t.push([{ type: COPY, size: 0, mode: m }, none]);
    for (let s = 4; s <= 18; s++) t.push([{ type: COPY, size: s, mode: m }, none]);
  }
  for (let m = 0; m <= 5; m++)
    for (let a = 1; a <= 4; a++)
      for (let c = 4; c <= 6; c++)
        t.push([
          { type: ADD, size: a, mode: 0 },
          { type: COPY, size: c, mode: m },
        ]);
  for (let m = 6; m <= 8; m++)
    for (let a = 1; a <= 4; a++)
      t.push([
        { type: ADD, size: a, mode: 0 },
        { type: COPY, size: 4, mode: m },
      ]);
  for (let m = 0; m <= 8; m++)
    t.push([
      { type: COPY, size: 4, mode: m },
      { type: ADD, size: 1, mode: 0 },
    ]);
  return t;
})();

const S_NEAR = 4;
const S_SAME = 3;

class Cursor {
  constructor(
    readonly buf: Buffer,
    public pos: number,
    readonly end: number,
    readonly what: string,
  ) {}
  byte(): number {
    if (this.pos >= this.end) throw bad(`${this.what} ends early`);
    return this.buf[this.pos++];
  }
  /** RFC 3284 section 2: base-128, most significant digit first, high bit = more digits. */
  int(): number {
    let n = 0;
    for (let i = 0; i < 9; i++) {
      const b = this.byte();
      n = n * 128 + (b & 0x7f);
      if (!(b & 0x80)) {
        if (!Number.isSafeInteger(n)) break;
        return n;
      }
    }
    throw bad(`${this.what}: integer out of range`);
  }
  take(n: number): Buffer {
    if (n > this.end - this.pos) throw bad(`${this.what} ends early`);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
}

function bad(why: string): OciError {
  return new OciError('BadManifest', `patch: ${why}`);
}

/** Reads the source in 1 MiB blocks, keeping the last few (copies cluster). */
class SourceReader {
  private readonly blocks = new Map<number, Buffer>();
  private static readonly BLOCK = 1024 * 1024;
  private static readonly KEEP = 32;
  constructor(
    private readonly fh: Awaited<ReturnType<typeof open>>,
    readonly size: number,
  ) {}

  async read(pos: number, len: number, out: Buffer, at: number): Promise<void> {
    if (pos + len > this.size) throw bad(`a copy reads source bytes ${pos}..${pos + len}, past its ${this.size} bytes`);
    while (len > 0) {
      const n = Math.floor(pos / SourceReader.BLOCK);
      const block = await this.block(n);
      const off = pos - n * SourceReader.BLOCK;
      const k = Math.min(len, block.length - off);
      if (k <= 0) throw bad(`the source is shorter than ${pos + len} bytes`);
      block.copy(out, at, off, off + k);
      pos += k;
      at += k;
      len -= k;
    }
  }

  private async block(n: number): Promise<Buffer> {
    const hit = this.blocks.get(n);
    if (hit) {
      this.blocks.delete(n);
      this.blocks.set(n, hit);
      return hit;
    }
    const start = n * SourceReader.BLOCK;
    const buf = Buffer.alloc(Math.min(SourceReader.BLOCK, this.size - start));
    let got = 0;
    while (got < buf.length) {
      const { bytesRead } = await this.fh.read(buf, got, buf.length - got, start + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    const block = buf.subarray(0, got);
    this.blocks.set(n, block);
    if (this.blocks.size > SourceReader.KEEP) this.blocks.delete(this.blocks.keys().next().value as number);
    return block;
  }
}

export interface DecodeOptions {
  /** The VCDIFF file (uncompressed). */
  patch: string;
  /** The source: an image file or block device, of which the first `sourceSize` bytes are the source. */
  source: string;
  sourceSize: number;
  /** Receives the target, window by window, in order. */
  write: (data: Buffer) => Promise<void>;
  signal?: AbortSignal;
}

/** Decodes a VCDIFF; returns the number of target bytes written. Throws OciError('BadManifest') on a malformed patch. */
export async function decodeVcdiff(options: DecodeOptions): Promise<number> {
  const patch = await open(options.patch, 'r');
  const source = await open(options.source, 'r');
  try {
    const size = (await patch.stat()).size;
    const src = new SourceReader(source, options.sourceSize);
    const readAt = async (pos: number, len: number): Promise<Buffer> => {
      const buf = Buffer.alloc(Math.max(0, Math.min(len, size - pos)));
      let got = 0;
      while (got < buf.length) {
        const { bytesRead } = await patch.read(buf, got, buf.length - got, pos + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      return buf.subarray(0, got);
    };

    // File header: magic, indicator, [secondary compressor id], [code table], [xdelta3 application header].
    const head = await readAt(0, 4096);
    const h = new Cursor(head, 0, head.length, 'the header');
    if (!h.take(4).equals(MAGIC)) throw bad('not a VCDIFF (RFC 3284) file');
    const ind = h.byte();
    if (ind & VCD_DECOMPRESS) throw bad('secondary compression is not supported (make patches with xdelta3 -S none)');
    if (ind & VCD_CODETABLE) throw bad('application-defined code tables are not supported');
    let pos = h.pos;
    if (ind & VCD_APPHEADER) {
      const len = h.int();
      pos = h.pos + len;
    }

    let written = 0;
    while (pos < size) {
      options.signal?.throwIfAborted();
      const wh = await readAt(pos, 64);
      const w = new Cursor(wh, 0, wh.length, 'a window header');
      const win = w.byte();
      if (win & VCD_TARGET) throw bad('windows that copy from earlier target data (VCD_TARGET) are not supported');
      let segLen = 0;
      let segPos = 0;
      if (win & VCD_SOURCE) {
        segLen = w.int();
        segPos = w.int();
        if (segPos + segLen > options.sourceSize)
          throw bad(`a window's source segment ends at ${segPos + segLen}, past the source's ${options.sourceSize} bytes`);
      }
      const deltaLen = w.int();
      // A window's encoding is never much larger than its target (ADD data plus a few bytes per instruction).
      if (deltaLen > 3 * MAX_WINDOW) throw bad(`a window encoding of ${deltaLen} bytes is too large`);
      const bodyStart = pos + w.pos;
      const body = await readAt(bodyStart, deltaLen);
      if (body.length !== deltaLen) throw bad('the file ends inside a window');
      pos = bodyStart + deltaLen;
      const d = new Cursor(body, 0, body.length, 'a window');
      const targetLen = d.int();
      if (targetLen > MAX_WINDOW) throw bad(`a target window of ${targetLen} bytes is too large`);
      if (d.byte() !== 0) throw bad('compressed sections are not supported (make patches with xdelta3 -S none)');
      const dataLen = d.int();
      const instLen = d.int();
      const addrLen = d.int();
      if (win & VCD_ADLER32) d.take(4); // the caller checks the whole target's sha256
      const data = new Cursor(body, d.pos, d.pos + dataLen, 'the data section');
      const inst = new Cursor(body, data.end, data.end + instLen, 'the instruction section');
      const addr = new Cursor(body, inst.end, inst.end + addrLen, 'the address section');
      if (addr.end !== body.length) throw bad('section lengths do not add up to the window');

      const out = Buffer.alloc(targetLen);
      let t = 0;
      const near = new Array<number>(S_NEAR).fill(0);
      let nextNear = 0;
      const same = new Array<number>(S_SAME * 256).fill(0);
      while (inst.pos < inst.end) {
        const pair = CODE_TABLE[inst.byte()];
        const sizes = pair.map((i) => (i.type !== NOOP && i.size === 0 ? inst.int() : i.size));
        for (let k = 0; k < 2; k++) {
          const { type, mode } = pair[k];
          const n = sizes[k];
          if (type === NOOP) continue;
          if (t + n > targetLen) throw bad('instructions write past the target window');
          if (type === ADD) {
            data.take(n).copy(out, t);
          } else if (type === RUN) {
            out.fill(data.byte(), t, t + n);
          } else {
            // Address cache, RFC 3284 section 5.3.
            const here = segLen + t;
            let a: number;
            if (mode === 0) a = addr.int();
            else if (mode === 1) a = here - addr.int();
            else if (mode < 2 + S_NEAR) a = near[mode - 2] + addr.int();
            else a = same[(mode - 2 - S_NEAR) * 256 + addr.byte()];
            if (a < 0 || a >= here) throw bad(`a copy from address ${a} is outside the window (here ${here})`);
            near[nextNear] = a;
            nextNear = (nextNear + 1) % S_NEAR;
            same[a % (S_SAME * 256)] = a;
            let left = n;
            let from = a;
            if (from < segLen) {
              const k2 = Math.min(left, segLen - from);
              await src.read(segPos + from, k2, out, t);
              t += k2;
              left -= k2;
              from += k2;
            }
            // From the target window itself; may overlap what it writes (byte by byte, as the RFC says).
            for (let i = 0; i < left; i++) out[t + i] = out[from - segLen + i];
            t += left;
            continue;
          }
          t += n;
        }
      }
      if (t !== targetLen) throw bad(`a window decodes to ${t} bytes, its header says ${targetLen}`);
      if (data.pos !== data.end || addr.pos !== addr.end) throw bad('a window leaves data or addresses unused');
      await options.write(out);
      written += targetLen;
    }
    return written;
  } finally {
    await patch.close();
    await source.close();
  }
}
