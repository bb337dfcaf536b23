import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { captureIo, runCommand } from '@strata/cli';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import {
  commands,
  costReport,
  etagOf,
  FileStore,
  parseStoreUrl,
  StoreUrlError,
  WalStore,
} from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'objstore-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const store = commands[0]!;
const run = async (args: string[], stdin = '') => {
  const c = captureIo(stdin, {}, dir);
  const code = await runCommand(store, args, c.io);
  return { code, out: c.stdout(), err: c.stderr() };
};

describe('storage URLs', () => {
  it('parses file:, mem:, s3:// and bare paths; rejects the rest with a clear message', () => {
    expect(parseStoreUrl('file:./data', '/x')).toEqual({ kind: 'file', path: '/x/data' });
    expect(parseStoreUrl('mem:')).toEqual({ kind: 'mem' });
    expect(parseStoreUrl('mem:shared')).toEqual({ kind: 'mem', name: 'shared' });
    expect(parseStoreUrl('s3://bkt/logs/a?endpoint=http://127.0.0.1:9000&region=eu-west-1')).toEqual({
      kind: 's3',
      bucket: 'bkt',
      prefix: 'logs/a',
      endpoint: 'http://127.0.0.1:9000',
      region: 'eu-west-1',
    });
    expect(parseStoreUrl('rel/dir', '/w')).toEqual({ kind: 'file', path: '/w/rel/dir' });
    expect(() => parseStoreUrl('ftp://x')).toThrow(StoreUrlError);
    expect(() => parseStoreUrl('s3://B_ad/x')).toThrow(/bucket name/);
    expect(() => parseStoreUrl('s3://bkt/x?endpoint=127.0.0.1')).toThrow(/endpoint/);
    expect(() => parseStoreUrl('')).toThrow(/empty/);
    expect(() => parseStoreUrl('s3://bkt/a%zz')).toThrow(
      "storage URL 's3://bkt/a%zz': the prefix 'a%zz' has a malformed %-escape",
    );
  });

  it('any string parses to a location or fails with a StoreUrlError that quotes it (fuzz)', () => {
    const url = fc.oneof(
      fc.string(),
      fc
        .tuple(fc.constantFrom('s3://', 'file:', 'mem:', 'S3://', 's3:/', 'x:'), fc.string())
        .map(([a, b]) => a + b),
      fc
        .tuple(fc.stringMatching(/^[a-z0-9.-]{0,70}$/), fc.string(), fc.string())
        .map(([b, p, q]) => `s3://${b}/${p}?endpoint=${q}`),
    );
    fc.assert(
      fc.property(url, (u) => {
        try {
          expect(['file', 'mem', 's3']).toContain(parseStoreUrl(u, '/w').kind);
        } catch (e) {
          expect(e).toBeInstanceOf(StoreUrlError);
          if (u.trim() !== '') expect((e as Error).message).toContain(u);
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('strata store', () => {
  it('put/get/head/ls/rm with preconditions', async () => {
    const s = 'file:./st';
    const p = await run(['put', 'a/x', '-', '--store', s, '--if-none-match', '*'], 'hello');
    expect(p.code).toBe(0);
    const etag = p.out.trim();
    expect((await run(['put', 'a/x', '-', '--store', s, '--if-none-match', '*'], 'again')).err).toBe(
      'strata store put: precondition failed\n',
    );
    expect((await run(['put', 'a/x', '-', '--store', s, '--if-match', etag], 'hello2')).code).toBe(0);
    expect((await run(['put', 'a/x', '-', '--store', s, '--if-match', etag], 'x')).code).toBe(1);
    // an empty etag (a script's unset variable) is refused: it made the put unconditional, a lost update
    for (const cmd of [
      ['put', 'a/x', '-'],
      ['rm', 'a/x'],
    ]) {
      const r = await run([...cmd, '--store', s, '--if-match', ''], 'lost');
      expect([r.code, r.err], cmd[0]).toEqual([
        2,
        `strata store ${cmd[0]}: --if-match: expected an etag, got ''\n`,
      ]);
    }
    expect((await run(['get', 'a/x', '--store', s])).out).toBe('hello2');
    expect((await run(['get', 'a/x', '--store', s, '--range', '1-3'])).out).toBe('ell');
    // HTTP's other two forms: from an offset to the end, and the last N bytes (more than the object: all)
    expect((await run(['get', 'a/x', '--store', s, '--range', '2-'])).out).toBe('llo2');
    expect((await run(['get', 'a/x', '--store', s, '--range=-2'])).out).toBe('o2');
    expect((await run(['get', 'a/x', '--store', s, '--range=-99'])).out).toBe('hello2');
    expect((await run(['get', 'a/none', '--store', s, '--range=-2'])).err).toBe(
      "strata store get: no object with key 'a/none'\n",
    );
    for (const bad of ['-', '5-2x', '=-0', '1-2-3', '99999999999999999999-']) {
      const r = await run(['get', 'a/x', '--store', s, `--range${bad.startsWith('=') ? bad : `=${bad}`}`]);
      expect(r.code, bad).toBe(2);
    }
    expect((await run(['head', 'a/x', '--store', s, '--json'])).out).toMatch(/"size":6/);
    expect((await run(['ls', 'a/', '--store', s])).out).toMatch(/\ta\/x\n$/);
    expect((await run(['rm', 'a/x', '--store', s, '--if-match', etag])).err).toBe(
      'strata store rm: precondition failed\n',
    );
    expect((await run(['rm', 'a/x', 'a/y', '--store', s, '--if-match', etag])).code).toBe(2);
    expect((await run(['rm', 'a/x', '--store', s, '--if-match', etagOf(Buffer.from('hello2'))])).code).toBe(
      0,
    );
    expect((await run(['rm', 'a/x', '--store', s])).code).toBe(0);
    expect((await run(['head', 'a/x', '--store', s])).code).toBe(1);
    expect((await run(['get', 'a/x', '--store', s, '--range', 'x'])).code).toBe(2);
    // an end before the start is a usage error as well (it was the store's RangeError, exit 1)
    const back = await run(['get', 'a/x', '--store', s, '--range', '5-2']);
    expect([back.code, back.err]).toEqual([
      2,
      "strata store get: --range: the end 2 is before the start 5 ('5-2')\n",
    ]);
    expect((await run(['put', '../bad', '-', '--store', s], 'x')).err).toMatch(
      /invalid object key.*'\.\.' segment/,
    );
  });

  it('put of a file it cannot read says so first, whatever the store (a missing one crashed it)', async () => {
    // the file was opened lazily: with a store that failed to open it was never read, and its open error
    // was an unhandled 'error' event
    for (const store of ['bogus:x', 'file:./st']) {
      const r = await run(['put', 'k', 'missing.bin', '--store', store]);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/^strata store put: cannot read missing\.bin: ENOENT: no such file or directory/);
    }
    expect((await run(['put', 'k', '.', '--store', 'file:./st'])).err).toBe(
      'strata store put: cannot read .: it is a directory\n',
    );
  });

  it('bench --json: one object per row (it printed the table); the objects it wrote are gone', async () => {
    const r = await run(['bench', '--store', 'mem:bench-json', '--count', '3', '--json']);
    expect(r.code).toBe(0);
    const rows = r.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(rows.map((x) => [x.op, x.sizeBytes])).toEqual([
      ['PUT', 4096],
      ['GET', 4096],
      ['PUT', 1 << 20],
      ['GET', 1 << 20],
    ]);
    for (const x of rows) expect(x.latencyMsP99).toBeGreaterThanOrEqual(x.latencyMsP50);
    expect((await run(['ls', '--store', 'mem:bench-json'])).out).toBe('');
    expect((await run(['bench', '--store', 'mem:bench-json', '--count', '3'])).out).toMatch(/^op +size +p50/);
  });

  it('cost: the WAL option is at least 10x cheaper than direct Standard PUTs for 1,000 writes/s of 1 KiB', async () => {
    writeFileSync(
      join(dir, 'w.json'),
      JSON.stringify({ writesPerSecond: 1000, writeBytes: 1024, retainDays: 30 }),
    );
    const r = await run(['cost', '--workload', 'w.json']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/S3 Standard, direct PUTs/);
    expect(r.out).toMatch(/express WAL \+ standard packs/);
    const [std, exp, wal] = costReport({ writesPerSecond: 1000, writeBytes: 1024, retainDays: 30 });
    // 2.592e9 PUTs/month at $0.005/1000 = $12,960 on Standard
    expect(std!.requests).toBeCloseTo(12960, 0);
    expect(exp!.requests).toBeCloseTo(2928.96, 1);
    expect(std!.total / wal!.total).toBeGreaterThan(10);
    writeFileSync(join(dir, 'bad.json'), '{"writesPerSecond": "lots"}');
    const b = await run(['cost', '--workload', 'bad.json']);
    expect(b.code).toBe(1);
    expect(b.err).toMatch(/writesPerSecond/);
    // past f64's range JSON gives Infinity (it priced as $Infinity and $NaN); optional fields are checked too
    // (a negative read rate took requests off the bill), and a misspelt field is named
    const base = '"writesPerSecond": 1000, "writeBytes": 1024, "retainDays": 30';
    const refused: [string, string][] = [
      [
        '{"writesPerSecond": 1e400, "writeBytes": 1024, "retainDays": 30}',
        "'writesPerSecond' must be a finite number >= 0, got Infinity",
      ],
      [`{${base}, "readsPerSecond": -1}`, "'readsPerSecond' must be a finite number >= 0, got -1"],
      [`{${base}, "walFlushMs": 0}`, "'walFlushMs' must be a finite number > 0, got 0"],
      [`{${base}, "walPackBytes": "64M"}`, `'walPackBytes' must be a finite number > 0, got "64M"`],
      [
        `{${base}, "puts": 5}`,
        "unknown field 'puts' (the fields: writesPerSecond, writeBytes, readsPerSecond, readBytes, retainDays, walFlushMs, walPackBytes)",
      ],
      ['[]', 'expected an object, got []'],
    ];
    for (const [text, why] of refused) {
      writeFileSync(join(dir, 'bad.json'), text);
      const r = await run(['cost', '--workload', 'bad.json']);
      expect(r.code, text).toBe(1);
      expect(r.err).toBe(`strata store cost: --workload bad.json: workload: ${why}\n`);
    }
    const ok = costReport({
      writesPerSecond: 1000,
      writeBytes: 1024,
      retainDays: 30,
      readsPerSecond: 0,
      walFlushMs: 5,
    });
    expect(ok.every((l) => Number.isFinite(l.total))).toBe(true);
  });
});

describe('WAL group commit', () => {
  it('acknowledges durable writes in few commits and packs them into few objects', async () => {
    const std = new FileStore(join(dir, 'std'));
    const w = await WalStore.open(std, { dir: join(dir, 'wal'), flushIntervalMs: 5, packBytes: 1 << 30 });
    await Promise.all(
      Array.from({ length: 1000 }, (_, i) => w.put(`e/${i}`, new Uint8Array(1024).fill(i & 255))),
    );
    expect(w.stats.groupCommits).toBeLessThan(100);
    await w.packNow();
    expect(w.stats.packsWritten).toBe(1);
    expect((await std.list('e/')).objects).toHaveLength(0); // all in the pack
    expect((await w.get('e/777'))[0]).toBe(777 & 255);
    await w.close();
    // reopen: served from the pack
    const w2 = await WalStore.open(std, { dir: join(dir, 'wal') });
    expect((await w2.get('e/999'))[5]).toBe(999 & 255);
    expect((await w2.list('e/', { limit: 5000 })).objects).toHaveLength(1000);
    await w2.close();
  });
});
