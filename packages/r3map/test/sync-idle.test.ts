// Delta sync over TCP after the handshake: a peer that stops mid-transfer fails the other side within
// idleTimeoutMs, the error naming what it waited for (it waited forever); a peer working locally for
// longer than that (digesting) is not taken for a stopped one (it sends ALIVE frames meanwhile).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';

/** Milliseconds each hash of a whole chunk (64 KiB or more, not a 4 KiB piece) busies the event loop for. */
let hashDelayMs = 0;
vi.mock('@strata/highwayhash', async (original) => {
  const real = await original<typeof import('@strata/highwayhash')>();
  return {
    ...real,
    hash128: (key: Uint8Array, data: Uint8Array) => {
      const end = performance.now() + (data.length >= 65536 ? hashDelayMs : 0);
      while (performance.now() < end);
      return real.hash128(key, data);
    },
  };
});
const { serveSync, syncToRemote } = await import('../src/index.js');

const root = mkdtempSync(join(tmpdir(), 'r3map-sync-idle-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const closers: (() => void)[] = [];
afterEach(() => {
  hashDelayMs = 0;
  for (const c of closers.splice(0)) c();
});

function frame(type: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(5);
  h.writeUInt32BE(payload.length + 1, 0);
  h[4] = type;
  return Buffer.concat([h, payload]);
}

/** The frames arriving on `sock`, as they come. */
function frameReader(sock: Socket): { next: () => Promise<{ type: number; payload: Buffer }> } {
  let buf = Buffer.alloc(0);
  const waiting: (() => void)[] = [];
  sock.on('data', (c: Buffer) => {
    buf = Buffer.concat([buf, c]);
    for (const w of waiting.splice(0)) w();
  });
  return {
    async next() {
      for (;;) {
        if (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
          const n = buf.readUInt32BE(0);
          const f = { type: buf[4]!, payload: buf.subarray(5, 4 + n) };
          buf = buf.subarray(4 + n);
          return f;
        }
        await new Promise<void>((r) => waiting.push(r));
      }
    },
  };
}

async function listening(s: Server): Promise<number> {
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  closers.push(() => s.close());
  return (s.address() as { port: number }).port;
}

/** Resolves with `p`'s outcome, or 'still waiting' after `ms`. */
function within<T>(p: Promise<T>, ms: number): Promise<T | Error | 'still waiting'> {
  return Promise.race([
    p.catch((e: Error) => e),
    new Promise<'still waiting'>((r) => setTimeout(() => r('still waiting'), ms)),
  ]);
}

const chunk = 64 << 10;

describe('sync client, a server that stops mid-transfer', () => {
  it('fails within idleTimeoutMs naming the phase (a server that never answers PIECES held it forever)', async () => {
    const src = join(root, 'client-src.img');
    writeFileSync(src, Buffer.alloc(4 * chunk, 3));
    // READY, then digests of zeros for the client's four chunks (all differ), then nothing
    const port = await listening(
      createServer((s) => {
        closers.push(() => s.destroy());
        const r = frameReader(s);
        void r.next().then(() => {
          const d = Buffer.alloc(8 + 16 * 4);
          d.writeBigUInt64BE(BigInt(4 * chunk), 0);
          s.write(Buffer.concat([frame(7, Buffer.from([1])), frame(2, d)]));
        });
      }),
    );
    const t0 = performance.now();
    const got = await within(syncToRemote(src, '127.0.0.1', port, 'x.img', { idleTimeoutMs: 500 }), 5_000);
    expect(got).toBeInstanceOf(Error);
    expect((got as Error).message).toBe(
      `sync server 127.0.0.1:${port}: nothing arrived or left for 500 ms while waiting for its piece digests`,
    );
    expect(performance.now() - t0).toBeLessThan(3_000);
  });
});

describe('sync server, a client that stops mid-transfer', () => {
  it('drops it within idleTimeoutMs with an ERROR frame and onError naming the phase (it was held forever)', async () => {
    const errors: Error[] = [];
    const server = serveSync(root, { idleTimeoutMs: 500, onError: (e) => errors.push(e) });
    const port = await listening(server);
    const sock = connect({ host: '127.0.0.1', port });
    closers.push(() => sock.destroy());
    await new Promise((r) => sock.once('connect', r));
    const r = frameReader(sock);
    const closed = new Promise<void>((res) => sock.once('close', () => res()));
    const hello = { path: 'server-dst.img', chunkBytes: chunk, size: 4 * chunk, alive: true };
    sock.write(frame(1, Buffer.from(JSON.stringify(hello))));
    expect((await r.next()).type).toBe(7);
    expect((await r.next()).type).toBe(2);
    // half a CHUNK frame, then nothing
    const c = frame(3, Buffer.concat([Buffer.alloc(8), Buffer.alloc(chunk, 1)]));
    sock.write(c.subarray(0, 1000));
    const t0 = performance.now();
    expect(await within(closed, 5_000)).toBeUndefined();
    expect(performance.now() - t0).toBeLessThan(3_000);
    const why = `nothing arrived or left for 500 ms while waiting for the client's next frame (PIECES, CHUNK or DONE)`;
    const last = await r.next();
    expect(last.type).toBe(5);
    expect(last.payload.toString()).toMatch(why);
    expect(errors.map((e) => e.message)).toEqual([expect.stringContaining(why)]);
  });
});

describe('sync over TCP, a side working locally for longer than idleTimeoutMs', () => {
  it('is kept: it sends ALIVE frames meanwhile, and the sync completes', async () => {
    const mib = 1 << 20;
    const src = join(root, 'alive-src.img');
    const data = Buffer.alloc(64 * mib);
    for (let i = 0; i < data.length; i += mib) data[i] = 1 + ((i / mib) & 0x7f);
    writeFileSync(src, data);
    writeFileSync(join(root, 'alive-dst.img'), Buffer.alloc(64 * mib));
    const server = serveSync(root, { idleTimeoutMs: 1_500 });
    const port = await listening(server);
    // 64 chunks of 1 MiB a side at 25 ms a chunk, read 4 at a time (so the event loop turns every 100 ms
    // or so): with both sides in this process, the digests take over 3 s, twice the idle bound, while
    // each side waits on the other
    hashDelayMs = 25;
    const t0 = performance.now();
    const res = await syncToRemote(src, '127.0.0.1', port, 'alive-dst.img', {
      chunkBytes: mib,
      idleTimeoutMs: 1_500,
    });
    expect(performance.now() - t0).toBeGreaterThan(3_000);
    expect(res.changedChunks).toBe(64);
    expect(Buffer.compare(readFileSync(join(root, 'alive-dst.img')), data)).toBe(0);
  }, 20_000);

  it('a version 1 client (windowChunks 0) gets its one DIGESTS frame in parts, with no ALIVE frame inside it', async () => {
    const mib = 1 << 20;
    const src = join(root, 'alive1-src.img');
    const data = Buffer.alloc(64 * mib);
    for (let i = 0; i < data.length; i += mib) data[i] = 1 + ((i / mib) & 0x7f);
    writeFileSync(src, data);
    writeFileSync(join(root, 'alive1-dst.img'), Buffer.alloc(64 * mib));
    const server = serveSync(root, { idleTimeoutMs: 1_500 });
    const port = await listening(server);
    // the server streams the frame 16 MiB of its file at a time (0.4 s of hashing here, with the client's
    // own digests in this process 0.8 s): an ALIVE frame sent while it hashes would land inside the frame
    hashDelayMs = 25;
    const res = await syncToRemote(src, '127.0.0.1', port, 'alive1-dst.img', {
      chunkBytes: mib,
      idleTimeoutMs: 1_500,
      windowChunks: 0,
    });
    expect(res.changedChunks).toBe(64);
    expect(Buffer.compare(readFileSync(join(root, 'alive1-dst.img')), data)).toBe(0);
  }, 20_000);
});
