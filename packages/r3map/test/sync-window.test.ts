// Delta sync in windows of digests (sync protocol version 2): the digests held are bounded by the window,
// not the file; version 1 peers are served the old way; WINDOW frames are checked.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { captureIo, runCommand } from '@strata/cli';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { commands, serveSync, syncFiles, syncToRemote } from '../src/index.js';
import { image } from './helpers/image.js';

const root = mkdtempSync(join(tmpdir(), 'r3map-sync-window-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const p = (n: string) => join(root, n);

/** A sync server played by the test: `onFrame` gets each frame the client sends (type, payload). */
function fakeServer(onFrame: (c: Socket, type: number, payload: Buffer) => void) {
  return createServer((c) => {
    let buf = Buffer.alloc(0);
    c.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
        const len = buf.readUInt32BE(0);
        const type = buf[4]!;
        const payload = buf.subarray(5, 4 + len);
        buf = buf.subarray(4 + len);
        onFrame(c, type, payload);
      }
    });
    c.on('error', () => undefined);
  });
}

/** `a` with 4 bytes changed in each of `count` distinct chunks of `chunkBytes` (seeded); the chunks. */
function edit(a: Buffer, chunkBytes: number, count: number, seed: number): { b: Buffer; chunks: number[] } {
  const b = Buffer.from(a);
  const chunks = new Set<number>();
  let s = seed;
  const n = Math.ceil(a.length / chunkBytes);
  while (chunks.size < count) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    chunks.add(s % n);
  }
  for (const c of chunks) {
    const off = Math.min(a.length - 4, c * chunkBytes + (s % (chunkBytes - 4)));
    b.writeUInt32LE(~b.readUInt32LE(off) >>> 0, off);
  }
  return { b, chunks: [...chunks].sort((x, y) => x - y) };
}

function frame(type: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(5);
  h.writeUInt32BE(payload.length + 1, 0);
  h[4] = type;
  return Buffer.concat([h, payload]);
}

async function listen(s: Server): Promise<number> {
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return (s.address() as { port: number }).port;
}

