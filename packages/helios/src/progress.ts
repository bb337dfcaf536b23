/**
 * The progress log: an append-only log of JSON records. This is a file-backed log with the Loglet shape
 * (append(batch) -> positions, read(from, to), checkTail()); @strata/vlog had not landed when this was
 * written. A resolved append is on disk (fsync). A torn last line (a crash mid-append) is dropped on open.
 *
 *   position:  0        1        2              tail
 *              [block]  [block]  [node, wm ...]  | next append goes here
 */
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, truncateSync, writeSync } from 'node:fs';

export type ProgressRecord =
  | {
      t: 'block';
      id: string;
      key: string;
      source: string;
      from: number;
      to: number;
      rows: number;
      rawBytes: number;
      bytes: number;
      min: (string | number | null)[];
      max: (string | number | null)[];
      leaf?: string;
    }
  | { t: 'node'; level: number; from: number; to: number; key: string; keys: number; bytes: number }
  | { t: 'wm'; level: number; to: number }
  | {
      t: 'rewrite';
      seq: number;
      key: string;
      rows: number;
      bytes: number;
      min: (string | number | null)[];
      max: (string | number | null)[];
    }
  | { t: 'erase'; where: string; blocks: number[]; rows: number; at: number };

/** Bound on one record's encoded size. */
export const recordBytesMax = 1 << 20;

export class ProgressLog {
  private records: ProgressRecord[] = [];
  private fd: number;

  private constructor(readonly path: string) {
    let text = existsSync(path) ? readFileSync(path, 'utf8') : '';
    const lastNl = text.lastIndexOf('\n');
    if (lastNl + 1 < text.length) {
      // Torn tail: the append that wrote it never resolved, so nobody was acknowledged for it.
      truncateSync(path, Buffer.byteLength(text.slice(0, lastNl + 1)));
      text = text.slice(0, lastNl + 1);
    }
    let lineNo = 0;
    for (const line of text.split('\n')) {
      lineNo++;
      if (line === '') continue;
      try {
        this.records.push(JSON.parse(line) as ProgressRecord);
      } catch {
        throw new Error(`${path}:${lineNo}: progress log record is not JSON (corrupt log)`);
      }
    }
    this.fd = openSync(path, 'a');
  }

  static open(path: string): ProgressLog {
    return new ProgressLog(path);
  }

  /** Appends records atomically (one write, then fsync); resolves with their positions. */
  append(batch: ProgressRecord[]): number[] {
    const text = batch.map((r) => JSON.stringify(r)).join('\n') + '\n';
    for (const r of batch) {
      const n = JSON.stringify(r).length;
      if (n > recordBytesMax) throw new Error(`progress record of ${n} bytes is over recordBytesMax`);
    }
    const buf = Buffer.from(text);
    let o = 0;
    while (o < buf.length) o += writeSync(this.fd, buf, o);
    fsyncSync(this.fd);
    const first = this.records.length;
    this.records.push(...batch);
    return batch.map((_, i) => first + i);
  }

  /** Records in [from, to). */
  read(from: number, to = this.records.length): ProgressRecord[] {
    return this.records.slice(from, to);
  }

  checkTail(): { tail: number; sealed: boolean } {
    return { tail: this.records.length, sealed: false };
  }

  close(): void {
    closeSync(this.fd);
  }
}
