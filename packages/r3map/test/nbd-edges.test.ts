// The NBD server against clients at the edges of the protocol: raw sockets, no client library.
import { execFile, spawnSync } from 'node:child_process';
import { connect, createServer, type Socket } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { type BlockDevice, MemoryDevice, NbdClientDevice, NbdServer } from '../src/index.js';
import { readBytes } from './helpers/sockets.js';
import { stuckDevice } from './helpers/stuck.js';

const haveNbdinfo = spawnSync('sh', ['-c', 'command -v nbdinfo']).status === 0;
if (!haveNbdinfo && process.env.CI) throw new Error('CI: nbdinfo is not installed (see .ci/apt/r3map.txt)');

const servers: NbdServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

async function serve(device: BlockDevice): Promise<NbdServer & { port: number }> {
  const s = new NbdServer([{ name: '', device }], { pollUs: 0 });
  const port = await s.listen(0);
  servers.push(s);
  return Object.assign(s, { port });
}

/** Client flags, then NBD_OPT_GO for the export '' (the server answers with INFO and ACK: 18 + 32 + 20 bytes). */
function go(): Buffer {
  const b = Buffer.alloc(4 + 16 + 6);
  b.writeUInt32BE(3, 0); // fixed newstyle, no zeroes
  b.writeBigUInt64BE(0x49484156454f5054n, 4);
  b.writeUInt32BE(7, 12); // GO
  b.writeUInt32BE(6, 16);
  return b;
}
const greetingBytes = 18 + (20 + 12) + 20;

function request(cmd: number, handle: number, offset: number, length: number, flags = 0): Buffer {
  const h = Buffer.alloc(28);
  h.writeUInt32BE(0x25609513, 0);
  h.writeUInt16BE(flags, 4);
  h.writeUInt16BE(cmd, 6);
  h.writeBigUInt64BE(BigInt(handle), 8);
  h.writeBigUInt64BE(BigInt(offset), 16);
  h.writeUInt32BE(length, 24);
  return h;
}

async function open(port: number): Promise<Socket> {
  const sock = connect({ host: '127.0.0.1', port });
  await new Promise((r) => sock.once('connect', r));
  return sock;
}

/** A device of `size` bytes whose reads are `readAt`; writes, flushes and trims do nothing. */
function readsOnly(size: number, readAt: BlockDevice['readAt']): BlockDevice {
  return {
    size,
    readAt,
    writeAt: async () => {},
    flush: async () => {},
    trim: async () => {},
    close: async () => {},
  };
}

/**
 * A paused client of the server on `port` that sent GO and `n` READs of `bytes` at offset 0 (then its FIN
 * with `fin`), reading nothing yet.
 */
async function sendReads(port: number, n: number, bytes: number, o: { fin?: boolean } = {}): Promise<Socket> {
  const sock = await open(port);
  sock.pause();
  const reqs = [go()];
  for (let i = 0; i < n; i++) reqs.push(request(0, i, 0, bytes));
  if (o.fin) sock.end(Buffer.concat(reqs));
  else sock.write(Buffer.concat(reqs));
  return sock;
}

