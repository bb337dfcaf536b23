// The background pull of a mount whose remote reports its allocation (extents): a chunk made local by a
// demand read while the pull waits for the remote's answer must not leave the pull asking forever.
import { describe, expect, it } from 'vitest';
import { type Extent, MemoryDevice, MountDevice } from '../src/index.js';

/** A MemoryDevice whose first `extents` answer waits for `release`; its calls are counted. */
class GatedExtents extends MemoryDevice {
  calls = 0;
  release!: () => void;
  readonly asked: Promise<void>;
  private readonly gate: Promise<void>;
  private asking!: () => void;
  constructor(size: number) {
    super(size);
    this.gate = new Promise<void>((res) => (this.release = res));
    this.asked = new Promise<void>((res) => (this.asking = res));
  }
  override async extents(offset: number, length: number): Promise<Extent[]> {
    this.calls++;
    // a turn of the event loop, as a remote's answer takes (the test's timer can fire)
    await new Promise((res) => setImmediate(res));
    const e = await super.extents(offset, length);
    if (this.calls === 1) {
      this.asking();
      await this.gate;
    }
    return e;
  }
}

describe('MountDevice background pull with extents', () => {
  it('finishes when the chunk it asked the status of is read on demand meanwhile', async () => {
    const size = 4 << 20;
    const remote = new GatedExtents(size);
    await remote.writeAt(0, new Uint8Array(64 << 10).fill(7));
    const m = new MountDevice(new MemoryDevice(size), remote, { chunkBytes: 64 << 10, pullConcurrency: 1 });
    const pull = m.pullAll();
    await remote.asked;
    // chunk 0, the one the pull is learning the status of, is read on demand and so made local
    expect((await m.readAt(0, 1))[0]).toBe(7);
    remote.release();
    const outcome = await Promise.race([
      pull.then(() => 'pulled'),
      new Promise((res) => setTimeout(() => res('still pulling'), 3000)),
    ]);
    const calls = remote.calls;
    await m.close();
    expect(outcome).toBe('pulled');
    expect(m.stats.present).toBe(m.stats.chunks);
    expect(calls).toBeLessThan(10);
  });
});
