import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createStream, RowParser as PackageRowParser, Stream } from '@strata/helios';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseDdl, type StreamDef } from '../src/ddl.js';
import { type Cell, lineBytesMax, RowParser } from '../src/formats.js';
import { columnKeys } from '../src/keys.js';
import { ByteRowParser, useWasmPages, wasmPageEngine } from '../src/rowbytes.js';
import { checkIndex } from './index-check.js';

const templates = [
  '<Date> <Time> <Pid> <Level> <Component>: <Content>',
  '[<Time>] <Level> - <Content>',
  '<Level>:<Pid> <Content>',
  '<Date>  <Time> <Level> <Content>',
  '<Time> [<Component>] <Content> end',
];

function def(template: string): StreamDef {
  // (json: a loghub DDL refuses a column that takes no field of its template, as most do of some here)
  const d = parseDdl(`CREATE STREAM s SOURCES ('file:x') FORMAT json
    COLUMNS (ts TIMESTAMP, pid INT, level STRING, component STRING, content TEXT, extra FLOAT)
    INDEX (level, component, pid, TOKENS(content))`);
  // (the template set after the DDL: a quote or backslash in it needs no escaping)
  return { ...d, format: { kind: 'loghub', template } };
}

// Lines made of pieces the templates' steps turn on: spaces and other blanks, the literals, digits,
// quotes, backslashes, controls (CR mid-line too), and HDFS-like fields.
const piece = fc.constantFrom(
  ' ',
  '  ',
  '\t',
  '\r',
  '\u000b',
  ':',
  ': ',
  '[',
  ']',
  '- ',
  ' - ',
  '"',
  '\\',
  '\u0001',
  '\u007f',
  'end',
  '081109',
  '203615',
  '08110',
  '148',
  '1234567890123456',
  'INFO',
  'dfs.DataNode$PacketResponder',
  'blk_-12',
  'x',
);
const lineArb = fc.array(piece, { maxLength: 14 }).map((ps) => ps.join(''));

/** The page of `lines` through the byte parser, against RowParser and JSON.stringify. */
function check(template: string, lines: string[], opts: CheckOptions = {}): void {
  const d = opts.def ?? def(template);
  const parser = new RowParser(d);
  const bytes = ByteRowParser.for(d, parser);
  expect(bytes).toBeDefined();
  const want: Cell[][] = d.columns.map(() => new Array<Cell>(lines.length));
  const wantParser = new RowParser(d);
  for (let i = 0; i < lines.length; i++) wantParser.rowInto(lines[i]!, want, i);
  // the lines the byte matcher leaves to RowParser
  const rowInto = parser.rowInto.bind(parser);
  parser.rowInto = (l, cols, i) => {
    if (opts.stats) opts.stats.strings++;
    rowInto(l, cols, i);
  };
  if (opts.stats) opts.stats.lines += lines.length;
  // the chunk at an offset in a larger buffer (DataViews over it), with or without its last newline
  const text = `${lines.join('\n')}${opts.noFinalNewline ? '' : '\n'}`;
  const at = opts.offset ?? 0;
  const whole = Buffer.alloc(at + text.length + 3, 0x41);
  whole.write(text, at, 'latin1');
  const chunk = whole.subarray(at, at + text.length);
  const ends: number[] = [];
  for (let e = chunk.indexOf(10); e >= 0; e = chunk.indexOf(10, e + 1)) ends.push(e);
  if (ends.length < lines.length) ends.push(chunk.length);
  const line = (i: number) => chunk.toString('latin1', i === 0 ? 0 : ends[i - 1]! + 1, ends[i]);
  // page by page, as planBlock asks (the parser's JSON buffers reused from page to page)
  const per = Math.max(1, opts.pageRows ?? lines.length);
  for (let a = 0; a < lines.length; a += per) {
    const n = Math.min(per, lines.length - a);
    const json: (Uint8Array | undefined)[] = d.columns.map(() => undefined);
    const page = bytes!.page(chunk, Uint32Array.from(ends), a, n, json, line);
    const wantPage = want.map((col) => col.slice(a, a + n));
    const wantJson = wantPage.map((col) => new TextEncoder().encode(JSON.stringify(col)));
    for (let c = 0; c < d.columns.length; c++) {
      if (json[c] !== undefined) {
        expect(Buffer.from(json[c]!).toString('latin1')).toBe(JSON.stringify(wantPage[c]));
        expect(page[c]).toEqual([]);
      } else expect(page[c]).toEqual(wantPage[c]);
    }
    // the page's keys from the byte parser's page equal the strings' keys
    const texts = d.columns.map((_, c) => json[c] ?? wantJson[c]!);
    const got = [...columnKeys(d, page, texts)].sort();
    expect(got).toEqual([...columnKeys(d, wantPage, wantJson)].sort());
  }
}

