/** Line formats (json lines, logfmt, regex with named groups, loghub templates) and the row model. */
import { boundedRegExp } from '@strata/cli';
import type { ColumnDef, FormatSpec, StreamDef } from './ddl.js';

/** A cell: strings for STRING/TEXT, numbers for INT/FLOAT/TIMESTAMP (epoch ms), null when absent. */
export type Cell = string | number | null;
export type Row = Cell[];

/** Bound on one input line; longer lines are cut here (and counted as truncated). */
export const lineBytesMax = 64 * 1024;

/**
 * A `regex` format's backtracks per line at most: a line that needs more does not match (a row of nulls
 * with the raw line, as any line the format does not match), where an unbounded RegExp could hold an
 * ingest or an agent for hours on one line built against it (`(?<w>(\w+\s?)*)$` over 60 letters and a
 * bang). V8 counts backtracks, not the steps of a loop over a character class: see @strata/cli's
 * `boundedRegExp`. (The loghub templates have their own linear matcher, `loghubMatcher`.)
 */
export const regexBacktracksMax = 10_000;

/** A DDL's `regex` pattern as lines are matched with it. */
export function userRegExp(pattern: string): RegExp {
  return boundedRegExp(pattern, '', regexBacktracksMax);
}

/** Splits a line into named raw fields; undefined when the line does not match the format. */
export type FieldParser = (line: string) => Record<string, string> | undefined;

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The steps of a loghub template's pattern: a literal code unit, `\s+`, then the fields' quantifiers. */
const mLiteral = 0;
const mSpaces = 1;
/** `\S*`, greedy. */
const mNonSpace = 2;
/** `\S*?`, lazy (a field right before another field). */
const mNonSpaceLazy = 3;
/** `[^c]*`, greedy. */
const mNotChar = 4;
/** `.*`, greedy (the last field). */
const mRest = 5;

/**
 * A loghub template (`<Date> <Time> <Level>: <Content>`) as steps: each run of spaces is `\s+`, every
 * other literal character itself; a field is `\S*?` right before another field, `\S*` before a literal of
 * spaces only, `[^c]*` before a literal whose first non-space character is c, and `.*` when it is last.
 * A field other than the last cannot contain the first non-space character of the literal after it (nor
 * any space when that literal is only spaces), so a field never reaches past the literal after it (a lazy
 * `.*?` per field, as loghub's own parsers use, is exponential on lines that miss).
 */
function loghubSteps(template: string): { ops: number[]; args: number[]; names: string[] } {
  const ops: number[] = [];
  const args: number[] = [];
  const names: string[] = [];
  const parts = template.split(/(<[A-Za-z_][A-Za-z0-9_]*>)/).filter((x) => x !== '');
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    const m = /^<([A-Za-z_][A-Za-z0-9_]*)>$/.exec(part);
    if (!m) {
      for (let j = 0; j < part.length; ) {
        if (part.charCodeAt(j) === 32) {
          while (part.charCodeAt(j) === 32) j++;
          ops.push(mSpaces);
          args.push(0);
        } else {
          ops.push(mLiteral);
          args.push(part.charCodeAt(j++));
        }
      }
      continue;
    }
    names.push(m[1]!);
    const next = parts[i + 1];
    const c = next?.trim()[0];
    ops.push(
      next === undefined
        ? mRest
        : /^<.*>$/.test(next)
          ? mNonSpaceLazy
          : c === undefined
            ? mNonSpace
            : mNotChar,
    );
    args.push(c === undefined ? 0 : c.charCodeAt(0));
  }
  return { ops, args, names };
}

/** The source of the steps' regex, its fields as named groups or (`named` false) as plain groups. */
function loghubSource(steps: ReturnType<typeof loghubSteps>, named: boolean): string {
  let re = '^';
  let f = 0;
  steps.ops.forEach((op, s) => {
    const c = String.fromCharCode(steps.args[s]!);
    if (op === mLiteral) re += escapeRegex(c);
    else if (op === mSpaces) re += '\\s+';
    else {
      const body =
        op === mRest
          ? '.*'
          : op === mNonSpaceLazy
            ? '\\S*?'
            : op === mNonSpace
              ? '\\S*'
              : `[^${c.replace(/[\\\]^-]/g, '\\$&')}]*`;
      re += named ? `(?<${steps.names[f++]}>${body})` : `(${body})`;
    }
  });
  return `${re}$`;
}

/**
 * The regex a loghub template stands for (`loghubSteps`): the last field takes the rest. It backtracks
 * over a long run of blanks (empty fields between `\s+`): lines are matched by `loghubMatcher`, which
 * finds this regex's match in linear time.
 */
