import { afterAll, describe, expect, it } from 'vitest';
import {
  MemoryDevice,
  MigratingDevice,
  MountDevice,
  migrate,
  NbdClientDevice,
  NbdServer,
  TrackedDevice,
} from '../src/index.js';

const chunk = 64 << 10;

describe('MountDevice options', () => {
  it('refuses a pull concurrency under 1 (no puller: a read of an absent chunk would wait forever)', () => {
    const make = (pullConcurrency: number) =>
      new MountDevice(new MemoryDevice(1 << 20), new MemoryDevice(1 << 20), { pullConcurrency });
    for (const n of [0, -1, 1.5, Number.NaN]) expect(() => make(n), String(n)).toThrow(/pullConcurrency/);
    expect(make(1).size).toBe(1 << 20);
  });
});
const size = 16 << 20;
const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups) await c();
});

function rng(seed: number) {
  let s = seed >>> 0 || 1;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296;
}

async function setup(seed: number, trackBytes = chunk) {
  const image = new Uint8Array(size).map((_, i) => (i * 31 + seed) & 0xff);
  const srcDev = new MemoryDevice(size);
  await srcDev.writeAt(0, image);
  const source = new TrackedDevice(srcDev, trackBytes);
  const server = new NbdServer([{ name: 'vm', device: source.copySource }]);
  const port = await server.listen(0);
  const remote = await NbdClientDevice.connect('127.0.0.1', port, 'vm');
  const dest = new MountDevice(new MemoryDevice(size), remote, { chunkBytes: chunk, pullConcurrency: 4 });
  const front = new MigratingDevice(source);
  cleanups.push(async () => {
    await remote.close().catch(() => undefined);
    await server.close();
  });
  return { image, source, server, remote, dest, front };
}

/** Random 4 KiB writes through the front device until stopped; the model records acknowledged writes. */
function writer(front: MigratingDevice, model: Uint8Array, seed: number) {
  const r = rng(seed);
  let stop = false;
  let n = 0;
  const done = (async () => {
    while (!stop) {
      const off = Math.floor(r() * (size / 4096)) * 4096;
      const b = new Uint8Array(4096).fill(n & 0xff);
      await front.writeAt(off, b);
      model.set(b, off);
      n++;
      if (n % 8 === 0) await new Promise((res) => setTimeout(res, 1));
    }
  })();
  return {
    stop: async () => {
      stop = true;
      await done;
    },
    count: () => n,
  };
}

/** Waits until the writer has `more` acknowledged writes beyond now (or 10 s), however loaded the machine. */
async function progress(w: { count: () => number }, more: number): Promise<void> {
  const target = w.count() + more;
  for (let i = 0; w.count() < target && i < 2000; i++) await new Promise((r) => setTimeout(r, 5));
}

describe('live migration', () => {
  // seed 3 tracks 4 KiB units under 64 KiB chunks: rounds re-read just the dirty units in place
  for (const [seed, track] of [
    [1, chunk],
    [2, chunk],
    [3, 4096],
  ] as const) {
    it(`under a random-write load, the destination equals every acknowledged write (seed ${seed}, ${track >> 10} KiB tracking)`, async () => {
      const { image, source, dest, front } = await setup(seed, track);
      const model = Uint8Array.from(image);
      const w = writer(front, model, seed);
      await progress(w, 10);
      const report = await migrate(source, dest, front, { dirtyChunksMax: 8 });
      const after = w.count();
      await progress(w, 10); // the workload keeps writing, now to the destination
      await w.stop();
      expect(w.count()).toBeGreaterThanOrEqual(after + 10);
      const got = await dest.readAt(0, size);
      expect(Buffer.compare(Buffer.from(got), Buffer.from(model))).toBe(0);
      expect(report.downtimeMs).toBeLessThan(1000);
      expect(dest.stats.present).toBe(dest.stats.chunks);
    });
  }

  it('if the source dies before finalize, the destination gives up and the source stays authoritative', async () => {
    const { image, source, server, dest, front } = await setup(9);
    const model = Uint8Array.from(image);
    const w = writer(front, model, 9);
    const m = migrate(source, dest, front);
    await new Promise((r) => setTimeout(r, 5));
    // the migration may fail before close() resolves: watch for it first
    const failed = expect(m).rejects.toBeDefined();
    await server.close(); // the link to the source goes away mid pre-copy
    await failed;
    await new Promise((r) => setTimeout(r, 10));
    await w.stop();
    expect(source.sealed).toBe(false);
    const got = await source.readAt(0, size);
    expect(Buffer.compare(Buffer.from(got), Buffer.from(model))).toBe(0);
  });
});

describe('live migration: the destination dies', () => {
  it('before finalize: the migration fails and the source continues untouched, taking writes', async () => {
    const { image, source, remote, dest, front } = await setup(11);
    const model = Uint8Array.from(image);
    const w = writer(front, model, 11);
    const m = migrate(source, dest, front);
    await new Promise((r) => setTimeout(r, 5));
    remote.destroy(); // the destination's link goes away mid pre-copy (its process died)
    await expect(m).rejects.toBeDefined();
    const atFailure = w.count();
    await progress(w, 5);
    await w.stop();
    expect(w.count()).toBeGreaterThan(atFailure); // the workload never noticed
    expect(source.sealed).toBe(false);
    const got = await source.readAt(0, size);
    expect(Buffer.compare(Buffer.from(got), Buffer.from(model))).toBe(0);
  });
});
