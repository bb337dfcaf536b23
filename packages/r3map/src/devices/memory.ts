import { type BlockDevice, checkRange, type Extent } from '../device.js';

/** Allocation unit of the sparse memory device. */
export const memChunkBytes = 64 * 1024;
/** What holes read as through `readv` (never written to). */
const zeroChunk = new Uint8Array(memChunkBytes);

/** A sparse device in memory: 64 KiB chunks allocated on first write; trim frees whole chunks. */
export class MemoryDevice implements BlockDevice {
  private readonly chunks = new Map<number, Uint8Array>();

  constructor(readonly size: number) {
    if (!Number.isSafeInteger(size) || size < 0)
      throw new RangeError(`device size must be a non-negative integer, got ${size}`);
  }

  async readAt(offset: number, length: number): Promise<Uint8Array> {
    const out = new Uint8Array(length);
    let p = 0;
    for (const part of await this.readv(offset, length)) {
      out.set(part, p);
      p += part.length;
    }
    return out;
  }

  /** Views of the chunks (a shared zero buffer for holes): no copy, no allocation of the data. */
  async readv(offset: number, length: number): Promise<Uint8Array[]> {
    checkRange(this.size, offset, length, 'read');
    const out: Uint8Array[] = [];
    let p = 0;
    while (p < length) {
      const abs = offset + p;
      const ci = Math.floor(abs / memChunkBytes);
      const co = abs - ci * memChunkBytes;
      const n = Math.min(memChunkBytes - co, length - p);
      const c = this.chunks.get(ci);
      out.push(c ? c.subarray(co, co + n) : zeroChunk.subarray(0, n));
      p += n;
    }
    return out;
  }

  async writev(offset: number, parts: Uint8Array[]): Promise<void> {
    let n = 0;
    for (const b of parts) n += b.length;
    checkRange(this.size, offset, n, 'write');
    for (const b of parts) {
      this.copyIn(offset, b);
      offset += b.length;
    }
  }

  async writeAt(offset: number, bytes: Uint8Array): Promise<void> {
    checkRange(this.size, offset, bytes.length, 'write');
    this.copyIn(offset, bytes);
  }

  private copyIn(offset: number, bytes: Uint8Array): void {
    let p = 0;
    while (p < bytes.length) {
      const abs = offset + p;
      const ci = Math.floor(abs / memChunkBytes);
      const co = abs - ci * memChunkBytes;
      const n = Math.min(memChunkBytes - co, bytes.length - p);
      let c = this.chunks.get(ci);
      if (!c)
        this.chunks.set(ci, (c = new Uint8Array(Math.min(memChunkBytes, this.size - ci * memChunkBytes))));
      c.set(bytes.subarray(p, p + n), co);
      p += n;
    }
  }

  async flush(): Promise<void> {}

  async trim(offset: number, length: number): Promise<void> {
    checkRange(this.size, offset, length, 'trim');
    let p = 0;
    while (p < length) {
      const abs = offset + p;
      const ci = Math.floor(abs / memChunkBytes);
      const co = abs - ci * memChunkBytes;
      const n = Math.min(memChunkBytes - co, length - p);
      const c = this.chunks.get(ci);
      if (c) {
        if (co === 0 && n >= c.length) this.chunks.delete(ci);
        else c.fill(0, co, co + n);
      }
      p += n;
    }
  }

  async extents(offset: number, length: number): Promise<Extent[]> {
    checkRange(this.size, offset, length, 'block status');
    const out: Extent[] = [];
    let p = offset;
    const end = offset + length;
    while (p < end) {
      const ci = Math.floor(p / memChunkBytes);
      const n = Math.min((ci + 1) * memChunkBytes, end) - p;
      const hole = !this.chunks.has(ci);
      const last = out[out.length - 1];
      if (last && last.hole === hole) last.length += n;
      else out.push({ length: n, hole, zero: hole });
      p += n;
    }
    return out;
  }

  async close(): Promise<void> {}
}
