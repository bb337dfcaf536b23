// The NativeLoglet's wire format: frames and record batches, and what a sequencer and a LogServer do with
// malformed ones (an error reply naming the fault, or the connection closed; never a crash or a hang).
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FileLoglet,
  type LogServer,
  NativeLoglet,
  openLoglet,
  parseEtcdUrl,
  parseZkUrl,
  type Sequencer,
  SpecError,
} from '../src/index.js';
import { countBody, decodeBody, encodeBody, encodeFrame } from '../src/providers/native.js';
import { startLogServers, startSequencer } from './helpers/native-cluster.js';

const batch = fc.array(fc.uint8Array({ maxLength: 300, size: 'max' }), { maxLength: 40, size: 'max' });

describe('frames and record batches', () => {
  it('a batch decodes to what was encoded, and a pre-encoded body makes the same frame (property)', () => {
    fc.assert(
      fc.property(batch, fc.dictionary(fc.string(), fc.integer()), (b, h) => {
        const body = encodeBody(b);
        expect(decodeBody(body).map((p) => Buffer.from(p))).toEqual(b.map((p) => Buffer.from(p)));
        expect(countBody(body)).toBe(b.length);
        expect(encodeBody(body)).toBe(body);
        const frame = encodeFrame({ ...h, id: 1 }, b);
        expect(encodeFrame({ ...h, id: 1 }, body)).toEqual(frame);
        // u32 frame length | u32 header length | header | body
        expect(frame.readUInt32BE(0)).toBe(frame.length - 4);
        const jl = frame.readUInt32BE(4);
        expect(JSON.parse(frame.toString('utf8', 8, 8 + jl))).toEqual({ ...h, id: 1 });
        expect(frame.subarray(8 + jl)).toEqual(body);
      }),
    );
  });

  it('a truncated or overrunning batch is an error naming where, for decode and count alike', () => {
    const body = encodeBody([Buffer.from('abc'), Buffer.from('defgh')]);
    expect(() => countBody(body.subarray(0, 2))).toThrow('malformed record batch: 2 stray bytes at 0');
    expect(() => decodeBody(body.subarray(0, body.length - 1))).toThrow(
      'malformed record batch: record at 7 of 5 bytes overruns 15',
    );
    expect(() => countBody(body.subarray(0, body.length - 1))).toThrow('record at 7 of 5 bytes overruns 15');
  });

  it('random bytes as a batch either count as they decode or fail with the malformed-batch error (fuzz)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const b = Buffer.from(bytes);
        let n: number | Error;
        try {
          n = countBody(b);
        } catch (e) {
          n = e as Error;
        }
        if (n instanceof Error) {
          expect(n.message).toMatch(/^malformed record batch: /);
          expect(() => decodeBody(b)).toThrow(n.message);
        } else expect(decodeBody(b).length).toBe(n);
      }),
    );
  });
});

describe('bounded reads', () => {
  const root = mkdtempSync(join(tmpdir(), 'vlog-read-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('a FileLoglet read with maxBytes returns the longest prefix within it, never nothing (property)', async () => {
    const l = await FileLoglet.open(join(root, 'f'), 10);
    const sizes = Array.from({ length: 60 }, (_, i) => (i * 37) % 90);
    await l.append(sizes.map((n, i) => new Uint8Array(n).fill(i)));
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 10, max: 70 }),
        fc.integer({ min: 0, max: 70 }),
        fc.integer({ min: 0, max: 4000 }),
        async (from, len, max) => {
          const recs = await l.read(from, from + len, max);
          const all = await l.read(from, from + len);
          expect(recs).toEqual(all.slice(0, recs.length));
          if (all.length === 0) return;
          const bytes = (k: number) => all.slice(0, k).reduce((n, r) => n + 12 + r.payload.length, 0);
          expect(recs.length).toBeGreaterThanOrEqual(1);
          if (recs.length > 1) expect(bytes(recs.length)).toBeLessThanOrEqual(max);
          if (recs.length < all.length) expect(bytes(recs.length + 1)).toBeGreaterThan(max);
        },
      ),
    );
    await l.close();
  });

  it('a NativeLoglet reads a range longer than a LogServer replies with, in parts, from the LogServers in turn', async () => {
    const { servers, addrs } = await startLogServers(root, 3, { readReplyBytesMax: 500 });
    const { seq, addr: seqAddr } = await startSequencer(addrs);
    const l = new NativeLoglet('parts', 0, seqAddr, addrs);
    const payloads = Array.from({ length: 200 }, (_, i) => Buffer.from(`record ${i} `.repeat(1 + (i % 7))));
    for (let i = 0; i < payloads.length; i += 25) await l.append(payloads.slice(i, i + 25));
    const read = async () =>
      (await l.read(3, 190)).map((r) => [r.position, Buffer.from(r.payload).toString()]);
    const want = payloads.slice(3, 190).map((p, i) => [i + 3, p.toString()]);
    expect(await read()).toEqual(want);
    // with the first LogServer gone the next ones serve the whole range
    await servers[0]!.close();
    const again = new NativeLoglet('parts', 0, seqAddr, addrs);
    expect((await again.read(3, 190)).map((r) => [r.position, Buffer.from(r.payload).toString()])).toEqual(
      want,
    );
    await l.close();
    await again.close();
    await seq.close();
    for (const s of servers.slice(1)) await s.close();
  });
});