describe('NBD server edges', () => {
  it('sends the replies to requests made before DISC before it closes (they were dropped)', async () => {
    const dev = new MemoryDevice(32 << 20);
    await dev.writeAt(0, new Uint8Array(32 << 20).fill(7));
    const s = await serve(dev);
    const sock = await open(s.port);
    let got = 0;
    sock.on('data', (c: Buffer) => (got += c.length));
    sock.write(Buffer.concat([go(), request(0, 1, 0, 32 << 20), request(2, 2, 0, 0)]));
    await new Promise((r) => sock.once('close', r));
    expect(got).toBe(greetingBytes + 16 + (32 << 20));
  });

  for (const shut of [false, true])
    it(`closes after DISC once the replies are out, then flushes the device: the client does not wait for the disk (${shut ? 'with' : 'without'} its FIN)`, async () => {
      // a flush of 1.5 s: libnbd's shutdown (nbdcopy) waits for the server's end after DISC, and it waited
      // for the flush the server makes then (nbdcopy --file writes: 0.34 -> 0.44 s for 256 MiB)
      let flushes = 0;
      const dev = new (class extends MemoryDevice {
        override async flush(): Promise<void> {
          await new Promise((r) => setTimeout(r, 1_500));
          flushes++;
        }
      })(1 << 20);
      const s = await serve(dev);
      const sock = await open(s.port);
      let got = 0;
      sock.on('data', (c: Buffer) => (got += c.length));
      const ended = new Promise((r) => sock.once('end', r));
      sock.write(Buffer.concat([go(), request(1, 1, 0, 4096), Buffer.alloc(4096, 9), request(2, 2, 0, 0)]));
      if (shut) sock.end();
      const t0 = performance.now();
      await ended;
      expect(performance.now() - t0).toBeLessThan(1_000);
      expect(got).toBe(greetingBytes + 16);
      expect(flushes).toBe(0);
      // the flush still comes
      await expect.poll(() => flushes, { timeout: 5_000 }).toBe(1);
      expect(Buffer.from(await dev.readAt(0, 4096)).equals(Buffer.alloc(4096, 9))).toBe(true);
    });

  it('stops taking requests from a client that does not read its replies, and loses none', async () => {
    const mib = 1 << 20;
    // a device that makes a new buffer per read, as most do
    const dev = readsOnly(64 * mib, async (_o, l) => new Uint8Array(l).fill(1));
    const s = await serve(dev);
    const n = 256;
    const sock = await sendReads(s.port, n, mib);
    await new Promise((r) => setTimeout(r, 1000));
    // every reply would have been queued: 256 MiB
    expect(s.stats.requests).toBeLessThan(200);
    const all = greetingBytes + n * (16 + mib);
    expect(await readBytes(sock, all)).toBe(all);
    expect(s.stats.requests).toBe(n);
    sock.destroy();
  });

  it('counts the READs in flight against the reply bound (of 80 unread READs of 4 MiB all were started: 320 MiB held)', async () => {
    const mib = 1 << 20;
    let started = 0;
    // a device that makes a new buffer per read, a little later (the old server took 64 before any ended)
    const dev = readsOnly(64 * mib, async (_o, l) => {
      started++;
      await new Promise((r) => setTimeout(r, 20));
      return new Uint8Array(l).fill(2);
    });
    const s = await serve(dev);
    const n = 80;
    const sock = await sendReads(s.port, n, 4 * mib);
    await new Promise((r) => setTimeout(r, 1000));
    // 64 MiB of replies and the kernel's socket buffers, not 64 requests of 4 MiB
    expect(started * 4).toBeLessThan(128);
    const all = greetingBytes + n * (16 + 4 * mib);
    expect(await readBytes(sock, all)).toBe(all);
    expect(started).toBe(n);
    sock.destroy();
  });
});

/** Simple replies parsed off a byte stream: `reads` says which handles were READs and how long. */
function parseReplies(
  b: Buffer,
  reads: Map<number, number>,
): { handle: number; error: number; data?: Buffer }[] {
  const out: { handle: number; error: number; data?: Buffer }[] = [];
  let p = 0;
  while (p + 16 <= b.length) {
    expect(b.readUInt32BE(p)).toBe(0x67446698);
    const error = b.readUInt32BE(p + 4);
    const handle = Number(b.readBigUInt64BE(p + 8));
    p += 16;
    const n = error === 0 ? (reads.get(handle) ?? 0) : 0;
    out.push(n > 0 ? { handle, error, data: b.subarray(p, p + n) } : { handle, error });
    p += n;
  }
  expect(p).toBe(b.length);
  return out;
}

/** A memory device whose every operation takes `ms` (so requests are still in flight when the client ends). */
class SlowDevice extends MemoryDevice {
  constructor(
    size: number,
    private readonly ms: number,
  ) {
    super(size);
  }
  private pause(): Promise<void> {
    return new Promise((r) => setTimeout(r, this.ms));
  }
  override async writev(offset: number, parts: Uint8Array[]): Promise<void> {
    await this.pause();
    return super.writev(offset, parts);
  }
  override async readv(offset: number, length: number): Promise<Uint8Array[]> {
    await this.pause();
    return super.readv(offset, length);
  }
  override async flush(): Promise<void> {
    await this.pause();
  }
}

