// NBD_CMD_BLOCK_STATUS from the client: against this package's server, against nbdkit and qemu-nbd (with
// `nbdinfo --map` as the reference), and against a fake server whose replies are wrong in every way the
// protocol (NetworkBlockDevice doc/proto.md) rules out. Until this the client asked for no meta context and
// had no BLOCK_STATUS; a mount or a migration read every hole of its remote.
import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryDevice, NbdClientDevice, NbdServer } from '../src/index.js';
import { chunk, dataPayload, type FakeRequest, fakeNbd, statusPayload } from './helpers/fake-nbd.js';

const exec = promisify(execFile);
const have = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const tools = have('nbdkit') && have('nbdinfo');
if (!tools && process.env.CI)
  throw new Error('CI: nbdkit and nbdinfo are not installed (see .ci/apt/r3map.txt)');
const root = mkdtempSync(join(tmpdir(), 'r3map-bs-'));
const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
  rmSync(root, { recursive: true, force: true });
});
const mib = 1 << 20;

type Run = [offset: number, length: number, flags: number];

/** Every extent of the export, asked from the start on as the answers come, adjacent equal ones merged. */
async function clientMap(c: NbdClientDevice): Promise<Run[]> {
  const out: Run[] = [];
  for (let p = 0; p < c.size; ) {
    const ext = await c.blockStatus(p, c.size - p);
    expect(ext.length).toBeGreaterThan(0);
    for (const x of ext) {
      const last = out[out.length - 1];
      if (last && last[2] === x.flags) last[1] += x.length;
      else out.push([p, x.length, x.flags]);
      p += x.length;
    }
  }
  return out;
}

/** `nbdinfo --map --json` of `uri`, adjacent equal extents merged. */
async function nbdinfoMap(uri: string): Promise<Run[]> {
  const { stdout } = await exec('nbdinfo', ['--map', '--json', uri], { timeout: 30_000 });
  const out: Run[] = [];
  for (const e of JSON.parse(stdout) as { offset: number; length: number; type: number }[]) {
    const last = out[out.length - 1];
    if (last && last[2] === e.type) last[1] += e.length;
    else out.push([e.offset, e.length, e.type]);
  }
  return out;
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as { port: number };
  await new Promise((r) => s.close(r));
  return port;
}