describe('malformed requests to a sequencer and a LogServer', () => {
  const root = mkdtempSync(join(tmpdir(), 'vlog-wire-'));
  const servers: LogServer[] = [];
  const addrs: string[] = [];
  let seq: Sequencer;
  let seqAddr = '';

  beforeAll(async () => {
    const started = await startLogServers(root);
    servers.push(...started.servers);
    addrs.push(...started.addrs);
    ({ seq, addr: seqAddr } = await startSequencer(addrs));
  });
  afterAll(async () => {
    await seq.close();
    for (const s of servers) await s.close();
    rmSync(root, { recursive: true, force: true });
  });

  /** A raw connection: sends frames as given, collects reply headers, and says when it is closed. */
  async function raw(addr: string) {
    const i = addr.lastIndexOf(':');
    const sock: Socket = connect({ host: addr.slice(0, i), port: Number(addr.slice(i + 1)) });
    await new Promise((r) => sock.once('connect', r));
    const replies: Record<string, unknown>[] = [];
    let buf = Buffer.alloc(0);
    sock.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      while (buf.length >= 8 && buf.length >= 4 + buf.readUInt32BE(0)) {
        const len = buf.readUInt32BE(0);
        const jl = buf.readUInt32BE(4);
        replies.push(JSON.parse(buf.toString('utf8', 8, 8 + jl)));
        buf = buf.subarray(4 + len);
      }
    });
    const closed = new Promise<void>((r) => sock.once('close', () => r()));
    const reply = async (id: number) => {
      for (let t = 0; t < 400; t++) {
        const r = replies.find((x) => x.id === id);
        if (r) return r;
        await new Promise((res) => setTimeout(res, 5));
      }
      throw new Error(`no reply to request ${id}`);
    };
    return { sock, reply, closed };
  }

  const truncated = encodeBody([Buffer.from('record')]).subarray(0, 7);

  it('a sequencer answers a malformed batch with an error naming it and goes on serving', async () => {
    const c = await raw(seqAddr);
    const where = { loglet: 'wire-s', start: 0, servers: addrs };
    c.sock.write(encodeFrame({ id: 1, op: 'append', ...where }, truncated));
    expect((await c.reply(1)).error).toBe('malformed record batch: record at 0 of 6 bytes overruns 7');
    c.sock.write(encodeFrame({ id: 2, op: 'append', ...where }, [Buffer.from('ok')]));
    expect((await c.reply(2)).positions).toEqual([0]);
    c.sock.destroy();
    // nothing of the malformed batch reached the log
    const l = new NativeLoglet('wire-s', 0, seqAddr, addrs);
    expect((await l.read(0, 10)).map((r) => Buffer.from(r.payload).toString())).toEqual(['ok']);
    await l.close();
  });

  it('a LogServer answers a malformed batch with an error naming it and goes on serving', async () => {
    const c = await raw(addrs[0]!);
    const where = { loglet: 'wire-l', start: 0, owner: 'o1' };
    c.sock.write(encodeFrame({ id: 1, op: 'append', position: 0, ...where }, truncated));
    expect((await c.reply(1)).error).toBe('malformed record batch: record at 0 of 6 bytes overruns 7');
    c.sock.write(encodeFrame({ id: 2, op: 'append', position: 0, ...where }, [Buffer.from('ok')]));
    expect(await c.reply(2)).toEqual({ id: 2, tail: 1 });
    c.sock.destroy();
  });

  it('a read without a byte bound (a client from before binary reads) gets the range as base64', async () => {
    const l = new NativeLoglet('wire-r', 0, seqAddr, addrs);
    await l.append([Buffer.from('one'), Buffer.from('two')]);
    const c = await raw(addrs[2]!);
    // the append was acknowledged by a majority: this LogServer may get the records a little later
    let r: Record<string, unknown> = {};
    for (let id = 3; id < 200 && (r.positions as unknown[] | undefined)?.length !== 2; id++) {
      c.sock.write(encodeFrame({ id, op: 'read', loglet: 'wire-r', start: 0, from: 0, to: 2 }));
      r = await c.reply(id);
    }
    expect(r).toEqual({
      id: r.id,
      positions: [0, 1],
      payloads: [Buffer.from('one').toString('base64'), Buffer.from('two').toString('base64')],
    });
    c.sock.destroy();
    await l.close();
  });

  it('a frame whose header is not JSON, or too long, closes that connection only', async () => {
    for (const bad of [
      Buffer.concat([Buffer.from([0, 0, 0, 8, 0, 0, 0, 4]), Buffer.from('{{{{')]),
      Buffer.from([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]),
      Buffer.concat([Buffer.from([0, 0, 0, 6, 0, 0, 0, 2]), Buffer.from('[]')]),
    ])
      for (const addr of [seqAddr, addrs[1]!]) {
        const c = await raw(addr);
        c.sock.write(bad);
        await c.closed;
        const ok = await raw(addr);
        ok.sock.write(encodeFrame({ id: 7, op: 'ping' }));
        expect(await ok.reply(7)).toEqual({ id: 7 });
        ok.sock.destroy();
      }
  });
});