interface CheckOptions {
  /** The stream (else `def(template)`). */
  def?: StreamDef;
  pageRows?: number;
  noFinalNewline?: boolean;
  /** Where the chunk starts in its buffer. */
  offset?: number;
  /** Counts of lines checked and of lines left to RowParser. */
  stats?: { lines: number; strings: number };
}

// Templates made of the pieces loghub's have (blanks, brackets, separators) and some a regex treats
// specially, each field followed by a literal (a field right after a field is not taken).
const fieldNames = ['Date', 'Time', 'Pid', 'Level', 'Component', 'Content', 'Extra'];
const literalArb = fc.constantFrom(
  ' ',
  '  ',
  ': ',
  ':',
  ' - ',
  '[',
  '] ',
  ']',
  ', ',
  '=',
  '"',
  '\\',
  '\t',
  '\t: ',
  '(',
  ') ',
  '^',
  '-',
  ' end',
  ' x ',
  '.',
  '$',
);
const templateArb = fc
  .tuple(
    fc.boolean(),
    fc.shuffledSubarray(fieldNames, { minLength: 1 }),
    fc.array(literalArb, { minLength: 7, maxLength: 7 }),
    fc.boolean(),
  )
  .map(([lead, names, lits, tail]) => {
    let t = lead ? lits[6]! : '';
    names.forEach((n, i) => {
      t += `<${n}>`;
      if (i < names.length - 1) t += lits[i]!;
    });
    return tail ? t + lits[5]! : t;
  });

// A field's text: the pieces above and ones that look like the template's literals and blanks.
const valueArb = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.constantFrom(
      '081109',
      '203615',
      '148',
      'INFO',
      'dfs.DataNode$PacketResponder',
      'blk_-12',
      '',
    ),
  },
  { weight: 4, arbitrary: piece },
  { weight: 2, arbitrary: literalArb },
  { weight: 1, arbitrary: fc.constantFrom('\r', '\u000b', '\u000c', '\u001f', '\u007f', '"q"', 'a\\b') },
);
// A template's literal as a line has it: mostly as is, its blanks sometimes other blanks or more of them.
function literalInLine(lit: string, how: number): string {
  if (how < 6) return lit;
  if (how === 6) return lit.replace(/ /g, '\t');
  if (how === 7) return lit.replace(/ /g, ' \u000b ');
  if (how === 8) return lit.replace(/ /g, '\r');
  return lit.slice(1);
}
/** A line of `template`: its literals (mostly as they are) and random fields, and what ends it. */
function lineOf(template: string, values: string[], hows: number[], end: string): string {
  const parts = template.split(/(<[A-Za-z_][A-Za-z0-9_]*>)/).filter((x) => x !== '');
  let out = '';
  parts.forEach((p, i) => {
    out += p.startsWith('<') ? values[i % values.length]! : literalInLine(p, hows[i % hows.length]!);
  });
  return out + end;
}
/** Pieces of `template`'s own literals (and their first characters), which a field's text may hold. */
function literalsOf(template: string): string[] {
  const lits = template.split(/<[A-Za-z_][A-Za-z0-9_]*>/).filter((x) => x !== '');
  const firsts = lits.map((l) => l.trim()[0] ?? ' ');
  return [' ', ...lits, ...firsts, ...firsts.map((c) => c + c), ...firsts.map((c) => `${c} `)];
}
const templateLinesArb = templateArb.chain((t) =>
  fc.tuple(
    fc.constant(t),
    fc.array(
      fc.oneof(
        {
          weight: 8,
          arbitrary: fc
            .tuple(
              fc.array(
                fc
                  .array(fc.oneof(valueArb, fc.constantFrom(...literalsOf(t))), { maxLength: 3 })
                  .map((v) => v.join('')),
                { minLength: 8, maxLength: 8 },
              ),
              fc.array(fc.nat(9), { minLength: 8, maxLength: 8 }),
              fc.constantFrom('', '', '', '\r', '\r\r', ' ', '\t'),
            )
            .map(([v, h, e]) => lineOf(t, v, h, e)),
        },
        { weight: 1, arbitrary: lineArb },
      ),
      { minLength: 1, maxLength: 12 },
    ),
  ),
);

