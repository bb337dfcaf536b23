// Edges of the public API: zero, fractional and huge numbers, failures half-way, repeated calls.
import {
  closeSync,
  ftruncateSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { captureIo, runCommand } from '@strata/cli';
import { describe, expect, it } from 'vitest';
import {
  type BlockDevice,
  commands,
  MemoryDevice,
  MigratingDevice,
  MountDevice,
  migrate,
  migrateFrom,
  serveSync,
  syncToRemote,
  TrackedDevice,
  unitsToChunks,
} from '../src/index.js';
import { readBytes } from './helpers/sockets.js';

const kib = 1024;

/** A promise and its resolver. */
function deferred(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

/** The heap in use after a full collection (the flag is set at run time; vm hands out the function). */
function heapAfterGc(): number {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
  return process.memoryUsage().heapUsed;
}

describe('TrackedDevice', () => {
  it('refuses a tracking unit that is not a whole number >= 1 (0 looped forever on a write, NaN tracked nothing)', () => {
    for (const unit of [0, -4096, 1.5, Number.NaN, Number.POSITIVE_INFINITY])
      expect(() => new TrackedDevice(new MemoryDevice(1 << 20), unit), String(unit)).toThrow(RangeError);
    expect(new TrackedDevice(new MemoryDevice(1 << 20), 1).size).toBe(1 << 20);
  });

  it('a trim out of range is a RangeError at once (it marked 2^38 units first)', async () => {
    const t = new TrackedDevice(new MemoryDevice(1 << 20), 4096);
    t.drainDirty();
    const t0 = performance.now();
    await expect(t.trim(0, 2 ** 50)).rejects.toThrow(RangeError);
    await expect(t.trim(-4096, 4096)).rejects.toThrow(RangeError);
    expect(performance.now() - t0).toBeLessThan(500);
    expect(t.drainDirty().size).toBe(0);
  });

  it('the seal waits for a trim in flight, so the destination never copies the range before it lands', async () => {
    const size = 1 << 20;
    const inner = new MemoryDevice(size);
    await inner.writeAt(0, new Uint8Array(64 * kib).fill(0xaa));
    const gate = deferred();
    const slow: BlockDevice = {
      size,
      readAt: (o, l) => inner.readAt(o, l),
      writeAt: (o, b) => inner.writeAt(o, b),
      flush: () => inner.flush(),
      trim: async (o, l) => {
        await gate.promise;
        await inner.trim(o, l);
      },
      close: () => inner.close(),
    };
    const source = new TrackedDevice(slow, 4096);
    const front = new MigratingDevice(source);
    const dest = new MountDevice(new MemoryDevice(size), source.copySource, { chunkBytes: 64 * kib });
    source.drainDirty();
    const trimmed = front.trim(0, 64 * kib); // acknowledged only once the inner trim is done
    const m = migrate(source, dest, front, { dirtyChunksMax: 64 });
    setTimeout(gate.open, 50);
    await Promise.all([trimmed, m]);
    expect(Buffer.from(await dest.readAt(0, 64 * kib)).every((b) => b === 0)).toBe(true);
    // sealed sources refuse trims as they refuse writes (the workload's go through MigratingDevice)
    source.seal();
    await expect(source.trim(0, 4096)).rejects.toThrow(/sealed/);
  });

  it('quiesce resolves every caller (a second one replaced the first, which then waited forever)', async () => {
    const gate = deferred();
    const inner = new MemoryDevice(1 << 20);
    const slow: BlockDevice = {
      ...inner,
      size: inner.size,
      writeAt: async (o, b) => {
        await gate.promise;
        await inner.writeAt(o, b);
      },
      readAt: (o, l) => inner.readAt(o, l),
      flush: async () => {},
      trim: (o, l) => inner.trim(o, l),
      close: async () => {},
    };
    const t = new TrackedDevice(slow, 4096);
    const w = t.writeAt(0, new Uint8Array(1));
    t.seal();
    const a = t.quiesce();
    const b = t.quiesce();
    gate.open();
    await w;
    await expect(
      Promise.race([
        Promise.all([a, b]).then(() => 'both'),
        new Promise((r) => setTimeout(() => r('stuck'), 1000)),
      ]),
    ).resolves.toBe('both');
  });
});

describe('migrateFrom options', () => {
  it('refuses a rate cap of 0 or less and round bounds that are not whole numbers >= 0, before connecting (--max-rate 0 meant no cap)', async () => {
    const open = async (size: number) => new MemoryDevice(size);
    // port 1 on loopback: nothing listens there, so a check after connecting would fail differently
    for (const [opts, why] of [
      [{ rateBytesMax: 0 }, 'migration rateBytesMax must be a number of bytes per second above 0, got 0'],
      [{ rateBytesMax: Number.NaN }, 'rateBytesMax must be a number of bytes per second above 0, got NaN'],
      [{ roundsMax: Number.NaN }, 'migration roundsMax must be a whole number >= 0, got NaN'],
      [{ dirtyChunksMax: -1 }, 'migration dirtyChunksMax must be a whole number >= 0, got -1'],
    ] as const)
      await expect(migrateFrom('127.0.0.1', 1, { open, ...opts })).rejects.toThrow(why);
    const dir = mkdtempSync(join(tmpdir(), 'r3map-rate-'));
    try {
      const c = captureIo('', {}, dir);
      const migrateCmd = commands.find((x) => x.name === 'migrate')!;
      const argv = [
        'dest',
        '--from',
        '127.0.0.1:1',
        '--file',
        'x.img',
        '--serve',
        '127.0.0.1:0',
        '--max-rate',
        '0',
      ];
      expect(await runCommand(migrateCmd, argv, c.io)).toBe(2);
      expect(c.stderr()).toContain("--max-rate: expected at least 1 byte per second, got '0'");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('unitsToChunks', () => {
  it('refuses sizes that are not whole numbers >= 1 and units that are not indices (a chunk size of 0 looped forever)', () => {
    for (const [unit, chunk] of [
      [4096, 0],
      [0, 65536],
      [4096, Number.NaN],
      [1.5, 65536],
    ] as const)
      expect(() => unitsToChunks([1], unit, chunk, 1 << 20), `${unit}/${chunk}`).toThrow(RangeError);
    expect(() => unitsToChunks([-1], 4096, 65536, 1 << 20)).toThrow(RangeError);
    expect(() => unitsToChunks([0.5], 4096, 65536, 1 << 20)).toThrow(RangeError);
    expect([...unitsToChunks([0, 15, 16, 255, 256], 4096, 65536, 1 << 20)]).toEqual([0, 1, 15]);
    // the last partial unit and chunk: a device of 100,000 bytes
    expect([...unitsToChunks([24, 25], 4096, 65536, 100_000)]).toEqual([1]);
  });
});

describe('MountDevice', () => {
  it('refuses a chunk size that is not a whole number (NaN made no chunks: reads returned zeros, never fetched)', async () => {
    const remote = new MemoryDevice(1 << 20);
    for (const chunkBytes of [Number.NaN, 65536.5, 0, 8 << 20])
      expect(
        () => new MountDevice(new MemoryDevice(1 << 20), remote, { chunkBytes }),
        String(chunkBytes),
      ).toThrow(RangeError);
  });

  it('a push that fails during flush leaves every chunk not pushed dirty, and the next flush pushes them', async () => {
    const remote = new MemoryDevice(1 << 20);
    let failAt = -1;
    let pushes = 0;
    const flaky: BlockDevice = {
      size: remote.size,
      readAt: (o, l) => remote.readAt(o, l),
      writeAt: async (o, b) => {
        if (pushes++ === failAt) throw new Error('EIO (once)');
        await remote.writeAt(o, b);
      },
      flush: () => remote.flush(),
      trim: (o, l) => remote.trim(o, l),
      close: async () => {},
    };
    const m = new MountDevice(new MemoryDevice(1 << 20), flaky, { chunkBytes: 64 * kib });
    for (let i = 0; i < 4; i++) await m.writeAt(i * 64 * kib, new Uint8Array([i + 1]));
    failAt = 1; // the second chunk pushed fails
    await expect(m.flush()).rejects.toThrow(/EIO/);
    expect(m.stats.dirty).toBe(3);
    await m.flush();
    expect(m.stats.dirty).toBe(0);
    for (let i = 0; i < 4; i++) expect((await remote.readAt(i * 64 * kib, 1))[0], `chunk ${i}`).toBe(i + 1);
  });
});

describe('delta sync over TCP', () => {
  async function server(): Promise<{ dir: string; port: number; close: () => void }> {
    const dir = mkdtempSync(join(tmpdir(), 'r3map-edges-'));
    const s = serveSync(dir);
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
    return {
      dir,
      port: (s.address() as { port: number }).port,
      close: () => {
        s.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  const sparse = (path: string, bytes: number) => {
    const fd = openSync(path, 'w');
    ftruncateSync(fd, bytes);
    closeSync(fd);
  };

  it('a second HELLO is refused (each opened the file again and only the last was closed)', async () => {
    const srv = await server();
    const fds = () => readdirSync('/proc/self/fd').length;
    const before = fds();
    const sock = connect({ host: '127.0.0.1', port: srv.port });
    const hello = Buffer.from(JSON.stringify({ path: 'x', chunkBytes: 4096, size: 0 }));
    const f = Buffer.alloc(5);
    f.writeUInt32BE(hello.length + 1, 0);
    f[4] = 1;
    const one = Buffer.concat([f, hello]);
    let got = Buffer.alloc(0);
    sock.on('data', (c: Buffer) => (got = Buffer.concat([got, c])));
    sock.write(Buffer.concat(Array.from({ length: 50 }, () => one)));
    // the server answers the second HELLO with an ERROR and closes (it took them all, and kept the files)
    await new Promise((r) => {
      sock.once('close', r);
      setTimeout(r, 5000);
    });
    sock.destroy();
    expect(got.toString('latin1')).toContain('a second HELLO');
    await new Promise((r) => setTimeout(r, 50));
    expect(fds()).toBeLessThanOrEqual(before);
    srv.close();
  });

  /** A sync protocol frame: u32 length, u8 type, payload. */
  const frame = (type: number, payload: Buffer) => {
    const h = Buffer.alloc(5);
    h.writeUInt32BE(payload.length + 1, 0);
    h[4] = type;
    return Buffer.concat([h, payload]);
  };

  it('the server answers no more PIECES while its replies are not read (every reply was queued: 25 MiB for 400 KiB asked)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'r3map-edges-'));
    const s = serveSync(dir);
    const conns: Socket[] = [];
    s.on('connection', (c: Socket) => conns.push(c));
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
    const sock = connect({ host: '127.0.0.1', port: (s.address() as { port: number }).port });
    try {
      writeFileSync(join(dir, 'x'), Buffer.alloc(64 * kib, 1));
      await new Promise((r) => sock.once('connect', r));
      sock.pause();
      const hello = Buffer.from(JSON.stringify({ path: 'x', chunkBytes: 64 * kib, size: 64 * kib }));
      // 400 frames of 256 chunk indices (1 KiB), each answered with 256 x 16 pieces x 16 bytes (64 KiB)
      const n = 400;
      const pieces = frame(6, Buffer.alloc(1024));
      sock.write(Buffer.concat([frame(1, hello), ...new Array<Buffer>(n).fill(pieces)]));
      await new Promise((r) => setTimeout(r, 3000));
      expect(conns.length).toBe(1);
      // past the kernel's socket buffers, a reply or two; not the rest of 25 MiB
      expect(conns[0]!.writableLength).toBeLessThan(1 << 20);
      // READY (its byte: the server sends ALIVE frames), DIGESTS, the PIECES replies
      const all = 6 + (5 + 8 + 16) + n * (5 + 64 * kib);
      expect(await readBytes(sock, all)).toBe(all);
    } finally {
      sock.destroy();
      s.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);

  it('the server holds a frame sent a byte at a time at about a byte of heap a byte (each was a Buffer: about 200 bytes)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'r3map-edges-'));
    const s = serveSync(dir);
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
    const sock = connect({ host: '127.0.0.1', port: (s.address() as { port: number }).port });
    try {
      await new Promise((r) => sock.once('connect', r));
      sock.setNoDelay(true);
      let got = Buffer.alloc(0);
      sock.on('data', (c: Buffer) => (got = Buffer.concat([got, c])));
      const n = 100_000;
      const hello = Buffer.from(JSON.stringify({ path: 'y', chunkBytes: 64 * kib, size: n }));
      const head = Buffer.alloc(5 + 8);
      head.writeUInt32BE(1 + 8 + n, 0);
      head[4] = 3; // CHUNK at offset 0
      sock.write(Buffer.concat([frame(1, hello), head]));
      while (got.length < 6 + 5 + 8) await new Promise((r) => setTimeout(r, 5)); // READY, DIGESTS
      const before = heapAfterGc();
      const one = Buffer.from([6]);
      for (let i = 0; i < n - 1; i++) {
        sock.write(one);
        await new Promise((r) => setImmediate(r));
      }
      await new Promise((r) => setTimeout(r, 100));
      expect(heapAfterGc() - before).toBeLessThan(3 << 20);
      sock.write(Buffer.concat([one, frame(4, Buffer.alloc(0))]));
      const done = got.length + 5;
      for (let i = 0; i < 500 && got.length < done; i++) await new Promise((r) => setTimeout(r, 10));
      expect(got.subarray(got.length - 5)).toEqual(frame(4, Buffer.alloc(0)));
      expect(readFileSync(join(dir, 'y')).equals(Buffer.alloc(n, 6))).toBe(true);
    } finally {
      sock.destroy();
      s.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the client fails when the server goes away mid-transfer (it waited for a drain that never came)', async () => {
    // a server that takes HELLO, says it has nothing, reads 1 MiB of the chunks and closes the connection
    const s = createServer((c) => {
      let got = 0;
      let hello = false;
      c.on('data', (d: Buffer) => {
        got += d.length;
        if (!hello) {
          hello = true;
          const digests = Buffer.alloc(8); // size 0, no digests
          c.write(Buffer.concat([frame(7, Buffer.alloc(0)), frame(2, digests)]));
        }
        if (got > 1 << 20) c.destroy();
      });
      c.on('error', () => undefined);
    });
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
    const local = mkdtempSync(join(tmpdir(), 'r3map-edges-src-'));
    try {
      const src = join(local, 'a.img');
      writeFileSync(src, Buffer.alloc(64 << 20, 7));
      const port = (s.address() as { port: number }).port;
      const outcome = await Promise.race([
        syncToRemote(src, '127.0.0.1', port, 'a.img').then(
          () => 'synced',
          (e: Error) => `failed: ${e.message}`,
        ),
        new Promise((r) => setTimeout(() => r('still waiting'), 10_000)),
      ]);
      expect(outcome).toMatch(/^failed: sync server 127\.0\.0\.1:\d+ closed the connection$/);
    } finally {
      s.close();
      rmSync(local, { recursive: true, force: true });
    }
  }, 30_000);

  it('syncs a file whose digests exceed a 4 MiB frame, and onto a much larger file (bad frame length)', async () => {
    const srv = await server();
    const local = mkdtempSync(join(tmpdir(), 'r3map-edges-src-'));
    try {
      // 1.1 GiB in 4 KiB chunks: 4.4 MiB of digests; sparse, so it costs no disk
      const big = join(local, 'big.img');
      sparse(big, 1100 << 20);
      const fd = openSync(big, 'r+');
      writeFileSync(fd, 'edge');
      closeSync(fd);
      sparse(join(srv.dir, 'big.img'), 1100 << 20);
      const r = await syncToRemote(big, '127.0.0.1', srv.port, 'big.img', { chunkBytes: 4096 });
      expect(r.changedChunks).toBe(1);
      expect(readFileSync(join(srv.dir, 'big.img')).subarray(0, 4).toString()).toBe('edge');
      // the server's file much larger than ours: it sent digests of all of it
      const small = join(local, 'small.img');
      writeFileSync(small, 'small');
      const r2 = await syncToRemote(small, '127.0.0.1', srv.port, 'big.img', { chunkBytes: 4096 });
      expect(r2.size).toBe(5);
      expect(statSync(join(srv.dir, 'big.img')).size).toBe(5);
      expect(readFileSync(join(srv.dir, 'big.img')).toString()).toBe('small');
    } finally {
      rmSync(local, { recursive: true, force: true });
      srv.close();
    }
  });
});
