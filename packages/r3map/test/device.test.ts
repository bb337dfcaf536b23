import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemStore } from '@strata/objstore';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type BlockDevice,
  FileDevice,
  MemoryDevice,
  MountDevice,
  NbdClientDevice,
  NbdServer,
  StoreDevice,
} from '../src/index.js';

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
          fc.tuple(
            fc.constantFrom('write', 'trim', 'read', 'writev', 'readv'),
            fc.nat(size - 1),
            fc.nat(70_000),
            fc.nat(255),
          ),
          { maxLength: 12 },
        ),
        async (ops) => {
          for (const [op, off, len0, v] of ops) {
            const len = Math.min(len0, size - off);
            if (op === 'write' || op === 'writev') {
              const b = new Uint8Array(len).map((_, i) => (v + i) & 0xff);
              // the optional scatter form, split at two points that depend on the value
              const cut1 = Math.floor((len * (v % 7)) / 7);
              const cut2 = Math.floor((len * (v % 13)) / 13);
              const [x, y] = cut1 < cut2 ? [cut1, cut2] : [cut2, cut1];
              if (op === 'writev' && dev.writev)
                await dev.writev(off, [b.subarray(0, x), b.subarray(x, y), b.subarray(y)]);
              else await dev.writeAt(off, b);
              model.set(b, off);
            } else if (op === 'readv' && dev.readv) {
              const parts = await dev.readv(off, len);
              expect(Buffer.compare(Buffer.concat(parts), Buffer.from(model.subarray(off, off + len)))).toBe(
                0,
              );
            } else if (op === 'trim') {
              await dev.trim(off, len);
              model.fill(0, off, off + len);
            } else {
              expect(
                Buffer.compare(
                  Buffer.from(await dev.readAt(off, len)),
                  Buffer.from(model.subarray(off, off + len)),
                ),
              ).toBe(0);
              if (dev.readInto) {
                // the optional form into the caller's buffer fills all of it, whatever it held
                const into = new Uint8Array(len).fill(~v & 0xff);
                await dev.readInto(off, into);
                expect(Buffer.compare(into, model.subarray(off, off + len))).toBe(0);
              }
            }
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
describe('StoreDevice (objstore chunks)', () => {
  blockDeviceConformance(async (size) =>
    StoreDevice.open(new MemStore(), `d${n++}`, { size, chunkBytes: 64 << 10 }),
  );

  it('a device.json that is not JSON or holds no usable geometry is an error naming it (a negative chunk size hung every read)', async () => {
    const bad: [string, RegExp][] = [
      ['{"size": 65536, "chunkBytes": -4096}', /chunk size must be in \[4 KiB, 4 MiB\], got -4096/],
      ['{"size": 65536, "chunkBytes": 0}', /chunk size must be in .*, got 0/],
      ['{"size": 65536}', /chunk size must be in .*, got nothing/],
      ['{"size": -1, "chunkBytes": 4096}', /size must be a whole number of bytes >= 0, got -1/],
      ['{"size": "64k", "chunkBytes": 4096}', /size must be .*, got "64k"/],
      ['[1, 2]', /size must be/],
      ['null', /not a \{"size", "chunkBytes"\} object/],
      ['{"size": 65', /not JSON/],
    ];
    for (const [text, why] of bad) {
      const store = new MemStore();
      await store.put('dev/device.json', Buffer.from(text));
      await expect(StoreDevice.open(store, 'dev'), text).rejects.toThrow(why);
      await expect(StoreDevice.open(store, 'dev'), text).rejects.toThrow(/^mem:\S* dev\/device\.json: /);
    }
    await expect(StoreDevice.open(new MemStore(), 'dev', { size: 1.5 })).rejects.toThrow(
      /a new device: size must be a whole number/,
    );
    // what a create writes opens again
    const store = new MemStore();
    await StoreDevice.open(store, 'ok', { size: 8192, chunkBytes: 4096 });
    const d = await StoreDevice.open(store, 'ok');
    expect([d.size, d.chunkBytes]).toEqual([8192, 4096]);
  });
});

describe('NbdClientDevice (a remote device through our NBD server)', () =>
  blockDeviceConformance(async (size) => {
    const server = new NbdServer([{ name: 'r', device: new MemoryDevice(size) }]);
    const port = await server.listen(0);
    const dev = await NbdClientDevice.connect('127.0.0.1', port, 'r');
    const close = dev.close.bind(dev);
    dev.close = async () => {
      await close();
      await server.close();
    };
    return dev;
  }));

describe('MountDevice (local cache backed by a remote over NBD)', () => {
  blockDeviceConformance(
    async (size) => new MountDevice(new MemoryDevice(size), new MemoryDevice(size), { chunkBytes: 64 << 10 }),
  );

  it('fetches on demand, pulls the rest in the background, writes back on flush', async () => {
    const size = 8 << 20;
    const remoteDev = new MemoryDevice(size);
    const image = new Uint8Array(size).map((_, i) => (i * 2654435761) >>> 24);
    await remoteDev.writeAt(0, image);
    const server = new NbdServer([{ name: 'disk', device: remoteDev }]);
    const port = await server.listen(0);
    const remote = await NbdClientDevice.connect('127.0.0.1', port, 'disk');
    const m = new MountDevice(new MemoryDevice(size), remote, { chunkBytes: 256 << 10, pullConcurrency: 3 });
    // a read far into the device is served at once, fetching only what it needs
    const got = await m.readAt(5_000_000, 1000);
    expect([...got]).toEqual([...image.subarray(5_000_000, 5_001_000)]);
    expect(m.stats.fetchedOnDemand).toBe(1);
    await m.writeAt(100, new Uint8Array(50).fill(9)); // lands locally, marks the chunk dirty
    expect((await remoteDev.readAt(100, 1))[0]).toBe(image[100]);
    await m.pullAll();
    expect(m.stats.present).toBe(m.stats.chunks);
    expect(m.stats.fetchedInBackground).toBe(m.stats.chunks - m.stats.fetchedOnDemand);
    await m.flush();
    expect(m.stats.pushed).toBe(1);
    const after = await remoteDev.readAt(0, size);
    image.fill(9, 100, 150);
    expect(Buffer.compare(Buffer.from(after), Buffer.from(image))).toBe(0);
    await m.close();
    await remote.close();
    await server.close();
  });
});
