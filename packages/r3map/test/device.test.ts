import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemStore } from '@strata/objstore';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { type BlockDevice, FileDevice, MemoryDevice, StoreDevice } from '../src/index.js';

const root = mkdtempSync(join(tmpdir(), 'r3map-dev-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;

/** The BlockDevice conformance suite: a device must behave like a byte array of its size. */
function blockDeviceConformance(make: (size: number) => Promise<BlockDevice>) {
  it('reads back what was written, zeros elsewhere, across chunk boundaries (model property)', async () => {
    const size = 300_000;
    const dev = await make(size);
    const model = new Uint8Array(size);
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.tuple(fc.constantFrom('write', 'trim', 'read'), fc.nat(size - 1), fc.nat(70_000), fc.nat(255)),
          { maxLength: 12 },
        ),
        async (ops) => {
          for (const [op, off, len0, v] of ops) {
            const len = Math.min(len0, size - off);
            if (op === 'write') {
              const b = new Uint8Array(len).map((_, i) => (v + i) & 0xff);
              await dev.writeAt(off, b);
              model.set(b, off);
            } else if (op === 'trim') {
              await dev.trim(off, len);
              model.fill(0, off, off + len);
            } else
              expect(
                Buffer.compare(
                  Buffer.from(await dev.readAt(off, len)),
                  Buffer.from(model.subarray(off, off + len)),
                ),
              ).toBe(0);
          }
          await dev.flush();
        },
      ),
      { numRuns: 25 },
    );
    await dev.close();
  });

  it('rejects out-of-range access with a RangeError', async () => {
    const dev = await make(4096);
    await expect(dev.readAt(4000, 200)).rejects.toBeInstanceOf(RangeError);
    await expect(dev.writeAt(-1, new Uint8Array(1))).rejects.toBeInstanceOf(RangeError);
    await expect(dev.trim(0, 5000)).rejects.toBeInstanceOf(RangeError);
    expect((await dev.readAt(4095, 1)).length).toBe(1);
    await dev.close();
  });

  it('reports holes where nothing was written, when it tracks allocation', async () => {
    const dev = await make(1 << 22);
    if (!dev.extents) return void (await dev.close());
    await dev.writeAt(1 << 21, new Uint8Array(10).fill(1));
    const ext = await dev.extents(0, 1 << 22);
    expect(ext.reduce((s, e) => s + e.length, 0)).toBe(1 << 22);
    expect(ext[0]!.hole).toBe(true);
    expect(ext.some((e) => !e.hole)).toBe(true);
    await dev.close();
  });
}

describe('MemoryDevice', () => blockDeviceConformance(async (size) => new MemoryDevice(size)));
describe('FileDevice', () =>
  blockDeviceConformance(async (size) => FileDevice.open(join(root, `f${n++}`), { create: true, size })));
describe('StoreDevice (objstore chunks)', () =>
  blockDeviceConformance(async (size) =>
    StoreDevice.open(new MemStore(), `d${n++}`, { size, chunkBytes: 64 << 10 }),
  ));
