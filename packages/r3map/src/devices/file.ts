import { type FileHandle, open, stat } from 'node:fs/promises';
import { type BlockDevice, checkRange } from '../device.js';

/** `trim` reads and zeros a file in blocks of this many bytes, */
const trimBlockBytes = 1 << 20;
/** and writes zeros over the pieces of this many bytes that are not zeros already. */
const trimCheckBytes = 4096;

/** A device backed by a file (or an existing block device node); its size is the file's size. */
export class FileDevice implements BlockDevice {
  private constructor(
    private readonly fh: FileHandle,
    readonly size: number,
    readonly readOnly: boolean,
  ) {}

  /** Opens `path`; with `create`, creates or resizes it to `size` bytes (sparse). */
  static async open(
    path: string,
    opts: { readOnly?: boolean; create?: boolean; size?: number } = {},
  ): Promise<FileDevice> {
    if (opts.create) {
      const fh = await open(path, 'a+');
      await fh.close();
    }
    const fh = await open(path, opts.readOnly ? 'r' : 'r+');
    try {
      if (opts.create && opts.size !== undefined) await fh.truncate(opts.size);
      const size = (await stat(path)).size;
      return new FileDevice(fh, size, opts.readOnly === true);
    } catch (e) {
      // a size the file system refuses (EFBIG) left the file open
      await fh.close();
      throw e;
    }
  }

  async readAt(offset: number, length: number): Promise<Uint8Array> {
    const out = Buffer.allocUnsafe(length);
    await this.readInto(offset, out);
    return out;
  }

  async readInto(offset: number, into: Uint8Array): Promise<void> {
    const length = into.length;
    checkRange(this.size, offset, length, 'read');
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.fh.read(into, done, length - done, offset + done);
      if (bytesRead === 0) {
        into.fill(0, done);
        break;
      }
      done += bytesRead;
    }
  }

  async writeAt(offset: number, bytes: Uint8Array, opts: { fua?: boolean } = {}): Promise<void> {
    checkRange(this.size, offset, bytes.length, 'write');
    if (this.readOnly) throw new Error('the device is read-only');
    let done = 0;
    while (done < bytes.length) {
      const { bytesWritten } = await this.fh.write(bytes, done, bytes.length - done, offset + done);
      done += bytesWritten;
    }
    if (opts.fua) await this.fh.datasync();
  }

  /** One `pwritev` for all the parts (a short write finishes with plain writes). */
  async writev(offset: number, parts: Uint8Array[], opts: { fua?: boolean } = {}): Promise<void> {
    let total = 0;
    for (const b of parts) total += b.length;
    checkRange(this.size, offset, total, 'write');
    if (this.readOnly) throw new Error('the device is read-only');
    const { bytesWritten } = await this.fh.writev(parts, offset);
    if (bytesWritten < total) {
      const rest = Buffer.concat(parts, total).subarray(bytesWritten);
      await this.writeAt(offset + bytesWritten, rest);
    }
    if (opts.fua) await this.fh.datasync();
  }

  async flush(): Promise<void> {
    if (!this.readOnly) await this.fh.datasync();
  }

  async trim(offset: number, length: number): Promise<void> {
    checkRange(this.size, offset, length, 'trim');
    if (this.readOnly) throw new Error('the device is read-only');
    // no hole punching from Node (no fallocate): zeros are written, but only over blocks that do not read
    // as zeros already. A hole reads as zeros without touching the disk and stays a hole: a migration that
    // trims what reads as zeros at its source allocated the whole range of a sparse file before
    const n = Math.min(length, trimBlockBytes);
    const buf = Buffer.allocUnsafe(n);
    const z = Buffer.alloc(n);
    for (let p = 0; p < length; p += n) {
      const k = Math.min(n, length - p);
      await this.readInto(offset + p, buf.subarray(0, k));
      // runs of pieces that are not zeros, one write each
      let run = -1;
      for (let q = 0; q < k || run >= 0; q += trimCheckBytes) {
        const e = Math.min(k, q + trimCheckBytes);
        const dirty = q < k && !buf.subarray(q, e).equals(z.subarray(q, e));
        if (dirty && run < 0) run = q;
        else if (!dirty && run >= 0) {
          await this.writeAt(offset + p + run, z.subarray(run, Math.min(q, k)));
          run = -1;
        }
      }
    }
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}