describe('native loglet specs', () => {
  it('a spec opens a NativeLoglet over HOST:PORT addresses or fails with a SpecError quoting it (fuzz)', async () => {
    const addr = fc.oneof(
      fc
        .tuple(fc.constantFrom('127.0.0.1', 'localhost', 'ls-1.example'), fc.integer({ min: -1, max: 70000 }))
        .map(([h, p]) => `${h}:${p}`),
      fc.string({ maxLength: 12 }),
    );
    const spec = fc.oneof(
      fc
        .tuple(
          addr,
          fc.array(addr, { maxLength: 4 }),
          fc.oneof(fc.constant('events'), fc.string({ maxLength: 6 })),
        )
        .map(([sq, servers, id]) => `native://${sq}?servers=${servers.join(',')}&id=${id}`),
      fc.string({ maxLength: 40 }).map((x) => `native://${x}`),
    );
    await fc.assert(
      fc.asyncProperty(spec, async (sp) => {
        let l: Awaited<ReturnType<typeof openLoglet>> | undefined;
        try {
          l = await openLoglet(sp, 0, 0);
        } catch (e) {
          expect(e).toBeInstanceOf(SpecError);
          expect((e as Error).message).toContain(sp);
          return;
        }
        expect(l).toBeInstanceOf(NativeLoglet);
        const n = l as NativeLoglet;
        for (const a of [n.sequencer, ...n.servers]) {
          const port = Number(a.slice(a.lastIndexOf(':') + 1));
          expect(port >= 1 && port <= 65535, a).toBe(true);
        }
        await l.close();
      }),
      { numRuns: 500 },
    );
  });

  it('zk:// and etcd:// URLs parse to HOST:PORT addresses or fail quoting the URL (fuzz, parsing only)', () => {
    const hosts = fc.array(
      fc.oneof(
        fc
          .tuple(fc.constantFrom('127.0.0.1', 'zk1'), fc.integer({ min: -1, max: 70000 }))
          .map(([h, p]) => `${h}:${p}`),
        fc.string({ maxLength: 8 }),
      ),
      { minLength: 1, maxLength: 3 },
    );
    const path = fc.oneof(fc.constant('/strata/log'), fc.string({ maxLength: 10 }));
    const valid = (a: string) => {
      const port = Number(a.slice(a.lastIndexOf(':') + 1));
      return /^[A-Za-z0-9._-]+:\d+$/.test(a) && port >= 1 && port <= 65535;
    };
    fc.assert(
      fc.property(hosts, path, fc.boolean(), (hs, p, zk) => {
        const url = zk ? `zk://${hs.join(',')}${p}` : `etcd://${hs[0]}${p}`;
        try {
          if (zk) expect(parseZkUrl(url).hosts.split(',').every(valid)).toBe(true);
          else expect(valid(parseEtcdUrl(url).endpoint.slice('http://'.length))).toBe(true);
        } catch (e) {
          expect((e as Error).message).toContain(url);
        }
      }),
      { numRuns: 1000 },
    );
  });
});
