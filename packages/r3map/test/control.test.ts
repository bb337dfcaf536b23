// The migration control channel: every message validated; random and mutated input is a ControlError,
// never a crash or a hang; a source fed garbage keeps serving and can still be migrated.
import { EventEmitter } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import {
  ControlChannel,
  ControlError,
  controlVersion,
  decodeMessage,
  encodeMessage,
  encodeUnitFrames,
  frameBytesMax,
  MemoryDevice,
  type Message,
  MigrationAbandonedError,
  MigrationSource,
  migrateFrom,
  NbdServer,
  UnitSet,
} from '../src/index.js';
import { stuckDevice } from './helpers/stuck.js';

const valid: Message[] = [
  { t: 'hello', v: 1 },
  { t: 'info', v: 1, size: 1 << 20, chunkBytes: 65536, trackBytes: 4096, nbdPort: 1234, exportName: '' },
  { t: 'ping' },
  { t: 'round' },
  { t: 'dirty', ...[...encodeUnitFrames(new UnitSet([1, 5, 6]))][0]! },
  { t: 'dirty', runs: 'AQI=', more: true },
  { t: 'finalize', servePort: 4321 },
  { t: 'final', ...[...encodeUnitFrames(new UnitSet())][0]! },
  { t: 'serving' },
  { t: 'committed', downtimeMs: 0.5 },
  { t: 'release' },
  { t: 'released', bytesSent: 123 },
  { t: 'error', message: 'no' },
];

/** decodeMessage either returns a message or throws a ControlError: nothing else. */
function decodesOrRefuses(b: Uint8Array): void {
  try {
    decodeMessage(b);
  } catch (e) {
    expect(e).toBeInstanceOf(ControlError);
  }
}

describe('control messages', () => {
  it('round-trip every message type', () => {
    for (const m of valid) expect(decodeMessage(encodeMessage(m).subarray(4))).toEqual(m);
  });

  it('refuse wrong types, missing and extra fields, with a message naming them', () => {
    const bad: [unknown, RegExp][] = [
      [[], /not a JSON object/],
      [null, /not a JSON object/],
      [{ t: 'nope' }, /unknown control message type "nope"/],
      [{ t: 'hello' }, /'hello': field 'v' is missing/],
      [{ t: 'hello', v: -1 }, /field 'v'/],
      [{ t: 'hello', v: 1.5 }, /field 'v'/],
      [{ t: 'finalize', servePort: '80' }, /field 'servePort'/],
      [{ t: 'committed', downtimeMs: Number.NaN }, /field 'downtimeMs'/],
      [{ t: 'round', extra: 1 }, /unexpected field 'extra'/],
      [{ t: 'dirty', runs: '' }, /'dirty': field 'more' is missing/],
      [{ t: 'final', runs: '', more: 1 }, /field 'more' is missing or not a valid bool/],
      // control version 2's bitmap
      [{ t: 'dirty', bitmap: 'AA==' }, /'dirty': field 'runs' is missing/],
      [{ t: 'error', message: 'x'.repeat(5000) }, /field 'message'/],
    ];
    for (const [v, re] of bad) expect(() => decodeMessage(Buffer.from(JSON.stringify(v)))).toThrow(re);
    expect(() => decodeMessage(Buffer.from('{"t":'))).toThrow(/not JSON/);
  });

  it('fuzz: random bytes and mutations of valid messages are refused with a ControlError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200, size: 'max' }), (b) => decodesOrRefuses(b)),
      { numRuns: 2000 },
    );
    const bodies = valid.map((m) => encodeMessage(m).subarray(4));
    fc.assert(
      fc.property(
        fc.nat({ max: bodies.length - 1 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
        (k, edits) => {
          const b = Uint8Array.from(bodies[k]!);
          for (const [at, v] of edits) b[at % b.length] = v;
          decodesOrRefuses(b);
        },
      ),
      { numRuns: 3000 },
    );
  });
});

/** A ControlChannel over a stand-in socket: `feed` hands it bytes as one read. */
function channel(): { ch: ControlChannel; feed: (b: Uint8Array) => void } {
  const sock = Object.assign(new EventEmitter(), {
    destroyed: false,
    writable: true,
    setNoDelay: () => undefined,
    write: () => true,
    end: () => undefined,
    destroy: () => undefined,
  });
  const ch = new ControlChannel(sock as unknown as Socket, 'the peer');
  return { ch, feed: (b) => sock.emit('data', Buffer.from(b.buffer, b.byteOffset, b.byteLength)) };
}