describe('NBD server, a client that shuts down its side without DISC', () => {
  for (const paged of [true, false])
    it(`finishes every request it received and sends every reply before it closes (${paged ? 'paged' : 'plain'} socket; they were dropped)`, async () => {
      const dev = new SlowDevice(1 << 20, 50);
      await dev.writeAt(8192, new Uint8Array(4096).fill(0x5a));
      const s = await serve(dev);
      if (!paged) process.env.STRATA_NBD_PAGED_READS = '0';
      const sock = await open(s.port).finally(() => {
        delete process.env.STRATA_NBD_PAGED_READS;
      });
      const got: Buffer[] = [];
      sock.on('data', (c: Buffer) => got.push(c));
      const closed = new Promise((r) => sock.once('close', r));
      const payload = Buffer.alloc(4096, 0xab);
      sock.write(
        Buffer.concat([
          go(),
          request(1, 1, 0, 4096), // WRITE
          payload,
          request(0, 2, 8192, 4096), // READ
          request(3, 3, 0, 0), // FLUSH
          request(0, 4, 1 << 20, 4096), // READ past the end: EINVAL
          request(1, 5, 16384, 3), // WRITE
          Buffer.from([1, 2, 3]),
          request(0, 6, 16384, 3), // READ
          request(0, 7, 0, 4).subarray(0, 10), // cut short by the end: never a request
        ]),
      );
      sock.end();
      const t0 = performance.now();
      await closed;
      expect(performance.now() - t0).toBeLessThan(5_000);
      const all = Buffer.concat(got);
      expect(all.length).toBeGreaterThanOrEqual(greetingBytes);
      const replies = parseReplies(
        all.subarray(greetingBytes),
        new Map([
          [2, 4096],
          [6, 3],
        ]),
      );
      const byHandle = new Map(replies.map((r) => [r.handle, r]));
      expect([...byHandle.keys()].sort()).toEqual([1, 2, 3, 4, 5, 6]);
      expect(replies.map((r) => [r.handle, r.error]).sort()).toEqual([
        [1, 0],
        [2, 0],
        [3, 0],
        [4, 22],
        [5, 0],
        [6, 0],
      ]);
      expect(byHandle.get(2)!.data!.equals(Buffer.alloc(4096, 0x5a))).toBe(true);
      // WRITE 5 and READ 6 ran at once (NBD leaves their order open): the READ has the old or the new bytes
      expect([[0, 0, 0].join(), [1, 2, 3].join()]).toContain([...byHandle.get(6)!.data!].join());
      expect(Buffer.from(await dev.readAt(0, 4096)).equals(payload)).toBe(true);
      expect([...(await dev.readAt(16384, 3))]).toEqual([1, 2, 3]);
    });

  /**
   * A server over 64 MiB (`drainTimeoutMs` as given) and a paused client that sent GO, `n` READs of its first
   * MiB and then its FIN, reading nothing yet.
   */
  async function halfClosedReads(n: number, drainTimeoutMs: number) {
    const mib = 1 << 20;
    const dev = new MemoryDevice(64 * mib);
    await dev.writeAt(0, new Uint8Array(mib).fill(3));
    const s = new NbdServer([{ name: '', device: dev }], { pollUs: 0, drainTimeoutMs });
    servers.push(s);
    return { s, sock: await sendReads(await s.listen(0), n, mib, { fin: true }), mib };
  }

  it('drops a client that shut down its side and does not read its replies, after drainTimeoutMs without progress', async () => {
    const n = 200;
    const { s, sock, mib } = await halfClosedReads(n, 500);
    const t0 = performance.now();
    while (s.stats.drainTimeouts === 0 && performance.now() - t0 < 10_000)
      await new Promise((r) => setTimeout(r, 20));
    expect(s.stats.drainTimeouts).toBe(1);
    // what the kernel had taken arrives, then the end: the server's side is gone
    let got = 0;
    await new Promise<void>((resolve) => {
      sock.on('data', (c: Buffer) => (got += c.length));
      sock.once('close', () => resolve());
      sock.resume();
    });
    expect(got).toBeLessThan(greetingBytes + n * (16 + mib));
  });

  it('keeps a client that shut down its side and reads its replies slowly, however long it takes', async () => {
    const n = 48;
    const { s, sock, mib } = await halfClosedReads(n, 1_000);
    // 4 MiB every 200 ms: about 2.4 s in all, more than twice the drain timeout
    const all = greetingBytes + n * (16 + mib);
    let got = 0;
    let burst = 0;
    const closed = new Promise((r) => sock.once('close', r));
    sock.on('data', (c: Buffer) => {
      got += c.length;
      burst += c.length;
      if (burst < 4 * mib) return;
      burst = 0;
      sock.pause();
      setTimeout(() => sock.resume(), 200);
    });
    sock.resume();
    await closed;
    expect(got).toBe(all);
    expect(s.stats.drainTimeouts).toBe(0);
  }, 20_000);
});

