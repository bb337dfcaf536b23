// The WebAssembly scan of a TOKENS column's JSON text (src/tokenscan.ts, assembly/tokens.ts) against the
// JavaScript one (keys.ts's commitTokensJson, with the module switched off) and the strings' keys.
import { hashKeys, parseDdl, rowKeys, sortUnique, tokenize } from '@strata/helios';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { columnKeys } from '../src/keys.js';
import { tokenKeysOfJson, useWasmScans, valueKeysOfJson, wasmScanEngine } from '../src/tokenscan.js';
import { LazyModule, type ModuleExports, wasmMemoryKeepBytes } from '../src/wasm.js';

const enc = new TextEncoder();
const hashKey = new Uint8Array(
  new Uint32Array([
    0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0x082efa98, 0xec4e6c89,
  ]).buffer,
);
const def = parseDdl(`CREATE STREAM k SOURCES ('file:x') FORMAT json
  COLUMNS (n INT, level STRING, msg TEXT) INDEX (level, TOKENS(msg))`);

/** The keys of column 2's cells: from the strings (`tokenize`), and from their JSON text with each scan. */
function keysEachWay(cells: (string | null)[]): { want: number[]; wasm: Float64Array; js: Float64Array } {
  const want = new Set<string>();
  for (const c of cells) if (c !== null) for (const t of tokenize(c)) want.add(`2\u0001${t}`);
  const rows = cells.map((c, i) => [i, null, c]);
  const json = [0, 1, 2].map((c) => enc.encode(JSON.stringify(rows.map((r) => r[c]))));
  useWasmScans(true);
  const wasm = rowKeys(def, rows, json);
  useWasmScans(false);
  const js = rowKeys(def, rows, json);
  useWasmScans(true);
  return { want: [...sortUnique(hashKeys([...want]))], wasm, js };
}

