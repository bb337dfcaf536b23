// FileLoglet details that the conformance suite does not reach: a second seal must not return before the
// first one's sealed bit is durable (found by the NativeLoglet simulation: a LogServer answered a repeated
// seal, then crashed and came back unsealed).
import { describe, expect, it } from 'vitest';
import { type Disk, FileLoglet } from '../src/index.js';

/** An in-memory disk whose `replace` waits until released. */
function slowDisk() {
  const files = new Map<string, Buffer>();
  const waiting: (() => void)[] = [];
  const disk: Disk = {
    label: 'slow',
    read: async (n) => files.get(n),
    readAt: async (n, pos, len) => files.get(n)!.subarray(pos, pos + len),
    append: async (n, bufs) => void files.set(n, Buffer.concat([files.get(n) ?? Buffer.alloc(0), ...bufs])),
    sync: async () => undefined,
    truncate: async (n, len) => void files.set(n, files.get(n)!.subarray(0, len)),
    replace: (n, data) =>
      new Promise<void>((r) =>
        waiting.push(() => {
          files.set(n, Buffer.from(data));
          r();
        }),
      ),
    close: async () => undefined,
  };
  return {
    disk,
    files,
    /** Lets the pending replaces finish, once at least one is waiting. */
    release: async () => {
      while (waiting.length === 0) await new Promise((r) => setTimeout(r, 1));
      for (const f of waiting.splice(0)) f();
    },
  };
}

describe('FileLoglet', () => {
  it('a repeated seal waits until the sealed bit is durable', async () => {
    const d = slowDisk();
    const opening = FileLoglet.openOn(d.disk, 0);
    await d.release(); // START
    const l = await opening;
    const first = l.seal();
    let secondDone = false;
    const second = l.seal().then((t) => {
      secondDone = true;
      return t;
    });
    await new Promise((r) => setTimeout(r, 10));
    expect(secondDone).toBe(false);
    expect(d.files.has('SEALED')).toBe(false);
    await d.release();
    expect(await first).toEqual({ tail: 0, sealed: true });
    expect(await second).toEqual({ tail: 0, sealed: true });
    expect(d.files.has('SEALED')).toBe(true);
  });
});