const types = valid.map((m) => m.t);

/** Feeds `stream` cut at `cuts` (offsets, any order), then reads the messages it holds (pings are not). */
async function decodeAcross(stream: Buffer, cuts: number[], count: number): Promise<Message[]> {
  const { ch, feed } = channel();
  const at = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
  let from = 0;
  for (const c of [...at, stream.length]) {
    if (c > from) feed(stream.subarray(from, c));
    from = Math.max(from, c);
  }
  const out: Message[] = [];
  for (let i = 0; i < count; i++) out.push(await ch.next(types, 1000));
  expect(ch.failed).toBeUndefined();
  ch.close();
  return out;
}

describe('control frames across reads', () => {
  const notPing = valid.filter((m) => m.t !== 'error');

  it('decode the same whether they come in one read, a byte a read, or cut anywhere (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.constantFrom(...notPing), { minLength: 1, maxLength: 60 }),
        fc.array(fc.nat(), { maxLength: 40 }),
        async (msgs, cuts) => {
          const stream = Buffer.concat(msgs.map(encodeMessage));
          const want = msgs.filter((m) => m.t !== 'ping');
          expect(await decodeAcross(stream, cuts, want.length)).toEqual(want);
        },
      ),
      { numRuns: 300 },
    );
    const msgs = notPing.filter((m) => m.t !== 'ping');
    const stream = Buffer.concat(notPing.map(encodeMessage));
    const everyByte = Array.from({ length: stream.length }, (_, i) => i);
    expect(await decodeAcross(stream, everyByte, msgs.length)).toEqual(msgs);
    expect(await decodeAcross(stream, [], msgs.length)).toEqual(msgs);
  });

  it('decode a frame of the largest size in 64 KiB reads, in one read, and cut at odd places', async () => {
    // runs as long as a frame takes (the frame is only decoded here, not its runs)
    const big: Message = { t: 'dirty', runs: 'AQID'.repeat((frameBytesMax - 64) / 4), more: true };
    const frame = encodeMessage(big);
    expect(frame.length).toBeGreaterThan(frameBytesMax - 64);
    expect(frame.length).toBeLessThanOrEqual(frameBytesMax + 4);
    const stream = Buffer.concat([encodeMessage({ t: 'round' }), frame, encodeMessage({ t: 'serving' })]);
    const want = [{ t: 'round' }, big, { t: 'serving' }];
    const reads64k = Array.from({ length: Math.ceil(stream.length / 65536) }, (_, i) => i * 65536);
    expect(await decodeAcross(stream, reads64k, 3)).toEqual(want);
    expect(await decodeAcross(stream, [], 3)).toEqual(want);
    expect(await decodeAcross(stream, [1, 17, 18, 19, 20, 21, 1_000_001, stream.length - 3], 3)).toEqual(
      want,
    );
  });

  it('take a frame of the largest size a byte a read in time (the buffer was copied whole on every read: 2 TB for 2 MiB)', async () => {
    const big: Message = { t: 'dirty', runs: 'AQID'.repeat((frameBytesMax - 64) / 4), more: true };
    const stream = encodeMessage(big);
    expect(stream.length).toBeGreaterThan(frameBytesMax - 64);
    const { ch, feed } = channel();
    // a deadline instead of a wall of synchronous reads: the old channel would not come back for hours
    const t0 = performance.now();
    let fed = 0;
    while (fed < stream.length && performance.now() - t0 < 10_000) {
      for (const end = Math.min(stream.length, fed + 4096); fed < end; fed++)
        feed(stream.subarray(fed, fed + 1));
      await new Promise((r) => setImmediate(r));
    }
    expect(fed).toBe(stream.length);
    expect(await ch.next('dirty', 1000)).toEqual(big);
  });

  it('refuse more than two frames of the largest size of messages nobody asked for (64 bitmaps of 8 MiB were kept: 512 MiB)', () => {
    const big = encodeMessage({ t: 'dirty', runs: 'AQID'.repeat((frameBytesMax - 64) / 4), more: true });
    const { ch, feed } = channel();
    feed(big);
    feed(big);
    expect(ch.failed).toBeUndefined(); // two are a peer ahead of its partner, not a flood
    feed(big);
    const message = `the peer sent ${3 * (big.length - 4)} bytes of messages that were not asked for (at most ${2 * frameBytesMax})`;
    expect(ch.failed?.message).toBe(message);
  });

  it('refuse bad frames with the same message however they are cut', async () => {
    const huge = Buffer.alloc(4);
    huge.writeUInt32BE(frameBytesMax + 1, 0);
    const notJson = Buffer.concat([Buffer.from([0, 0, 0, 5]), Buffer.from('{nope')]);
    const cases: [Buffer, string][] = [
      [huge, `the peer sent a control frame of ${frameBytesMax + 1} bytes (1 to ${frameBytesMax})`],
      [Buffer.alloc(4), `the peer sent a control frame of 0 bytes (1 to ${frameBytesMax})`],
      [notJson, 'the peer: a control message is not JSON (5 bytes)'],
    ];
    for (const [bad, message] of cases)
      for (const cuts of [[], [1], [1, 2, 3], [3, 5]]) {
        const { ch, feed } = channel();
        const stream = Buffer.concat([encodeMessage({ t: 'ping' }), bad]);
        let from = 0;
        for (const c of [...cuts.map((x) => 16 + x), stream.length]) {
          feed(stream.subarray(from, c));
          from = c;
        }
        await expect(ch.next(types, 1000)).rejects.toThrow(message);
        expect(ch.failed?.message).toBe(message);
      }
  });
});

