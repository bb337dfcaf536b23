// The WebAssembly page loop (assembly/rowbytes.ts) against the JavaScript one where test/rowbytes.test.ts
// does not reach: several parsers taking turns in the module's one memory, a page after a much larger one
// (memory grown), pages at the size bounds, INT and date-time cells of odd digits, and whole streams
// ingested with the module on and off.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createStream, Stream } from '@strata/helios';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { parseDdl, type StreamDef } from '../src/ddl.js';
import { type Cell, lineBytesMax, RowParser } from '../src/formats.js';
import { ByteRowParser, useWasmPages, wasmPageBytesMax, wasmPageEngine } from '../src/rowbytes.js';
import { checkIndex } from './index-check.js';

/** A stream of `template` with `columns`. */
function streamDef(template: string, columns: string): StreamDef {
  // (json: a loghub DDL refuses a column that takes no field of its template, as some do here)
  const d = parseDdl(`CREATE STREAM s SOURCES ('file:x') FORMAT json COLUMNS (${columns})`);
  return { ...d, format: { kind: 'loghub', template } };
}

const hdfs = streamDef(
  '<Date> <Time> <Pid> <Level> <Component>: <Content>',
  'ts TIMESTAMP, pid INT, level STRING, component STRING, content TEXT, extra FLOAT',
);
/** Every step kind: `[^c]*` + c, `[^c]*` + blanks + c, `[^c]*` then `\t` (not fused), `\S*` + blanks, `.*`. */
const mixed = streamDef(
  '[<Pid>] <Level> - <Component>\t:<Date>,<Time> <Extra> <Content>',
  'content TEXT, extra STRING, component STRING, level STRING, ts TIMESTAMP, pid INT',
);
/** The last field taken by an INT column (no JSON column takes `.*`), and a string column of no field. */
const intRest = streamDef(
  '<Level>:<Component> <Pid>',
  'pid INT, level STRING, component TEXT, nothing STRING',
);

interface PageOut {
  json: (string | undefined)[];
  page: Cell[][];
  strings: number[];
}

/** A chunk of `lines` (each ended by a newline but, with `noLast`, the last) and where its lines end. */
function chunkOf(lines: string[], noLast = false): { chunk: Buffer; ends: Uint32Array } {
  const chunk = Buffer.from(`${lines.join('\n')}${noLast ? '' : '\n'}`, 'latin1');
  const ends: number[] = [];
  for (let e = chunk.indexOf(10); e >= 0; e = chunk.indexOf(10, e + 1)) ends.push(e);
  if (ends.length < lines.length) ends.push(chunk.length);
  return { chunk, ends: Uint32Array.from(ends) };
}

/** Page [a, a + n) of a chunk through `parser` with the loop switched as it is: texts read at once. */
function pageOf(
  parser: ByteRowParser,
  chunk: Buffer,
  ends: Uint32Array,
  a: number,
  n: number,
  ncols: number,
) {
  const strings: number[] = [];
  const line = (i: number) => {
    strings.push(i);
    return chunk.toString('latin1', i === 0 ? 0 : ends[i - 1]! + 1, ends[i]);
  };
  const out: (Uint8Array | undefined)[] = new Array(ncols).fill(undefined);
  const page = parser.page(chunk, ends, a, n, out, line);
  const json = out.map((j) => (j === undefined ? undefined : Buffer.from(j).toString('latin1')));
  return { json, page, strings };
}

/** The JavaScript loop's page, by a parser of its own. */
function reference(d: StreamDef, chunk: Buffer, ends: Uint32Array, a: number, n: number): PageOut {
  useWasmPages(false);
  try {
    return pageOf(ByteRowParser.for(d, new RowParser(d))!, chunk, ends, a, n, d.columns.length);
  } finally {
    useWasmPages(true);
  }
}

