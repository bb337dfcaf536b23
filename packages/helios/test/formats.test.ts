import {
  fieldParser,
  loghubMatcher,
  loghubRegex,
  parseDdl,
  parseTimestamp,
  RowParser,
  regexBacktracksMax,
  tokenize,
} from '@strata/helios';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

describe('formats', () => {
  it('json lines', () => {
    const p = fieldParser({ kind: 'json' });
    expect(p('{"a":"x","n":3,"o":{"k":1},"z":null}')).toEqual({ a: 'x', n: '3', o: '{"k":1}' });
    expect(p('not json')).toBeUndefined();
    expect(p('[1]')).toBeUndefined();
  });

  it('json: a column named with dots reads a field of a nested object', () => {
    const p = fieldParser({ kind: 'json' }, [
      'alert.signature_id',
      'alert.meta.tag',
      'alert.meta',
      'a.b',
      'alert.missing',
      'arr.x',
      'a.constructor',
      'n.x',
      'top',
    ]);
    const line = JSON.stringify({
      alert: { signature_id: 498, signature: 'x', meta: { tag: 't' } },
      'a.b': 'literal',
      a: { b: 'nested' },
      arr: [{ x: 1 }],
      n: { x: null },
      top: 'y',
    });
    expect(p(line)).toEqual({
      alert: '{"signature_id":498,"signature":"x","meta":{"tag":"t"}}',
      'alert.signature_id': '498',
      'alert.meta.tag': 't',
      // an object at the end of a path is its JSON text
      'alert.meta': '{"tag":"t"}',
      // an object's own key with a dot wins over the path into a nested object
      'a.b': 'literal',
      a: '{"b":"nested"}',
      // no field: a path through an array, a missing key, a key of the prototype, a null
      arr: '[{"x":1}]',
      n: '{"x":null}',
      top: 'y',
    });
    // columns without a dot are as before: the object's own keys
    expect(fieldParser({ kind: 'json' }, ['alert'])('{"alert":{"k":1}}')).toEqual({ alert: '{"k":1}' });
    const rp = new RowParser(
      parseDdl(
        "CREATE STREAM e SOURCES ('x') FORMAT json COLUMNS (ts TIMESTAMP, alert.signature_id INT, alert.signature TEXT, alert.gone STRING)",
      ),
    );
    expect(
      rp.row('{"ts":"2026-12-06T12:00:00Z","alert":{"signature_id":498,"signature":"id check"}}'),
    ).toEqual([Date.UTC(2026, 11, 6, 12), 498, 'id check', null]);
  });

  it('logfmt', () => {
    const p = fieldParser({ kind: 'logfmt' });
    expect(p('level=info msg="hello world" user=u1 flag')).toEqual({
      level: 'info',
      msg: 'hello world',
      user: 'u1',
      flag: 'true',
    });
    expect(p('a="say \\"hi\\""')).toEqual({ a: 'say "hi"' });
    // a key with dots is a column's name as it is
    const rp = new RowParser(
      parseDdl("CREATE STREAM e SOURCES ('x') FORMAT logfmt COLUMNS (http.method STRING, http.status INT)"),
    );
    expect(rp.row('http.method=GET http.status=404 msg=x')).toEqual(['GET', 404]);
    expect(p('')).toBeUndefined();
  });

  it("logfmt as go-logfmt writes it: tabs between pairs, a quoted value's JSON escapes", () => {
    const p = fieldParser({ kind: 'logfmt' });
    // a tab separates pairs (it was part of the value: a = "x\tn=1")
    expect(p('a=x\tn=1\t flag')).toEqual({ a: 'x', n: '1', flag: 'true' });
    // escapes stand for what JSON's do (a newline was an n: "firstnsecond")
    expect(p('msg="first\\nsecond\\ttab \\\\ \\"q\\" \\u00e9\\/" n=2')).toEqual({
      msg: 'first\nsecond\ttab \\ "q" é/',
      n: '2',
    });
    // an escape JSON does not have is the character after it, as before; a short \u one too
    expect(p('a="\\x\\u12" b=1')).toEqual({ a: 'xu12', b: '1' });
    const rp = new RowParser(
      parseDdl(
        "CREATE STREAM e SOURCES ('x') FORMAT logfmt COLUMNS (lvl STRING, msg TEXT) INDEX (TOKENS(msg))",
      ),
    );
    expect(rp.row('lvl=error\tmsg="disk full\\nretrying"')).toEqual(['error', 'disk full\nretrying']);
    expect(tokenize('disk full\nretrying')).toEqual(['disk', 'full', 'retrying']);
  });

  it('columns named as members of Object.prototype are fields like any other', () => {
    const cols = 'COLUMNS (constructor STRING, toString TEXT, valueOf INT, __proto__ STRING, a STRING)';
    for (const [fmt, line, absent] of [
      ['json', '{"constructor":"c","toString":"t","valueOf":7,"__proto__":"p","a":"x"}', '{"a":"x"}'],
      ['logfmt', 'constructor=c toString=t valueOf=7 __proto__=p a=x', 'a=x'],
      [
        "regex('(?<constructor>\\w) (?<toString>\\w) (?<valueOf>\\d) (?<__proto__>\\w) (?<a>\\w)')",
        'c t 7 p x',
        'no match',
      ],
    ] as const) {
      const p = new RowParser(parseDdl(`CREATE STREAM e SOURCES ('x') FORMAT ${fmt} ${cols}`));
      expect(p.row(line), fmt).toEqual(['c', 't', 7, 'p', 'x']);
      // (an INT column so named failed every line: raw.trim is not a function)
      const raw = fmt.startsWith('regex') ? absent : null;
      expect(p.row(absent), fmt).toEqual([null, raw, null, null, fmt.startsWith('regex') ? null : 'x']);
    }
  });

  it("a line's byte order mark (the first line of a file a Windows tool wrote) is not part of it", () => {
    const bom = '\ufeff';
    const json = new RowParser(
      parseDdl("CREATE STREAM e SOURCES ('x') FORMAT json COLUMNS (a STRING, n INT)"),
    );
    expect(json.row(`${bom}{"a":"x","n":1}`)).toEqual(['x', 1]);
    const lf = new RowParser(
      parseDdl("CREATE STREAM e SOURCES ('x') FORMAT logfmt COLUMNS (a STRING, n INT)"),
    );
    expect(lf.row(`${bom}a=x n=1`)).toEqual(['x', 1]);
    const lh = new RowParser(
      parseDdl(
        "CREATE STREAM e SOURCES ('x') FORMAT loghub('<Level>: <Content>') COLUMNS (level STRING, content TEXT)",
      ),
    );
    expect(lh.row(`${bom}INFO: started`)).toEqual(['INFO', 'started']);
  });

  it('regex with named groups', () => {
    const p = fieldParser({ kind: 'regex', pattern: '^(?<lvl>[A-Z]+) (?<msg>.*)$' });
    expect(p('WARN disk full')).toEqual({ lvl: 'WARN', msg: 'disk full' });
    expect(p('lowercase')).toBeUndefined();
  });

  it('loghub templates', () => {
    const re = loghubRegex('<Date> <Time> <Pid> <Level> <Component>: <Content>');
    const m = re.exec(
      '081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_3 terminating',
    );
    expect(m?.groups).toEqual({
      Date: '081109',
      Time: '203615',
      Pid: '148',
      Level: 'INFO',
      Component: 'dfs.DataNode$PacketResponder',
      Content: 'PacketResponder 1 for block blk_3 terminating',
    });
    const px = loghubRegex('[<Time>] <Program> - <Content>').exec('[10.30 16:49:06] chrome.exe - a b c');
    expect(px?.groups).toEqual({ Time: '10.30 16:49:06', Program: 'chrome.exe', Content: 'a b c' });
  });

  it('loghub templates stay linear on long lines that do not match', () => {
    const re = loghubRegex('<A> <B> <C> <D> <E>: <F>');
    const line = 'x '.repeat(20_000);
    const t0 = Date.now();
    expect(re.exec(line)).toBeNull();
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it("loghubMatcher finds the regex's own match (first in backtracking order) on random templates and lines", () => {
    const literal = fc.constantFrom(' ', '  ', ': ', ' - ', '[', '] ', ',', ' |\t', '=');
    const template = fc
      .array(fc.tuple(fc.boolean(), literal), { minLength: 1, maxLength: 6 })
      .map((ps) => ps.map(([adjacent, lit], i) => `<F${i}>${adjacent && i % 2 ? '' : lit}`).join(''));
    const line = fc
      .array(
        fc.constantFrom(' ', ' ', '\t', 'a', 'b', ':', '-', '[', ']', ',', '|', '=', '\u00a0', '\r', '\n'),
        {
          maxLength: 24,
        },
      )
      .map((cs) => cs.join(''));
    fc.assert(
      fc.property(template, fc.array(line, { minLength: 1, maxLength: 20 }), (t, lines) => {
        const re = loghubRegex(t);
        const match = loghubMatcher(t);
        for (const l of lines) {
          const m = re.exec(l);
          const got = match(l);
          expect(got ? [...got] : undefined).toEqual(m ? [...m] : undefined);
        }
      }),
      { numRuns: 400 },
    );
  });

  it('loghubMatcher: runs of blanks the regex backtracks over for seconds are matched in one pass', () => {
    const t = '<Date> <Time> <Pid> <Level> <Component>: <Content>';
    const re = loghubRegex(t);
    const match = loghubMatcher(t);
    // short enough for the regex (tens of ms), long enough that its first path fails
    for (const l of [
      ' '.repeat(40),
      `081109 ${' '.repeat(40)}203615 x`,
      `081109 203615 ${' '.repeat(30)}: y`,
    ]) {
      const m = re.exec(l);
      const got = match(l);
      expect(got ? [...got] : undefined).toEqual(m ? [...m] : undefined);
    }
    // 200 blanks took the regex 7 s, 64 KiB would take it hours: a row, promptly (vitest's timeout)
    const p = new RowParser(
      parseDdl(`CREATE STREAM h SOURCES ('x') FORMAT loghub('${t}') COLUMNS (level STRING, content TEXT)`),
    );
    expect(p.row(' '.repeat(60_000))).toEqual([null, ' '.repeat(60_000)]);
    expect(p.row(`081109 203615 ${' '.repeat(60_000)}INFO x: hi`)).toEqual(['INFO', 'hi']);
    expect(fieldParser({ kind: 'loghub', template: '<A> <B> <C>' })('a  b')).toEqual({
      A: 'a',
      B: '',
      C: 'b',
    });
  });

  it('rows: types, timestamps from Date + Time, CRLF, unmatched lines keep the raw text', () => {
    const def = parseDdl(
      "CREATE STREAM h SOURCES ('x') FORMAT loghub('<Date> <Time> <Pid> <Level> <Component>: <Content>') COLUMNS (ts TIMESTAMP, pid INT, level STRING, content TEXT)",
    );
    const p = new RowParser(def);
    expect(p.row('081109 203615 148 INFO dfs.X: hello\r')).toEqual([
      Date.UTC(2008, 10, 9, 20, 36, 15),
      148,
      'INFO',
      'hello',
    ]);
    expect(p.row('garbage')).toEqual([null, null, null, 'garbage']);
    expect(p.row('081109 203615 notanint INFO dfs.X: m')[1]).toBeNull();
  });

  it('regex with an optional group: a first line without it does not fix the column to null', () => {
    const def = parseDdl(
      "CREATE STREAM r SOURCES ('x') FORMAT regex('^(?<lvl>[A-Z]+)(?: pid=(?<pid>\\d+))? (?<msg>.*)$') COLUMNS (lvl STRING, pid INT, msg TEXT)",
    );
    const p = new RowParser(def);
    expect(p.row('INFO hello')).toEqual(['INFO', null, 'hello']);
    expect(p.row('WARN pid=42 disk')).toEqual(['WARN', 42, 'disk']);
    expect(p.row('INFO again')).toEqual(['INFO', null, 'again']);
  });

  it("regex: a line built against the user's pattern does not hold the parser (a row of nulls with the raw line)", () => {
    // (\w+\s?)* then a bang: 2^n ways to split n letters, each tried before the line fails (without a
    // bound 2.2 s for n = 28 here, doubling with each letter; a hang detector, not a speed target)
    const def = parseDdl(
      "CREATE STREAM r SOURCES ('x') FORMAT regex('^(?<w>(\\w+\\s?)*)!$') COLUMNS (w STRING, raw TEXT)",
    );
    const p = new RowParser(def);
    expect(p.row('some words here!')).toEqual(['some words here', null]);
    const evil = `${'a'.repeat(32)}?`;
    const t0 = performance.now();
    expect(p.row(evil)).toEqual([null, evil]);
    expect(performance.now() - t0).toBeLessThan(2_000);
    expect(p.row(`${'a'.repeat(32)}!`)).toEqual(['a'.repeat(32), null]);
    expect(regexBacktracksMax).toBeGreaterThan(0);
  });

  it('timestamps', () => {
    expect(parseTimestamp('2008-11-09 20:36:15')).toBe(Date.UTC(2008, 10, 9, 20, 36, 15));
    expect(parseTimestamp('2008-11-09T20:36:15.250Z')).toBe(Date.UTC(2008, 10, 9, 20, 36, 15, 250));
    expect(parseTimestamp('2015-07-29 17:41:44,747')).toBe(Date.UTC(2015, 6, 29, 17, 41, 44, 747));
    expect(parseTimestamp('1117838570')).toBe(1117838570000);
    // epoch milliseconds up to the last a Date holds; past it no time (printing one threw)
    expect(parseTimestamp('8640000000000000')).toBe(8.64e15);
    expect(parseTimestamp('8640000000000001')).toBeNull();
    expect(parseTimestamp('99999999999999999999')).toBeNull();
    expect(parseTimestamp('nope')).toBeNull();
    // loghub HDFS yyMMdd HHmmss, bare and with blanks around it; 13 characters of another shape
    expect(parseTimestamp('081109 203615')).toBe(Date.UTC(2008, 10, 9, 20, 36, 15));
    expect(parseTimestamp(' 081109 203615\t')).toBe(Date.UTC(2008, 10, 9, 20, 36, 15));
    expect(parseTimestamp('081109x203615')).toBeNull();
  });

  it('timestamps in ISO 8601, RFC 2822 and ctime layouts are UTC unless they say otherwise; without a year, none', () => {
    const at = Date.UTC(2008, 10, 9, 20, 36, 15);
    const cases: [string, number | null][] = [
      ['2008-11-09', Date.UTC(2008, 10, 9)],
      ['2008-11-09 20:36', Date.UTC(2008, 10, 9, 20, 36)],
      ['2008/11/09 20:36:15', at],
      ['2008-11-09 20:36:15 UTC', at],
      ['2008-11-09 20:36:15 +0100', at - 3_600_000],
      // an offset of hours alone (PostgreSQL's timestamptz; it was no time)
      ['2008-11-09 20:36:15+01', at - 3_600_000],
      ['2008-11-09T20:36:15.250-05', at + 250 + 5 * 3_600_000],
      ['2008-11-09 20:36:15+24', null],
      ['Sun, 09 Nov 2008 20:36:15 GMT', at],
      ['9 Nov 2008 20:36 -0030', Date.UTC(2008, 10, 9, 21, 6)],
      ['Sun Nov 09 20:36:15 2008', at],
      ['Sunday November  9 20:36:15.5 2008', at + 500],
      // no year: Date.parse made these moments of 2001 (syslog, Android, Proxifier)
      ['Nov 09 20:36:15', null],
      ['11-09 20:36:15.811', null],
      ['11.09 20:36:15', null],
      // not a month or a weekday, a day the month does not have, an hour past 23
      ['Sun, 09 Nox 2008 20:36:15 GMT', null],
      ['Sux Nov 09 20:36:15 2008', null],
      ['Sun, 31 Nov 2008 20:36:15 GMT', null],
      ['Sun Nov 09 24:36:15 2008', null],
      ['2008-11-09 20', null],
      ['2008-11/09', null],
    ];
    // the machine's zone changes nothing (Date.parse read a time without an offset in it)
    const tz = process.env.TZ;
    try {
      for (const zone of ['UTC', 'America/New_York', 'Asia/Kolkata']) {
        process.env.TZ = zone;
        for (const [s, want] of cases) expect(parseTimestamp(s), `${s} in ${zone}`).toBe(want);
      }
    } finally {
      if (tz === undefined) delete process.env.TZ;
      else process.env.TZ = tz;
    }
  });

  it('yyMMdd HHmmss equals Date.UTC, out-of-range fields no time (they were carried over), whatever day came before', () => {
    // the day's midnight is cached across calls: runs of one day, day changes and invalid days mixed
    const two = fc.integer({ min: 0, max: 99 });
    const p2 = (n: number) => String(n).padStart(2, '0');
    /** Whether the fields name a real moment (a second of 60: a leap second's). */
    const real = (y: number, mo: number, d: number, h: number, mi: number, s: number) =>
      mo >= 1 &&
      mo <= 12 &&
      d >= 1 &&
      new Date(Date.UTC(y, mo - 1, d)).getUTCDate() === d &&
      h <= 23 &&
      mi <= 59 &&
      s <= 60;
    fc.assert(
      fc.property(fc.array(fc.tuple(two, two, two, two, two, two), { minLength: 1, maxLength: 20 }), (ts) => {
        for (const [yy, mo, dd, hh, mi, ss] of ts) {
          const ok = real(2000 + yy, mo, dd, hh, mi, ss);
          const s = `${p2(yy)}${p2(mo)}${p2(dd)} ${p2(hh)}${p2(mi)}${p2(ss)}`;
          expect(parseTimestamp(s), s).toBe(ok ? Date.UTC(2000 + yy, mo - 1, dd, hh, mi, ss) : null);
          // the ISO form says the same
          const iso = `20${p2(yy)}-${p2(mo)}-${p2(dd)} ${p2(hh)}:${p2(mi)}:${p2(ss)}`;
          expect(parseTimestamp(iso), iso).toBe(ok ? Date.UTC(2000 + yy, mo - 1, dd, hh, mi, ss) : null);
          expect(parseTimestamp(`${p2(yy)}${p2(mo)}${p2(dd)} 000000`)).toBe(
            real(2000 + yy, mo, dd, 0, 0, 0) ? Date.UTC(2000 + yy, mo - 1, dd) : null,
          );
        }
      }),
    );
    // the counterexample a CI run found: Date.parse read this one (as 2000-01-01) once the HDFS reading
    // refused it
    expect(parseTimestamp('000000 000001')).toBeNull();
    expect(parseTimestamp(' 000000 000001 ')).toBeNull();
    // the days of February, leap years by the Gregorian rule
    expect(parseTimestamp('2000-02-29 00:00:00')).toBe(Date.UTC(2000, 1, 29));
    expect(parseTimestamp('2100-02-29 00:00:00')).toBeNull();
    expect(parseTimestamp('2024-02-29T12:00:00Z')).toBe(Date.UTC(2024, 1, 29, 12));
    expect(parseTimestamp('2023-02-29 00:00:00')).toBeNull();
    expect(parseTimestamp('2008-11-09 20:36:15+25:00')).toBeNull();
    // offsets east and west of UTC, with and without the colon
    expect(parseTimestamp('2008-11-09T20:36:15+05:30')).toBe(Date.UTC(2008, 10, 9, 15, 6, 15));
    expect(parseTimestamp('2008-11-09 20:36:15-0700')).toBe(Date.UTC(2008, 10, 10, 3, 36, 15));
    expect(parseTimestamp('2008-11-09 20:36:15+00:60')).toBeNull();
  });

  it('loghub rows: Date and Time as one TIMESTAMP, INT cells, as the strings of the fields would give', () => {
    const def =
      parseDdl(`CREATE STREAM h SOURCES ('file:x') FORMAT loghub('<Date> <Time> <Pid> <Level>: <Content>')
      COLUMNS (ts TIMESTAMP, pid INT, level STRING, content TEXT)`);
    const p = new RowParser(def);
    // fields of digits mostly, some of other characters and lengths (the slow paths)
    const field = fc.string({
      unit: fc.constantFrom(...'0123456789012345678901234567890123456789-+.e:x'),
      minLength: 1,
      maxLength: 17,
    });
    fc.assert(
      fc.property(field, field, field, (date, time, pid) => {
        const n = Number(pid);
        // an INT is a safe integer (3e70 was one until 2026-12-05)
        const want = [parseTimestamp(`${date} ${time}`), Number.isSafeInteger(n) ? n : null, 'INFO', 'c'];
        expect(p.row(`${date} ${time} ${pid} INFO: c`)).toEqual(want);
      }),
      { numRuns: 2000 },
    );
    expect(p.row('081109 203615 007 INFO: c')).toEqual([Date.UTC(2008, 10, 9, 20, 36, 15), 7, 'INFO', 'c']);
  });

  it('rowInto writes the cells row gives into columns (the ingest path), for every format and unmatched lines', () => {
    const defs = [
      "FORMAT loghub('<Date> <Time> <Pid> <Level>: <Content>') COLUMNS (ts TIMESTAMP, pid INT, level STRING, content TEXT)",
      "FORMAT regex('^(?<lvl>[A-Z]+)(?: pid=(?<pid>\\d+))? (?<msg>.*)$') COLUMNS (lvl STRING, pid INT, msg TEXT)",
      'FORMAT json COLUMNS (lvl STRING, pid INT, msg TEXT)',
      'FORMAT logfmt COLUMNS (lvl STRING, pid INT, msg TEXT)',
    ].map((f) => new RowParser(parseDdl(`CREATE STREAM h SOURCES ('x') ${f}`)));
    const line = fc.oneof(
      fc.string({ unit: fc.constantFrom(...'081109 2036:15INFOWARN pid=4{}"lvlmsg,:=\r'), maxLength: 40 }),
      fc
        .tuple(
          fc.constantFrom('081109 203615 ', 'INFO ', 'lvl=WARN '),
          fc.nat(999),
          fc.string({ maxLength: 8 }),
        )
        .map(([a, n, m]) => `${a}${n} INFO: ${m}`),
      fc
        .record({ lvl: fc.constantFrom('INFO', 'WARN'), pid: fc.nat(), msg: fc.string({ maxLength: 8 }) })
        .map((o) => JSON.stringify(o)),
    );
    fc.assert(
      fc.property(fc.array(line, { minLength: 1, maxLength: 8 }), (lines) => {
        for (const p of defs) {
          const n = p.def.columns.length;
          const cols = Array.from({ length: n }, () => new Array(lines.length));
          for (const [i, l] of lines.entries()) p.rowInto(l, cols, i);
          for (const [i, l] of lines.entries()) expect(cols.map((c) => c[i])).toEqual(p.row(l));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('tokenize', () => {
    expect(tokenize('served blk_-6952295868487656571 to /10.251.39.209:50010.')).toEqual([
      'served',
      'blk_-6952295868487656571',
      'to',
      '10.251.39.209',
      '50010',
    ]);
    fc.assert(
      fc.property(fc.string({ maxLength: 300, size: 'max' }), (s) => {
        const t = tokenize(s);
        for (const x of t) {
          expect(x.length).toBeGreaterThan(0);
          expect(s.includes(x)).toBe(true);
          expect(tokenize(x)).toEqual([x]);
        }
      }),
    );
  });
});
