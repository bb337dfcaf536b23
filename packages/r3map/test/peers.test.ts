// The NBD client and the sync client against peers that are not what they should be: one that never
// answers (a stuck server, or a port of something that waits for its client to speak first) and one that
// answers garbage. Each ended the client with the connection left open (the process could not exit), or
// never ended it.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, expect, it } from 'vitest';
import { NbdClientDevice, NbdClientError, syncToRemote } from '../src/index.js';

const root = mkdtempSync(join(tmpdir(), 'r3map-peers-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/**
 * A server on 127.0.0.1 that sends `greeting` (if any) to each client, then nothing, or with `trickle` a
 * byte of it every 50 ms (never all of it); records each close.
 */
async function peer(
  greeting?: Buffer,
  trickle = false,
): Promise<{ port: number; closed: Promise<void>; stop: () => Promise<unknown> }> {
  let closed!: () => void;
  const whenClosed = new Promise<void>((r) => {
    closed = r;
  });
  const socks: Socket[] = [];
  const server = createServer((s) => {
    socks.push(s);
    s.on('error', () => undefined);
    s.on('close', closed);
    s.resume(); // reads and drops what the client sends (a paused socket never sees the client's close)
    if (greeting && !trickle) s.write(greeting);
    if (greeting && trickle) {
      let i = 0;
      const drip = setInterval(() => {
        if (i < greeting.length - 1 && s.writable) s.write(greeting.subarray(i, ++i));
      }, 50);
      s.on('close', () => clearInterval(drip));
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const stop = () => {
    for (const s of socks) s.destroy();
    return new Promise((r) => server.close(r));
  };
  return { port: (server.address() as { port: number }).port, closed: whenClosed, stop };
}

/** `attempt` against peer `p` rejects with `error`, and `p` sees its connection closed (then stops). */
async function refused(
  p: Awaited<ReturnType<typeof peer>>,
  attempt: (port: number) => Promise<unknown>,
  error: string | RegExp | Error,
): Promise<void> {
  try {
    await expect(attempt(p.port)).rejects.toThrow(error);
    await p.closed;
  } finally {
    await p.stop();
  }
}

/** The heap in use after a full collection (the flag is set at run time; vm hands out the function). */
function heapAfterGc(): number {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
  return process.memoryUsage().heapUsed;
}

/** An NBD server's greeting (NBDMAGIC, IHAVEOPT, handshake flags), `extra` bytes of room after it. */
function nbdHello(extra = 0): Buffer {
  const b = Buffer.alloc(18 + extra);
  b.writeBigUInt64BE(0x4e42444d41474943n, 0);
  b.writeBigUInt64BE(0x49484156454f5054n, 8);
  b.writeUInt16BE(3, 16);
  return b;
}

const nbd = (opts?: { handshakeTimeoutMs: number }) => (port: number) =>
  NbdClientDevice.connect('127.0.0.1', port, 'x', opts);
const sync = (opts?: { handshakeTimeoutMs: number }) => (port: number) =>
  syncToRemote(join(root, 'src'), '127.0.0.1', port, 'x', opts);

it('NBD client: a silent server ends the handshake after its timeout, and the connection is closed', async () => {
  const t0 = performance.now();
  await refused(
    await peer(),
    nbd({ handshakeTimeoutMs: 300 }),
    new NbdClientError('no NBD handshake within 300 ms'),
  );
  expect(performance.now() - t0).toBeLessThan(5_000);
});

it('NBD client and sync client: a server that trickles its first bytes is cut off at the deadline too', async () => {
  // a valid greeting and the start of an option reply, a byte at a time (1.9 s, the last byte never)
  const hello = nbdHello(20);
  hello.writeBigUInt64BE(0x3e889045565a9n, 18);
  await refused(
    await peer(hello, true),
    nbd({ handshakeTimeoutMs: 400 }),
    new NbdClientError('no NBD handshake within 400 ms'),
  );
  writeFileSync(join(root, 'src'), Buffer.alloc(10_000, 7));
  // a frame's length (256 bytes), then its bytes one at a time
  const p = await peer(Buffer.concat([Buffer.from([0, 0, 1, 0]), Buffer.alloc(256, 2)]), true);
  await refused(
    p,
    sync({ handshakeTimeoutMs: 400 }),
    `sync server 127.0.0.1:${p.port}: no answer within 400 ms`,
  );
});

it('NBD client: a server that is not an NBD server is refused and the connection closed (it stayed open)', async () => {
  await refused(
    await peer(Buffer.from('HTTP/1.1 200 OK\r\n\r\nhello, this is not NBD')),
    nbd(),
    /does not speak the NBD newstyle protocol/,
  );
});

it('NBD client: an option reply claiming 4 GiB is refused, not waited for', async () => {
  // the greeting, then a reply header (magic, option, type INFO, length 2^32 - 1)
  const hello = nbdHello(20);
  hello.writeBigUInt64BE(0x3e889045565a9n, 18);
  hello.writeUInt32BE(7, 26);
  hello.writeUInt32BE(3, 30);
  hello.writeUInt32BE(0xffffffff, 34);
  await refused(
    await peer(hello),
    nbd({ handshakeTimeoutMs: 5_000 }),
    'option reply of 4294967295 bytes (at most 65536)',
  );
});

it('NBD client: an export size past 2^53 - 1 is refused (it was taken rounded: 2^53 + 1 bytes as 2^53)', async () => {
  // the greeting, STRUCTURED_REPLY refused (ERR_UNSUP, a server of before), INFO (export: size, flags), ACK
  const hello = nbdHello(20 + 20 + 12 + 20);
  hello.writeBigUInt64BE(0x3e889045565a9n, 18);
  hello.writeUInt32BE(8, 26);
  hello.writeUInt32BE(0x80000001, 30);
  hello.writeBigUInt64BE(0x3e889045565a9n, 38);
  hello.writeUInt32BE(7, 46);
  hello.writeUInt32BE(3, 50);
  hello.writeUInt32BE(12, 54);
  hello.writeBigUInt64BE(2n ** 53n + 1n, 60);
  hello.writeBigUInt64BE(0x3e889045565a9n, 70);
  hello.writeUInt32BE(7, 78);
  hello.writeUInt32BE(1, 82);
  await refused(
    await peer(hello),
    nbd(),
    "export 'x': the server's size of 9007199254740993 bytes is past what this client addresses (2^53 - 1)",
  );
});

it('NBD client: a reply sent a byte at a time holds about a byte of heap a byte (each was a Buffer: about 200 bytes)', async () => {
  const n = 100_000;
  let served!: () => void;
  const last = new Promise<void>((r) => (served = r));
  let sendLast!: () => void;
  const lastByte = new Promise<void>((r) => (sendLast = r));
  const server = createServer((s) => {
    s.setNoDelay(true);
    s.on('error', () => undefined);
    // the greeting; INFO and ACK once the client asked; then a READ's reply a byte a turn
    s.write(nbdHello());
    let seen = 0;
    s.on('data', async (c: Buffer) => {
      seen += c.length;
      if (seen === 4 + 16 + 4 + 1 + 2) {
        const info = Buffer.alloc(32 + 20);
        info.writeBigUInt64BE(0x3e889045565a9n, 0);
        info.writeUInt32BE(7, 8);
        info.writeUInt32BE(3, 12);
        info.writeUInt32BE(12, 16);
        info.writeBigUInt64BE(1n << 20n, 22);
        info.writeBigUInt64BE(0x3e889045565a9n, 32);
        info.writeUInt32BE(7, 40);
        info.writeUInt32BE(1, 44);
        s.write(info);
      } else if (seen > 27 + 28 - 1) {
        const h = Buffer.alloc(16);
        h.writeUInt32BE(0x67446698, 0);
        c.copy(h, 8, c.length - 20, c.length - 12); // the request's handle
        s.write(h);
        const one = Buffer.from([5]);
        for (let i = 0; i < n - 1; i++) {
          s.write(one);
          await new Promise((r) => setImmediate(r));
        }
        served();
        await lastByte;
        s.write(one);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  // its script answers one option, GO, and a READ with a simple reply: no structured replies asked for
  const c = await NbdClientDevice.connect('127.0.0.1', (server.address() as { port: number }).port, 'x', {
    blockStatus: false,
  });
  try {
    const before = heapAfterGc();
    const read = c.readAt(0, n);
    await last;
    await new Promise((r) => setTimeout(r, 100));
    expect(heapAfterGc() - before).toBeLessThan(3 << 20);
    sendLast();
    expect(Buffer.from(await read).equals(Buffer.alloc(n, 5))).toBe(true);
  } finally {
    c.destroy();
    server.close();
  }
});

it('sync client: a silent server ends the sync after its timeout; garbage is refused; the connection is closed', async () => {
  writeFileSync(join(root, 'src'), Buffer.alloc(10_000, 7));
  const silent = await peer();
  await refused(
    silent,
    sync({ handshakeTimeoutMs: 300 }),
    `sync server 127.0.0.1:${silent.port}: no answer within 300 ms`,
  );
  await refused(
    await peer(Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n')),
    sync(),
    /sync protocol: bad frame length/,
  );
});