describe('NBD server, an open client that does not read its replies', () => {
  /** A server over 64 MiB (`sendTimeoutMs` as given) and a paused client that sent GO and `n` READs of 1 MiB. */
  async function openReads(n: number, sendTimeoutMs: number) {
    const mib = 1 << 20;
    const dev = new MemoryDevice(64 * mib);
    await dev.writeAt(0, new Uint8Array(mib).fill(5));
    const s = new NbdServer([{ name: '', device: dev }], { pollUs: 0, sendTimeoutMs });
    servers.push(s);
    return { s, sock: await sendReads(await s.listen(0), n, mib), mib };
  }

  it('drops it after sendTimeoutMs without progress (it was held, with its replies, for as long as it stayed connected)', async () => {
    const n = 200;
    const { s, sock, mib } = await openReads(n, 500);
    const closed = new Promise<void>((r) => sock.once('close', () => r()));
    const t0 = performance.now();
    while (s.connectionsOpen > 0 && performance.now() - t0 < 10_000)
      await new Promise((r) => setTimeout(r, 20));
    expect(s.stats.sendTimeouts).toBe(1);
    expect(s.stats.drainTimeouts).toBe(0);
    expect(s.connectionsOpen).toBe(0);
    // what the kernel had taken arrives, then the end: the server's side is gone
    let got = 0;
    sock.on('data', (c: Buffer) => (got += c.length));
    sock.resume();
    await closed;
    expect(got).toBeLessThan(greetingBytes + n * (16 + mib));
  }, 20_000);

  it('keeps one that reads its replies slowly, and one that is idle with nothing queued', async () => {
    const n = 48;
    const { s, sock, mib } = await openReads(n, 1_000);
    // 4 MiB every 200 ms: about 2.4 s in all, more than twice the send timeout
    const all = greetingBytes + n * (16 + mib);
    let got = 0;
    let burst = 0;
    const done = new Promise<void>((resolve) => {
      sock.on('data', (c: Buffer) => {
        got += c.length;
        burst += c.length;
        if (got === all) resolve();
        if (burst < 4 * mib) return;
        burst = 0;
        sock.pause();
        setTimeout(() => sock.resume(), 200);
      });
    });
    sock.resume();
    await done;
    // then idle, every reply read: still served
    await new Promise((r) => setTimeout(r, 1_500));
    expect(s.stats.sendTimeouts).toBe(0);
    expect(s.connectionsOpen).toBe(1);
    sock.destroy();
  }, 20_000);
});