const size = 4 << 20;
const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups) await c();
});

/**
 * Writes each part `gapMs` after the previous one; resolves with what came back once the server closes the
 * connection (it does after an error) or `capMs` after the last part, whichever is first. Waiting for the
 * close, not a fixed time, keeps the test right on a loaded machine.
 */
function send(port: number, parts: Buffer | Buffer[], gapMs = 30, capMs = 5_000): Promise<string> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    let got = '';
    let timer: NodeJS.Timeout | undefined;
    const done = () => {
      clearTimeout(timer);
      s.destroy();
      resolve(got);
    };
    s.on('data', (c: Buffer) => {
      got += c.toString('latin1');
    });
    s.on('error', () => undefined);
    s.on('close', done);
    s.on('connect', async () => {
      const list = Array.isArray(parts) ? parts : [parts];
      for (const [i, p] of list.entries()) {
        if (!s.destroyed) s.write(p);
        if (i < list.length - 1) await new Promise((r) => setTimeout(r, gapMs));
      }
      timer = setTimeout(done, capMs);
    });
  });
}

describe('a migration source fed garbage', () => {
  it('refuses it with an error message, keeps its workload and still migrates', async () => {
    const dev = new MemoryDevice(size);
    const image = new Uint8Array(size).map((_, i) => (i * 7) & 0xff);
    await dev.writeAt(0, image);
    const events: string[] = [];
    const src = new MigrationSource(dev, { onEvent: (e) => events.push(e.event) });
    const { controlPort } = await src.listen(0);
    cleanups.push(() => src.close());
    const frame = (s: string) => {
      const b = Buffer.from(s);
      const h = Buffer.alloc(4);
      h.writeUInt32BE(b.length, 0);
      return Buffer.concat([h, b]);
    };
    const huge = Buffer.alloc(4);
    huge.writeUInt32BE(frameBytesMax + 1, 0);
    // oversized frame, zero-length frame, not JSON, unknown type, wrong first message, wrong version
    expect(await send(controlPort, huge)).toMatch(/control frame of \d+ bytes/);
    expect(await send(controlPort, Buffer.alloc(4))).toMatch(/control frame of 0 bytes/);
    expect(await send(controlPort, frame('{nope'))).toMatch(/not JSON/);
    expect(await send(controlPort, frame('{"t":"boom"}'))).toMatch(/unknown control message type/);
    expect(await send(controlPort, frame('{"t":"round"}'))).toMatch(
      /sent 'round' where 'hello' was expected/,
    );
    expect(await send(controlPort, frame('{"t":"hello","v":99}'))).toMatch(/control version 99/);
    // version 2 sent a dirty set as one bitmap frame
    expect(await send(controlPort, frame('{"t":"hello","v":2}'))).toMatch(
      /the destination speaks control version 2, this source 3/,
    );
    // a valid hello, then garbage mid-migration: the migration aborts, the source stays authoritative
    expect(
      await send(controlPort, [
        frame(`{"t":"hello","v":${controlVersion}}`),
        frame('{"t":"finalize","servePort":"x"}'),
      ]),
    ).toMatch(/"t":"info"[\s\S]*field 'servePort'/);
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 64 }), async (b) => {
        await send(controlPort, Buffer.from(b), 1, 1);
      }),
      { numRuns: 60 },
    );
    expect(events).toContain('aborted');
    expect(src.status).toBe('serving');
    expect(src.tracked.sealed).toBe(false);
    // the workload still writes, and a real destination still takes the device over
    const block = new Uint8Array(4096).fill(9);
    await src.front.writeAt(8192, block);
    image.set(block, 8192);
    const m = await migrateFrom('127.0.0.1', controlPort, { open: async (n) => new MemoryDevice(n) });
    cleanups.push(() => m.close());
    expect(Buffer.compare(Buffer.from(await m.device.readAt(0, size)), Buffer.from(image))).toBe(0);
    expect(src.status).toBe('released');
  });
});