// Each test below runs with the page loop in WebAssembly (assembly/rowbytes.ts) and in JavaScript.
describe.each(['wasm', 'js'] as const)('ByteRowParser, the %s page loop', (engine) => {
  beforeEach(() => useWasmPages(engine === 'wasm'));
  afterEach(() => useWasmPages(true));

  it('takes loghub templates of literals, blanks and fields, not a field right after a field', () => {
    for (const t of templates) expect(ByteRowParser.for(def(t), new RowParser(def(t)))).toBeDefined();
    const lazy = def('<Date><Time> <Content>');
    expect(ByteRowParser.for(lazy, new RowParser(lazy))).toBeUndefined();
  });

  it('HDFS lines: the cells and sections RowParser and JSON.stringify give', () => {
    check(templates[0]!, [
      '081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_38 terminating',
      '081109 203615 148 INFO dfs.DataNode: say "hi" \\ back\tslash',
      '081109 203615 148 INFO dfs.DataNode: a CR\rmid-line',
      '081109  203615 148 INFO x:  two blanks',
      '081109 203615 148 INFO',
      '',
      'not a line of the template',
      '0811 2036 12345678901234567 WARN c: long pid',
    ]);
  });

  it('random ASCII lines under several templates (fast-check)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...templates),
        fc.array(lineArb, { minLength: 1, maxLength: 20 }),
        (t, ls) => {
          check(t, ls);
        },
      ),
      { numRuns: 400 },
    );
  });

  it('random templates and lines made of their literals and fields, a page at a time (fast-check)', () => {
    const stats = { lines: 0, strings: 0 };
    fc.assert(
      fc.property(
        templateLinesArb,
        fc.integer({ min: 1, max: 5 }),
        fc.boolean(),
        fc.nat(7),
        ([t, ls], pageRows, noFinalNewline, offset) => {
          check(t, ls, { pageRows, noFinalNewline, offset, stats });
        },
      ),
      { numRuns: 600 },
    );
    // many lines were the byte matcher's own, so the equality above tested it (not RowParser twice)
    expect(stats.lines - stats.strings).toBeGreaterThan(stats.lines / 4);
  });

  it('a byte the word scans stop at, at every offset of a `[^c]*` field and of the last field', () => {
    // the fields are scanned eight or four bytes at a time: each stop byte in each byte of each word (and
    // a quote after the `[^c]*` field: a c the words skip would be taken for the field's end there)
    const lines: string[] = [];
    for (let n = 1; n <= 20; n++)
      for (let p = 0; p < n; p++)
        for (const x of ['"', '\\', '\u0001', '\u001f', '\r', ':', '\u007f', ' ']) {
          const at = (fill: string) => fill.repeat(p) + x + fill.repeat(n - p - 1);
          lines.push(`WARN ${at('a')}: ${at('b')}`, `WARN ${at('a')}": ${at('b')}`);
        }
    check('<Level> <Component>: <Content>', lines, { offset: 1 });
  });

  it('lines at and over lineBytesMax: cut there, then a CR at the cut dropped', () => {
    const t = templates[0]!;
    const head = '081109 203615 148 INFO dfs.DataNode: ';
    const fill = (n: number, tail: string) => head + 'w'.repeat(n - head.length - tail.length) + tail;
    const lines: string[] = [];
    for (const n of [lineBytesMax - 1, lineBytesMax, lineBytesMax + 1, lineBytesMax + 2])
      for (const tail of ['', '\r', '"', '\r\r', 'x\r', '\\"']) lines.push(fill(n, tail));
    lines.push(`${fill(lineBytesMax - 1, '\r')}\r`);
    lines.push(`${fill(lineBytesMax, '')}\r`);
    check(t, lines, { pageRows: 3 });
    check(t, lines, { noFinalNewline: true, offset: 1 });
  });

  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('ingestFile: chunks ASCII and not, CRLF, long and empty lines, no last newline: the rows and index keys of the strings', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'helios-rowbytes-'));
    dirs.push(dir);
    createStream(
      dir,
      `CREATE STREAM h SOURCES ('file:h.log') FORMAT loghub('${templates[0]}')
      COLUMNS (ts TIMESTAMP, pid INT, level STRING, component STRING, content TEXT)
      INDEX (level, component, pid, TOKENS(content))`,
    );
    const lines: string[] = [];
    for (let i = 0; i < 400; i++) {
      const lvl = ['INFO', 'WARN', 'x"y', 'a\\b'][i % 4];
      let l = `0811${10 + (i % 3)} 2036${String(i % 60).padStart(2, '0')} ${i % 7 === 0 ? '-1' : 140 + (i % 9)} ${lvl} dfs.C${i % 5}: block blk_${i} "q" \\ end`;
      if (i % 11 === 0) l += '\r'; // CRLF
      if (i % 13 === 0) l = ''; // empty
      if (i % 37 === 0) l = `081109 203615 148 INFO big: ${'w'.repeat(3000)}`; // longer than a chunk
      if (i % 50 === 7) l = `081109 203615 148 INFO caf\u00e9: non-ASCII ${i}`; // its chunk takes the strings
      if (i % 17 === 0) l = `081109 203615 148 INFO c: a CR\rmid-line ${i}`;
      lines.push(l);
    }
    const file = join(dir, 'h.log');
    writeFileSync(file, lines.join('\n')); // no last newline
    const s = await Stream.open(dir, 'h', { compactEveryBlocks: 0 });
    try {
      const stats = await s.ingestFile(file, { chunkBytes: 700 });
      expect(stats.lines).toBe(lines.length);
      const parser = new PackageRowParser(s.def);
      const got = [];
      for await (const { rows } of s.scan()) got.push(...rows);
      expect(got).toEqual(lines.map((l) => parser.row(l)));
      await s.indexAll();
      await checkIndex(s);
    } finally {
      await s.close();
    }
  });
});