describe('NBD server maxConnections', () => {
  /** A connection to `port`, resolved with the bytes it got before `ms` passed or it closed, and whether it closed. */
  async function greeting(
    port: number,
    ms = 2_000,
  ): Promise<{ sock: Socket; bytes: number; closed: boolean }> {
    const sock = await open(port);
    let bytes = 0;
    let closed = false;
    sock.on('data', (c: Buffer) => (bytes += c.length));
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      sock.once('close', () => {
        closed = true;
        clearTimeout(t);
        resolve();
      });
      // the greeting is 18 bytes: enough to know it was served
      sock.on('data', () => {
        if (bytes >= 18) {
          clearTimeout(t);
          resolve();
        }
      });
    });
    return { sock, bytes, closed };
  }

  /** Everything `sock` gets until it closes (or `ms` pass), and whether it closed. */
  async function untilClose(sock: Socket, ms: number): Promise<{ got: Buffer; closed: boolean; ms: number }> {
    const parts: Buffer[] = [];
    const t0 = performance.now();
    sock.on('data', (c: Buffer) => parts.push(c));
    const closed = await new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), ms);
      sock.once('close', () => {
        clearTimeout(t);
        resolve(true);
      });
    });
    return { got: Buffer.concat(parts), closed, ms: performance.now() - t0 };
  }

  /** The option replies in `b` after the 18-byte greeting: option, type and message of each. */
  function optionReplies(b: Buffer): { opt: number; type: number; text: string }[] {
    const out = [];
    for (let at = 18; at + 20 <= b.length; ) {
      expect(b.readBigUInt64BE(at)).toBe(0x3e889045565a9n);
      const len = b.readUInt32BE(at + 16);
      out.push({
        opt: b.readUInt32BE(at + 8),
        type: b.readUInt32BE(at + 12),
        text: b.toString('utf8', at + 20, at + 20 + len),
      });
      at += 20 + len;
    }
    return out;
  }

  /** A server of a 1 MiB memory device with `maxConnections` open at most, listening on loopback. */
  async function capped(maxConnections: number, refusalTimeoutMs?: number) {
    const s = new NbdServer([{ name: '', device: new MemoryDevice(1 << 20) }], {
      pollUs: 0,
      maxConnections,
      ...(refusalTimeoutMs !== undefined && { refusalTimeoutMs }),
    });
    servers.push(s);
    return { s, port: await s.listen(0) };
  }

  it('answers a connection past the cap with NBD_REP_ERR_POLICY, holds no slot for it, and serves again once one closes (it was closed before the greeting, without a reason)', async () => {
    const { s, port } = await capped(2, 500);
    const a = await greeting(port);
    const b = await greeting(port);
    expect([a.bytes, b.bytes, s.connectionsOpen]).toEqual([18, 18, 2]);
    // a raw client: flags, then GO; the greeting and an error reply to GO come back, then the close
    const c = await open(port);
    c.write(go());
    const cr = await untilClose(c, 2_000);
    expect(cr.closed).toBe(true);
    expect(cr.got.readBigUInt64BE(0)).toBe(0x4e42444d41474943n);
    const [r, ...rest] = optionReplies(cr.got);
    expect(rest).toEqual([]);
    expect(r).toMatchObject({ opt: 7, type: 0x80000002 });
    expect(r!.text).toMatch(/too many connections: 2 are open/);
    expect(s.stats).toMatchObject({ refusedConnections: 1, refusalsAnswered: 1, refusalTimeouts: 0 });
    expect(s.connectionsOpen).toBe(2);
    // the client library says why, both with its options first and with GO alone
    const e1 = await NbdClientDevice.connect('127.0.0.1', port, '').catch((e: Error) => e);
    expect(e1).toBeInstanceOf(Error);
    expect((e1 as Error).message).toMatch(/NBD_REP_ERR_POLICY: too many connections: 2 are open/);
    const e2 = await NbdClientDevice.connect('127.0.0.1', port, '', { blockStatus: false }).catch(
      (e: Error) => e,
    );
    expect((e2 as Error).message).toMatch(/too many connections: 2 are open/);
    // ABORT gets its ACK; EXPORT_NAME (which has no error reply) the close alone
    const d = await open(port);
    const abort = go();
    abort.writeUInt32BE(2, 12);
    abort.writeUInt32BE(0, 16);
    d.write(abort.subarray(0, 20));
    expect(optionReplies((await untilClose(d, 2_000)).got)).toEqual([{ opt: 2, type: 1, text: '' }]);
    const x = await open(port);
    const exportName = abort.subarray(0, 20);
    exportName.writeUInt32BE(1, 12);
    x.write(exportName);
    const xr = await untilClose(x, 2_000);
    expect([xr.closed, xr.got.length]).toEqual([true, 18]);
    expect(s.stats.refusalTimeouts).toBe(0);
    expect(s.connectionsOpen).toBe(2);
    a.sock.destroy();
    const t0 = performance.now();
    while (s.connectionsOpen > 1 && performance.now() - t0 < 2_000)
      await new Promise((res) => setTimeout(res, 10));
    const dev = await NbdClientDevice.connect('127.0.0.1', port, '');
    expect((await dev.readAt(0, 4096)).length).toBe(4096);
    await dev.close();
    b.sock.destroy();
    expect(s.stats.refusedConnections).toBe(5);
  });

  it('drops a refused connection that sends no option (or half of one) after refusalTimeoutMs, holding no slot', async () => {
    const { s, port } = await capped(1, 300);
    const a = await greeting(port);
    expect(a.bytes).toBe(18);
    const mute = await open(port);
    const half = await open(port);
    half.write(go().subarray(0, 10));
    const [m, h] = await Promise.all([untilClose(mute, 3_000), untilClose(half, 3_000)]);
    for (const r of [m, h]) {
      expect(r.closed).toBe(true);
      expect(r.got.length).toBe(18);
      expect(r.ms).toBeLessThan(2_000);
    }
    expect(s.stats).toMatchObject({ refusedConnections: 2, refusalsAnswered: 0, refusalTimeouts: 2 });
    expect(s.connectionsOpen).toBe(1);
    a.sock.destroy();
  });

  it('answers random and mutated handshakes past the cap with well-formed replies only, closing each within refusalTimeoutMs (fuzz)', async () => {
    const { s, port } = await capped(1, 300);
    const a = await greeting(port);
    const opt = (o: number, data: Buffer) => {
      const h = Buffer.alloc(16);
      h.writeBigUInt64BE(0x49484156454f5054n, 0);
      h.writeUInt32BE(o, 8);
      h.writeUInt32BE(data.length, 12);
      return Buffer.concat([h, data]);
    };
    const flags = Buffer.alloc(4);
    flags.writeUInt32BE(3, 0);
    const meta = Buffer.from([0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 16, ...Buffer.from('base:allocation')]);
    const valid = Buffer.concat([
      flags,
      opt(8, Buffer.alloc(0)),
      opt(10, meta),
      opt(3, Buffer.alloc(0)),
      go().subarray(4),
    ]);
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 200, size: 'max' }),
        fc.nat(valid.length - 1),
        fc.nat(255),
        fc.boolean(),
        async (noise, at, byte, mutate) => {
          const bytes = Buffer.concat([valid, Buffer.from(noise)]);
          if (mutate) bytes[at] = byte;
          const sock = await open(port);
          sock.on('error', () => undefined);
          sock.write(mutate ? bytes : Buffer.from(noise));
          const r = await untilClose(sock, 2_000);
          sock.destroy();
          expect(r.closed).toBe(true);
          expect(r.got.subarray(0, 8).equals(Buffer.from('NBDMAGIC'))).toBe(true);
          for (const reply of optionReplies(r.got)) expect([1, 0x80000002]).toContain(reply.type);
        },
      ),
      { numRuns: 25 },
    );
    expect(s.connectionsOpen).toBe(1);
    a.sock.destroy();
    const t0 = performance.now();
    while (s.connectionsOpen > 0 && performance.now() - t0 < 2_000)
      await new Promise((res) => setTimeout(res, 10));
    const dev = await NbdClientDevice.connect('127.0.0.1', port, '');
    expect((await dev.readAt(0, 4096)).length).toBe(4096);
    await dev.close();
  }, 60_000);

  it.skipIf(!haveNbdinfo)('nbdinfo against a server at its cap reports the reason', async () => {
    const { s, port } = await capped(1);
    const a = await greeting(port);
    expect(a.bytes).toBe(18);
    const out = await new Promise<{ code: number | null; err: string }>((resolve) => {
      execFile(
        'nbdinfo',
        [`nbd://127.0.0.1:${port}/`],
        { timeout: 10_000, env: { ...process.env, LIBNBD_DEBUG: '1' } },
        (e, _stdout, stderr) => resolve({ code: e ? ((e as { code?: number }).code ?? -1) : 0, err: stderr }),
      );
    });
    // libnbd reports an error reply to GO (it printed 'server disconnected unexpectedly' or the like before)
    // and puts the server's message in its debug output
    expect(out.code).not.toBe(0);
    expect(out.err).toMatch(/server replied with error to opt_go request/);
    expect(out.err).toMatch(/too many connections: 1 are open/);
    expect(s.stats.refusalsAnswered).toBe(1);
    a.sock.destroy();
  });

  it('refuses a maxConnections that is not a whole number >= 1', () => {
    for (const n of [0, -1, 1.5, Number.NaN])
      expect(() => new NbdServer([], { maxConnections: n }), String(n)).toThrow(/maxConnections/);
  });
});