/** `cmd args` serving NBD on 127.0.0.1:port (stopped after the tests), once a client gets through. */
async function serve(cmd: string, args: (port: number) => string[]): Promise<number> {
  const port = await freePort();
  const proc: ChildProcess = spawn(cmd, args(port), { stdio: 'ignore' });
  cleanups.push(() => proc.kill('SIGKILL'));
  for (let i = 0; ; i++) {
    try {
      const c = await NbdClientDevice.connect('127.0.0.1', port, '', { handshakeTimeoutMs: 2_000 });
      await c.close();
      return port;
    } catch (e) {
      if (i === 50) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
const nbdkit = (...plugin: string[]) =>
  serve('nbdkit', (p) => [
    '--foreground',
    '--exit-with-parent',
    '-i',
    '127.0.0.1',
    '-p',
    String(p),
    ...plugin,
  ]);

describe('BLOCK_STATUS against the NbdServer of this package', () => {
  it('reports what a memory device holds, as nbdinfo --map sees it; reads are unchanged', async () => {
    const dev = new MemoryDevice(64 * mib);
    await dev.writeAt(0, Buffer.alloc(100, 1));
    await dev.writeAt(5 * mib + 3, Buffer.alloc(70_000, 2)); // across two 64 KiB chunks
    await dev.writeAt(64 * mib - 10, Buffer.alloc(10, 3));
    const server = new NbdServer([{ name: 'd', device: dev }]);
    const port = await server.listen(0, '127.0.0.1');
    cleanups.push(() => server.close());
    const c = await NbdClientDevice.connect('127.0.0.1', port, 'd');
    cleanups.push(() => c.close());
    expect(c.structured).toBe(true);
    expect(c.hasBlockStatus).toBe(true);
    const k = 64 << 10;
    const want: Run[] = [
      [0, k, 0],
      [k, 5 * mib - k, 3],
      [5 * mib, 2 * k, 0],
      [5 * mib + 2 * k, 59 * mib - 3 * k, 3],
      [64 * mib - k, k, 0],
    ];
    expect(await clientMap(c)).toEqual(want);
    if (tools) expect(await nbdinfoMap(`nbd://127.0.0.1:${port}/d`)).toEqual(want);
    // a range inside a hole, and one cut by the device's end
    expect(await c.blockStatus(2 * mib, 4096)).toEqual([{ length: 4096, flags: 3 }]);
    expect(await c.extents(64 * mib - 2 * k, 2 * k)).toEqual([
      { length: k, hole: true, zero: true },
      { length: k, hole: false, zero: false },
    ]);
    await expect(c.blockStatus(64 * mib - 1, 2)).rejects.toThrow(RangeError);
    // reads come as structured replies now: the bytes are the same
    expect(
      Buffer.from(await c.readAt(5 * mib, 70_010)).equals(
        Buffer.concat([Buffer.alloc(3), Buffer.alloc(70_000, 2), Buffer.alloc(7)]),
      ),
    ).toBe(true);
    // without asking for it (as against a server of before): the whole range is data, one extent
    const plain = await NbdClientDevice.connect('127.0.0.1', port, 'd', { blockStatus: false });
    cleanups.push(() => plain.close());
    expect(plain.hasBlockStatus).toBe(false);
    expect(await plain.blockStatus(0, 64 * mib)).toEqual([{ length: 64 * mib, flags: 0 }]);
    expect(Buffer.from(await plain.readAt(0, 100)).equals(Buffer.alloc(100, 1))).toBe(true);
  });
});

describe.runIf(tools)('BLOCK_STATUS against nbdkit and qemu-nbd, as nbdinfo --map reports it', () => {
  it('nbdkit data: data and holes where the plugin put them', async () => {
    const port = await nbdkit('data', '1 2 3 @1048576 4 5 @3145728 6', 'size=8M');
    const c = await NbdClientDevice.connect('127.0.0.1', port);
    cleanups.push(() => c.close());
    const map = await clientMap(c);
    expect(map).toEqual(await nbdinfoMap(`nbd://127.0.0.1:${port}`));
    expect(map.filter((r) => r[2] === 0).length).toBe(3);
    expect(Buffer.from(await c.readAt(1 * mib, 2)).equals(Buffer.from([4, 5]))).toBe(true);
  });

  it('nbdkit memory: what the client wrote is data, the rest a hole', async () => {
    const port = await nbdkit('memory', '256M');
    const c = await NbdClientDevice.connect('127.0.0.1', port);
    cleanups.push(() => c.close());
    expect((await clientMap(c)).map((r) => r[2])).toEqual([3]);
    await c.writeAt(100 * mib, Buffer.alloc(mib, 9));
    await c.writeAt(255 * mib, Buffer.alloc(4096, 9));
    const map = await clientMap(c);
    expect(map).toEqual(await nbdinfoMap(`nbd://127.0.0.1:${port}`));
    const data = map.filter((r) => r[2] === 0);
    expect(data.reduce((s, r) => s + r[1], 0)).toBeLessThan(3 * mib);
    expect(data.some((r) => r[0] <= 100 * mib && r[0] + r[1] >= 101 * mib)).toBe(true);
  });

  it.runIf(have('qemu-nbd'))(
    'qemu-nbd: holes in its READ replies (OFFSET_HOLE chunks) read as zeros',
    async () => {
      const img = join(root, 'q.img');
      const bytes = Buffer.alloc(8 * mib);
      bytes.fill(7, 3 * mib, 3 * mib + 5000);
      bytes.fill(8, 6 * mib, 7 * mib);
      // a sparse file: only the two written ranges are allocated
      writeFileSync(img, Buffer.alloc(0));
      truncateSync(img, 8 * mib);
      const fd = openSync(img, 'r+');
      writeSync(fd, bytes, 3 * mib, 5000, 3 * mib);
      writeSync(fd, bytes, 6 * mib, mib, 6 * mib);
      closeSync(fd);
      const port = await serve('qemu-nbd', (p) => [
        '-f',
        'raw',
        '-b',
        '127.0.0.1',
        '-p',
        String(p),
        '-t',
        '-e',
        '4',
        img,
      ]);
      const c = await NbdClientDevice.connect('127.0.0.1', port);
      cleanups.push(() => c.close());
      expect(await clientMap(c)).toEqual(await nbdinfoMap(`nbd://127.0.0.1:${port}`));
      expect(Buffer.from(await c.readAt(0, 8 * mib)).equals(bytes)).toBe(true);
    },
  );
});

describe('BLOCK_STATUS replies a server must not send: a clear error naming the field, no hang', () => {
  /** A fake server answering BLOCK_STATUS (and READ) with `answer`'s bytes; the client's first request. */
  async function against(
    answer: (r: FakeRequest) => Buffer,
    ask: (c: NbdClientDevice) => Promise<unknown> = (c) => c.blockStatus(0, mib),
    opts: { contexts?: [number, string][] } = {},
  ) {
    const f = await fakeNbd({ size: 8 * mib, ...opts, onRequest: (r, s) => s.write(answer(r)) });
    cleanups.push(() => f.close());
    const c = await NbdClientDevice.connect('127.0.0.1', f.port, '', { requestTimeoutMs: 5_000 });
    cleanups.push(() => c.destroy());
    const t0 = performance.now();
    const out = ask(c);
    out.catch(() => undefined);
    return { c, out, t0 };
  }
  const done = 1;
  const cases: [string, (r: FakeRequest) => Buffer, RegExp][] = [
    [
      'a zero-length extent',
      (r) =>
        chunk(
          r.handle,
          done,
          5,
          statusPayload(1, [
            [4096, 0],
            [0, 3],
          ]),
        ),
      /extent 1 length 0 \(an extent is at least 1 byte\)/,
    ],
    [
      'extents past the request before the last',
      (r) =>
        chunk(
          r.handle,
          done,
          5,
          statusPayload(1, [
            [mib, 3],
            [4096, 0],
          ]),
        ),
      /extent 1 starts at \+1048576, past the BLOCK_STATUS request's 1048576 bytes/,
    ],
    [
      'a context id that was not negotiated',
      (r) => chunk(r.handle, done, 5, statusPayload(7, [[4096, 0]])),
      /context id 7 was not negotiated \(base:allocation is 1\)/,
    ],
    [
      'a payload that is not 4 + 8n bytes',
      (r) => chunk(r.handle, done, 5, Buffer.alloc(13)),
      /length 13: a BLOCK_STATUS chunk is 4 \+ 8n bytes/,
    ],
    [
      'a payload of 4 GiB (refused, not waited for)',
      (r) => chunk(r.handle, done, 5, Buffer.alloc(0)).fill(0xff, 16, 20),
      /length 4294967295: a BLOCK_STATUS chunk/,
    ],
    [
      'no extents at all',
      (r) => chunk(r.handle, done, 5, statusPayload(1, [])),
      /length 4: a BLOCK_STATUS chunk/,
    ],
    [
      'the same context twice',
      (r) =>
        Buffer.concat([
          chunk(r.handle, 0, 5, statusPayload(1, [[4096, 0]])),
          chunk(r.handle, done, 5, statusPayload(1, [[4096, 0]])),
        ]),
      /context id 1 came twice in one reply/,
    ],
    [
      'data in answer to BLOCK_STATUS',
      (r) => chunk(r.handle, done, 1, dataPayload(0, Buffer.alloc(10))),
      /type 1 .*: type OFFSET_DATA answers a READ only/,
    ],
    [
      'a reply that ends without extents',
      (r) => chunk(r.handle, done, 0, Buffer.alloc(0)),
      /flags DONE without a BLOCK_STATUS chunk for base:allocation/,
    ],
    [
      'a simple reply without an error',
      (r) => {
        const b = Buffer.alloc(16);
        b.writeUInt32BE(0x67446698, 0);
        r.handle.copy(b, 8);
        return b;
      },
      /simple reply to a BLOCK_STATUS, where structured replies were negotiated/,
    ],
    [
      'a chunk of an unknown type',
      (r) => chunk(r.handle, done, 77, Buffer.alloc(0)),
      /type 77 .*: type is not known/,
    ],
    [
      'an error chunk whose message overruns it',
      (r) => {
        const p = Buffer.alloc(8);
        p.writeUInt32BE(5, 0);
        p.writeUInt16BE(100, 4);
        return chunk(r.handle, done, 0x8001, p);
      },
      /message length 100 overruns the chunk's 8 bytes/,
    ],
    [
      'a chunk for a handle not in flight',
      () => chunk(Buffer.alloc(8, 0xee), done, 5, statusPayload(1, [[4096, 0]])),
      /no such request in flight/,
    ],
  ];
  for (const [name, answer, error] of cases)
    it(name, async () => {
      const { c, out, t0 } = await against(answer);
      await expect(out).rejects.toThrow(error);
      expect(performance.now() - t0).toBeLessThan(3_000);
      // the connection is broken: the next request fails at once, saying why
      await expect(c.readAt(0, 1)).rejects.toThrow(error);
    });

  it('an error chunk fails its request only; the connection carries on', async () => {
    let n = 0;
    const { c, out } = await against((r) => {
      if (n++ > 0) return chunk(r.handle, done, 5, statusPayload(1, [[2 * mib, 3]]));
      const m = Buffer.from('no status here');
      const p = Buffer.alloc(6);
      p.writeUInt32BE(22, 0);
      p.writeUInt16BE(m.length, 4);
      return chunk(r.handle, done, 0x8001, Buffer.concat([p, m]));
    });
    await expect(out).rejects.toThrow('server error 22: no status here');
    // the last extent may run past the request (doc/proto.md): it is cut at its end
    expect(await c.blockStatus(0, mib)).toEqual([{ length: mib, flags: 3 }]);
  });

  it('a context the server chose besides base:allocation is skipped', async () => {
    const two = await against(
      (r) =>
        Buffer.concat([
          chunk(r.handle, 0, 5, statusPayload(9, [[4096, 1]])),
          chunk(r.handle, done, 5, statusPayload(4, [[4096, 2]])),
        ]),
      undefined,
      {
        contexts: [
          [4, 'base:allocation'],
          [9, 'x-other:thing'],
        ],
      },
    );
    expect(await two.out).toEqual([{ length: 4096, flags: 2 }]);
  });

  it('a server without base:allocation, or without structured replies: everything is data, reads work', async () => {
    for (const opts of [{ contexts: [] as [number, string][] }, { structured: false }]) {
      const f = await fakeNbd({
        size: 8 * mib,
        ...opts,
        onRequest: (r, s) => {
          // a READ: simple reply of zeros (or one data chunk when structured)
          if (opts.structured === false) {
            const b = Buffer.alloc(16 + r.length);
            b.writeUInt32BE(0x67446698, 0);
            r.handle.copy(b, 8);
            s.write(b);
          } else s.write(chunk(r.handle, done, 1, dataPayload(r.offset, Buffer.alloc(r.length))));
        },
      });
      cleanups.push(() => f.close());
      const c = await NbdClientDevice.connect('127.0.0.1', f.port);
      cleanups.push(() => c.destroy());
      expect(c.hasBlockStatus).toBe(false);
      expect(await c.blockStatus(mib, 7 * mib)).toEqual([{ length: 7 * mib, flags: 0 }]);
      expect(Buffer.from(await c.readAt(0, 4096)).equals(Buffer.alloc(4096))).toBe(true);
    }
  });

  it('structured READs: chunks out of order and holes are assembled; gaps and overlaps are refused', async () => {
    const bytes = Buffer.alloc(3 * 4096);
    bytes.fill(1, 0, 4096).fill(3, 8192);
    const hole = (h: Buffer, off: number, n: number, flags: number) => {
      const p = Buffer.alloc(12);
      p.writeBigUInt64BE(BigInt(off), 0);
      p.writeUInt32BE(n, 8);
      return chunk(h, flags, 2, p);
    };
    const good = await against(
      (r) =>
        Buffer.concat([
          chunk(r.handle, 0, 1, dataPayload(8192, bytes.subarray(8192))),
          hole(r.handle, 4096, 4096, 0),
          chunk(r.handle, done, 1, dataPayload(0, bytes.subarray(0, 4096))),
        ]),
      (c) => c.readAt(0, 3 * 4096),
    );
    expect(Buffer.from((await good.out) as Uint8Array).equals(bytes)).toBe(true);
    const gap = await against(
      (r) => chunk(r.handle, done, 1, dataPayload(4096, bytes.subarray(0, 4096))),
      (c) => c.readAt(0, 3 * 4096),
    );
    await expect(gap.out).rejects.toThrow(/offset leaves \[\+0, \+4096\) of the READ unsent/);
    const overlap = await against(
      (r) =>
        Buffer.concat([
          chunk(r.handle, 0, 1, dataPayload(0, bytes.subarray(0, 8192))),
          hole(r.handle, 4096, 8192, done),
        ]),
      (c) => c.readAt(0, 3 * 4096),
    );
    await expect(overlap.out).rejects.toThrow(/offset \+4096 overlaps an earlier chunk/);
    const outside = await against(
      (r) => hole(r.handle, 10 * 4096, 4096, done),
      (c) => c.readAt(0, 3 * 4096),
    );
    await expect(outside.out).rejects.toThrow(
      /offset 40960 \(\+4096 bytes\) lies outside the READ \[0, \+12288\)/,
    );
  });

  it('READ chunks that overlap are refused as they come, not kept until DONE', async () => {
    // a hole chunk of the whole READ, again and again, never DONE: each was kept (4 MiB for 32 bytes sent)
    const whole = (h: Buffer, n: number) => {
      const p = Buffer.alloc(12);
      p.writeUInt32BE(n, 8);
      return chunk(h, 0, 2, p);
    };
    const { out, t0 } = await against(
      (r) => Buffer.concat([whole(r.handle, r.length), whole(r.handle, r.length)]),
      (c) => c.readAt(0, 4 * mib),
    );
    await expect(out).rejects.toThrow(/offset \+0 overlaps an earlier chunk/);
    expect(performance.now() - t0).toBeLessThan(3_000);
  });
});