describe('a destination facing a broken source', () => {
  async function fakeSource(onConn: (s: Socket) => void): Promise<{ server: Server; port: number }> {
    const server = createServer((s) => {
      s.resume(); // read what the destination says, so its close is seen
      onConn(s);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => server.close(() => r())));
    return { server, port: (server.address() as { port: number }).port };
  }

  it('gives up with a clear error on garbage, an impossible size or a closed connection', async () => {
    const open = async (n: number) => new MemoryDevice(n);
    const garbage = await fakeSource((s) => s.end(Buffer.from('\x00\x00\x00\x05hello')));
    await expect(migrateFrom('127.0.0.1', garbage.port, { open })).rejects.toThrow(
      /abandoned before the handover .*not JSON/,
    );
    const bad = await fakeSource((s) => {
      s.on('error', () => undefined);
      s.write(
        encodeMessage({
          t: 'info',
          v: controlVersion,
          size: 1 << 20,
          chunkBytes: 1,
          trackBytes: 1,
          nbdPort: 1,
          exportName: '',
        }),
      );
    });
    await expect(migrateFrom('127.0.0.1', bad.port, { open })).rejects.toThrow(/chunk size 1 is outside/);
    const v2 = await fakeSource((s) => {
      s.on('error', () => undefined);
      const info = { t: 'info', v: 2, size: 1 << 20, chunkBytes: 65536, trackBytes: 4096 } as const;
      s.write(encodeMessage({ ...info, nbdPort: 1, exportName: '' }));
    });
    await expect(migrateFrom('127.0.0.1', v2.port, { open })).rejects.toThrow(
      /the source speaks control version 2, this destination 3/,
    );
    const gone = await fakeSource((s) => s.destroy());
    await expect(migrateFrom('127.0.0.1', gone.port, { open })).rejects.toBeInstanceOf(
      MigrationAbandonedError,
    );
  });

  it('gives up on a source that stops (no ping, reads unanswered) instead of pulling from it forever', async () => {
    // a source process stopped mid-copy (SIGSTOP) keeps its connections open: its export takes the reads
    // and answers none, its control connection says nothing
    const stuck = stuckDevice(1 << 20);
    const nbd = new NbdServer([{ name: '', device: stuck }]);
    const nbdPort = await nbd.listen(0, '127.0.0.1');
    cleanups.push(() => nbd.close());
    const frozen = await fakeSource((s) => {
      s.on('error', () => undefined);
      const info = {
        t: 'info',
        v: controlVersion,
        size: 1 << 20,
        chunkBytes: 65536,
        trackBytes: 4096,
      } as const;
      s.write(encodeMessage({ ...info, nbdPort, exportName: '' }));
    });
    const t0 = performance.now();
    const open = async (n: number) => new MemoryDevice(n);
    await expect(migrateFrom('127.0.0.1', frozen.port, { open, sourceQuietMsMax: 2000 })).rejects.toThrow(
      /abandoned before the handover \(source 127\.0\.0\.1:\d+ sent nothing for \d+ ms \(it pings every 1000 ms\)\)/,
    );
    expect(performance.now() - t0).toBeLessThan(10_000);
    await expect(migrateFrom('127.0.0.1', frozen.port, { open, sourceQuietMsMax: 1000 })).rejects.toThrow(
      'migration sourceQuietMsMax must be milliseconds from 2000 (two pings) to 2147483647, got 1000',
    );
  });
});
