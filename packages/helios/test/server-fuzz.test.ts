// The ingestion server under hostile requests (fuzzed): every request gets an answer with a 2xx or a 4xx
// status and a JSON body naming what was wrong, never a 5xx or a dropped connection, and the stream ends
// up holding exactly the rows of the chunks it acknowledged as new.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { blockId, createStream, Stream, startIngestServer } from '@strata/helios';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeNode, leafNode } from '../src/node.js';

const dir = mkdtempSync(join(tmpdir(), 'helios-server-fuzz-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ddl = `CREATE STREAM ev SOURCES ('x') FORMAT logfmt COLUMNS (n INT, user STRING, msg TEXT) INDEX (user, TOKENS(msg))`;

/** One request: a chunk with a correct or wrong id, parameters and encodings that may be nonsense. */
const request = fc.record({
  lines: fc.array(fc.oneof(fc.string({ maxLength: 40 }), fc.constant('n=1 user=u1 msg="hello id_1"')), {
    maxLength: 6,
  }),
  raw: fc.option(fc.uint8Array({ maxLength: 64 }), { nil: undefined }),
  source: fc.oneof(fc.constant('src'), fc.string({ maxLength: 8 })),
  from: fc.oneof({ arbitrary: fc.nat(1000), weight: 8 }, fc.constantFrom(-1, Number.NaN, 2 ** 60)),
  skew: fc.oneof({ arbitrary: fc.constant(0), weight: 6 }, fc.integer({ min: -3, max: 3 })),
  key: fc.constantFrom('right', 'right', 'right', 'right', 'wrong', 'none'),
  leaf: fc.constantFrom('none', 'none', 'random', 'truncated node', 'bad length', 'good'),
  encoding: fc.constantFrom(
    undefined,
    undefined,
    undefined,
    'identity',
    'deflate',
    'deflate',
    'deflate-garbage',
    'gzip',
  ),
  path: fc.oneof(
    { arbitrary: fc.constant('/streams/ev/chunks'), weight: 12 },
    fc.constantFrom('/streams/nope/chunks', '/streams/9bad/chunks', '/streams/ev'),
  ),
  method: fc.oneof({ arbitrary: fc.constant('POST'), weight: 12 }, fc.constantFrom('GET', 'PUT')),
  leafBytes: fc.uint8Array({ minLength: 1, maxLength: 48 }),
});

describe('ingestion server, fuzzed requests', () => {
  it('answers every request with 2xx or 4xx and a reason, and keeps exactly the acknowledged rows', async () => {
    createStream(dir, ddl);
    const srv = await startIngestServer(dir, { index: true });
    const base = `http://127.0.0.1:${srv.port}`;
    let acknowledged = 0;
    // a well-formed leaf's bytes to cut short
    const node = encodeNode(leafNode(0, 0, 1, 0, new Float64Array([1, 2, 3])));
    try {
      await fc.assert(
        fc.asyncProperty(request, async (r) => {
          const bytes = r.raw ? Buffer.from(r.raw) : Buffer.from(r.lines.map((l) => `${l}\n`).join(''));
          const from = r.from;
          const to = from + bytes.length + r.skew;
          const leaf =
            r.leaf === 'random'
              ? Buffer.from(r.leafBytes)
              : r.leaf === 'truncated node'
                ? Buffer.from(node.subarray(0, Math.max(1, node.length - r.leafBytes.length)))
                : r.leaf === 'bad length' || r.leaf === 'good'
                  ? Buffer.from(node)
                  : undefined;
          const leafParam = leaf ? leaf.length + (r.leaf === 'bad length' ? 1 : 0) : 0;
          let body = leaf ? Buffer.concat([bytes, leaf]) : bytes;
          const headers: Record<string, string> = {};
          if (r.encoding === 'deflate') body = deflateSync(body);
          if (r.encoding === 'deflate-garbage') body = Buffer.concat([Buffer.from([0x78, 0x9c, 0xff]), body]);
          if (r.encoding)
            headers['content-encoding'] = r.encoding === 'deflate-garbage' ? 'deflate' : r.encoding;
          if (r.key === 'right' && Number.isSafeInteger(from) && Number.isSafeInteger(to))
            headers['idempotency-key'] = blockId(r.source, from, to, bytes);
          if (r.key === 'wrong') headers['idempotency-key'] = 'ffffffffffffffff';
          const q = new URLSearchParams({ source: r.source, from: String(from), to: String(to) });
          if (leaf) q.set('leaf', String(leafParam));
          const res = await fetch(`${base}${r.path}?${q}`, {
            method: r.method,
            headers,
            ...(r.method === 'GET' ? {} : { body }),
          });
          const text = await res.text();
          expect(res.status, text).toBeLessThan(500);
          const json = JSON.parse(text) as { error?: string; new?: boolean; rows?: number };
          if (res.status >= 400) expect(json.error, `${res.status}`).toMatch(/\w/);
          else if (json.new) acknowledged += json.rows ?? 0;
        }),
        { numRuns: 150 },
      );
    } finally {
      await srv.close();
    }
    const s = await Stream.open(dir, 'ev');
    try {
      expect((await s.search(s.parse(''))).rows.length).toBe(acknowledged);
    } finally {
      await s.close();
    }
  }, 120_000);

  it('answers every search with 200 and rows, or 400 and a reason, whatever its parameters (fuzz)', async () => {
    const srv = await startIngestServer(dir, { index: true });
    const piece = fc.constantFrom(
      'n = 1',
      "user = 'u1'",
      "msg CONTAINS 'hello'",
      'AND',
      'OR',
      'NOT',
      '(',
      ')',
      "'",
      '=',
      'n',
      '<',
    );
    const value = fc.oneof(
      fc.string({ maxLength: 30 }),
      fc.array(piece, { maxLength: 8 }).map((p) => p.join(' ')),
      fc.constantFrom(
        '0',
        '1',
        '100',
        '10000',
        '10001',
        '-1',
        'c1.0.1.0',
        'c1.99999999.0.0',
        '2008-11-09T20:36:15Z',
      ),
    );
    const params = fc.array(
      fc.tuple(fc.constantFrom('where', 'where', 'limit', 'cursor', 'since', 'until', 'q', ''), value),
      { maxLength: 5 },
    );
    try {
      await fc.assert(
        fc.asyncProperty(params, async (ps) => {
          const q = new URLSearchParams(ps);
          const res = await fetch(`http://127.0.0.1:${srv.port}/streams/ev/search?${q}`);
          const text = await res.text();
          expect([200, 400], text).toContain(res.status);
          const json = JSON.parse(text) as { error?: string; rows?: unknown[] };
          if (res.status === 400) expect(json.error).toMatch(/\w/);
          else expect(Array.isArray(json.rows)).toBe(true);
        }),
        { numRuns: 300 },
      );
    } finally {
      await srv.close();
    }
  }, 120_000);
});
