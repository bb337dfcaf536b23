import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseDdl } from '../src/ddl.js';
import { type Cell, RowParser } from '../src/formats.js';
import { columnKeys } from '../src/keys.js';
import { ByteRowParser } from '../src/rowbytes.js';

const templates = [
  '<Date> <Time> <Pid> <Level> <Component>: <Content>',
  '[<Time>] <Level> - <Content>',
  '<Level>:<Pid> <Content>',
  '<Date>  <Time> <Level> <Content>',
  '<Time> [<Component>] <Content> end',
];

function def(template: string) {
  return parseDdl(`CREATE STREAM s SOURCES ('file:x') FORMAT loghub('${template}')
    COLUMNS (ts TIMESTAMP, pid INT, level STRING, component STRING, content TEXT)
    INDEX (level, component, pid, TOKENS(content))`);
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
function check(template: string, lines: string[]): void {
  const d = def(template);
  const parser = new RowParser(d);
  const bytes = ByteRowParser.for(d, parser);
  expect(bytes).toBeDefined();
  const chunk = Buffer.from(`${lines.join('\n')}\n`, 'latin1');
  const ends: number[] = [];
  for (let e = chunk.indexOf(10); e >= 0; e = chunk.indexOf(10, e + 1)) ends.push(e);
  const line = (i: number) => chunk.toString('latin1', i === 0 ? 0 : ends[i - 1]! + 1, ends[i]);
  const json: (Uint8Array | undefined)[] = d.columns.map(() => undefined);
  const page = bytes!.page(chunk, ends, 0, lines.length, json, line);
  const want: Cell[][] = d.columns.map(() => new Array<Cell>(lines.length));
  for (let i = 0; i < lines.length; i++) parser.rowInto(lines[i]!, want, i);
  const wantJson = want.map((col) => new TextEncoder().encode(JSON.stringify(col)));
  for (let c = 0; c < d.columns.length; c++) {
    if (json[c] !== undefined) {
      expect(Buffer.from(json[c]!).toString('latin1')).toBe(JSON.stringify(want[c]));
      expect(page[c]).toEqual([]);
    } else expect(page[c]).toEqual(want[c]);
  }
  // the page's keys from the byte parser's page equal the strings' keys
  const texts = d.columns.map((_, c) => json[c] ?? wantJson[c]!);
  const got = [...columnKeys(d, page, texts)].sort();
  expect(got).toEqual([...columnKeys(d, want, wantJson)].sort());
}

describe('ByteRowParser', () => {
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
});
