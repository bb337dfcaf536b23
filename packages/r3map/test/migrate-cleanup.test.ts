// What a failed migration leaves open: nothing. migrateFrom's post-copy failure path stopped its pings and
// closed its NBD connections, but never failed or closed its control channel: the socket stayed open and
// the source waited its whole peerIdleMsMax (10 s) for a `release` that could not come.
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type BlockDevice,
  ControlChannel,
  ControlError,
  controlVersion,
  MemoryDevice,
  MigrationAbandonedError,
  MigrationSource,
  migrateFrom,
  NbdServer,
} from '../src/index.js';

const chunk = 64 << 10;
const size = 4 << 20;

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** `inner`'s bytes through readAt/writeAt only; its reads fail once `failing()` says so. */
function failingReads(inner: BlockDevice, failing: () => boolean): BlockDevice {
  return {
    size: inner.size,
    readAt: (off, len) =>
      failing() ? Promise.reject(new Error('the source disk is gone')) : inner.readAt(off, len),
    writeAt: (off, b, o) => inner.writeAt(off, b, o),
    flush: () => inner.flush(),
    trim: (off, len) => inner.trim(off, len),
    close: () => inner.close(),
  };
}

/** TCP sockets open in this process (servers are counted apart, as TCPServerWrap). */
const tcpSockets = () => process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;

async function until(f: () => boolean, ms: number): Promise<void> {
  const t0 = performance.now();
  while (!f() && performance.now() - t0 < ms) await new Promise((r) => setTimeout(r, 10));
}

describe('a destination whose post-copy fails', () => {
  it('fails its control channel (the source hears it at once) and leaves no socket open', async () => {
    const sockets0 = tcpSockets();
    const dev = new MemoryDevice(size);
    await dev.writeAt(0, new Uint8Array(size).fill(7));
    let committed = false;
    const events: { event: string; reason?: string }[] = [];
    const src = new MigrationSource(
      failingReads(dev, () => committed),
      {
        chunkBytes: chunk,
        onEvent: (e) => {
          events.push({ event: e.event, ...('reason' in e ? { reason: e.reason } : {}) });
          // from the handover on, the source's export fails every read: the post-copy cannot finish
          if (e.event === 'committed') committed = true;
        },
      },
    );
    const { controlPort } = await src.listen(0);
    cleanups.push(() => src.close());
    const err = await migrateFrom('127.0.0.1', controlPort, {
      open: async (n) => new MemoryDevice(n),
      roundsMax: 1,
      dirtyChunksMax: 0,
      onEvent: (e) => {
        // after the pre-copy: three chunks written again, left for the post-copy
        if (e.event === 'round')
          for (const off of [0, 1 << 20, 3 << 20]) void src.front.writeAt(off, new Uint8Array(4096).fill(9));
      },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MigrationAbandonedError);
    expect((err as MigrationAbandonedError).afterHandover).toBe(true);
    expect((err as Error).message).toMatch(/during post-copy \(.*\); \d+ of 64 chunks are missing/);
    // the source learns of it from the channel, not from its 10 s wait for `release`
    await until(() => events.some((e) => e.event === 'lost'), 2_000);
    expect(events.find((e) => e.event === 'lost')?.reason).toMatch(/post-copy failed/);
    // no socket of the migration's is left: control channel (both ends), the source's export (both ends),
    // the source's forward to the destination's export (both ends)
    await until(() => tcpSockets() === sockets0, 2_000);
    expect(tcpSockets()).toBe(sockets0);
  });
});

describe('a source whose destination gives up during finalize', () => {
  it("closes the connection to the destination's export that opens after it gave up (it stayed open)", async () => {
    const dev = new MemoryDevice(size);
    const events: string[] = [];
    const src = new MigrationSource(dev, { chunkBytes: chunk, onEvent: (e) => events.push(e.event) });
    const { controlPort } = await src.listen(0);
    cleanups.push(() => src.close());
    // the destination's export, behind a proxy that lets each connection through after 300 ms
    const exp = new NbdServer([{ name: '', device: new MemoryDevice(size) }], { pollUs: 0 });
    const expPort = await exp.listen(0);
    cleanups.push(() => exp.close());
    const pipes = new Set<Socket>();
    const proxy: Server = createServer((c) => {
      pipes.add(c);
      c.pause();
      setTimeout(() => {
        const up = connect({ host: '127.0.0.1', port: expPort });
        pipes.add(up);
        c.pipe(up).pipe(c);
        c.resume();
        const end = () => {
          c.destroy();
          up.destroy();
        };
        c.once('close', end);
        up.once('close', end);
      }, 300);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    cleanups.push(async () => {
      for (const p of pipes) p.destroy();
      await new Promise((r) => proxy.close(r));
    });
    // a destination by hand: hello, finalize, and it gives up while the source connects to its export
    const sock = connect({ host: '127.0.0.1', port: controlPort });
    await new Promise((r) => sock.once('connect', r));
    const ch = new ControlChannel(sock, 'source', false);
    ch.send({ t: 'hello', v: controlVersion });
    await ch.next('info');
    ch.send({ t: 'finalize', servePort: (proxy.address() as { port: number }).port });
    await new Promise((r) => setTimeout(r, 50));
    ch.fail(new ControlError('the destination was stopped'));
    await until(() => events.includes('aborted'), 2_000);
    expect(events).toContain('aborted');
    expect(src.status).toBe('serving');
    // the connection the source had asked for arrives after that, and is closed by the source
    await until(() => exp.stats.connections > 0, 2_000);
    await until(() => exp.connectionsOpen === 0, 2_000);
    expect(exp.stats.connections).toBe(1);
    expect(exp.connectionsOpen).toBe(0);
  });
});
