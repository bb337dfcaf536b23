// The NBD client and the sync client against peers that are not what they should be: one that never
// answers (a stuck server, or a port of something that waits for its client to speak first) and one that
// answers garbage. Each ended the client with the connection left open (the process could not exit), or
// never ended it.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
  // the greeting, INFO (export: size, flags), ACK
  const hello = nbdHello(20 + 12 + 20);
  hello.writeBigUInt64BE(0x3e889045565a9n, 18);
  hello.writeUInt32BE(7, 26);
  hello.writeUInt32BE(3, 30);
  hello.writeUInt32BE(12, 34);
  hello.writeBigUInt64BE(2n ** 53n + 1n, 40);
  hello.writeBigUInt64BE(0x3e889045565a9n, 50);
  hello.writeUInt32BE(7, 58);
  hello.writeUInt32BE(1, 62);
  await refused(
    await peer(hello),
    nbd(),
    "export 'x': the server's size of 9007199254740993 bytes is past what this client addresses (2^53 - 1)",
  );
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