/** The heap in use after a full collection (the flag is set at run time; vm hands out the function). */
function heapAfterGc(): number {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
  return process.memoryUsage().heapUsed;
}

describe('NBD server, a client that sends a byte at a time', () => {
  for (const paged of [true, false])
    it(`keeps a WRITE payload at about a byte of heap a byte (${paged ? 'paged' : 'plain'} socket; each byte was a Buffer: 107-196 bytes)`, async () => {
      const dev = new MemoryDevice(1 << 20);
      const s = await serve(dev);
      if (!paged) process.env.STRATA_NBD_PAGED_READS = '0';
      const sock = await open(s.port).finally(() => {
        delete process.env.STRATA_NBD_PAGED_READS;
      });
      sock.setNoDelay(true);
      let got = 0;
      sock.on('data', (c: Buffer) => (got += c.length));
      const n = 100_000;
      sock.write(Buffer.concat([go(), request(1, 1, 4096, n)]));
      while (got < greetingBytes) await new Promise((r) => setTimeout(r, 5));
      const before = heapAfterGc();
      const one = Buffer.from([9]);
      // one byte a turn: the server reads each on its own
      for (let i = 0; i < n - 1; i++) {
        sock.write(one);
        await new Promise((r) => setImmediate(r));
      }
      await new Promise((r) => setTimeout(r, 100));
      expect(heapAfterGc() - before).toBeLessThan(3 << 20);
      sock.write(one);
      for (let i = 0; i < 500 && got < greetingBytes + 16; i++) await new Promise((r) => setTimeout(r, 10));
      expect(got).toBe(greetingBytes + 16);
      expect(Buffer.from(await dev.readAt(4096, n)).equals(Buffer.alloc(n, 9))).toBe(true);
      sock.destroy();
    });
});

describe('NBD server handshake', () => {
  it('stops taking options from a client that does not read their replies (each LIST of 16 bytes queued 4 KiB)', async () => {
    const description = 'd'.repeat(4096);
    const s = new NbdServer([{ name: '', device: new MemoryDevice(1 << 20), description }], { pollUs: 0 });
    servers.push(s);
    const sock = await open(await s.listen(0));
    sock.pause();
    const n = 20_000;
    const list = Buffer.alloc(16);
    list.writeBigUInt64BE(0x49484156454f5054n, 0);
    list.writeUInt32BE(3, 8); // LIST
    const flags = Buffer.alloc(4);
    flags.writeUInt32BE(3, 0);
    const before = process.memoryUsage().arrayBuffers;
    sock.write(Buffer.concat([flags, ...new Array<Buffer>(n).fill(list)]));
    await new Promise((r) => setTimeout(r, 1500));
    // n replies of 20 + 4 + 4,096 bytes and n ACKs of 20 would be 83 MB
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(32 << 20);
    // all of them once read
    const all = 18 + n * (20 + 4 + 4096 + 20);
    expect(await readBytes(sock, all)).toBe(all);
    sock.destroy();
  });
});