export function loghubRegex(template: string): RegExp {
  return new RegExp(loghubSource(loghubSteps(template), true));
}

/** A loghub template's field names, in order: `loghubMatcher`'s fields 1, 2, ... */
export function loghubFields(template: string): string[] {
  return loghubSteps(template).names;
}

/** `\s` as JavaScript's regexes read it (WhiteSpace and LineTerminator), for one UTF-16 code unit. */
function isSpace(c: number): boolean {
  return (
    (c >= 9 && c <= 13) ||
    c === 32 ||
    (c >= 0xa0 &&
      (c === 0xa0 ||
        c === 0x1680 ||
        (c >= 0x2000 && c <= 0x200a) ||
        c === 0x2028 ||
        c === 0x2029 ||
        c === 0x202f ||
        c === 0x205f ||
        c === 0x3000 ||
        c === 0xfeff))
  );
}

/** A line terminator, which `.` does not match. */
function isTerminator(c: number): boolean {
  return c === 10 || c === 13 || c === 0x2028 || c === 0x2029;
}

/** Whether code unit c is in the class of step op (arg: `[^c]`'s c). */
function inClass(op: number, arg: number, c: number): boolean {
  if (op === mSpaces) return isSpace(c);
  if (op === mNotChar) return c !== arg;
  if (op === mRest) return !isTerminator(c);
  return !isSpace(c);
}

/**
 * A loghub template's matcher: the match `loghubRegex(template)` finds (its first in backtracking order),
 * as `[line, field 1, field 2, ...]` in template order, or undefined when it finds none; in time linear
 * in the line times the template's steps. The regex itself is not: on a run of blanks an empty field
 * lets `\s+ \S* \s+` split the run in ways that grow as a power of its length (a line of 200 blanks
 * took 7 s over the HDFS template, a longer one minutes). The pattern is a chain of single-class
 * quantifiers and literals anchored at both ends, so its first match is the path that takes, at each
 * quantifier in turn, the run length the regex tries first (greedy: longest; lazy: shortest) among those
 * from which the rest of the pattern can still match. Tried first: every quantifier's first choice, the
 * regex's own first path (nearly every line); when that fails, the table of which steps can finish the
 * line from which offset is computed backwards, and the path taken again with it.
 */
export function loghubMatcher(template: string): (line: string) => string[] | undefined {
  const steps = loghubSteps(template);
  const { ops, args } = steps;
  const fields = steps.names.length;
  const S = ops.length;
  let table = new Uint8Array(0);
  let kinds = new Uint8Array(0);

  /** The path through the line: with `can` (row s, offset p: steps s.. can finish the line from p), exact. */
  const walk = (line: string, can: Uint8Array | undefined): string[] | undefined => {
    const n = line.length;
    const out: string[] = new Array(fields + 1);
    out[0] = line;
    let p = 0;
    let f = 1;
    for (let s = 0; s < S; s++) {
      const op = ops[s]!;
      if (op === mLiteral) {
        if (p >= n || line.charCodeAt(p) !== args[s]) return undefined;
        p++;
        continue;
      }
      let run = 0;
      while (p + run < n && inClass(op, args[s]!, line.charCodeAt(p + run))) run++;
      const min = op === mSpaces ? 1 : 0;
      if (run < min) return undefined;
      let len: number;
      const row = (s + 1) * (n + 1) + p;
      if (op === mNonSpaceLazy) {
        len = min;
        if (can) while (len <= run && can[row + len] === 0) len++;
      } else {
        len = run;
        if (can) while (len >= min && can[row + len] === 0) len--;
        else if (
          ops[s + 1] === mSpaces &&
          len > 0 &&
          (p + len >= n || !isSpace(line.charCodeAt(p + len))) &&
          isSpace(line.charCodeAt(p + len - 1))
        )
          // a `[^c]*` run ending in blanks before the `\s+` after it (`<Level> - `): the longest run fails at
          // once (no blank left), and the regex's next try, the run less its last byte, passes that step
          len--;
      }
      if (len < min || len > run) return undefined;
      if (op !== mSpaces) out[f++] = line.slice(p, p + len);
      p += len;
    }
    return p === n ? out : undefined;
  };

  // Where no `\s+` can split a run of blanks (no two blanks in a row) and no field lies right before
  // another (no lazy `\S*?`), each step has at most one choice the step after it can pass, so the regex
  // cannot backtrack far, and V8's regex is the quicker way to its own match
  // a template the regex refuses (a field named twice) is refused here, as the regex refused it before
  new RegExp(loghubSource(steps, true));
  const quick = ops.includes(mNonSpaceLazy) ? undefined : new RegExp(loghubSource(steps, false));
  const twoBlanks = /\s\s/;
  return (line) => {
    if (quick && !twoBlanks.test(line)) return quick.exec(line) ?? undefined;
    const first = walk(line, undefined);
    if (first) return first;
    // the table, from the last step back: can[s][p] for p in 0..n
    const n = line.length;
    const w = n + 1;
    if (table.length < (S + 1) * w) table = new Uint8Array((S + 1) * w);
    const can = table;
    can.fill(0, S * w, (S + 1) * w);
    can[S * w + n] = 1;
    // each code unit's class once: 1 a blank (`\s`), 2 a line terminator (also a blank)
    if (kinds.length < n) kinds = new Uint8Array(Math.max(n, 2 * kinds.length));
    for (let p = 0; p < n; p++) {
      const c = line.charCodeAt(p);
      kinds[p] = isSpace(c) ? (isTerminator(c) ? 3 : 1) : 0;
    }
    for (let s = S - 1; s >= 0; s--) {
      const op = ops[s]!;
      const arg = args[s]!;
      const at = s * w;
      const nx = (s + 1) * w;
      if (op === mLiteral) {
        for (let p = 0; p < n; p++) can[at + p] = line.charCodeAt(p) === arg ? can[nx + p + 1]! : 0;
        can[at + n] = 0;
        continue;
      }
      const min = op === mSpaces ? 1 : 0;
      // a class member: a blank, not a blank, not the literal's first character, not a line terminator
      const mask = op === mSpaces ? 1 : op === mRest ? 2 : op === mNotChar ? 0 : 1;
      const want = op === mSpaces ? 1 : 0;
      // from the end back: run (the class's run from p) and the first offsets >= p, > p the next step
      // can finish from
      let run = 0;
      let firstFrom = n + 1;
      for (let p = n; p >= 0; p--) {
        const firstAfter = firstFrom;
        if (can[nx + p] === 1) firstFrom = p;
        if (p < n) {
          const member = op === mNotChar ? line.charCodeAt(p) !== arg : (kinds[p]! & mask) === want * mask;
          run = member ? run + 1 : 0;
        }
        const first = min === 0 ? firstFrom : firstAfter;
        can[at + p] = run >= min && first <= p + run ? 1 : 0;
      }
    }
    return can[0] === 1 ? walk(line, can) : undefined;
  };
}

