/**
 * The ObjectStore conformance suite: every backend and layer runs it. `make` returns a fresh, empty store
 * for each test; `cleanup` releases it.
 */
import { Readable } from 'node:stream';
import fc from 'fast-check';
import { expect, it } from 'vitest';
import {
  compareKeys,
  InvalidKeyError,
  NotFoundError,
  type ObjectStore,
  PreconditionFailedError,
} from '../src/index.js';

export interface ConformanceOptions {
  /** Racing conditional writers in the race test. */
  racers?: number;
  /** Skip the large streaming test where a backend is slow. */
  largeBytes?: number;
  /** False where conditional deletes are emulated (a server that ignores If-Match on DELETE): no race test. */
  atomicDeletes?: boolean;
}

export function objectStoreConformance(
  make: () => Promise<ObjectStore>,
  opts: ConformanceOptions = {},
): void {
  const withStore = (f: (s: ObjectStore) => Promise<void>) => async () => {
    const s = await make();
    try {
      await f(s);
    } finally {
      await s.close();
    }
  };
  const bytes = (t: string) => new Uint8Array(Buffer.from(t));
  const text = (b: Uint8Array) => Buffer.from(b).toString('utf8');

  it(
    'put, get, head, delete',
    withStore(async (s) => {
      const etag = await s.put('a/b.txt', bytes('hello'));
      expect(etag).toMatch(/^[0-9a-f-]+$/);
      expect(text(await s.get('a/b.txt'))).toBe('hello');
      const h = await s.head('a/b.txt');
      expect(h).toMatchObject({ key: 'a/b.txt', size: 5, etag });
      const etag2 = await s.put('a/b.txt', bytes('world!'));
      expect(text(await s.get('a/b.txt'))).toBe('world!');
      expect(etag2).not.toBe(etag);
      await s.delete('a/b.txt');
      expect(await s.head('a/b.txt')).toBeUndefined();
      await expect(s.get('a/b.txt')).rejects.toBeInstanceOf(NotFoundError);
      await s.delete('a/b.txt'); // absent: not an error
      await s.put('empty', new Uint8Array(0));
      expect((await s.get('empty')).length).toBe(0);
    }),
  );

  it(
    'keeps its own copy of a body: the caller may reuse its array once put returns',
    withStore(async (s) => {
      const body = bytes('original');
      const etag = await s.put('own/copy', body);
      body.fill(0x78); // the caller reuses its buffer
      const got = await s.get('own/copy');
      expect(text(got)).toBe('original');
      got.fill(0x79); // and changing what get returned changes nothing either
      expect(text(await s.get('own/copy'))).toBe('original');
      expect((await s.head('own/copy'))?.etag).toBe(etag);
      // and once more after whatever the store does in the background (a WAL packs on close)
      const again = bytes('second');
      await s.put('own/again', again);
      again.fill(0x7a);
      await new Promise((r) => setTimeout(r, 20));
      expect(text(await s.get('own/again'))).toBe('second');
    }),
  );

  it(
    'range get',
    withStore(async (s) => {
      await s.put('r', bytes('0123456789'));
      expect(text(await s.get('r', { range: { start: 2, end: 5 } }))).toBe('2345');
      expect(text(await s.get('r', { range: { start: 8, end: 100 } }))).toBe('89');
      const chunks: Buffer[] = [];
      for await (const c of await s.getStream('r', { range: { start: 0, end: 0 } })) chunks.push(c as Buffer);
      expect(Buffer.concat(chunks).toString()).toBe('0');
      // malformed ranges and a start past the end are RangeErrors, a missing key with a range NotFoundError
      for (const range of [
        { start: 5, end: 4 },
        { start: -1, end: 3 },
        { start: 1.5, end: 3 },
        { start: 10, end: 12 },
      ]) {
        await expect(s.get('r', { range })).rejects.toThrow(RangeError);
        if (range.start !== 10) await expect(s.getStream('r', { range })).rejects.toThrow(RangeError);
      }
      await expect(s.get('nope', { range: { start: 0, end: 1 } })).rejects.toThrow(NotFoundError);
      // a far range of a large object: just those bytes
      const big = new Uint8Array(3 << 20).map((_, i) => i % 251);
      await s.put('far', big);
      const far = await s.get('far', { range: { start: (3 << 20) - 7, end: 3 << 21 } });
      expect([...far]).toEqual([...big.subarray((3 << 20) - 7)]);
    }),
  );

  it(
    'list with prefix, startAfter, limit and pagination',
    withStore(async (s) => {
      const keys = ['p/a', 'p/b', 'p/c/d', 'p/é', 'q/a', 'p/B'];
      for (const k of keys) await s.put(k, bytes(k));
      const all: string[] = [];
      let after: string | undefined;
      for (;;) {
        const page = await s.list('p/', { limit: 2, ...(after !== undefined ? { startAfter: after } : {}) });
        expect(page.objects.length).toBeLessThanOrEqual(2);
        all.push(...page.objects.map((o) => o.key));
        if (page.nextStartAfter === undefined) break;
        after = page.nextStartAfter;
      }
      expect(all).toEqual(['p/B', 'p/a', 'p/b', 'p/c/d', 'p/é']);
      expect((await s.list('p/', { startAfter: 'p/b' })).objects.map((o) => o.key)).toEqual(['p/c/d', 'p/é']);
      expect((await s.list('')).objects.length).toBe(6);
      expect((await s.list('zzz')).objects).toEqual([]);
    }),
  );

  it(
    'lists page by page what random puts and deletes left, for any prefix, start and limit (property)',
    withStore(async (s) => {
      let run = 0;
      const name = fc.constantFrom('a', 'a/1', 'a/2', 'a/\u{1F600}', 'a/\uE000', 'a/~', 'b', 'b/1', 'c/x/y');
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.tuple(fc.boolean(), name, fc.nat(24)), { maxLength: 30 }),
          fc.constantFrom('', 'a', 'a/', 'b/', 'z'),
          fc.option(name, { nil: undefined }),
          fc.integer({ min: 1, max: 4 }),
          async (ops, sub, startSub, limit) => {
            // each run in a directory of its own: the store is not emptied between runs
            const root = `pl${run++}/`;
            const model = new Map<string, number>();
            for (const [put, k, size] of ops) {
              if (put) {
                await s.put(root + k, new Uint8Array(size));
                model.set(root + k, size);
              } else {
                await s.delete(root + k);
                model.delete(root + k);
              }
            }
            const prefix = root + sub;
            const startAfter = startSub === undefined ? undefined : root + startSub;
            const want = [...model.keys()]
              .filter(
                (k) => k.startsWith(prefix) && (startAfter === undefined || compareKeys(k, startAfter) > 0),
              )
              .sort(compareKeys)
              .map((k) => `${k}:${model.get(k)}`);
            const got: string[][] = [];
            let after = startAfter;
            for (let i = 0; i <= want.length; i++) {
              const page = await s.list(prefix, {
                limit,
                ...(after !== undefined ? { startAfter: after } : {}),
              });
              got.push(page.objects.map((o) => `${o.key}:${o.size}`));
              if (page.nextStartAfter === undefined) break;
              expect(page.nextStartAfter).toBe(page.objects.at(-1)?.key);
              after = page.nextStartAfter;
            }
            // full pages, then the rest, and no page after the last
            const pages: string[][] = [];
            for (let i = 0; i < want.length; i += limit) pages.push(want.slice(i, i + limit));
            expect(got).toEqual(pages.length ? pages : [[]]);
          },
        ),
        { numRuns: 25 },
      );
    }),
  );

  it(
    'list pages in UTF-8 byte order, where keys above U+FFFF sort after U+E000-U+FFFD (not as UTF-16 sorts them)',
    withStore(async (s) => {
      // UTF-8: U+E000 is EE 80 80, U+FFFD EF BF BD, U+1F600 F0 9F 98 80; in UTF-16 the pair D83D DE00 sorts first
      const keys = ['u/\u{1F600}', 'u/\uFFFD', 'u/\uE000', 'u/~', 'u/\u{1F600}x'];
      for (const k of keys) await s.put(k, bytes(k));
      const want = ['u/~', 'u/\uE000', 'u/\uFFFD', 'u/\u{1F600}', 'u/\u{1F600}x'];
      expect((await s.list('u/')).objects.map((o) => o.key)).toEqual(want);
      for (let i = 0; i < want.length; i++) {
        // every page boundary: a page of one key after each key
        const page = await s.list('u/', { startAfter: want[i]!, limit: 1 });
        expect(page.objects.map((o) => o.key)).toEqual(want.slice(i + 1, i + 2));
        expect(page.nextStartAfter).toBe(i + 2 < want.length ? want[i + 1] : undefined);
      }
      expect((await s.list('u/\u{1F600}')).objects.map((o) => o.key)).toEqual(want.slice(3));
    }),
  );

  it(
    'list refuses a limit that is not a whole number of at least 1, and a startAfter that is not a string',
    withStore(async (s) => {
      await s.put('l/a', bytes('a'));
      for (const limit of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '2' as unknown as number])
        await expect(s.list('l/', { limit })).rejects.toThrow(
          /list: limit must be a whole number of at least 1/,
        );
      await expect(s.list('l/', { startAfter: 5 as unknown as string })).rejects.toThrow(
        /list: startAfter must be a string, got number/,
      );
      expect((await s.list('l/', { limit: 1 })).objects.map((o) => o.key)).toEqual(['l/a']);
    }),
  );

  it(
    'a put of a body that is not bytes or a stream of them, or with a malformed precondition, is refused naming it; nothing is written',
    withStore(async (s) => {
      for (const [body, got] of [
        ['text', 'string'],
        [null, 'null'],
        [new DataView(new ArrayBuffer(2)), 'DataView'],
        [new ArrayBuffer(2), 'ArrayBuffer'],
        [[1, 2], 'Array'],
      ] as const)
        await expect(s.put('v/k', body as unknown as Uint8Array)).rejects.toThrow(
          `put 'v/k': the body must be a Uint8Array or a Readable stream, got ${got}`,
        );
      await expect(s.put('v/k', Readable.from([bytes('a'), 7]))).rejects.toThrow(
        'put: the body stream gave number, not bytes',
      );
      await expect(s.put('v/k', bytes('a'), { ifNoneMatch: 'x' as '*' })).rejects.toThrow(
        "put 'v/k': ifNoneMatch must be '*', got x",
      );
      await expect(s.put('v/k', bytes('a'), { ifMatch: 5 as unknown as string })).rejects.toThrow(
        "put 'v/k': ifMatch must be an etag string, got number",
      );
      await expect(s.delete('v/k', { ifMatch: null as unknown as string })).rejects.toThrow(
        "delete 'v/k': ifMatch must be an etag string, got null",
      );
      expect((await s.list('v/')).objects).toEqual([]);
      // a stream of strings is UTF-8
      await s.put('v/k', Readable.from(['h', 'é']));
      expect(Buffer.from(await s.get('v/k')).toString()).toBe('hé');
    }),
  );

  it(
    'conditional puts: If-None-Match * and If-Match',
    withStore(async (s) => {
      const e1 = await s.put('c', bytes('v1'), { ifNoneMatch: '*' });
      await expect(s.put('c', bytes('v2'), { ifNoneMatch: '*' })).rejects.toBeInstanceOf(
        PreconditionFailedError,
      );
      await expect(
        s.put('c', bytes('v2'), { ifMatch: 'deadbeefdeadbeefdeadbeefdeadbeef' }),
      ).rejects.toBeInstanceOf(PreconditionFailedError);
      const e2 = await s.put('c', bytes('v2'), { ifMatch: e1 });
      await expect(s.put('c', bytes('v3'), { ifMatch: e1 })).rejects.toBeInstanceOf(PreconditionFailedError);
      expect(text(await s.get('c'))).toBe('v2');
      await s.put('c', bytes('v3'), { ifMatch: `"${e2}"` }); // quoted etags compare unquoted
      await expect(s.put('absent', bytes('x'), { ifMatch: e1 })).rejects.toBeInstanceOf(
        PreconditionFailedError,
      );
    }),
  );

  it(
    `exactly one of ${opts.racers ?? 16} racing conditional writers wins`,
    withStore(async (s) => {
      const n = opts.racers ?? 16;
      const results = await Promise.allSettled(
        Array.from({ length: n }, (_, i) => s.put('race', bytes(`writer ${i}`), { ifNoneMatch: '*' })),
      );
      const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
      expect(won).toHaveLength(1);
      for (const r of results)
        if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(PreconditionFailedError);
      expect(text(await s.get('race'))).toBe(`writer ${won[0]}`);
      // and with If-Match on the same version
      const etag = (await s.head('race'))!.etag;
      const r2 = await Promise.allSettled(
        Array.from({ length: n }, (_, i) => s.put('race', bytes(`next ${i}`), { ifMatch: etag })),
      );
      expect(r2.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    }),
  );

  it(
    'conditional deletes: If-Match',
    withStore(async (s) => {
      const e1 = await s.put('d', bytes('v1'));
      await expect(s.delete('d', { ifMatch: 'deadbeefdeadbeefdeadbeefdeadbeef' })).rejects.toBeInstanceOf(
        PreconditionFailedError,
      );
      expect(text(await s.get('d'))).toBe('v1');
      const e2 = await s.put('d', bytes('v2'));
      await expect(s.delete('d', { ifMatch: e1 })).rejects.toBeInstanceOf(PreconditionFailedError);
      expect(text(await s.get('d'))).toBe('v2');
      await s.delete('d', { ifMatch: `"${e2}"` }); // quoted etags compare unquoted
      expect(await s.head('d')).toBeUndefined();
      await expect(s.delete('d', { ifMatch: e2 })).rejects.toBeInstanceOf(PreconditionFailedError);
      await expect(s.delete('never', { ifMatch: e2 })).rejects.toBeInstanceOf(PreconditionFailedError);
      await s.delete('d'); // unconditional: absent is still no error
      expect((await s.list('')).objects.map((o) => o.key)).toEqual([]);
    }),
  );

  // not registered where deletes are emulated (RGW 16): there it fails, as it should
  if (opts.atomicDeletes ?? true)
    it(
      'a conditional delete racing conditional puts of the same version: exactly one wins',
      withStore(async (s) => {
        const n = Math.max(2, Math.floor((opts.racers ?? 16) / 2));
        for (let round = 0; round < 4; round++) {
          const etag = await s.put('rd', bytes(`base ${round}`));
          const del = s.delete('rd', { ifMatch: etag }).then(() => -1);
          const puts = Array.from({ length: n }, (_, i) =>
            s.put('rd', bytes(`next ${i}`), { ifMatch: etag }).then(() => i),
          );
          // the delete goes first on odd rounds, last on even ones
          const results = await Promise.allSettled(round % 2 ? [del, ...puts] : [...puts, del]);
          const won = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
          expect(won).toHaveLength(1);
          for (const r of results)
            if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(PreconditionFailedError);
          if (won[0] === -1) expect(await s.head('rd')).toBeUndefined();
          else expect(text(await s.get('rd'))).toBe(`next ${won[0]}`);
        }
      }),
    );

  it(
    'streaming bodies for large objects',
    withStore(async (s) => {
      const size = opts.largeBytes ?? 12 << 20;
      const chunk = Buffer.alloc(1 << 20);
      for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 7) & 0xff;
      const parts = Math.ceil(size / chunk.length);
      await s.put(
        'big',
        Readable.from(
          (function* () {
            for (let i = 0; i < parts; i++) yield chunk;
          })(),
        ),
      );
      expect((await s.head('big'))!.size).toBe(parts * chunk.length);
      let n = 0;
      for await (const c of await s.getStream('big')) n += (c as Buffer).length;
      expect(n).toBe(parts * chunk.length);
      const mid = await s.get('big', { range: { start: (1 << 20) + 5, end: (1 << 20) + 9 } });
      expect([...mid]).toEqual([...chunk.subarray(5, 10)]);
    }),
  );

  it(
    'rejects bad keys with a clear error before any I/O',
    withStore(async (s) => {
      // '€' is 3 UTF-8 bytes: 342 of them are 1,026 bytes in 342 UTF-16 units
      for (const k of [
        '',
        '../x',
        'a/../b',
        'a\0b',
        '/abs',
        'x'.repeat(1025),
        '€'.repeat(342),
        'a/./b',
        'a/..',
        // a lone surrogate has no UTF-8 form: 'k\ud800' and 'k\ufffd' were one object in the file backend
        'k\ud800',
        'k\udc00/x',
        '\ude00\ud83d',
      ]) {
        await expect(s.put(k, bytes('x'))).rejects.toBeInstanceOf(InvalidKeyError);
        await expect(s.get(k)).rejects.toBeInstanceOf(InvalidKeyError);
      }
      await expect(s.put('ok', bytes('x'))).resolves.toBeTypeOf('string');
      await expect(s.put('v1.2/.x/..y/x.json', bytes('dots, no dot segment'))).resolves.toBeTypeOf('string');
      // a surrogate pair is one character: its key and U+FFFD's are two objects
      await s.put('k\ud83d\ude00', bytes('pair'));
      await s.put('k\ufffd', bytes('replacement'));
      expect(text(await s.get('k\ud83d\ude00'))).toBe('pair');
      await s.put('é/ü/'.repeat(60).slice(0, 300), bytes('long unicode key'));
      expect(text(await s.get('é/ü/'.repeat(60).slice(0, 300)))).toBe('long unicode key');
    }),
  );

  it(
    'behaves like a map under random operations (property)',
    withStore(async (s) => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(
            fc.tuple(
              fc.constantFrom('put', 'delete', 'get'),
              fc.constantFrom('k1', 'k2', 'd/k3', 'd/k4'),
              fc.string({ maxLength: 20 }),
            ),
            { maxLength: 25 },
          ),
          async (ops) => {
            const model = new Map<string, string>();
            for (const k of ['k1', 'k2', 'd/k3', 'd/k4']) await s.delete(k);
            for (const [op, k, v] of ops) {
              if (op === 'put') {
                await s.put(k, bytes(v));
                model.set(k, v);
              } else if (op === 'delete') {
                await s.delete(k);
                model.delete(k);
              } else {
                const want = model.get(k);
                if (want === undefined) await expect(s.get(k)).rejects.toBeInstanceOf(NotFoundError);
                else expect(text(await s.get(k))).toBe(want);
              }
            }
            const listed = (await s.list('')).objects
              .map((o) => o.key)
              .filter((k) => ['k1', 'k2', 'd/k3', 'd/k4'].includes(k));
            expect(listed).toEqual([...model.keys()].sort());
          },
        ),
        { numRuns: 15 },
      );
    }),
  );
}