describe('TOKENS keys in WebAssembly', () => {
  afterEach(() => useWasmScans(true));

  it('the module is built and used', () => {
    expect(wasmScanEngine()).toBe('wasm');
  });

  it('gives the keys of the JavaScript scan, each once, over random texts (escapes, trims, long tokens, non-ASCII, lone surrogates)', () => {
    const word = fc.stringMatching(/^[a-zA-Z0-9_.-]{1,12}$/);
    const text = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.string({ unit: 'binary', maxLength: 40 }),
      fc.stringMatching(/^[a-z.\-"\\\n\t\u0001\u007f\ud800\udc00 ]{0,40}$/u),
      fc.stringMatching(/^[a-z0-9_.\- /:é€😀]{0,300}$/u),
      fc.array(word, { maxLength: 30 }).map((ws) => ws.join(' ')),
      fc
        .array(fc.constantFrom('blk_-70', 'PacketResponder', '10.251.39.209:50010', 'a', '-.-', 'x.'), {
          maxLength: 40,
        })
        .map((ws) => ws.join(' ')),
      fc
        .integer({ min: 1, max: 300 })
        .map((n) => `${'y'.repeat(n)} .${'z'.repeat(n % 140)}- ${'q'.repeat(n)}`),
      fc.constant(Array.from({ length: 5000 }, (_, i) => `t${i % 4500}`).join(' ')),
    );
    fc.assert(
      fc.property(fc.array(fc.oneof(text, fc.constant(null)), { maxLength: 30 }), (cells) => {
        const { want, wasm, js } = keysEachWay(cells);
        expect(wasm.length).toBe(want.length);
        expect([...sortUnique(wasm)]).toEqual(want);
        expect([...sortUnique(js)]).toEqual(want);
      }),
      { numRuns: 400 },
    );
  });

  it('takes ASCII texts itself and leaves non-ASCII tokens and lone surrogates to the JavaScript scan', () => {
    const prefix = enc.encode('2\u0001');
    const of = (cells: unknown[]) => tokenKeysOfJson(prefix, enc.encode(JSON.stringify(cells)), hashKey);
    expect(of(['PacketResponder 1 for block blk_-7 terminating', null, 'a..b -x- ..'])?.length).toBe(8);
    expect(of([])?.length).toBe(0);
    expect(of(['abc', 'déf'])).toBeUndefined();
    expect(of(['abc', 'd\ud800f'])).toBeUndefined();
    // a token over the module's 64-byte windows with a non-ASCII byte in its first window or its last
    expect(of([`x é${'y'.repeat(140)}`])).toBeUndefined();
    expect(of([`x ${'y'.repeat(140)}é`])).toBeUndefined();
    // a tab's escape is a separator; every token of a cell is taken (until 2026-12-07 the first 4,096),
    // a non-ASCII one past its 4,096th too
    expect(of(['a\tb', `${'t '.repeat(4096)}u`])?.length).toBe(4);
    expect(of(['a\tb', `${'t '.repeat(4096)}é`])).toBeUndefined();
    expect(() => tokenKeysOfJson(prefix, enc.encode('["abc'), hashKey)).toThrow(
      /^commitTokensJson: an unterminated string/,
    );
    // an escape JSON.stringify does not write (upper case) is still a lone surrogate
    expect(tokenKeysOfJson(prefix, enc.encode('["ab\\uD800c"]'), hashKey)).toBeUndefined();
  });

  it('tokens whose dedupe hashes collide stay apart (equal length, a common start)', () => {
    // pairs of equal length and equal 32-bit hash in the module's table (assembly/tokens.ts's
    // `hashBytes`), found by a birthday search: only the byte compare tells them apart, in the tail
    // word (the first two) or in the only, partial one (the last)
    const cells = ['abcdefghk166 abcdefghx_oc', 'abcdefghijklmnop_b3 abcdefghijklmnop23c', '0ed5ory sdq5hdy'];
    const { want, wasm } = keysEachWay(cells);
    expect(want.length).toBe(6);
    expect(wasm.length).toBe(6);
    expect([...sortUnique(wasm)]).toEqual(want);
  });

  it('a text of 9,000 distinct tokens (its table grows twice) and tokens of every length to 300', () => {
    const chars = 'abcdefghijklmnopqrstuvwxyz0123456789_';
    const long = Array.from({ length: 300 }, (_, n) => chars.repeat(9).slice(n % 37, (n % 37) + n + 1));
    const cells = [0, 1, 2].map((r) => Array.from({ length: 3000 }, (_, i) => `t${r * 3000 + i}`).join(' '));
    cells.push(long.join(' '), long.join(' '));
    const { want, wasm, js } = keysEachWay(cells);
    expect(want.length).toBeGreaterThan(9000 + 128);
    expect(wasm.length).toBe(want.length);
    expect([...sortUnique(wasm)]).toEqual(want);
    expect([...sortUnique(js)]).toEqual(want);
  });

  it("a declared column's values from its JSON text alone (the byte parser's): the JavaScript scan's keys, each once", () => {
    const vdef = parseDdl(`CREATE STREAM k SOURCES ('file:x') FORMAT json
      COLUMNS (n INT, level STRING, comp STRING) INDEX (level, comp, n)`);
    const value = fc.oneof(
      fc.constant(null),
      // runs, values of one length, and two whose hashes in the module's table collide
      fc.constantFrom(
        'INFO',
        'WARN',
        'INFO ',
        '',
        'dfs.DataNode$PacketResponder',
        'abcdefghk166',
        'abcdefghx_oc',
      ),
      fc.string({ maxLength: 20 }),
      fc.string({ unit: 'binary', maxLength: 40 }),
      fc.stringMatching(/^[a-z"\\\n\u0001é ]{0,12}$/u),
      fc.integer({ min: -3, max: 3 }).map(String),
    );
    fc.assert(
      fc.property(fc.array(fc.tuple(value, value), { maxLength: 40 }), (rows) => {
        const want = new Set<string>();
        for (const r of rows) {
          if (r[0] !== null) want.add(`1\u0000${r[0]}`);
          if (r[1] !== null) want.add(`2\u0000${r[1]}`);
        }
        const json = [0, 1].map((c) => enc.encode(JSON.stringify(rows.map((r) => r[c]))));
        const cols = [rows.map(() => 1), [], []];
        const texts = [new Uint8Array(0), ...json];
        const wasm = columnKeys(vdef, cols, texts);
        useWasmScans(false);
        const js = columnKeys(vdef, cols, texts);
        useWasmScans(true);
        if (rows.length > 0) want.add('0\u00001');
        const keys = [...sortUnique(hashKeys([...want]))];
        expect(wasm.length).toBe(keys.length);
        expect([...sortUnique(wasm)]).toEqual(keys);
        expect([...sortUnique(js)]).toEqual(keys);
      }),
      { numRuns: 300 },
    );
    const prefix = enc.encode('1\u0000');
    const of = (text: string) => valueKeysOfJson(prefix, enc.encode(text), hashKey)?.length;
    // numbers are their text (a string of the same text is the same key), nulls skipped, runs once
    expect(of('["INFO","INFO",null,12,"12","WARN","INFO",-0.5]')).toBe(4);
    expect(of('["abcdefghk166","abcdefghx_oc"]')).toBe(2);
    expect(of('[]')).toBe(0);
    expect(of('["a\\"b"]')).toBeUndefined(); // an escape: the JavaScript scan
    expect(() => valueKeysOfJson(prefix, enc.encode('["abc]'), hashKey)).toThrow(
      /^commitValuesJson: an unterminated string/,
    );
  });
});

describe("the modules' memory", () => {
  it('a module whose memory grew past wasmMemoryKeepBytes while its last call used under a quarter is made again, then kept', () => {
    const m = new LazyModule<ModuleExports>('tokens.wasm');
    const a = m.get()!;
    expect(m.get()).toBe(a);
    a.memory.grow(Math.ceil(wasmMemoryKeepBytes / 65536));
    // while the calls use more than a quarter of it, it is kept (no new instance a page)
    m.used(a.memory.buffer.byteLength / 3);
    expect(m.get()).toBe(a);
    m.used(1 << 20);
    const b = m.get()!;
    expect(b).not.toBe(a);
    expect(b.memory.buffer.byteLength).toBeLessThan(wasmMemoryKeepBytes / 8);
    expect(m.get()).toBe(b);
  });
});
