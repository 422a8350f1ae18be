import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';

export interface RecordingHeader {
  id: string;
  host: string;
  user: string;
  kind: string;
  reason: string;
  cols: number;
  rows: number;
}

/**
 * Writes one session as an asciicast v2 file (https://docs.asciinema.org/manual/asciicast/v2/):
 * a JSON header line, then one `[seconds, code, data]` line per event: "o" output, "i" input,
 * "r" resize ("COLSxROWS"), "m" marker. Bytes are decoded as UTF-8 per stream, so a character split
 * across two chunks is written whole. Writes past `maxBytes` are dropped after one marker saying so,
 * so a session that prints gigabytes cannot fill the server's disk.
 */
export class Recording {
  readonly path: string;
  private readonly out: WriteStream;
  private readonly started = Date.now();
  private readonly decoders = new Map<string, StringDecoder>();
  private written = 0;
  private truncated = false;
  private closed = false;

  constructor(
    dir: string,
    header: RecordingHeader,
    private readonly maxBytes: number,
  ) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.path = join(dir, `${header.id}.cast`);
    this.out = createWriteStream(this.path, { mode: 0o600 });
    this.out.on('error', () => {}); // a failing disk must not take the session down; the gap shows in the file
    this.line(
      JSON.stringify({
        version: 2,
        width: header.cols,
        height: header.rows,
        timestamp: Math.floor(this.started / 1000),
        title: `${header.kind} on ${header.host} by ${header.user}: ${header.reason}`,
        env: { TERM: 'xterm-256color', SHELL: '/bin/sh' },
      }),
    );
  }

  private line(text: string, done?: () => void): void {
    if (this.closed) {
      done?.();
      return;
    }
    this.written += text.length + 1;
    // The callback fires once the data was handed to the OS: the broker acks only then, so a slow disk
    // slows the session instead of growing the write buffer.
    this.out.write(`${text}\n`, () => done?.());
  }

  private event(code: string, data: string, done?: () => void): void {
    if (this.truncated) {
      done?.();
      return;
    }
    if (this.written + data.length > this.maxBytes) {
      this.truncated = true;
      this.line(JSON.stringify([this.elapsed(), 'm', `recording truncated at ${this.maxBytes} bytes`]), done);
      return;
    }
    this.line(JSON.stringify([this.elapsed(), code, data]), done);
  }

  private elapsed(): number {
    return Math.round(Date.now() - this.started) / 1000;
  }

  private decode(stream: string, bytes: Buffer): string {
    let d = this.decoders.get(stream);
    if (!d) {
      d = new StringDecoder('utf8');
      this.decoders.set(stream, d);
    }
    return d.write(bytes);
  }

  output(stream: string, bytes: Buffer, done?: () => void): void {
    this.event('o', this.decode(stream, bytes), done);
  }
  input(bytes: Buffer): void {
    this.event('i', this.decode('in', bytes));
  }
  resize(cols: number, rows: number): void {
    this.event('r', `${cols}x${rows}`);
  }
  marker(text: string): void {
    this.event('m', text);
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    return new Promise((resolve) => this.out.end(() => resolve()));
  }
}