describe('NBD server WRITE_ZEROES', () => {
  it('punches a hole unless NO_HOLE (zeros were written: 1 GiB allocated by one 28-byte request)', async () => {
    const mib = 1 << 20;
    const dev = new MemoryDevice(2 ** 40);
    for (const at of [0, 512 * mib, 1024 * mib - 1, 1024 * mib]) await dev.writeAt(at, new Uint8Array([5]));
    const s = await serve(dev);
    const sock = await open(s.port);
    let got = 0;
    sock.on('data', (c: Buffer) => (got += c.length));
    const before = process.memoryUsage().arrayBuffers;
    sock.write(Buffer.concat([go(), request(6, 1, 0, 1024 * mib), request(6, 2, 2048 * mib, mib, 2)]));
    for (let i = 0; i < 500 && got < greetingBytes + 32; i++) await new Promise((r) => setTimeout(r, 20));
    expect(got).toBe(greetingBytes + 32);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(64 * mib);
    for (const at of [0, 512 * mib, 1024 * mib - 1]) expect((await dev.readAt(at, 1))[0], String(at)).toBe(0);
    expect((await dev.readAt(1024 * mib, 1))[0]).toBe(5);
    // NO_HOLE: written as zeros, allocated
    expect((await dev.extents(2048 * mib, mib))[0]).toEqual({ length: mib, hole: false, zero: false });
    sock.destroy();
  });
});

describe('NBD client edges', () => {
  it('close ends, after closeTimeoutMs, with a server that stopped answering (it waited forever)', async () => {
    // a server that completes the handshake and then answers nothing
    const mute = createServer((s) => {
      const hello = Buffer.alloc(18);
      hello.writeBigUInt64BE(0x4e42444d41474943n, 0);
      hello.writeBigUInt64BE(0x49484156454f5054n, 8);
      hello.writeUInt16BE(3, 16);
      s.write(hello);
      s.once('data', () => {
        const info = Buffer.alloc(32);
        info.writeBigUInt64BE(0x3e889045565a9n, 0);
        info.writeUInt32BE(7, 8);
        info.writeUInt32BE(3, 12); // INFO
        info.writeUInt32BE(12, 16);
        info.writeBigUInt64BE(1n << 20n, 22);
        const ack = Buffer.alloc(20);
        ack.writeBigUInt64BE(0x3e889045565a9n, 0);
        ack.writeUInt32BE(7, 8);
        ack.writeUInt32BE(1, 12); // ACK
        s.write(Buffer.concat([info, ack]));
      });
    });
    await new Promise<void>((r) => mute.listen(0, '127.0.0.1', () => r()));
    const port = (mute.address() as { port: number }).port;
    // its script answers one option, GO: no structured replies asked for
    const c = await NbdClientDevice.connect('127.0.0.1', port, '', {
      closeTimeoutMs: 300,
      blockStatus: false,
    });
    const read = c.readAt(0, 10);
    read.catch(() => undefined);
    const closed = await Promise.race([
      c.close().then(() => 'closed'),
      new Promise((r) => setTimeout(() => r('still waiting'), 5000)),
    ]);
    expect(closed).toBe('closed');
    await expect(read).rejects.toThrow(/unanswered after 300 ms/);
    await expect(c.readAt(0, 1)).rejects.toThrow(/closed/);
    mute.close();
  });

  it('with requestTimeoutMs, a request the server leaves unanswered breaks the connection: reads fail, not wait forever', async () => {
    // a device whose reads never end: the server takes the request and answers nothing
    const stuck = stuckDevice(1 << 20);
    const s = new NbdServer([{ name: '', device: stuck }]);
    servers.push(s);
    const port = await s.listen(0, '127.0.0.1');
    await expect(NbdClientDevice.connect('127.0.0.1', port, '', { requestTimeoutMs: -1 })).rejects.toThrow(
      'NBD requestTimeoutMs must be a number of milliseconds from 0 to 2147483647, got -1',
    );
    const c = await NbdClientDevice.connect('127.0.0.1', port, '', { requestTimeoutMs: 300 });
    const t0 = performance.now();
    await expect(c.readAt(0, 4096)).rejects.toThrow(
      'no reply from the server in 300 ms (the request timeout)',
    );
    expect(performance.now() - t0).toBeLessThan(3000);
    await expect(c.readAt(0, 1)).rejects.toThrow(/the request timeout/); // at once: the connection is broken
    await c.close();
    // without the option a request waits as long as the connection lives (as before): still pending here
    const patient = await NbdClientDevice.connect('127.0.0.1', port, '', { closeTimeoutMs: 100 });
    const read = patient.readAt(0, 1);
    read.catch(() => undefined);
    expect(
      await Promise.race([
        read.then(() => 'answered'),
        new Promise((r) => setTimeout(() => r('waiting'), 600)),
      ]),
    ).toBe('waiting');
    await patient.close();
  });

  it('trims 4 GiB and more (the u32 length of one request overflowed: a RangeError from Buffer)', async () => {
    const gib = 2 ** 30;
    const dev = new MemoryDevice(8 * gib);
    const s = await serve(dev);
    const c = await NbdClientDevice.connect('127.0.0.1', s.port);
    for (const at of [0, 4 * gib - 1, 4 * gib, 6 * gib]) await c.writeAt(at, new Uint8Array([9]));
    await c.trim(0, 0);
    await c.trim(0, 6 * gib);
    for (const at of [0, 4 * gib - 1, 4 * gib]) expect((await c.readAt(at, 1))[0], String(at)).toBe(0);
    expect((await c.readAt(6 * gib, 1))[0]).toBe(9);
    await expect(c.trim(6 * gib, 3 * gib)).rejects.toThrow(RangeError);
    await c.close();
  });
});

