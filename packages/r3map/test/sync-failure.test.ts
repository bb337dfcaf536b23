// A digest that fails half-way (here: the hash throws from its 40th call on, on both sides) fails the sync with that error:
// no unhandled rejection from the other side's read in flight, and both files are closed.
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';

let calls = 0;
vi.mock('@strata/highwayhash', async (original) => {
  const real = await original<typeof import('@strata/highwayhash')>();
  return {
    ...real,
    hash128: (key: Uint8Array, data: Uint8Array) => {
      if (++calls >= 40) throw new Error('hash failed on purpose');
      return real.hash128(key, data);
    },
  };
});
const { syncFiles } = await import('../src/index.js');

const root = mkdtempSync(join(tmpdir(), 'r3map-sync-failure-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('delta sync failures', () => {
  it('a digest failing half-way fails the sync cleanly and closes both files', async () => {
    const size = 24 << 20; // several 4 MiB read blocks per side
    const a = Buffer.alloc(size, 1);
    writeFileSync(join(root, 'a.img'), a);
    writeFileSync(join(root, 'b.img'), Buffer.alloc(size, 2));
    const fds = readdirSync('/proc/self/fd').length;
    calls = 0;
    await expect(syncFiles(join(root, 'a.img'), join(root, 'b.img'))).rejects.toThrow(
      'hash failed on purpose',
    );
    // the other side's read in flight has settled, and nothing is left open
    await new Promise((r) => setTimeout(r, 50));
    expect(readdirSync('/proc/self/fd').length).toBe(fds);
    // and a sync afterwards works
    calls = -1e9;
    const r = await syncFiles(join(root, 'a.img'), join(root, 'b.img'));
    expect(r.changedChunks).toBe(r.chunks);
  });
});