describe('delta sync in windows', () => {
  const chunkBytes = 4096;
  const windowChunks = 64;
  // 32 MiB in 4 KiB chunks: 8,192 chunks, 128 windows of 64
  const size = 32 << 20;
  const old = image(size, 11);
  const { b: changed, chunks } = edit(old, chunkBytes, 200, 5);

  it('locally: a file of 128 windows moves exactly the changed chunks, holding at most 4 windows of digests', async () => {
    writeFileSync(p('l-src'), changed);
    writeFileSync(p('l-dst'), old);
    const r = await syncFiles(p('l-src'), p('l-dst'), { chunkBytes, windowChunks });
    expect(r).toMatchObject({ chunks: size / chunkBytes, changedChunks: chunks.length, windows: 128 });
    expect(r.bytesSent).toBe(chunks.length * chunkBytes);
    expect(Buffer.compare(readFileSync(p('l-dst')), changed)).toBe(0);
    // ours and theirs of the window compared and of the one ahead; all 8,192 of each side before
    expect(r.digestsHeldMax).toBeGreaterThan(0);
    expect(r.digestsHeldMax).toBeLessThanOrEqual(4 * windowChunks);
    expect((await syncFiles(p('l-src'), p('l-dst'), { chunkBytes, windowChunks })).bytesSent).toBe(0);
  });

  it('strata sync takes --window-chunks (1 to 262,144) and says how many windows it compared (--json)', async () => {
    writeFileSync(p('c-src'), old.subarray(0, 1 << 20));
    const cmd = commands.find((c) => c.name === 'sync')!;
    const c = captureIo('', {}, root);
    expect(await runCommand(cmd, ['c-src', 'c-dst', '--window-chunks', '2', '--json'], c.io)).toBe(0);
    // a new destination has no digests: ours of the window compared and of the one ahead
    expect(JSON.parse(c.stdout())).toMatchObject({ chunks: 16, windows: 8, digestsHeldMax: 4 });
    for (const n of ['0', '262145', 'x']) {
      const z = captureIo('', {}, root);
      expect(await runCommand(cmd, ['c-src', 'c-dst', '--window-chunks', n], z.io), n).toBe(2);
      expect(z.stderr()).toMatch(/--window-chunks/);
    }
  });

  it('over TCP: the same, both sides bounded (the server holds one window), 64 KiB chunks refined in pieces', async () => {
    const sessions: { digestsHeldMax: number; windows: number }[] = [];
    const server = serveSync(p('remote'), { onSession: (st) => sessions.push(st) });
    const port = await listen(server);
    try {
      writeFileSync(p('t-src'), changed);
      const { mkdirSync } = await import('node:fs');
      mkdirSync(p('remote'), { recursive: true });
      writeFileSync(p('remote/img'), old);
      const r = await syncToRemote(p('t-src'), '127.0.0.1', port, 'img', { chunkBytes, windowChunks });
      expect(r).toMatchObject({ changedChunks: chunks.length, windows: 128 });
      expect(r.bytesSent).toBe(chunks.length * chunkBytes);
      expect(r.digestsHeldMax).toBeLessThanOrEqual(4 * windowChunks);
      expect(Buffer.compare(readFileSync(p('remote/img')), changed)).toBe(0);
      // 64 KiB chunks, windows of 16 (32 windows): one 4 KiB piece per changed chunk travels
      const again = edit(changed, 65536, 40, 9);
      writeFileSync(p('t-src'), again.b);
      const r2 = await syncToRemote(p('t-src'), '127.0.0.1', port, 'img', { windowChunks: 16 });
      expect(r2).toMatchObject({ changedChunks: again.chunks.length, windows: 32 });
      expect(r2.bytesSent).toBe(again.chunks.length * 4096);
      expect(r2.digestsHeldMax).toBeLessThanOrEqual(4 * 16);
      expect(Buffer.compare(readFileSync(p('remote/img')), again.b)).toBe(0);
      while (sessions.length < 2) await new Promise((res) => setTimeout(res, 10));
      expect(sessions.map((st) => st.windows)).toEqual([128, 32]);
      expect(sessions[0]!.digestsHeldMax).toBe(windowChunks);
      expect(sessions[1]!.digestsHeldMax).toBe(16);
    } finally {
      server.close();
    }
  });

  it('serves a version 1 client (windowChunks 0) its digests in one frame, sent a window at a time', async () => {
    const sessions: { digestsHeldMax: number; windows: number }[] = [];
    const server = serveSync(p('remote1'), { onSession: (st) => sessions.push(st) });
    const port = await listen(server);
    try {
      const { mkdirSync } = await import('node:fs');
      mkdirSync(p('remote1'), { recursive: true });
      writeFileSync(p('v1-src'), changed);
      writeFileSync(p('remote1/img'), old);
      const r = await syncToRemote(p('v1-src'), '127.0.0.1', port, 'img', { chunkBytes, windowChunks: 0 });
      expect(r.changedChunks).toBe(chunks.length);
      expect(r.bytesSent).toBe(chunks.length * chunkBytes);
      // the client holds the whole file's digests from the server (version 1), the server one window
      expect(r.digestsHeldMax).toBeGreaterThanOrEqual(size / chunkBytes);
      expect(Buffer.compare(readFileSync(p('remote1/img')), changed)).toBe(0);
      while (sessions.length < 1) await new Promise((res) => setTimeout(res, 10));
      expect(sessions[0]!.digestsHeldMax).toBeLessThanOrEqual(4096);
    } finally {
      server.close();
    }
  });

  it('syncs with a version 1 server (READY of one byte, then every digest in one frame), asking for no window', async () => {
    const types: number[] = [];
    // a server of before: holds nothing, so every chunk travels
    const server = fakeServer((c, type) => {
      types.push(type);
      if (type === 1) c.write(Buffer.concat([frame(7, Buffer.from([1])), frame(2, Buffer.alloc(8))]));
      if (type === 4) c.end(frame(4, Buffer.alloc(0)));
    });
    const port = await listen(server);
    try {
      writeFileSync(p('v1s-src'), old.subarray(0, 1 << 20));
      const r = await syncToRemote(p('v1s-src'), '127.0.0.1', port, 'img', { chunkBytes, windowChunks });
      expect(r).toMatchObject({ changedChunks: 256, bytesSent: 1 << 20, windows: 4 });
      expect(new Set(types)).toEqual(new Set([1, 3, 4]));
    } finally {
      server.close();
    }
  });

  /** The frames a raw client gets from the sync server on `port` for `bytes`, until it closes or 3 s pass. */
  async function exchange(port: number, bytes: Buffer): Promise<{ type: number; payload: Buffer }[]> {
    const sock = connect({ host: '127.0.0.1', port });
    sock.on('error', () => undefined);
    const parts: Buffer[] = [];
    sock.on('data', (d: Buffer) => parts.push(d));
    sock.write(bytes);
    await new Promise<void>((res) => {
      const t = setTimeout(res, 3_000);
      sock.once('close', () => {
        clearTimeout(t);
        res();
      });
    });
    sock.destroy();
    const all = Buffer.concat(parts);
    const out = [];
    for (let at = 0; at + 5 <= all.length; ) {
      const len = all.readUInt32BE(at);
      out.push({ type: all[at + 4]!, payload: all.subarray(at + 5, at + 4 + len) });
      at += 4 + len;
    }
    return out;
  }

  const hello = (o: object) =>
    frame(1, Buffer.from(JSON.stringify({ path: 'f', chunkBytes: 4096, size: 1 << 20, ...o })));
  const windowReq = (first: number, count: number, bytes = 12) => {
    const b = Buffer.alloc(bytes);
    if (bytes >= 8) b.writeBigUInt64BE(BigInt(first), 0);
    if (bytes >= 12) b.writeUInt32BE(count, 8);
    return frame(9, b);
  };

  it('answers bad WINDOW frames with an ERROR frame saying what is wrong', async () => {
    const errors: string[] = [];
    const server = serveSync(p('remote2'), { onError: (e) => errors.push(e.message) });
    const port = await listen(server);
    try {
      const { mkdirSync } = await import('node:fs');
      mkdirSync(p('remote2'), { recursive: true });
      const cases: [Buffer, RegExp][] = [
        [Buffer.concat([hello({}), windowReq(0, 1)]), /WINDOW before a HELLO that names a window/],
        [hello({ window: 0 }), /window must be an integer in \[1, 262144\]/],
        [hello({ window: 1.5 }), /window must be an integer/],
        [Buffer.concat([hello({ window: 16 }), windowReq(0, 17)]), /at most 16 chunks/],
        [Buffer.concat([hello({ window: 16 }), windowReq(0, 0)]), /WINDOW of chunks \[0, \+0\)/],
        [Buffer.concat([hello({ window: 16 }), windowReq(250, 16)]), /within the 256 of the declared size/],
        [Buffer.concat([hello({ window: 16 }), windowReq(0, 1, 11)]), /WINDOW frame of 11 bytes \(12\)/],
      ];
      for (const [bytes, want] of cases) {
        const got = await exchange(port, bytes);
        const err = got.find((f) => f.type === 5);
        expect(err?.payload.toString('utf8'), String(want)).toMatch(want);
      }
      // a good one: READY of version 2 with the size, then the window's digests (an empty file: none)
      const ok = await exchange(
        port,
        Buffer.concat([hello({ window: 16 }), windowReq(16, 16), frame(4, Buffer.alloc(0))]),
      );
      expect(ok.map((f) => f.type)).toEqual([7, 9, 4]);
      expect([...ok[0]!.payload.subarray(0, 2)]).toEqual([1, 2]);
      expect(ok[1]!.payload.length).toBe(8);
    } finally {
      server.close();
    }
  });

  it('fails a client whose server sends a WINDOW reply of the wrong size, saying so', async () => {
    const server = fakeServer((c, type, payload) => {
      if (type === 1) {
        const ready = Buffer.alloc(10);
        ready[0] = 1;
        ready[1] = 2;
        ready.writeBigUInt64BE(1n << 20n, 2);
        c.write(frame(7, ready));
      }
      // one digest short
      if (type === 9)
        c.write(
          frame(9, Buffer.concat([payload.subarray(0, 8), Buffer.alloc(16 * (payload.readUInt32BE(8) - 1))])),
        );
    });
    const port = await listen(server);
    try {
      writeFileSync(p('bad-src'), old.subarray(0, 1 << 20));
      await expect(
        syncToRemote(p('bad-src'), '127.0.0.1', port, 'img', {
          chunkBytes,
          windowChunks: 64,
          idleTimeoutMs: 2_000,
        }),
      ).rejects.toThrow(/a WINDOW reply of 1016 bytes from chunk 0, for 64 digests from chunk 0/);
    } finally {
      server.close();
    }
  });

  it('survives random and mutated frames (HELLO with a window, WINDOW, PIECES, CHUNK), then still syncs (fuzz)', async () => {
    const server = serveSync(p('remote3'), {
      onError: () => undefined,
      helloTimeoutMs: 1_000,
      idleTimeoutMs: 1_000,
    });
    const port = await listen(server);
    try {
      const { mkdirSync } = await import('node:fs');
      mkdirSync(p('remote3'), { recursive: true });
      const chunk = Buffer.alloc(8 + 100);
      chunk.writeBigUInt64BE(4096n, 0);
      const valid = Buffer.concat([
        hello({ window: 32 }),
        windowReq(0, 32),
        frame(6, Buffer.from([0, 0, 0, 1])),
        frame(3, chunk),
        windowReq(224, 32),
        frame(4, Buffer.alloc(0)),
      ]);
      await fc.assert(
        fc.asyncProperty(
          fc.uint8Array({ maxLength: 100 }),
          fc.nat(valid.length - 1),
          fc.nat(255),
          async (noise, at, byte) => {
            const mutated = Buffer.from(valid);
            mutated[at] = byte;
            // only frames of the protocol come back (an ERROR for what it refuses), and the connection ends
            for (const f of await exchange(port, Buffer.concat([mutated, Buffer.from(noise)])))
              expect([2, 4, 5, 6, 7, 8, 9]).toContain(f.type);
          },
        ),
        { numRuns: 25 },
      );
      writeFileSync(p('f-src'), old.subarray(0, 1 << 20));
      const r = await syncToRemote(p('f-src'), '127.0.0.1', port, 'f', { chunkBytes, windowChunks: 32 });
      expect(r.windows).toBe(8);
      expect(Buffer.compare(readFileSync(p('remote3/f')), old.subarray(0, 1 << 20))).toBe(0);
    } finally {
      server.close();
    }
  }, 120_000);
});