function expectSame(got: PageOut, want: PageOut): void {
  expect(got.json).toEqual(want.json);
  expect(got.page).toEqual(want.page);
  // the same lines left to RowParser (the module's loop may have asked for some before it gave the page up:
  // a text out of room)
  expect(new Set(got.strings)).toEqual(new Set(want.strings));
}

// Field texts that turn the steps and cells: digits of every kind an INT or HDFS date meets, blanks,
// separators of the templates above, controls, quotes, backslashes, DEL.
const fieldArb = fc.oneof(
  fc.constantFrom(
    '',
    '0',
    '007',
    '-1',
    '-0',
    '123456789012345',
    '1234567890123456',
    '99999999999999999999',
    '1e3',
    '1.5',
    '081109',
    '000000',
    '991399',
    '009900',
    '235959',
    '999999',
    // the ends of months (29 February in a leap year and not, the 30th and 31st) and of days
    '080229',
    '090229',
    '000229',
    '080230',
    '080431',
    '081231',
    '081301',
    '240000',
    '235960',
    '235961',
    'INFO',
    ' ',
    '\t',
    ']',
    '-',
    ' - ',
    ':',
    ',',
    '"',
    '\\',
    '\u0000',
    '\u0001',
    '\u001f',
    '\r',
    '\u000b',
    '\u007f',
  ),
  fc.string({ unit: 'binary-ascii', maxLength: 12 }).map((s) => s.replace(/\n/g, '')),
);

/** A line of `template` with random fields (sometimes a random ASCII line instead). */
function lineArbOf(template: string): fc.Arbitrary<string> {
  const parts = template.split(/(<[A-Za-z_][A-Za-z0-9_]*>)/).filter((x) => x !== '');
  const ofTemplate = fc
    .array(fc.array(fieldArb, { maxLength: 3 }), { minLength: parts.length, maxLength: parts.length })
    .map((vs) => parts.map((p, i) => (p.startsWith('<') ? vs[i]!.join('') : p)).join(''));
  return fc.oneof(
    { weight: 6, arbitrary: ofTemplate },
    {
      weight: 1,
      arbitrary: fc.string({ unit: 'binary-ascii', maxLength: 40 }).map((s) => s.replace(/\n/g, '')),
    },
  );
}