/** One page of `chunk` through the byte parser with the page loop given: its texts, cells and the lines it left to RowParser. */
function pageWith(
  wasm: boolean,
  d: StreamDef,
  chunk: Buffer,
  ends: Uint32Array,
  a: number,
  n: number,
): { json: (string | undefined)[]; page: Cell[][]; strings: number[] } {
  useWasmPages(wasm);
  try {
    const bytes = ByteRowParser.for(d, new RowParser(d))!;
    const strings: number[] = [];
    const line = (i: number) => {
      strings.push(i);
      return chunk.toString('latin1', i === 0 ? 0 : ends[i - 1]! + 1, ends[i]);
    };
    const out: (Uint8Array | undefined)[] = d.columns.map(() => undefined);
    const page = bytes.page(chunk, ends, a, n, out, line);
    // read before the next page (the module's texts are views of its memory)
    const json = out.map((j) => (j === undefined ? undefined : Buffer.from(j).toString('latin1')));
    return { json, page, strings };
  } finally {
    useWasmPages(true);
  }
}

/** Every page of `text` (lines cut at its newlines) through both loops: the same texts, cells and lines left to RowParser. */
function sameBothWays(d: StreamDef, text: string, pageRows: number, offset = 0): void {
  const whole = Buffer.alloc(offset + text.length + 3, 0x41);
  whole.write(text, offset, 'latin1');
  const chunk = whole.subarray(offset, offset + text.length);
  const ends: number[] = [];
  for (let e = chunk.indexOf(10); e >= 0; e = chunk.indexOf(10, e + 1)) ends.push(e);
  if (ends.length === 0 || ends.at(-1)! < chunk.length - 1) ends.push(chunk.length);
  const e32 = Uint32Array.from(ends);
  for (let a = 0; a < ends.length; a += pageRows) {
    const n = Math.min(pageRows, ends.length - a);
    const w = pageWith(true, d, chunk, e32, a, n);
    const j = pageWith(false, d, chunk, e32, a, n);
    expect(w.json).toEqual(j.json);
    expect(w.page).toEqual(j.page);
    expect(w.strings).toEqual(j.strings);
  }
}

