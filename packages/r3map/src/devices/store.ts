import type { ObjectStore } from '@strata/objstore';
import { type BlockDevice, checkRange, type Extent } from '../device.js';

/**
 * A sparse device on object storage: fixed-size chunks as objects `PREFIX/chunks/<index>`; a missing chunk
 * reads as zeros. Writes read-modify-write their chunks; `flush` is a no-op because every chunk put is
 * durable when it resolves. The size and chunk size are kept in `PREFIX/device.json`.
 */
export class StoreDevice implements BlockDevice {
  private constructor(
    private readonly store: ObjectStore,
    private readonly prefix: string,
    readonly size: number,
    readonly chunkBytes: number,
  ) {}

  static async open(
    store: ObjectStore,
    prefix: string,
    create?: { size: number; chunkBytes?: number },
  ): Promise<StoreDevice> {
    const metaKey = `${prefix}/device.json`;
    const where = `${store.url} ${metaKey}`;
    const h = await store.head(metaKey);
    if (h) {
      // what the object says is checked: a negative chunk size made every read and write loop forever
      let m: unknown;
      try {
        m = JSON.parse(Buffer.from(await store.get(metaKey)).toString('utf8'));
      } catch (e) {
        throw new Error(`${where}: not JSON (${(e as Error).message})`);
      }
      if (typeof m !== 'object' || m === null)
        throw new Error(`${where}: not a {"size", "chunkBytes"} object`);
      const { size, chunkBytes } = m as { size?: unknown; chunkBytes?: unknown };
      checkGeometry(size, chunkBytes, where);
      return new StoreDevice(store, prefix, size as number, chunkBytes as number);
    }
    if (!create) throw new Error(`no device at ${store.url} ${prefix} (give a size to create one)`);
    const chunkBytes = create.chunkBytes ?? 1 << 20;
    checkGeometry(create.size, chunkBytes, 'a new device');
    await store.put(metaKey, Buffer.from(JSON.stringify({ size: create.size, chunkBytes })), {
      ifNoneMatch: '*',
    });
    return new StoreDevice(store, prefix, create.size, chunkBytes);
  }

  private key(i: number): string {
    return `${this.prefix}/chunks/${String(i).padStart(12, '0')}`;
  }

  private async chunk(i: number): Promise<Uint8Array | undefined> {
    try {
      return await this.store.get(this.key(i));
    } catch (e) {
      if ((e as Error).name === 'NotFoundError') return undefined;
      throw e;
    }
  }

  async readAt(offset: number, length: number): Promise<Uint8Array> {
    checkRange(this.size, offset, length, 'read');
    const out = new Uint8Array(length);
    for (let p = 0; p < length; ) {
      const abs = offset + p;
      const i = Math.floor(abs / this.chunkBytes);
      const co = abs - i * this.chunkBytes;
      const n = Math.min(this.chunkBytes - co, length - p);
      const c = await this.chunk(i);
      if (c) out.set(c.subarray(co, co + n), p);
      p += n;
    }
    return out;
  }

  async writeAt(offset: number, bytes: Uint8Array): Promise<void> {
    checkRange(this.size, offset, bytes.length, 'write');
    for (let p = 0; p < bytes.length; ) {
      const abs = offset + p;
      const i = Math.floor(abs / this.chunkBytes);
      const co = abs - i * this.chunkBytes;
      const n = Math.min(this.chunkBytes - co, bytes.length - p);
      const len = Math.min(this.chunkBytes, this.size - i * this.chunkBytes);
      const c = n === len ? new Uint8Array(len) : ((await this.chunk(i)) ?? new Uint8Array(len));
      c.set(bytes.subarray(p, p + n), co);
      await this.store.put(this.key(i), c);
      p += n;
    }
  }

  async flush(): Promise<void> {}

  async trim(offset: number, length: number): Promise<void> {
    checkRange(this.size, offset, length, 'trim');
    for (let p = 0; p < length; ) {
      const abs = offset + p;
      const i = Math.floor(abs / this.chunkBytes);
      const co = abs - i * this.chunkBytes;
      const n = Math.min(this.chunkBytes - co, length - p);
      const len = Math.min(this.chunkBytes, this.size - i * this.chunkBytes);
      if (co === 0 && n === len) await this.store.delete(this.key(i));
      else await this.writeAt(abs, new Uint8Array(n));
      p += n;
    }
  }

  async extents(offset: number, length: number): Promise<Extent[]> {
    checkRange(this.size, offset, length, 'block status');
    const out: Extent[] = [];
    for (let p = offset; p < offset + length; ) {
      const i = Math.floor(p / this.chunkBytes);
      const n = Math.min((i + 1) * this.chunkBytes, offset + length) - p;
      const hole = !(await this.store.head(this.key(i)));
      const last = out[out.length - 1];
      if (last && last.hole === hole) last.length += n;
      else out.push({ length: n, hole, zero: hole });
      p += n;
    }
    return out;
  }

  async close(): Promise<void> {}
}

/** A device's size (whole bytes, at least 0) and chunk size (whole bytes, 4 KiB to 4 MiB), or a RangeError naming `where`. */
function checkGeometry(size: unknown, chunkBytes: unknown, where: string): void {
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0)
    throw new RangeError(
      `${where}: size must be a whole number of bytes >= 0, got ${JSON.stringify(size) ?? 'nothing'}`,
    );
  if (
    typeof chunkBytes !== 'number' ||
    !Number.isInteger(chunkBytes) ||
    chunkBytes < 4096 ||
    chunkBytes > 4 << 20
  )
    throw new RangeError(
      `${where}: chunk size must be in [4 KiB, 4 MiB], got ${JSON.stringify(chunkBytes) ?? 'nothing'}`,
    );
}
