// Migrations of mostly empty devices: the destination asks the source's export for its allocation
// (BLOCK_STATUS, base:allocation) and reads only what does not read as zeros; what does is left alone on a
// destination that reads zeros already, and trimmed on one that may hold old data. Until this every hole
// was read over NBD and written: a 64 GiB device with 9 MiB written moved 64 GiB.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type BlockDevice,
  type Extent,
  FileDevice,
  MemoryDevice,
  MigratingDevice,
  MigrationSource,
  MountDevice,
  migrate,
  migrateFrom,
  NbdClientDevice,
  NbdServer,
  TrackedDevice,
} from '../src/index.js';

const mib = 1 << 20;
const gib = 2 ** 30;
const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

/**
 * A MemoryDevice whose reads are counted, and refused past `budgetBytes` (a copy of every hole then fails
 * at once instead of running for minutes); `onExtents` runs once its answer is made, before it is given.
 */
class CountingDevice implements BlockDevice {
  bytesRead = 0;
  onExtents?: () => Promise<void>;
  readonly size: number;
  constructor(
    readonly inner: MemoryDevice,
    private readonly budgetBytes: number,
  ) {
    this.size = inner.size;
  }
  async readAt(offset: number, length: number): Promise<Uint8Array> {
    this.bytesRead += length;
    if (this.bytesRead > this.budgetBytes)
      throw new Error(`the destination read ${this.bytesRead} bytes, past the test's ${this.budgetBytes}`);
    return this.inner.readAt(offset, length);
  }
  async extents(offset: number, length: number): Promise<Extent[]> {
    const e = await this.inner.extents(offset, length);
    const hook = this.onExtents;
    this.onExtents = undefined;
    await hook?.();
    return e;
  }
  writeAt(offset: number, bytes: Uint8Array): Promise<void> {
    return this.inner.writeAt(offset, bytes);
  }
  trim(offset: number, length: number): Promise<void> {
    return this.inner.trim(offset, length);
  }
  flush(): Promise<void> {
    return this.inner.flush();
  }
  async close(): Promise<void> {}
}