describe('the WebAssembly page loop: parsers sharing the module, sizes, cells', () => {
  it('the module is built and used', () => {
    expect(wasmPageEngine()).toBe('wasm');
  });

  it('parsers of several streams taking turns, a large page (memory grown) among small ones: each page as the JavaScript loop gives it', () => {
    const defs = [hdfs, mixed, intRest];
    const streams = fc.tuple(
      ...defs.map((d) =>
        fc.array(lineArbOf(d.format.kind === 'loghub' ? d.format.template : ''), {
          minLength: 1,
          maxLength: 30,
        }),
      ),
    );
    fc.assert(
      fc.property(
        streams,
        fc.array(fc.tuple(fc.nat(2), fc.integer({ min: 1, max: 9 })), { minLength: 1, maxLength: 12 }),
        fc.nat(2),
        fc.integer({ min: 1, max: 400 }),
        (lines, turns, bigAt, bigLines) => {
          const parsers = defs.map((d) => ByteRowParser.for(d, new RowParser(d))!);
          const chunks = lines.map((ls) => chunkOf(ls));
          const next = defs.map(() => 0);
          // one stream's page much larger than the rest: 2 KiB lines of quotes (the escaped room, 6x)
          const big = chunkOf(
            Array.from({ length: bigLines }, (_, i) => `081109 203615 ${i} INFO c: ${'"\\'.repeat(1024)}`),
          );
          turns.forEach(([k, n], t) => {
            if (t === bigAt) {
              const got = pageOf(parsers[0]!, big.chunk, big.ends, 0, bigLines, hdfs.columns.length);
              expectSame(got, reference(hdfs, big.chunk, big.ends, 0, bigLines));
            }
            const { chunk, ends } = chunks[k]!;
            const a = next[k]! % ends.length;
            const m = Math.min(n, ends.length - a);
            next[k] = a + m;
            const got = pageOf(parsers[k]!, chunk, ends, a, m, defs[k]!.columns.length);
            expectSame(got, reference(defs[k]!, chunk, ends, a, m));
          });
        },
      ),
      { numRuns: 150 },
    );
  });

  it('INT cells of any digits (leading zeros, signs, 16+ digits, exponents) and Date + Time of any six bytes', () => {
    const two = fc.integer({ min: 0, max: 99 }).map((v) => String(v).padStart(2, '0'));
    const six = fc.oneof(
      fc.tuple(two, two, two).map((x) => x.join('')),
      fieldArb,
    );
    fc.assert(
      fc.property(
        fc.array(fc.tuple(six, six, fieldArb, fc.nat(3)), { minLength: 1, maxLength: 40 }),
        fc.integer({ min: 1, max: 40 }),
        (rows, per) => {
          const lines = rows.map(([d, t, pid, k]) =>
            k === 0 ? `[${pid}] WARN - c\t:${d},${t} x y` : `${d} ${t} ${pid} INFO c: y`,
          );
          const { chunk, ends } = chunkOf(lines, per % 2 === 0);
          for (const d of [hdfs, mixed]) {
            const p = ByteRowParser.for(d, new RowParser(d))!;
            for (let a = 0; a < lines.length; a += per) {
              const n = Math.min(per, lines.length - a);
              expectSame(pageOf(p, chunk, ends, a, n, d.columns.length), reference(d, chunk, ends, a, n));
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('dates at the ends of months and times at the ends of days: the same cells as the JavaScript loop', () => {
    // a real 29 February (2000, 2008), none (2009, 2100 is past yy), the 30th and 31st of short months,
    // month 13, hour 24, second 60 (a leap second's) and 61
    const dates = ['000229', '080229', '090229', '080230', '080431', '080430', '081231', '081301', '080100'];
    const times = ['000000', '235959', '240000', '235960', '235961', '206015'];
    const lines = dates.flatMap((d) => times.map((t) => `${d} ${t} 148 INFO c: x`));
    const { chunk, ends } = chunkOf(lines);
    const p = ByteRowParser.for(hdfs, new RowParser(hdfs))!;
    const got = pageOf(p, chunk, ends, 0, lines.length, hdfs.columns.length);
    expectSame(got, reference(hdfs, chunk, ends, 0, lines.length));
  });

  it('empty lines, lines of blanks only, of controls only, at and over lineBytesMax', () => {
    const head = '081109 203615 148 INFO c: ';
    const lines = ['', ' ', '\t', '   \t ', '\r', '\r\r', '\u0000', '\u007f', ' \r', ''];
    for (const n of [lineBytesMax - 1, lineBytesMax, lineBytesMax + 1, lineBytesMax + 9])
      for (const tail of ['', '\r', '"', ' ', '\\'])
        lines.push(head + 'x'.repeat(n - head.length - tail.length) + tail);
    // (not a long run of blanks: RowParser's regex backtracks over one for minutes, with or without the module)
    lines.push('x'.repeat(lineBytesMax + 3), ' '.repeat(20), '"'.repeat(lineBytesMax));
    for (const d of [hdfs, mixed, intRest])
      for (const noLast of [false, true]) {
        const { chunk, ends } = chunkOf(lines, noLast);
        const p = ByteRowParser.for(d, new RowParser(d))!;
        for (const per of [1, 7, lines.length])
          for (let a = 0; a < lines.length; a += per) {
            const n = Math.min(per, lines.length - a);
            expectSame(pageOf(p, chunk, ends, a, n, d.columns.length), reference(d, chunk, ends, a, n));
          }
      }
  });

  it('pages at the escaped room bound (1 MiB) and at wasmPageBytesMax, escapes filling the room or past it', () => {
    const line = (i: number, body: string) => `081109 203615 ${i % 1000} INFO c: ${body}`;
    // a page of `bytes` bytes (its last newline not counted): lines of `body` then one line padding it out
    const pageOfBytes = (bytes: number, body: (i: number) => string) => {
      const lines: string[] = [];
      let used = -1;
      for (let i = 0; ; i++) {
        const l = line(i, body(i));
        if (used + 1 + l.length + 1 + 200 > bytes) break;
        lines.push(l);
        used += 1 + l.length;
      }
      const rest = bytes - used - 1;
      lines.push(line(lines.length, 'w'.repeat(rest - line(lines.length, '').length)));
      return lines;
    };
    const p = ByteRowParser.for(hdfs, new RowParser(hdfs))!;
    const cases: [number, (i: number) => string][] = [
      [(1 << 20) - 1, (i) => '"'.repeat(1000 + (i % 7))],
      [1 << 20, (i) => '"'.repeat(1000 + (i % 7))],
      [(1 << 20) + 1, (i) => '"'.repeat(1000 + (i % 7))],
      [(1 << 20) + 1, (i) => (i % 3 === 0 ? '"' : 'q').repeat(1000)],
      [(1 << 20) + 1, (i) => 'q'.repeat(1000 + (i % 7))],
      [wasmPageBytesMax, (i) => (i % 64 === 0 ? '\u0001'.repeat(3000) : 'q'.repeat(60000))],
      [wasmPageBytesMax + 1, (i) => 'q'.repeat(60000 + (i % 9))],
    ];
    for (const [bytes, body] of cases) {
      const lines = pageOfBytes(bytes, body);
      const { chunk, ends } = chunkOf(lines);
      expect(ends[ends.length - 1]).toBe(bytes);
      const want = reference(hdfs, chunk, ends, 0, lines.length);
      expectSame(pageOf(p, chunk, ends, 0, lines.length, hdfs.columns.length), want);
      // and a small page after it (the memory as the large page left it)
      const small = chunkOf([line(1, 'a "b" \\ c'), 'not a line', line(2, 'd')]);
      expectSame(
        pageOf(p, small.chunk, small.ends, 0, 3, hdfs.columns.length),
        reference(hdfs, small.chunk, small.ends, 0, 3),
      );
    }
  });

  it("a page whose texts' rooms outgrow the module's memory (4 GiB): the JavaScript loop, not a throw", () => {
    // 300 string columns of a 16 MiB page: a room of 16 MiB each, 5 GB (the module's memory.grow throws)
    const names = Array.from({ length: 300 }, (_, i) => `F${i}`);
    const d = streamDef(names.map((n) => `<${n}>`).join(' '), names.map((n) => `${n} STRING`).join(', '));
    const line = `${names
      .slice(1)
      .map((_, i) => `v${i}`)
      .join(' ')} ${'q'.repeat(60000)}`;
    const lines = Array.from({ length: Math.floor(wasmPageBytesMax / (line.length + 1)) }, () => line);
    const { chunk, ends } = chunkOf(lines);
    const p = ByteRowParser.for(d, new RowParser(d))!;
    const got = pageOf(p, chunk, ends, 0, lines.length, d.columns.length);
    expectSame(got, reference(d, chunk, ends, 0, lines.length));
    expect(got.json[299]!.length).toBe(lines.length * 60003 + 1);
  });
});

describe('whole streams ingested with the module on and off', () => {
  const dirs: string[] = [];
  afterEach(() => {
    useWasmPages(true);
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  /**
   * The objects of the stream's `file:` store under `dir` (both tiers; objstore's file backend: a file per object named
   * by the hex of its key, a header of 46 bytes, the key, then the bytes), by key with its random stamp
   * (`.w` + 12 hex) taken out.
   */
  function objectsOf(dir: string): Map<string, Buffer> {
    const out = new Map<string, Buffer>();
    const walk = (d: string) => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        const p = join(d, e.name);
        if (e.isDirectory()) {
          if (e.name !== 'streams') walk(p);
        } else if (/^[0-9a-f]+$/.test(e.name)) {
          const f = readFileSync(p);
          const keyBytes = f.readUInt16LE(43);
          const key = f.toString('utf8', 46, 46 + keyBytes).replace(/\.w[0-9a-f]{12}$/, '');
          out.set(key, f.subarray(46 + keyBytes));
        }
      }
    };
    walk(dir); // both tiers' objects
    return out;
  }

  it('the same rows, the same blocks and the same index keys', async () => {
    const lines: string[] = [];
    for (let i = 0; i < 3000; i++) {
      const lvl = ['INFO', 'WARN', 'x"y', 'a\\b', '\u007f'][i % 5];
      const pid = ['148', '007', '-3', '1234567890123456', '1e2', ''][i % 6];
      const date = ['081109', '089931', '000000', '0811', '08110x'][i % 5];
      let l = `${date} 2036${String(i % 99).padStart(2, '0')} ${pid} ${lvl} dfs.C${i % 7}: blk_${i} "q" \\ \u0001\u001b end`;
      if (i % 11 === 0) l += '\r';
      if (i % 13 === 0) l = '';
      if (i % 17 === 0) l = ' \t ';
      if (i % 19 === 0) l = `081109 203615 148 INFO c: a CR\rmid-line ${i}`;
      if (i % 97 === 0) l = `081109 203615 148 INFO big: ${'w'.repeat(lineBytesMax + 10)}`;
      if (i % 1500 === 7) l = `081109 203615 148 INFO caf\u00e9 ${i}`; // its chunk is made a string
      lines.push(l);
    }
    const ddl = `CREATE STREAM h SOURCES ('file:h.log') FORMAT loghub('<Date> <Time> <Pid> <Level> <Component>: <Content>')
      COLUMNS (ts TIMESTAMP, pid INT, level STRING, component STRING, content TEXT)
      INDEX (level, component, pid, TOKENS(content))`;
    // both runs of one file (a block's id and header name the file's path and inode), in one directory
    const base = mkdtempSync(join(tmpdir(), 'helios-rowbytes-wasm-'));
    dirs.push(base);
    const file = join(base, 'h.log');
    writeFileSync(file, lines.join('\n'));
    const dir = join(base, 'run');
    const ingest = async (wasm: boolean) => {
      rmSync(dir, { recursive: true, force: true });
      createStream(dir, ddl);
      useWasmPages(wasm);
      const s = await Stream.open(dir, 'h', { compactEveryBlocks: 0 });
      // the pages the byte parser gave
      const page = ByteRowParser.prototype.page;
      let pages = 0;
      ByteRowParser.prototype.page = function (...args) {
        pages++;
        return page.apply(this, args);
      };
      try {
        await s.ingestFile(file, { chunkBytes: 64 << 10 });
        ByteRowParser.prototype.page = page;
        expect(pages).toBeGreaterThan(20);
        useWasmPages(true);
        const rows = [];
        for await (const { rows: r } of s.scan()) rows.push(...r);
        await s.indexAll();
        await checkIndex(s);
        return { rows, objects: objectsOf(dir) };
      } finally {
        ByteRowParser.prototype.page = page;
        useWasmPages(true);
        await s.close();
      }
    };
    const w = await ingest(true);
    const j = await ingest(false);
    expect(w.rows.length).toBe(lines.length);
    expect(w.rows).toEqual(j.rows);
    const blocks = (m: Map<string, Buffer>) =>
      [...m].filter(([k]) => /(blocks|leaves)/.test(k)).sort(([a], [b]) => (a < b ? -1 : 1));
    const wb = blocks(w.objects);
    const jb = blocks(j.objects);
    expect(wb.length).toBeGreaterThan(20);
    expect(wb.map(([k]) => k)).toEqual(jb.map(([k]) => k));
    for (let i = 0; i < wb.length; i++) expect(wb[i]![1].equals(jb[i]![1]), wb[i]![0]).toBe(true);
  });
});