/**
 * The object a line's fields go in: without a prototype, so a field or column named as a member of
 * Object.prototype (`constructor`, `toString`, `valueOf`, `__proto__`) is a field like any other. Until
 * 2026-12-07 a line without such a field gave the column the inherited function (an INT or FLOAT column
 * so named failed every line's ingest: `raw.trim is not a function`), and a `__proto__` field was lost.
 */
function fieldsObject(): Record<string, string> {
  return Object.create(null) as Record<string, string>;
}

/** What a logfmt quoted value's escape stands for (JSON's, as go-logfmt writes them), but `\uXXXX`. */
const logfmtEscapes: Record<string, string> = {
  '"': '"',
  '\\': '\\',
  '/': '/',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
};

/**
 * logfmt as go-logfmt reads and writes it: pairs separated by blanks (any character up to a space: tabs
 * too), a bare key is `true`, a quoted value takes JSON's escapes. Until 2026-12-07 only spaces separated
 * pairs (`a=x<TAB>n=1` was `a` = "x<TAB>n=1") and an escape stood for the character after it, so a
 * message logged with a newline (`msg="first\nsecond"`) was stored as `firstnsecond`, one token.
 */
function parseLogfmt(line: string): Record<string, string> | undefined {
  const out: Record<string, string> = fieldsObject();
  let i = 0;
  const n = line.length;
  let any = false;
  while (i < n) {
    while (i < n && line.charCodeAt(i) <= 32) i++;
    if (i >= n) break;
    const k0 = i;
    while (i < n && line[i] !== '=' && line.charCodeAt(i) > 32) i++;
    const key = line.slice(k0, i);
    if (line[i] !== '=') {
      if (key) out[key] = 'true';
      continue;
    }
    i++;
    let val = '';
    if (line[i] === '"') {
      i++;
      while (i < n && line[i] !== '"') {
        if (line[i] === '\\' && i + 1 < n) {
          i++;
          const e = line[i]!;
          const hex = e === 'u' ? line.slice(i + 1, i + 5) : '';
          if (/^[0-9A-Fa-f]{4}$/.test(hex)) {
            val += String.fromCharCode(Number.parseInt(hex, 16));
            i += 4;
          } else val += logfmtEscapes[e] ?? e;
        } else val += line[i];
        i++;
      }
      i++;
    } else {
      const v0 = i;
      while (i < n && line.charCodeAt(i) > 32) i++;
      val = line.slice(v0, i);
    }
    if (key) {
      out[key] = val;
      any = true;
    }
  }
  return any ? out : undefined;
}

