// FileLoglet details that the conformance suite does not reach: a second seal must not return before the
// first one's sealed bit is durable (found by the NativeLoglet simulation: a LogServer answered a repeated
// seal, then crashed and came back unsealed); an append is acknowledged only after a sync that covers its
// bytes; records are never written where zeros are still being written ahead of them; recovery keeps a
// zero-filled tail and cuts anything else after the last whole record.
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type Disk, FileLoglet, NodeDisk, scanRecords } from '../src/index.js';

/** Writes `b` at `pos` of an in-memory file, extending it with zeros as needed. */
function writeInto(files: Map<string, Buffer>, n: string, pos: number, b: Buffer): void {
  const old = files.get(n) ?? Buffer.alloc(0);
  const data = Buffer.alloc(Math.max(old.length, pos + b.length));
  old.copy(data);
  b.copy(data, pos);
  files.set(n, data);
}

/** An in-memory disk whose `replace` waits until released. */
function slowDisk() {
  const files = new Map<string, Buffer>();
  const waiting: (() => void)[] = [];
  const disk: Disk = {
    label: 'slow',
    read: async (n) => files.get(n),
    readAt: async (n, pos, len) => files.get(n)!.subarray(pos, pos + len),
    create: async (n) => void files.set(n, files.get(n) ?? Buffer.alloc(0)),
    writeAt: async (n, pos, bufs) => writeInto(files, n, pos, Buffer.concat(bufs)),
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

/**
 * An in-memory disk that records what was durable when: `sync` and `zeroFill` wait until released (while
 * held), and each sync makes the bytes written before it durable.
 */
function gatedDisk(o: { zeroFill?: boolean; writeDurable?: boolean } = {}) {
  const files = new Map<string, Buffer>();
  const durable = new Map<string, number>();
  const held: { sync: (() => void)[]; zero: (() => void)[] } = { sync: [], zero: [] };
  const hold = { sync: false, zero: false };
  const log: string[] = [];
  const put = (n: string, pos: number, b: Buffer) => writeInto(files, n, pos, b);
  const gate = (k: 'sync' | 'zero', f: () => void) =>
    hold[k]
      ? new Promise<void>((r) =>
          held[k].push(() => {
            f();
            r();
          }),
        )
      : Promise.resolve(f());
  const disk: Disk = {
    label: 'gated',
    read: async (n) => files.get(n),
    readAt: async (n, pos, len) => files.get(n)!.subarray(pos, pos + len),
    create: async (n) => void files.set(n, files.get(n) ?? Buffer.alloc(0)),
    writeAt: async (n, pos, bufs) => {
      const b = Buffer.concat(bufs);
      log.push(`write ${pos}-${pos + b.length}`);
      put(n, pos, b);
    },
    sync: (n) => {
      const upTo = files.get(n)?.length ?? 0; // what was written before the sync started
      return gate('sync', () => durable.set(n, Math.max(durable.get(n) ?? 0, upTo)));
    },
    truncate: async (n, len) => {
      files.set(n, files.get(n)!.subarray(0, len));
      durable.set(n, len);
    },
    replace: async (n, data) => void files.set(n, Buffer.from(data)),
    close: async () => undefined,
  };
  if (o.zeroFill)
    disk.zeroFill = (n, from, to) => {
      log.push(`zero ${from}-${to}`);
      return gate('zero', () => {
        put(n, from, Buffer.alloc(to - from));
        durable.set(n, Math.max(durable.get(n) ?? 0, to));
      });
    };
  if (o.writeDurable)
    disk.writeDurable = (n, pos, bufs) => {
      const b = Buffer.concat(bufs);
      log.push(`durable write ${pos}-${pos + b.length}`);
      put(n, pos, b);
      return gate('sync', () => durable.set(n, Math.max(durable.get(n) ?? 0, pos + b.length)));
    };
  return {
    disk,
    files,
    durable,
    hold,
    log,
    /** Lets the held calls of kind `k` finish, once at least one is waiting. */
    release: async (k: 'sync' | 'zero') => {
      while (held[k].length === 0) await new Promise((r) => setTimeout(r, 1));
      for (const f of held[k].splice(0)) f();
    },
  };
}

const rec = (i: number) => new Uint8Array(100).fill(i);
const tick = () => new Promise((r) => setTimeout(r, 5));

describe('FileLoglet', () => {
  it('acknowledges an append only once a sync has covered its bytes', async () => {
    const d = gatedDisk({ zeroFill: true });
    const l = await FileLoglet.openOn(d.disk, 0);
    d.hold.sync = true;
    const acked: number[] = [];
    const appends = [0, 1, 2].map((i) =>
      l.append([rec(i), rec(i)]).then((ps) => {
        // every byte of this append is durable when it is acknowledged
        expect(d.durable.get('records.log') ?? 0).toBeGreaterThanOrEqual(112 * (ps[1]! + 1));
        acked.push(i);
        return ps;
      }),
    );
    await tick();
    expect(acked).toEqual([]); // written, but its sync has not returned
    await d.release('sync');
    await tick();
    expect(acked.length).toBeGreaterThan(0);
    d.hold.sync = false;
    await d.release('sync').catch(() => undefined);
    expect(await Promise.all(appends)).toEqual([
      [0, 1],
      [2, 3],
      [4, 5],
    ]);
    await l.close();
  });

  it.each([false, true])(
    'never writes records where zeros are still being written, and recovers over the zeros (writeDurable: %s)',
    async (writeDurable) => {
      const d = gatedDisk({ zeroFill: true, writeDurable });
      const l = await FileLoglet.openOn(d.disk, 0);
      d.hold.zero = true;
      // 64 KiB of zeros are wanted ahead of the first record: its group starts the fill and goes on syncing
      expect(await l.append([rec(1)])).toEqual([0]);
      // the next record would land in the range being zero-filled: it waits for the fill
      const second = l.append([rec(2)]);
      await tick();
      expect(d.log).toEqual(['write 0-112', `zero 112-${112 + 64 * 1024}`]);
      await d.release('zero');
      expect(await second).toEqual([1]);
      const w = writeDurable ? 'durable write' : 'write';
      expect(d.log).toEqual(['write 0-112', `zero 112-${112 + 64 * 1024}`, `${w} 112-224`]);
      await l.close();
      // the file is longer than its records, and all zeros past them: reopened, nothing is cut
      const file = d.files.get('records.log')!;
      expect(file.length).toBe(112 + 64 * 1024);
      const again = await FileLoglet.openOn(d.disk, 0);
      expect((await again.checkTail()).tail).toBe(2);
      expect(d.files.get('records.log')!.length).toBe(file.length);
      expect(await again.append([rec(3)])).toEqual([2]);
      expect((await again.read(0, 3)).map((r) => r.payload[0])).toEqual([1, 2, 3]);
      await again.close();
    },
  );

  it('writes a group over zero-filled space durably in one step (writeDurable), else writes and syncs', async () => {
    const d = gatedDisk({ zeroFill: true, writeDurable: true });
    const l = await FileLoglet.openOn(d.disk, 0);
    expect(await l.append([rec(1)])).toEqual([0]); // no zeros yet: write, then sync; the fill starts
    await tick();
    d.hold.sync = true;
    let acked = false;
    const second = l.append([rec(2)]).then((ps) => {
      expect(d.durable.get('records.log') ?? 0).toBeGreaterThanOrEqual(224);
      acked = true;
      return ps;
    });
    await tick();
    expect(acked).toBe(false); // its durable write has not returned
    await d.release('sync');
    expect(await second).toEqual([1]);
    expect(d.log).toEqual(['write 0-112', `zero 112-${112 + 64 * 1024}`, 'durable write 112-224']);
    d.hold.sync = false;
    await l.close();
    const again = await FileLoglet.openOn(d.disk, 0);
    expect((await again.read(0, 2)).map((r) => r.payload[0])).toEqual([1, 2]);
    await again.close();
  });

  it('a failed durable write fails its group and every append after it', async () => {
    const d = gatedDisk({ zeroFill: true, writeDurable: true });
    const l = await FileLoglet.openOn(d.disk, 0);
    expect(await l.append([rec(1)])).toEqual([0]);
    await tick(); // the zero fill has run: the next groups land on zeros
    d.disk.writeDurable = async () => {
      throw new Error('injected EIO');
    };
    const second = l.append([rec(2)]);
    const third = l.append([rec(3)]); // queued behind the failing group
    await expect(second).rejects.toThrow('injected EIO');
    await expect(third).rejects.toThrow('injected EIO');
    await expect(l.append([rec(4)])).rejects.toThrow(/closed/);
    await l.close();
  });

  describe('on a real directory', () => {
    const root = mkdtempSync(join(tmpdir(), 'vlog-file-'));
    afterAll(() => rmSync(root, { recursive: true, force: true }));

    it.each([
      ['in the thread pool', false],
      ['on the event loop', true],
    ])(
      'zero-fills ahead of the records and reopens at the right tail (durable writes %s)',
      async (_, onLoop) => {
        const dir = join(root, `zf-${onLoop}`);
        const disk = await NodeDisk.open(dir, { writesOnLoop: onLoop });
        let durable = 0;
        const write = disk.writeDurable.bind(disk);
        disk.writeDurable = (n, pos, bufs) => {
          durable++;
          return write(n, pos, bufs);
        };
        const l = await FileLoglet.openOn(disk, 0);
        for (let i = 0; i < 50; i++) await l.append([rec(i), rec(i + 1)]);
        await l.close();
        expect(durable).toBeGreaterThan(40); // all but the first groups, written over the zeros
        const path = join(dir, 'records.log');
        const { validBytes } = scanRecords(readFileSync(path));
        expect(validBytes).toBe(100 * 112);
        expect(statSync(path).size).toBeGreaterThan(validBytes); // zeros ahead
        const again = await FileLoglet.open(dir, 0);
        expect((await again.checkTail()).tail).toBe(100);
        expect(await again.append([rec(7)])).toEqual([100]);
        const recs = await again.read(98, 101);
        expect(recs.map((r) => r.payload[0])).toEqual([49, 50, 7]);
        await again.close();
      },
    );

    it.runIf(existsSync('/proc/self/fd'))(
      'closes both descriptors of the records file (plain and O_DSYNC)',
      async () => {
        const dir = join(root, 'fds');
        const path = join(dir, 'records.log');
        const open = () =>
          readdirSync('/proc/self/fd').filter((fd) => {
            try {
              return readlinkSync(`/proc/self/fd/${fd}`) === path;
            } catch {
              return false; // the directory's own descriptor, gone by now
            }
          }).length;
        const l = await FileLoglet.open(dir, 0);
        for (let i = 0; i < 20; i++) await l.append([rec(i)]);
        expect(open()).toBe(2); // the later groups went out through the O_DSYNC descriptor
        await l.close();
        expect(open()).toBe(0);
      },
    );

    it('cuts a torn tail, so that stale records after it never come back', async () => {
      const dir = join(root, 'torn');
      const l = await FileLoglet.open(dir, 0);
      await l.append([rec(1), rec(2), rec(3), rec(4)]);
      await l.close();
      // a crash: the third record torn (its payload half written), the fourth intact after it
      const path = join(dir, 'records.log');
      const file = readFileSync(path);
      file.fill(0xee, 2 * 112 + 12 + 50, 3 * 112);
      writeFileSync(path, file);
      const again = await FileLoglet.open(dir, 0);
      expect((await again.checkTail()).tail).toBe(2);
      expect(statSync(path).size).toBe(2 * 112); // cut at the torn record
      // were the torn bytes kept, the stale fourth record would line up after this one
      expect(await again.append([new Uint8Array(100).fill(9)])).toEqual([2]);
      await again.close();
      const third = await FileLoglet.open(dir, 0);
      expect((await third.checkTail()).tail).toBe(3);
      expect((await third.read(0, 3)).map((r) => r.payload[0])).toEqual([1, 2, 9]);
      await third.close();
    });
  });

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