describe('NBD server, BLOCK_STATUS without the context', () => {
  /** An option request: IHAVEOPT, the option, its data. */
  const option = (opt: number, data = Buffer.alloc(0)) => {
    const h = Buffer.alloc(16);
    h.writeBigUInt64BE(0x49484156454f5054n, 0);
    h.writeUInt32BE(opt, 8);
    h.writeUInt32BE(data.length, 12);
    return Buffer.concat([h, data]);
  };
  const str = (s: string) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(Buffer.byteLength(s), 0);
    return Buffer.concat([b, Buffer.from(s)]);
  };
  /** SET_META_CONTEXT for `name`, asking base:allocation. */
  const setMeta = (name: string) => {
    const n = Buffer.alloc(4);
    n.writeUInt32BE(1, 0);
    return option(10, Buffer.concat([str(name), n, str('base:allocation')]));
  };
  const goTo = (name: string) => option(7, Buffer.concat([str(name), Buffer.alloc(2)]));
  const flags = Buffer.from([0, 0, 0, 3]);

  /** Sends the handshake `opts` then a BLOCK_STATUS of 4 KiB; the structured reply's type and first word. */
  async function status(opts: Buffer[]): Promise<[number, number]> {
    const dev = new MemoryDevice(1 << 20);
    await dev.writeAt(0, new Uint8Array(4096).fill(1));
    const s = new NbdServer(
      [
        { name: 'a', device: dev },
        { name: 'b', device: dev },
      ],
      { pollUs: 0 },
    );
    servers.push(s);
    const sock = await open(await s.listen(0));
    let buf = Buffer.alloc(0);
    sock.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
    });
    sock.write(Buffer.concat([flags, ...opts, request(7, 42, 0, 4096)]));
    const t0 = performance.now();
    for (;;) {
      // the structured reply to handle 42: magic, flags, type, handle, length, payload
      const at = buf.lastIndexOf(Buffer.from([0x66, 0x8e, 0x33, 0xef]));
      if (at >= 0 && buf.length >= at + 20 + 4 && buf.readBigUInt64BE(at + 8) === 42n) {
        sock.destroy();
        return [buf.readUInt16BE(at + 6), buf.readUInt32BE(at + 20)];
      }
      if (performance.now() - t0 > 5000) throw new Error(`no reply to BLOCK_STATUS in ${buf.length} bytes`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  it('answers EINVAL to a client that selected no base:allocation for the export (doc/proto.md), and the extents to one that did', async () => {
    // until 2026-12-07 the server answered BLOCK_STATUS on any connection with structured replies
    const errorType = 0x8001;
    const einval = 22;
    const structured = option(8);
    expect(await status([structured, goTo('a')])).toEqual([errorType, einval]);
    // the context selected for another export is not this one's
    expect(await status([structured, setMeta('b'), goTo('a')])).toEqual([errorType, einval]);
    // a later SET_META_CONTEXT replaces the selection: one that asks nothing known selects nothing
    const none = Buffer.alloc(4);
    none.writeUInt32BE(1, 0);
    const setOther = option(10, Buffer.concat([str('a'), none, str('qemu:dirty-bitmap:x')]));
    expect(await status([structured, setMeta('a'), setOther, goTo('a')])).toEqual([errorType, einval]);
    // selected for this export: the BLOCK_STATUS chunk (type 5) with the context's id first
    const [type, id] = await status([structured, setMeta('a'), goTo('a')]);
    expect(type).toBe(5);
    expect(id).toBeGreaterThan(0);
  });
});
