import { chunkBytesMax, chunkSizeMax, DdlError, parseDdl, parseQuery } from '@strata/helios';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

const example = `CREATE STREAM hdfs SOURCES ('file:/var/log/hdfs/*.log')
FORMAT loghub('<Date> <Time> <Pid> <Level> <Component>: <Content>')
COLUMNS (ts TIMESTAMP, level STRING, component STRING, content TEXT)
INDEX (level, component, TOKENS(content))
CHUNK EVERY 10 SECONDS OR 4 MB STORAGE express FOR 1 DAY THEN standard RETAIN 30 DAYS`;

function errorOf(src: string): DdlError {
  try {
    parseDdl(src);
  } catch (e) {
    if (e instanceof DdlError) return e;
    throw e;
  }
  throw new Error('expected a DdlError');
}

describe('DDL', () => {
  it('parses the example from the issue', () => {
    const d = parseDdl(example);
    expect(d.name).toBe('hdfs');
    expect(d.sources).toEqual(['file:/var/log/hdfs/*.log']);
    expect(d.format).toEqual({
      kind: 'loghub',
      template: '<Date> <Time> <Pid> <Level> <Component>: <Content>',
    });
    expect(d.columns.map((c) => `${c.name}:${c.type}`)).toEqual([
      'ts:TIMESTAMP',
      'level:STRING',
      'component:STRING',
      'content:TEXT',
    ]);
    expect(d.index).toEqual([
      { column: 'level', tokens: false },
      { column: 'component', tokens: false },
      { column: 'content', tokens: true },
    ]);
    expect(d.chunkEveryMs).toBe(10_000);
    expect(d.chunkBytesMax).toBe(4 << 20);
    expect(d.storage).toEqual({ hot: 'express', hotForMs: 86_400_000, cold: 'standard' });
    expect(d.retainMs).toBe(30 * 86_400_000);
  });

  it('parses json, logfmt and regex formats, comments and quotes', () => {
    expect(parseDdl("create stream a sources ('stdin:') format json columns (x INT);").format).toEqual({
      kind: 'json',
    });
    expect(
      parseDdl("CREATE STREAM a SOURCES ('it''s') FORMAT logfmt COLUMNS (x FLOAT) -- trailing").sources,
    ).toEqual(["it's"]);
    const r = parseDdl(
      "CREATE STREAM a SOURCES ('s') FORMAT regex('(?<lvl>\\w+) (?<msg>.*)') COLUMNS (lvl STRING, msg TEXT)",
    );
    expect(r.format).toEqual({ kind: 'regex', pattern: '(?<lvl>\\w+) (?<msg>.*)' });
  });

  it('takes a column path a.b (a field of a nested JSON object) in COLUMNS, INDEX and queries', () => {
    const d = parseDdl(
      "CREATE STREAM e SOURCES ('x') FORMAT json COLUMNS (alert.signature_id INT, alert.signature TEXT) INDEX (alert.signature_id, TOKENS(alert.signature))",
    );
    expect(d.columns.map((c) => c.name)).toEqual(['alert.signature_id', 'alert.signature']);
    expect(d.index).toEqual([
      { column: 'alert.signature_id', tokens: false },
      { column: 'alert.signature', tokens: true },
    ]);
    expect(parseQuery("alert.signature_id = 498 AND alert.signature CONTAINS 'x.y'", d)).toEqual({
      k: 'and',
      a: { k: 'cmp', col: 0, op: '=', v: 498 },
      b: { k: 'contains', col: 1, tokens: ['x.y'] },
    });
    // a dot must lead to another name: where it does not, the error says where
    for (const bad of ['alert. x', 'alert..x', 'alert.1x', '.x']) {
      const e = errorOf(`CREATE STREAM e SOURCES ('x') FORMAT json COLUMNS (${bad} INT)`);
      expect(e.message, bad).toMatch(/^DDL:1:\d+: unexpected character '\.'/);
    }
    expect(() => parseQuery('alert.sig = 1', d)).toThrow(/unknown column 'alert.sig'/);
    // formats whose fields cannot have dots refuse such a name where it is written
    const r = errorOf("CREATE STREAM e SOURCES ('x') FORMAT regex('(?<a>x)')\n  COLUMNS (a STRING, a.b INT)");
    expect(r.message).toMatch(
      /^DDL:2:22: column 'a.b': a name with dots is a path into JSON or a logfmt key; regex/,
    );
    expect(
      errorOf("CREATE STREAM e SOURCES ('x') FORMAT loghub('<A> <B>') COLUMNS (x.y STRING)").message,
    ).toMatch(/column 'x.y'.*loghub fields have none/);
    expect(
      parseDdl("CREATE STREAM e SOURCES ('x') FORMAT logfmt COLUMNS (http.method STRING)").columns,
    ).toHaveLength(1);
    expect(() => parseQuery('alert. signature_id = 1', d)).toThrow(/column 6: unexpected character '\.'/);
  });

  it('reports line and column of errors', () => {
    const e1 = errorOf("CREATE STREAM hdfs\nSOURCES ('x')\nFORMAT loghub('<A>')\nCOLUMNS (a STRNG)");
    expect([e1.line, e1.column]).toEqual([4, 12]);
    expect(e1.message).toMatch(/DDL:4:12: unknown column type 'STRNG'/);
    const e2 = errorOf("CREATE STREAM s SOURCES ('x') FORMAT csv COLUMNS (a INT)");
    expect([e2.line, e2.column]).toEqual([1, 38]);
    expect(e2.message).toMatch(/unknown format 'csv'/);
    const e3 = errorOf("CREATE STREAM s SOURCES ('x) FORMAT json");
    expect(e3.message).toMatch(/1:26: unterminated string/);
    const e4 = errorOf("CREATE STREAM s SOURCES ('x') FORMAT json COLUMNS (a INT)\n  INDEX (b)");
    expect([e4.line, e4.column]).toEqual([2, 10]);
    expect(e4.message).toMatch(/'b', which is not a declared column/);
    const e5 = errorOf("CREATE STREAM s SOURCES ('x') FORMAT regex('(a') COLUMNS (a INT)");
    expect(e5.message).toMatch(/bad regular expression/);
    const e6 = errorOf("CREATE STREAM s SOURCES ('x') FORMAT json COLUMNS (a INT) CHUNK EVERY 3 FORTNIGHTS");
    expect(e6.message).toMatch(/unknown time unit 'FORTNIGHTS'/);
    expect(errorOf('CREATE TABLE t').message).toMatch(/1:8: expected STREAM, got 'TABLE'/);
    expect(errorOf("CREATE STREAM s SOURCES ('x') FORMAT json COLUMNS (a INT, a INT)").message).toMatch(
      /declared twice/,
    );
  });

  it('refuses what cannot work, where it is written: empty durations and chunks, unknown classes, an index twice', () => {
    const base = "CREATE STREAM s SOURCES ('x') FORMAT logfmt COLUMNS (n TEXT) INDEX (n)";
    // the chunk size was checked after the statement and reported at its first word ("1:1: ... got 'CREATE'")
    expect(errorOf(`${base}\nCHUNK EVERY 1 SECONDS OR 0 MB`).message).toBe(
      'DDL:2:26: CHUNK size must be at least 1 KB, got 0 MB',
    );
    // past half the ingestion server's request bound it was taken, and every agent then refused to start
    expect(errorOf(`${base}\nCHUNK EVERY 1 SECONDS OR 99999999999 MB`).message).toBe(
      'DDL:2:26: CHUNK size must be at most 32 MB, got 99999999999 MB',
    );
    expect(parseDdl(`${base} CHUNK EVERY 1 SECONDS OR 32 MB`).chunkBytesMax).toBe(chunkSizeMax);
    // a stream created with one before keeps opening (its stored DDL is parsed as an existing one's)
    expect(parseDdl(`${base} CHUNK EVERY 1 SECONDS OR 64 MB`, 'DDL', { existing: true }).chunkBytesMax).toBe(
      64 << 20,
    );
    expect(chunkSizeMax).toBe(chunkBytesMax / 2);
    expect(errorOf(`${base} CHUNK EVERY 0 SECONDS`).message).toMatch(
      /:1:84: CHUNK EVERY must be more than 0/,
    );
    expect(errorOf(`${base} RETAIN 0 DAYS`).message).toMatch(/:1:79: RETAIN must be more than 0, got 0 DAYS/);
    // past ECMAScript's Date range a span means nothing at the stream's clock (it was taken until 2026-12-05)
    expect(errorOf(`${base} RETAIN 99999999999999 DAYS`).message).toMatch(
      /:1:79: RETAIN must be at most 100000000 DAYS, got 99999999999999 DAYS/,
    );
    expect(errorOf(`${base} CHUNK EVERY 99999999999999999999 SECONDS`).message).toMatch(
      /CHUNK EVERY must be at most/,
    );
    expect(parseDdl(`${base} RETAIN 100000000 DAYS`).retainMs).toBe(8.64e15);
    // a stream created with a longer span before keeps opening: the longest span a Date holds
    const old = parseDdl(
      `${base} CHUNK EVERY 99999999999999 DAYS STORAGE express FOR 99999999999999 DAYS THEN standard RETAIN 99999999999999 DAYS`,
      'DDL',
      { existing: true },
    );
    expect([old.chunkEveryMs, old.storage.hotForMs, old.retainMs]).toEqual([8.64e15, 8.64e15, 8.64e15]);
    expect(errorOf(`${base} STORAGE express FOR 0 DAYS THEN standard`).message).toMatch(
      /STORAGE \.\.\. FOR must be more than 0/,
    );
    expect(errorOf(`${base} STORAGE bogus`).message).toMatch(
      /:1:80: unknown storage class 'bogus' \(expected express or standard\)/,
    );
    expect(errorOf(`${base} STORAGE standard FOR 1 DAY THEN express`).message).toMatch(
      /:1:104: STORAGE standard \.\.\. THEN express: data only moves from express to standard/,
    );
    expect(parseDdl(`${base} STORAGE Express FOR 1 DAY THEN STANDARD`).storage).toEqual({
      hot: 'express',
      hotForMs: 86_400_000,
      cold: 'standard',
    });
    expect(errorOf(base.replace('INDEX (n)', 'INDEX (n, TOKENS(n), n)')).message).toMatch(
      /:1:83: INDEX names n twice/,
    );
    expect(parseDdl(base.replace('INDEX (n)', 'INDEX (n, TOKENS(n))')).index).toHaveLength(2);
    // a loghub field twice was taken, and every ingest and search failed on the template's regex
    expect(errorOf(base.replace('logfmt', "loghub('<A> <B> <A>')")).message).toMatch(
      /:1:45: loghub template names <A> twice/,
    );
  });

  it('refuses a clause given twice where the second starts; a stored DDL takes the last', () => {
    const base = "CREATE STREAM a SOURCES ('x') FORMAT json COLUMNS (x INT)";
    for (const [rest, clause] of [
      ['CHUNK EVERY 10 SECONDS OR 4 MB CHUNK EVERY 5 SECONDS', 'CHUNK'],
      ['RETAIN 30 DAYS RETAIN 1 DAY', 'RETAIN'],
      ['STORAGE standard RETAIN 2 DAYS storage express', 'STORAGE'],
    ] as const) {
      // where the second one starts, on line 2 after its two blanks
      const col = 3 + rest.toUpperCase().lastIndexOf(clause);
      expect(errorOf(`${base}\n  ${rest}`).message, rest).toBe(
        `DDL:2:${col}: ${clause} is given twice (give each clause once)`,
      );
    }
    const old = parseDdl(`${base} RETAIN 30 DAYS RETAIN 1 DAY`, 'DDL', { existing: true });
    expect(old.retainMs).toBe(86_400_000);
  });

  it('refuses a regex or loghub column that takes no field of the format, naming the column and the fields', () => {
    const ddl = (fmt: string, cols: string) =>
      `CREATE STREAM s SOURCES ('x')\n  FORMAT ${fmt}\n  COLUMNS (${cols})`;
    // a column no group names was taken and was null in every row
    expect(errorOf(ddl("regex('(?<lvl>[A-Z]+) (?<msg>.*)')", 'lvl STRING, msg TEXT, pid INT')).message).toBe(
      "DDL:3:34: column 'pid' matches no field of the regex format, so it would be null in every row (its named groups: lvl, msg; a column takes the field of its name, any case): name a field (?<pid>...) or rename the column",
    );
    expect(
      errorOf(ddl("loghub('<Date> <Level>: <Content>')", 'level STRING, content TEXT, comp STRING')).message,
    ).toBe(
      "DDL:3:40: column 'comp' matches no field of the loghub format, so it would be null in every row (its template fields: Date, Level, Content; a column takes the field of its name, any case): name a field <comp> or rename the column",
    );
    expect(
      errorOf(ddl("loghub('<Level>: <Content>')", 'ts TIMESTAMP, level STRING, content TEXT')).message,
    ).toMatch(
      /^DDL:3:12: column 'ts' matches no field .*, or for a TIMESTAMP timestamp, ts, date and time\): name a field <ts>/,
    );
    // a lookbehind is no group; a group inside an optional part is one (null where it did not take part)
    expect(errorOf(ddl("regex('(?<=x)(?<a>y)')", 'a STRING, b INT')).message).toMatch(
      /column 'b' .*named groups: a;/,
    );
    expect(parseDdl(ddl("regex('(?<a>y)(?: (?<b>\\d+))?')", 'a STRING, b INT')).columns).toHaveLength(2);
    // any case, and a TIMESTAMP from Date and Time, timestamp, ts, or Date or Time alone
    expect(
      parseDdl(ddl("loghub('<DATE> <time> <Level>: <Content>')", 'ts TIMESTAMP, LEVEL STRING, content TEXT'))
        .columns,
    ).toHaveLength(3);
    for (const f of ['<Timestamp>', '<ts>', '<Date>', '<Time>'])
      expect(parseDdl(ddl(`loghub('${f} <Content>')`, 'at TIMESTAMP, content TEXT')).columns, f).toHaveLength(
        2,
      );
    // the first TEXT column holds the lines the format does not match: it may take no field
    expect(parseDdl(ddl("regex('^(?<w>\\w+)!$')", 'w STRING, raw TEXT')).columns).toHaveLength(2);
    expect(errorOf(ddl("regex('^(?<w>\\w+)!$')", 'w STRING, raw TEXT, other TEXT')).message).toMatch(
      /column 'other' matches no field/,
    );
    // json and logfmt fields are known only from the lines
    expect(parseDdl(ddl('json', 'anything INT')).columns).toHaveLength(1);
    // a stream created before keeps opening
    expect(
      parseDdl(ddl("regex('(?<lvl>[A-Z]+)')", 'lvl STRING, pid INT'), 'DDL', { existing: true }).columns,
    ).toHaveLength(2);
  });

  it('refuses TOKENS of a number column, naming the column and its type', () => {
    const ddl = (cols: string, index: string) =>
      `CREATE STREAM s SOURCES ('x') FORMAT json COLUMNS (${cols})\nINDEX (${index})`;
    for (const type of ['INT', 'FLOAT', 'TIMESTAMP'])
      expect(errorOf(ddl(`msg TEXT, n ${type}`, 'TOKENS(msg), TOKENS(n)')).message, type).toBe(
        `DDL:2:21: TOKENS(n): column 'n' is ${type}, and TOKENS indexes the words of a STRING or TEXT column (what CONTAINS looks for); index its values with INDEX (n)`,
      );
    expect(parseDdl(ddl('s STRING, msg TEXT, n INT', 'TOKENS(s), TOKENS(msg), n')).index).toHaveLength(3);
    // a stream created before keeps opening (its entry indexes nothing, as it did)
    expect(parseDdl(ddl('n INT', 'TOKENS(n)'), 'DDL', { existing: true }).index).toEqual([
      { column: 'n', tokens: true },
    ]);
  });

  it('never crashes on arbitrary input: a DdlError or a definition', () => {
    const words = fc.constantFrom(
      'CREATE',
      'STREAM',
      'SOURCES',
      'FORMAT',
      'COLUMNS',
      'INDEX',
      'TOKENS',
      'CHUNK',
      'EVERY',
      'OR',
      '(',
      ')',
      ',',
      "'x'",
      'json',
      'regex',
      'loghub',
      "'(?<a>x)(?<=y)'",
      "'<a> <ts>: <b>'",
      'a',
      'b',
      'ts',
      'INT',
      'TEXT',
      'TIMESTAMP',
      '10',
      'SECONDS',
      ';',
      '\n',
    );
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.array(words).map((w) => w.join(' ')),
        ),
        (src) => {
          try {
            parseDdl(src);
          } catch (e) {
            expect(e).toBeInstanceOf(DdlError);
            const d = e as DdlError;
            expect(d.line).toBeGreaterThanOrEqual(1);
            expect(d.column).toBeGreaterThanOrEqual(1);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });
});