/** A JSON value as a field: a string as it is, anything else as its JSON text; null as no field. */
function jsonField(x: unknown): string | undefined {
  if (x === null || x === undefined) return undefined;
  return typeof x === 'string' ? x : JSON.stringify(x);
}

/**
 * The field parser for a format. `paths`: the stream's column names with a dot (`alert.signature_id`), which
 * in JSON name a field of a nested object (an object's own key with a dot in it, such as `"a.b"`, wins).
 */
export function fieldParser(format: FormatSpec, paths: readonly string[] = []): FieldParser {
  switch (format.kind) {
    case 'json': {
      const steps = paths.filter((p) => p.includes('.')).map((p) => [p, p.split('.')] as const);
      return (line) => {
        let v: unknown;
        try {
          v = JSON.parse(line);
        } catch {
          return undefined;
        }
        if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
        const out: Record<string, string> = fieldsObject();
        for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
          const f = jsonField(x);
          if (f !== undefined) out[k] = f;
        }
        for (const [path, keys] of steps) {
          if (out[path] !== undefined) continue;
          let at: unknown = v;
          for (const k of keys)
            at =
              at !== null && typeof at === 'object' && !Array.isArray(at) && Object.hasOwn(at, k)
                ? (at as Record<string, unknown>)[k]
                : undefined;
          const f = jsonField(at);
          if (f !== undefined) out[path] = f;
        }
        return out;
      };
    }
    case 'logfmt':
      return parseLogfmt;
    case 'loghub': {
      const names = loghubFields(format.template);
      const match = loghubMatcher(format.template);
      return (line) => {
        const m = match(line);
        if (!m) return undefined;
        const out: Record<string, string> = fieldsObject();
        names.forEach((k, i) => {
          out[k] = m[i + 1]!;
        });
        return out;
      };
    }
    case 'regex': {
      const re = userRegExp(format.pattern);
      return (line) => {
        const m = re.exec(line);
        if (!m?.groups) return undefined;
        const out: Record<string, string> = fieldsObject();
        for (const [k, x] of Object.entries(m.groups)) if (x !== undefined) out[k] = x;
        return out;
      };
    }
  }
}

/** `yyMMdd HHmmss` (loghub HDFS) read digit by digit, the common case; undefined when s is not that. */
function twoDigits(s: string, i: number): number {
  const a = s.charCodeAt(i) - 48;
  const b = s.charCodeAt(i + 1) - 48;
  return a >= 0 && a <= 9 && b >= 0 && b <= 9 ? a * 10 + b : -1;
}

function hdfsTimestamp(s: string): number | null | undefined {
  return s.charCodeAt(6) === 32 ? hdfsDateTime(s, 0, s, 7) : undefined;
}

/** `yyMMdd` at d[di] and `HHmmss` at t[ti] (one string or two); undefined when they are not digits. */
function hdfsDateTime(d: string, di: number, t: string, ti: number): number | undefined {
  const yy = twoDigits(d, di);
  const mo = twoDigits(d, di + 2);
  const dd = twoDigits(d, di + 4);
  return hdfsMs(yy, mo, dd, twoDigits(t, ti), twoDigits(t, ti + 2), twoDigits(t, ti + 4));
}

/** Epoch ms of HDFS's two-digit parts (-1 for one that was not two digits: undefined). */
function hdfsMs(yy: number, mo: number, dd: number, hh: number, mi: number, ss: number): number | undefined {
  if (yy < 0 || mo < 0 || dd < 0 || hh < 0 || mi < 0 || ss < 0) return undefined;
  // fields out of their range are no time (Date.UTC carried them over: month 13 was the next January)
  if (hh > 23 || mi > 59 || ss > 60) return undefined;
  // Date.UTC is linear in hours, minutes and seconds (out-of-range ones carry over), so the day's
  // midnight is computed once for a run of lines of one day and the time added to it
  const day = (yy * 100 + mo) * 100 + dd;
  if (day !== lastDay) {
    if (!validDate(2000 + yy, mo, dd)) return undefined;
    lastDay = day;
    lastDayMs = Date.UTC(2000 + yy, mo - 1, dd);
  }
  return lastDayMs + ((hh * 60 + mi) * 60 + ss) * 1000;
}
/** Two ASCII digits at b[i] as their value, else -1. */
function twoDigitsAt(b: Uint8Array, i: number): number {
  const x = b[i]! - 48;
  const y = b[i + 1]! - 48;
  return x >= 0 && x <= 9 && y >= 0 && y <= 9 ? x * 10 + y : -1;
}