/** A MemoryDevice that records the length of each trim. */
class TrimCounting extends MemoryDevice {
  readonly trims: number[] = [];
  override async trim(offset: number, length: number): Promise<void> {
    this.trims.push(length);
    return super.trim(offset, length);
  }
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Writes `ranges` of random bytes to `dev`; returns them with their bytes. */
async function fill(dev: BlockDevice, ranges: [number, number][]): Promise<[number, Buffer][]> {
  const out: [number, Buffer][] = [];
  for (const [off, n] of ranges) {
    const b = randomBytes(n);
    await dev.writeAt(off, b);
    out.push([off, b]);
  }
  return out;
}

/** The destination holds `written` as written, and zeros at `holes` (4 KiB each). */
async function expectCopy(dest: BlockDevice, written: [number, Buffer][], holes: number[]): Promise<void> {
  for (const [off, b] of written) expect(sha(await dest.readAt(off, b.length)), `at ${off}`).toBe(sha(b));
  const zeros = sha(new Uint8Array(4096));
  for (const off of holes) expect(sha(await dest.readAt(off, 4096)), `hole at ${off}`).toBe(zeros);
}

/** A source device, its NBD export for the destination, and a mount over it (in-process `migrate`). */
async function inProcess(src: CountingDevice, local: BlockDevice, localZeroed: boolean) {
  const source = new TrackedDevice(src, 4096);
  const server = new NbdServer([{ name: 'vm', device: source.copySource }]);
  const port = await server.listen(0, '127.0.0.1');
  const remote = await NbdClientDevice.connect('127.0.0.1', port, 'vm');
  cleanups.push(async () => {
    await remote.close();
    await server.close();
  });
  const dest = new MountDevice(local, remote, { chunkBytes: mib, localZeroed });
  return { source, dest, front: new MigratingDevice(source) };
}

describe('migrating a mostly empty device', () => {
  it('64 GiB with 9 MiB written: reads about the written bytes from the source; a write into a hole during the copy arrives', async () => {
    const size = 64 * gib;
    const src = new CountingDevice(new MemoryDevice(size), 64 * mib);
    const written = await fill(src, [
      [0, 100],
      [3 * gib + 5, mib],
      [17 * gib - 4096, 8192],
      [40 * gib + 12345, 2 * mib],
      [size - mib, mib],
    ]);
    const destLocal = new MemoryDevice(size);
    const { source, dest, front } = await inProcess(src, destLocal, true);
    // right after the source answers its first BLOCK_STATUS (of the first GiB), the workload writes into a
    // hole of that answer: the destination skips the chunk as zeros, and the write must still arrive (2
    // units dirty: handed over, the chunk fetched again after the handover, its old status forgotten)
    src.onExtents = async () => {
      const b = randomBytes(5000);
      await front.writeAt(512 * mib + 777, b);
      written.push([512 * mib + 777, b]);
    };
    const t0 = performance.now();
    const report = await migrate(source, dest, front);
    const ms = performance.now() - t0;
    expect(src.onExtents).toBeUndefined();
    // 9 chunks of 1 MiB hold the data, and the chunk written during the copy is read once more
    expect(src.bytesRead).toBeLessThanOrEqual(10 * mib);
    expect(src.bytesRead).toBeGreaterThanOrEqual(5 * mib);
    expect(report.chunksResent).toBeGreaterThanOrEqual(2);
    expect(dest.stats.zeroChunks).toBeGreaterThan(65_000);
    expect(ms).toBeLessThan(20_000);
    const holes = [4096, 5 * gib, 512 * mib + 8192, 33 * gib + 123, size - 2 * mib, 63 * gib];
    await expectCopy(dest, written, holes);
    await expectCopy(front, written, holes);
    // nothing but the data was written at the destination: its memory holds the data's 64 KiB chunks
    let allocated = 0;
    for (let p = 0; p < size; ) {
      for (const x of await destLocal.extents(p, Math.min(gib, size - p))) {
        if (!x.hole) allocated += x.length;
        p += x.length;
      }
    }
    expect(allocated).toBeLessThan(12 * mib);
  }, 60_000);

  it('a destination holding old data reads zeros where the source does; one that reads zeros is not trimmed', async () => {
    const size = 4 * gib;
    const src = new CountingDevice(new MemoryDevice(size), 64 * mib);
    const written = await fill(src, [
      [mib, 3 * mib],
      [2 * gib + 99, 70_000],
    ]);
    const junkAt = [0, 10 * mib, gib + 4096, 2 * gib + mib, size - 4096];
    // old data: in the source's holes, and in the chunk it writes only partly (2 GiB + 99)
    const local = new MemoryDevice(size);
    for (const off of [...junkAt, 2 * gib]) await local.writeAt(off, Buffer.alloc(4096, 0xaa));
    await local.writeAt(3 * gib, Buffer.alloc(8 * mib, 0xbb));
    const { source, dest, front } = await inProcess(src, local, false);
    await migrate(source, dest, front);
    await expectCopy(dest, written, [...junkAt, 3 * gib, 3 * gib + 8 * mib - 4096]);
    expect(Buffer.from(await dest.readAt(2 * gib, 99)).equals(Buffer.alloc(99))).toBe(true);
    expect(src.bytesRead).toBeLessThanOrEqual(6 * mib);

    // the same source into a fresh device said to read zeros: no trim at all
    const src2 = new CountingDevice(src.inner, 64 * mib);
    const fresh = new TrimCounting(size);
    const b = await inProcess(src2, fresh, true);
    await migrate(b.source, b.dest, b.front);
    expect(fresh.trims).toEqual([]);
    await expectCopy(b.dest, written, junkAt);
  }, 60_000);

  it('between processes (MigrationSource, migrateFrom): an existing file with old data gets zeros, a new one is not written in the holes', async () => {
    const size = 64 * mib;
    const dev = new MemoryDevice(size);
    const written = await fill(dev, [
      [5 * mib + 1, 300_000],
      [40 * mib, 64 * 1024],
    ]);
    const src = new MigrationSource(dev, { chunkBytes: mib });
    const { controlPort } = await src.listen(0);
    cleanups.push(() => src.close());
    const dir = mkdtempSync(join(tmpdir(), 'r3map-sparse-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    // an existing file full of old bytes, opened as it is (it may hold anything: trimmed, not trusted)
    const old = join(dir, 'old.img');
    writeFileSync(old, Buffer.alloc(size, 0xcc));
    let sent = 0;
    const m = await migrateFrom('127.0.0.1', controlPort, {
      open: (n) => FileDevice.open(old, { create: true, size: n }),
      onFetch: (n) => {
        sent += n;
      },
    });
    cleanups.push(() => m.close());
    await expectCopy(m.device, written, [0, 20 * mib, size - 4096]);
    // what was fetched: the two chunks of data (1 MiB each), not the 62 MiB of zeros
    expect(m.report.bytesFetched).toBeLessThanOrEqual(2 * mib);
    expect(sent).toBe(size);
    await m.close();

    // a new device said to read zeros: nothing is written where the source reads zeros
    const src2 = new MigrationSource(dev, { chunkBytes: mib });
    const { controlPort: port2 } = await src2.listen(0);
    cleanups.push(() => src2.close());
    const fresh = new MemoryDevice(size);
    const m2 = await migrateFrom('127.0.0.1', port2, { open: async () => ({ device: fresh, zeroed: true }) });
    cleanups.push(() => m2.close());
    await expectCopy(m2.device, written, [0, 20 * mib]);
    expect(m2.report.bytesFetched).toBeLessThanOrEqual(2 * mib);
    // the two chunks fetched are in its memory, nothing else
    let allocated = 0;
    for (const x of await fresh.extents(0, size)) if (!x.hole) allocated += x.length;
    expect(allocated).toBeLessThanOrEqual(2 * mib);
  }, 60_000);
});