describe('the WebAssembly page loop against the JavaScript one', () => {
  it('the module is built and used', () => {
    expect(wasmPageEngine()).toBe('wasm');
  });

  it('random templates and lines, fuzzed ASCII among them: the same texts, cells and lines left to RowParser (fast-check)', () => {
    // lines of the template, random ASCII (newlines included: they cut lines where they fall), and long
    // runs that the module scans eight bytes at a time with a stop byte anywhere in them
    const fuzz = fc.string({ unit: 'binary-ascii', maxLength: 80 });
    const long = fc
      .tuple(
        fc.nat(40),
        fc.constantFrom('"', '\\', '\u0001', '\r', ' ', '\t', ':', ']', '-', '\u007f'),
        fc.nat(40),
      )
      .map(
        ([x, c, y]) =>
          `081109 203615 148 INFO ${'a'.repeat(x)}${c}${'b'.repeat(y)}: ${'c'.repeat(y)}${c}${'d'.repeat(x)}`,
      );
    fc.assert(
      fc.property(
        templateLinesArb,
        fc.array(fc.oneof(fuzz, long), { maxLength: 6 }),
        fc.integer({ min: 1, max: 6 }),
        fc.nat(7),
        fc.boolean(),
        ([t, ls], more, pageRows, offset, lastNewline) => {
          const all = [...ls, ...more];
          sameBothWays(def(t), `${all.join('\n')}${lastNewline ? '\n' : ''}`, pageRows, offset);
          sameBothWays(def(templates[0]!), `${all.join('\n')}\n`, pageRows, offset);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('controls, quotes and backslashes in every JSON column, escaped as JSON.stringify escapes them', () => {
    const lines: string[] = [];
    for (let x = 0; x < 128; x++) {
      if (x === 10) continue;
      const ch = String.fromCharCode(x);
      lines.push(`081109 203615 148 I${ch}NFO dfs.${ch}C: a ${ch} b${ch}`);
      lines.push(`081109 203615 148 INFO c: ${ch.repeat(1 + (x % 17))}`);
    }
    sameBothWays(def(templates[0]!), lines.join('\n'), 37);
    check(templates[0]!, lines, { pageRows: 37 });
  });

  it('HDFS dates and times of any two digits (months and days past their range carried as Date.UTC carries them)', () => {
    const two = fc.integer({ min: 0, max: 99 }).map((v) => String(v).padStart(2, '0'));
    fc.assert(
      fc.property(
        fc.array(fc.tuple(two, two, two, two, two, two, fc.constantFrom('', '0', 'x')), {
          minLength: 1,
          maxLength: 40,
        }),
        (parts) => {
          const lines = parts.map(
            ([y, m, d, h, mi, s, junk]) => `${y}${m}${d}${junk} ${h}${mi}${s} 7 INFO c: x`,
          );
          sameBothWays(def(templates[0]!), lines.join('\n'), 16);
          check(templates[0]!, lines);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("a page over 1 MiB whose escaped cells outgrow the module's room: the JavaScript loop, the same texts", () => {
    // 600 lines of 2,000 quotes: their JSON text is twice the page, past the room a page that large has
    const lines: string[] = [];
    for (let i = 0; i < 600; i++)
      lines.push(
        i % 50 === 3 ? 'not a line of the template' : `081109 203615 ${i} INFO c: ${'"'.repeat(2000)}`,
      );
    const d = def(templates[0]!);
    const text = `${lines.join('\n')}\n`;
    const chunk = Buffer.from(text, 'latin1');
    const ends: number[] = [];
    for (let e = chunk.indexOf(10); e >= 0; e = chunk.indexOf(10, e + 1)) ends.push(e);
    const e32 = Uint32Array.from(ends);
    const w = pageWith(true, d, chunk, e32, 0, lines.length);
    const j = pageWith(false, d, chunk, e32, 0, lines.length);
    expect(w.json).toEqual(j.json);
    expect(w.page).toEqual(j.page);
    check(templates[0]!, lines);
  });
});