/**
 * `hdfsDateTime` of bytes: `yyMMdd` at b[di] and `HHmmss` at b[ti] (ASCII); undefined when they are not
 * digits. The same value as the strings give, and the same day cache.
 */
export function hdfsDateTimeBytes(b: Uint8Array, di: number, ti: number): number | undefined {
  const d = twoDigitsAt;
  return hdfsMs(d(b, di), d(b, di + 2), d(b, di + 4), d(b, ti), d(b, ti + 2), d(b, ti + 4));
}
/** Whether month `mo` (1-12) of year `y` has a day `d`. */
function validDate(y: number, mo: number, d: number): boolean {
  if (mo < 1 || mo > 12 || d < 1) return false;
  const leap = (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
  return d <= (mo === 2 ? (leap ? 29 : 28) : mo === 4 || mo === 6 || mo === 9 || mo === 11 ? 30 : 31);
}

/** The last day `hdfsTimestamp` met (yyMMdd as a number) and its midnight in epoch ms. */
let lastDay = -1;
let lastDayMs = 0;

/** A named group's opening in a regex source, with the name as group 1. */
const groupName = /\(\?<([A-Za-z_][A-Za-z0-9_]*)>/g;

/**
 * Epoch ms for the timestamp layouts seen in logs, or null. The layouts: epoch seconds or milliseconds
 * (digits, a fraction allowed); HDFS's `yyMMdd HHmmss`; ISO 8601 / RFC 3339 dates and times
 * (`2008-11-09`, `2008-11-09 20:36`, `2008-11-09T20:36:15.250Z`, `2015-07-29 17:41:44,747`, a `/` for the
 * `-`, an offset `+05:30` / `-0700`, `Z`, `UTC` or `GMT`); RFC 2822's `Sun, 09 Nov 2008 20:36:15 GMT`; and
 * ctime's `Sun Nov 09 20:36:15 2008` (Apache's error log). A time without an offset is UTC, whatever
 * the machine's zone. Anything else is null: a layout without a year (syslog's `Nov 09 20:36:15`,
 * Android's `11-09 20:36:15.811`) and fields out of their range (month 13, 30 February, hour 24, an
 * offset past 23:59) included. (Until 2026-12-05 what these did not cover went to Date.parse, which read
 * a yearless time as one of 2001 and a time without an offset in the machine's zone.)
 */
export function parseTimestamp(s: string): number | null {
  if (s.length === 13) {
    const v = hdfsTimestamp(s);
    if (v !== undefined) return v;
  }
  const t = s.trim();
  if (t === '') return null;
  if (t.length === 13) {
    // the same layout with blanks around it
    const v = hdfsTimestamp(t);
    if (v !== undefined) return v;
  }
  if (/^\d+(\.\d+)?$/.test(t)) {
    const n = Number(t);
    const ms = n > 1e11 ? Math.floor(n) : Math.floor(n * 1000);
    // past what a Date holds (about 275,760 years) it is no time: printing one threw (`strata search`
    // ended on "Invalid time value")
    return ms <= dateMsMax ? ms : null;
  }
  let m = isoLayout.exec(t);
  if (m) return utcMs(+m[1]!, +m[3]!, +m[4]!, m[5], m[6], m[7], m[8], m[9]);
  m = rfc2822Layout.exec(t);
  if (m) return utcMs(+m[3]!, monthOf(m[2]!), +m[1]!, m[4], m[5], m[6], undefined, m[7]);
  m = ctimeLayout.exec(t);
  if (m) return utcMs(+m[7]!, monthOf(m[1]!), +m[2]!, m[3], m[4], m[5], m[6], undefined);
  return null;
}

/** The largest epoch ms a Date holds (ECMAScript's time value range: 100,000,000 days). */
export const dateMsMax = 8.64e15;
const monthNames = 'jan feb mar apr may jun jul aug sep oct nov dec'.split(' ');
const monthRe =
  '(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)';
const weekdayRe =
  '(?:mon(?:day)?|tue(?:sday)?|wed(?:nesday)?|thu(?:rsday)?|fri(?:day)?|sat(?:urday)?|sun(?:day)?)';
/**
 * The zones `utcMs` reads: Z, UT, UTC, GMT, or an offset (`+05:30`, `-0700`, or hours alone, `+01`, as
 * ISO 8601 allows and PostgreSQL writes a timestamptz; until 2026-12-07 such a time was no time).
 */
const zoneRe = '(z|ut|utc|gmt|[+-]\\d{2}(?::?\\d{2})?)';
/** `yyyy-MM-dd` (or with `/`), then optionally `[ T]HH:mm[:ss[.fff]]` and a zone. */
const isoLayout = new RegExp(
  `^(\\d{4})([-/])(\\d{2})\\2(\\d{2})(?:[ T](\\d{2}):(\\d{2})(?::(\\d{2})(?:[.,](\\d{1,3})\\d*)?)? ?${zoneRe}?)?$`,
  'i',
);
/** RFC 2822: `[Www, ]d MMM yyyy HH:mm[:ss] [zone]`. */
const rfc2822Layout = new RegExp(
  `^(?:${weekdayRe},? +)?(\\d{1,2}) +${monthRe} +(\\d{4}) +(\\d{2}):(\\d{2})(?::(\\d{2}))?(?: *${zoneRe})?$`,
  'i',
);
/** ctime: `[Www ]MMM d HH:mm:ss[.fff] yyyy`. */
const ctimeLayout = new RegExp(
  `^(?:${weekdayRe} +)?${monthRe} +(\\d{1,2}) +(\\d{2}):(\\d{2}):(\\d{2})(?:\\.(\\d{1,3})\\d*)? +(\\d{4})$`,
  'i',
);

/** A month's number from its name (`monthRe`: full, or its first three letters). */
function monthOf(name: string): number {
  return monthNames.indexOf(name.slice(0, 3).toLowerCase()) + 1;
}

/**
 * Epoch ms of a date, a time of day (fields absent are 0) and a zone (absent: UTC); null when a field is
 * out of its range (Date.UTC would carry it over: 2008-13-45 99:99:99 was a moment of 2009). A second of
 * 60 is a leap second's.
 */
function utcMs(
  y: number,
  mo: number,
  d: number,
  hh: string | undefined,
  mi: string | undefined,
  ss: string | undefined,
  frac: string | undefined,
  zone: string | undefined,
): number | null {
  const [h, m, sec] = [Number(hh ?? 0), Number(mi ?? 0), Number(ss ?? 0)];
  if (!validDate(y, mo, d) || h > 23 || m > 59 || sec > 60) return null;
  // the offset east of UTC in minutes (hours past 23 or minutes past 59: no time)
  let offsetMin = 0;
  if (zone && /^[+-]/.test(zone)) {
    const z = zone.slice(1).replace(':', '');
    const [oh, om] = [Number(z.slice(0, 2)), Number(z.slice(2))];
    if (oh > 23 || om > 59) return null;
    offsetMin = (zone[0] === '-' ? -1 : 1) * (oh * 60 + om);
  }
  const ms = frac ? Number(frac.padEnd(3, '0')) : 0;
  const v = Date.UTC(y, mo - 1, d, h, m, sec, ms) - offsetMin * 60_000;
  return Number.isFinite(v) ? v : null;
}

/** A loghub `Date` and `Time` field as one TIMESTAMP cell: `toCell` of `${date} ${time}`, without the string. */
export function dateTimeCell(date: string, time: string): Cell {
  if (date.length === 6 && time.length === 6) {
    const v = hdfsDateTime(date, 0, time, 0);
    if (v !== undefined) return v;
  }
  return parseTimestamp(`${date} ${time}`);
}

/** A string of 1-15 ASCII digits as its number (exact), else -1: the common INT cell, without trims. */
function digitsValue(s: string): number {
  const n = s.length;
  if (n === 0 || n > 15) return -1;
  let v = 0;
  for (let i = 0; i < n; i++) {
    const d = s.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return -1;
    v = v * 10 + d;
  }
  return v;
}

/** Converts a raw field to a column's type; null when absent or malformed. */
export function toCell(col: ColumnDef, raw: string | undefined): Cell {
  if (raw === undefined) return null;
  switch (col.type) {
    case 'STRING':
    case 'TEXT':
      return raw;
    case 'INT': {
      const d = digitsValue(raw);
      if (d >= 0) return d;
      const n = Number(raw.trim());
      // past 2^53 a number is not the integer written (99999999999999999999 was 1e20, which the Parquet
      // export's BIGINT then refused, failing the export): no value, as other malformed cells
      return raw.trim() !== '' && Number.isSafeInteger(n) ? n : null;
    }
    case 'FLOAT': {
      const n = Number(raw.trim());
      return raw.trim() !== '' && Number.isFinite(n) ? n : null;
    }
    case 'TIMESTAMP':
      return parseTimestamp(raw);
  }
}

/**
 * Where a column's cell comes from when every line has the fields `names`: a field (converted by
 * `toCell`), a `Date` and a `Time` field as one TIMESTAMP (`dateTimeCell`), or nothing (null).
 */
export type ColumnSource = { field: string } | { date: string; time: string } | null;

/** Each column's source among the fields `names` (a column's own name first, any case; then for a TIMESTAMP `timestamp`, `ts`, `date` + `time`). */
export function columnSources(columns: ColumnDef[], names: string[]): ColumnSource[] {
  const find = (n: string) => names.find((k) => k.toLowerCase() === n);
  return columns.map((c): ColumnSource => {
    const direct = names.includes(c.name) ? c.name : find(c.name.toLowerCase());
    if (direct !== undefined) return { field: direct };
    if (c.type !== 'TIMESTAMP') return null;
    const ts = find('timestamp') ?? find('ts');
    if (ts !== undefined) return { field: ts };
    const date = find('date');
    const time = find('time');
    if (date !== undefined && time !== undefined) return { date, time };
    const one = date ?? time;
    return one === undefined ? null : { field: one };
  });
}

/** Turns lines into rows of the stream's columns. Lines the format does not match become rows of nulls with the raw line in the first TEXT column. */
export class RowParser {
  private readonly parse: FieldParser;
  private readonly lookup: ((f: Record<string, string>) => string | undefined)[];
  private readonly rawCol: number;
  /**
   * Per column, how many of the lines parsed gave it a value (not null): a json or logfmt column no line
   * names stays at 0 (`IngestStats.emptyColumns`). Lines the byte parser takes whole are not counted.
   */
  readonly valued: number[];

  constructor(readonly def: StreamDef) {
    this.valued = def.columns.map(() => 0);
    const f = def.format;
    if (f.kind === 'loghub') {
      // Every field of a template is a group that takes part in every match, in template order: the
      // match array itself is read by index (a regex without names runs about 2x faster, no groups object).
      const names = loghubFields(f.template);
      const match = loghubMatcher(f.template);
      this.parse = match as unknown as FieldParser;
      this.fast = this.picks(names, (n) => names.indexOf(n) + 1);
    } else if (f.kind === 'regex') {
      // The match's own groups object, not a copy (a group that did not take part is undefined in it).
      const re = userRegExp(f.pattern);
      this.parse = (line) => re.exec(line)?.groups as Record<string, string> | undefined;
    } else
      this.parse = fieldParser(
        f,
        def.columns.map((c) => c.name),
      );
    this.rawCol = def.columns.findIndex((c) => c.type === 'TEXT');
    this.lookup = def.columns.map((c) => {
      const lname = c.name.toLowerCase();
      return (f: Record<string, string>) => {
        if (f[c.name] !== undefined) return f[c.name];
        // (a regex's groups object holds the groups that did not take part too, as undefined)
        for (const k in f) if (k.toLowerCase() === lname && f[k] !== undefined) return f[k];
        if (c.type === 'TIMESTAMP') {
          let date: string | undefined;
          let time: string | undefined;
          for (const k in f) {
            if (f[k] === undefined) continue;
            const lk = k.toLowerCase();
            if (lk === 'date') date = f[k];
            else if (lk === 'time') time = f[k];
            else if (lk === 'timestamp' || lk === 'ts') return f[k];
          }
          if (date !== undefined && time !== undefined) return `${date} ${time}`;
          return date ?? time;
        }
        return undefined;
      };
    });
  }

  /**
   * For regex and loghub formats every match has the same fields, so each column's lookup is resolved
   * once, on the first match, into a direct field access and its conversion to a cell.
   */
  private fast: ((f: Record<string, string>) => Cell)[] | undefined;

  private resolveFast(f: Record<string, string>): void {
    if (this.def.format.kind !== 'regex') return;
    const keys = Object.keys(f).filter((k) => f[k] !== undefined);
    // Only from a match where every named group took part (an optional group may be absent in this one).
    if (keys.length !== (this.def.format.pattern.match(groupName)?.length ?? 0)) return;
    this.fast = this.picks(keys, (n) => n);
  }

  /** Per column, its cell from the fields `names` (a field is read as `x[at(name)]`). */
  private picks(
    names: string[],
    at: (name: string) => string | number,
  ): ((f: Record<string, string>) => Cell)[] {
    return columnSources(this.def.columns, names).map((src, i) => {
      const c = this.def.columns[i]!;
      if (src === null) return () => null;
      if ('field' in src) {
        const k = at(src.field);
        return (x: Record<string, string>) => toCell(c, x[k]);
      }
      const da = at(src.date);
      const ti = at(src.time);
      return (x: Record<string, string>) => {
        const a = x[da];
        const b = x[ti];
        return a !== undefined && b !== undefined ? dateTimeCell(a, b) : toCell(c, a ?? b);
      };
    });
  }

  /** The row for one line (without its newline). */
  row(line: string): Row {
    const out: Row = new Array(this.def.columns.length);
    this.cells(line, out, 0, 0);
    return out;
  }

  /**
   * Writes the cells of one line (without its newline) into `columns`: `columns[c][i]` is its cell of
   * column c (a block page's shape, no array per row).
   */
  rowInto(line: string, columns: Cell[][], i: number): void {
    this.cells(line, columns, i, 1);
  }

  /** One line's cells into `out[c]` (shape 0: a row) or `out[c][i]` (shape 1: columns). */
  private cells(line: string, out: Row | Cell[][], i: number, shape: 0 | 1): void {
    let l = line.length > lineBytesMax ? line.slice(0, lineBytesMax) : line;
    if (l.charCodeAt(l.length - 1) === 13) l = l.slice(0, -1); // CRLF files (the loghub samples are)
    // a file's byte order mark (Windows tools write one): JSON.parse refused the first line (a row of
    // nulls), a logfmt key or a template's first field took it (until 2026-12-07)
    if (l.charCodeAt(0) === 0xfeff) l = l.slice(1);
    const f = this.parse(l);
    const cols = this.def.columns;
    const n = cols.length;
    if (!f) {
      for (let c = 0; c < n; c++) put(out, shape, c, i, c === this.rawCol ? l : null);
      if (this.rawCol >= 0) this.valued[this.rawCol]!++;
      return;
    }
    if (!this.fast) this.resolveFast(f);
    const fast = this.fast;
    const valued = this.valued;
    if (fast)
      for (let c = 0; c < n; c++) {
        const v = fast[c]!(f);
        if (v !== null) valued[c]!++;
        put(out, shape, c, i, v);
      }
    else
      for (let c = 0; c < n; c++) {
        const v = toCell(cols[c]!, this.lookup[c]!(f));
        if (v !== null) valued[c]!++;
        put(out, shape, c, i, v);
      }
  }
}

function put(out: Row | Cell[][], shape: 0 | 1, c: number, i: number, v: Cell): void {
  if (shape === 0) (out as Row)[c] = v;
  else (out as Cell[][])[c]![i] = v;
}

/** Bound on one token's length in characters; longer runs are cut. */
export const tokenCharsMax = 128;

/** Whether UTF-16 unit (or byte) c belongs to a token: letters, digits, `_`, `-`, `.` and everything above ASCII. */
export function isTokenChar(c: number): boolean {
  return (
    (c >= 48 && c <= 57) ||
    (c >= 65 && c <= 90) ||
    (c >= 97 && c <= 122) ||
    c === 95 ||
    c === 45 ||
    c === 46 ||
    c > 127
  );
}

/**
 * The tokens of a text as the index keys them: maximal runs of letters, digits, `_`, `-` and `.` (and any
 * non-ASCII), with leading and trailing `.`/`-` dropped, each cut to `tokenCharsMax` characters.
 * Case-sensitive. `CONTAINS 'x'` matches a row when every token of `x` is a token of the value, whole
 * (`wholeTokens`): two long tokens that share their first `tokenCharsMax` characters have one key, and
 * the rows' verification tells them apart. Every token of the text: until 2026-12-07 at most 4,096 a
 * value were taken, by the index and by the verification alike, so a token past a long message's
 * 4,096th was found by no search.
 */
export function tokenize(text: string, into: string[] = []): string[] {
  return scanTokens(text, into, tokenCharsMax);
}

/**
 * The tokens of a text as `tokenize` finds them, but whole: what `CONTAINS` compares. Until 2026-12-07 it
 * compared the cut ones, so `CONTAINS` of a token past 128 characters (a JWT, a long base64 id) matched
 * every value with a token of the same first 128 characters, and `erase` of it erased those rows too.
 */
export function wholeTokens(text: string): string[] {
  return scanTokens(text, [], Number.POSITIVE_INFINITY);
}

function scanTokens(text: string, into: string[], charsMax: number): string[] {
  const n = text.length;
  let i = 0;
  while (i < n) {
    while (i < n && !isTokenChar(text.charCodeAt(i))) i++;
    let s = i;
    while (i < n && isTokenChar(text.charCodeAt(i))) i++;
    let e = i;
    while (s < e && (text.charCodeAt(s) === 46 || text.charCodeAt(s) === 45)) s++;
    while (e > s && (text.charCodeAt(e - 1) === 46 || text.charCodeAt(e - 1) === 45)) e--;
    if (e > s) into.push(text.slice(s, Math.min(e, s + charsMax)));
  }
  return into;
}
