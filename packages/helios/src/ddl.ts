/**
 * The stream DDL:
 *
 *   CREATE STREAM name SOURCES ('file:/var/log/*.log', 'stdin:')
 *     FORMAT loghub('<Date> <Time> <Level>: <Content>') | json | logfmt | regex('(?<level>\w+) ...')
 *     COLUMNS (ts TIMESTAMP, level STRING, content TEXT, bytes INT, ratio FLOAT)
 *     INDEX (level, TOKENS(content))
 *     [CHUNK EVERY 10 SECONDS [OR 4 MB]] [STORAGE express FOR 1 DAY THEN standard] [RETAIN 30 DAYS] [;]
 *
 * Keywords are case-insensitive; identifiers are [A-Za-z_][A-Za-z0-9_]*, and a column's name may be a path
 * of them joined by dots (`alert.signature_id`: with FORMAT json, the field `signature_id` of the object
 * `alert`); strings use single quotes with '' as the escape for a quote. Every error names the line and
 * column where parsing stopped.
 */

import { shown } from '@strata/cli';
import { columnSources, loghubFields } from './formats.js';

export type ColumnType = 'TIMESTAMP' | 'STRING' | 'TEXT' | 'INT' | 'FLOAT';
export const columnTypes: readonly ColumnType[] = ['TIMESTAMP', 'STRING', 'TEXT', 'INT', 'FLOAT'];

export type FormatSpec =
  | { kind: 'json' }
  | { kind: 'logfmt' }
  | { kind: 'regex'; pattern: string }
  | { kind: 'loghub'; template: string };

export interface ColumnDef {
  name: string;
  type: ColumnType;
}

export interface IndexDef {
  column: string;
  /** TOKENS(col): index every token of the text, not the whole value. */
  tokens: boolean;
}

export interface StreamDef {
  name: string;
  sources: string[];
  format: FormatSpec;
  columns: ColumnDef[];
  index: IndexDef[];
  chunkEveryMs: number;
  chunkBytesMax: number;
  storage: { hot: string; hotForMs: number; cold: string };
  retainMs: number;
}

/** A DDL error at a line and column (1-based). */
export class DdlError extends Error {
  override name = 'DdlError';
  constructor(
    readonly detail: string,
    readonly line: number,
    readonly column: number,
    readonly file = 'DDL',
  ) {
    super(`${file}:${line}:${column}: ${detail}`);
  }
}

type TokKind = 'ident' | 'string' | 'number' | 'punct' | 'eof';
interface Tok {
  kind: TokKind;
  text: string;
  line: number;
  col: number;
}

/** Bound on the DDL text, so a runaway input fails fast with a clear error. */
export const ddlBytesMax = 1 << 20;

/**
 * Bound on a stream's CHUNK size: half the ingestion server's bound on one request (`chunkBytesMax` in
 * agent.ts), which also carries the chunk's leaf. A larger one was taken, and every agent of the stream
 * then refused to start.
 */
export const chunkSizeMax = 32 << 20;

/**
 * Throws a RangeError naming `what` unless `bytes` is a chunk size: a whole number from 1 to `max` (an
 * agent's: `chunkSizeMax`, what one request takes). 0 and -1 cut no chunk where asked, NaN failed in a
 * Buffer, a larger one than a local ingest's gigabyte was read whole into memory.
 */
export function checkChunkBytes(what: string, bytes: unknown, max = chunkSizeMax): void {
  if (!(Number.isSafeInteger(bytes) && (bytes as number) >= 1 && (bytes as number) <= max))
    throw new RangeError(`${what} must be a whole number of bytes from 1 to ${max}, got ${shown(bytes)}`);
}

/**
 * Where the identifier starting at `i` ends: [A-Za-z_][A-Za-z0-9_]*, then any more such parts each after
 * one dot (a column's path into a JSON object). A dot not followed by a letter or _ ends it before the dot.
 */
export function identEnd(src: string, i: number): number {
  let j = i;
  for (;;) {
    while (j < src.length && /[A-Za-z0-9_]/.test(src[j]!)) j++;
    if (src[j] !== '.' || !/[A-Za-z_]/.test(src[j + 1] ?? '')) return j;
    j++;
  }
}

function lex(src: string, file: string): Tok[] {
  if (src.length > ddlBytesMax)
    throw new DdlError(`DDL is longer than ${ddlBytesMax} characters`, 1, 1, file);
  const toks: Tok[] = [];
  let i = 0;
  let line = 1;
  let col = 1;
  const adv = (n: number) => {
    for (let k = 0; k < n; k++) {
      if (src.charCodeAt(i) === 10) {
        line++;
        col = 1;
      } else col++;
      i++;
    }
  };
  while (i < src.length) {
    const c = src[i]!;
    if (c === ' ' || c === '\t' || c === '\r' || c === '\n') {
      adv(1);
      continue;
    }
    if (c === '-' && src[i + 1] === '-') {
      while (i < src.length && src[i] !== '\n') adv(1);
      continue;
    }
    const l0 = line;
    const c0 = col;
    if (/[A-Za-z_]/.test(c)) {
      const j = identEnd(src, i);
      toks.push({ kind: 'ident', text: src.slice(i, j), line: l0, col: c0 });
      adv(j - i);
    } else if (/[0-9]/.test(c)) {
      let j = i;
      while (j < src.length && /[0-9.]/.test(src[j]!)) j++;
      toks.push({ kind: 'number', text: src.slice(i, j), line: l0, col: c0 });
      adv(j - i);
    } else if (c === "'") {
      let j = i + 1;
      let s = '';
      for (;;) {
        if (j >= src.length) throw new DdlError('unterminated string (missing closing quote)', l0, c0, file);
        if (src[j] === "'") {
          if (src[j + 1] === "'") {
            s += "'";
            j += 2;
            continue;
          }
          break;
        }
        s += src[j];
        j++;
      }
      toks.push({ kind: 'string', text: s, line: l0, col: c0 });
      adv(j + 1 - i);
    } else if ('(),;'.includes(c)) {
      toks.push({ kind: 'punct', text: c, line: l0, col: c0 });
      adv(1);
    } else {
      throw new DdlError(`unexpected character '${c}'`, l0, c0, file);
    }
  }
  toks.push({ kind: 'eof', text: '', line, col });
  return toks;
}

/**
 * The named groups of a regular expression that compiles, in order: the names of the groups object of a
 * match of the pattern or nothing (the empty alternative matches, and the object holds every name).
 */
export function regexGroupNames(pattern: string): string[] {
  const m = new RegExp(`(?:${pattern})|`).exec('');
  return Object.keys(m?.groups ?? {});
}

/** The longest span a DDL duration may give: 100,000,000 days, ECMAScript's Date range from 1970. */
const durationMsMax = 8.64e15;

const unitMs: Record<string, number> = {
  SECOND: 1000,
  SECONDS: 1000,
  MINUTE: 60_000,
  MINUTES: 60_000,
  HOUR: 3_600_000,
  HOURS: 3_600_000,
  DAY: 86_400_000,
  DAYS: 86_400_000,
};
const unitBytes: Record<string, number> = { B: 1, KB: 1024, MB: 1 << 20, GB: 1 << 30 };

/**
 * Parses one CREATE STREAM statement. `file` names the source in error messages. `existing`: the stored
 * DDL of a stream being reopened (or an agent's, fetched from the server), which bounds added since it was
 * created do not refuse: a CHUNK size past `chunkSizeMax` is kept, a duration past the Date range is the
 * longest span a Date holds (100,000,000 days).
 */
export function parseDdl(src: string, file = 'DDL', opts: { existing?: boolean } = {}): StreamDef {
  const toks = lex(src, file);
  let p = 0;
  const peek = () => toks[p]!;
  const fail = (msg: string, t = peek()): never => {
    throw new DdlError(
      `${msg}, got ${t.kind === 'eof' ? 'end of input' : `'${t.text}'`}`,
      t.line,
      t.col,
      file,
    );
  };
  const isKw = (kw: string) => peek().kind === 'ident' && peek().text.toUpperCase() === kw;
  const kw = (k: string) => {
    if (!isKw(k)) fail(`expected ${k}`);
    p++;
  };
  const punct = (c: string) => {
    if (peek().kind !== 'punct' || peek().text !== c) fail(`expected '${c}'`);
    p++;
  };
  const ident = (what: string) => {
    const t = peek();
    if (t.kind !== 'ident') fail(`expected ${what}`);
    p++;
    return t.text;
  };
  const str = (what: string) => {
    const t = peek();
    if (t.kind !== 'string') fail(`expected ${what} as a quoted string`);
    p++;
    return t;
  };
  const num = (what: string) => {
    const t = peek();
    if (t.kind !== 'number' || !/^\d+(\.\d+)?$/.test(t.text)) fail(`expected ${what}`);
    p++;
    return Number(t.text);
  };
  const list = <T>(item: () => T): T[] => {
    punct('(');
    const out = [item()];
    while (peek().kind === 'punct' && peek().text === ',') {
      p++;
      out.push(item());
    }
    punct(')');
    return out;
  };

  kw('CREATE');
  kw('STREAM');
  const name = ident('a stream name');
  kw('SOURCES');
  const sources = list(() => str('a source URI').text);
  kw('FORMAT');
  const fmtTok = peek();
  const fmtName = ident('a format (json, logfmt, regex(...), loghub(...))').toLowerCase();
  let format: FormatSpec;
  if (fmtName === 'json' || fmtName === 'jsonl') format = { kind: 'json' };
  else if (fmtName === 'logfmt') format = { kind: 'logfmt' };
  else if (fmtName === 'regex' || fmtName === 'loghub') {
    punct('(');
    const arg = str(fmtName === 'regex' ? 'a regular expression' : 'a template');
    punct(')');
    if (fmtName === 'regex') {
      try {
        new RegExp(arg.text);
      } catch (e) {
        throw new DdlError(`bad regular expression: ${(e as Error).message}`, arg.line, arg.col, file);
      }
      if (!/\(\?<[A-Za-z_]/.test(arg.text))
        throw new DdlError('regex format needs named groups, e.g. (?<level>\\w+)', arg.line, arg.col, file);
      format = { kind: 'regex', pattern: arg.text };
    } else {
      const fields = loghubFields(arg.text);
      if (fields.length === 0)
        throw new DdlError('loghub template needs fields like <Date> <Content>', arg.line, arg.col, file);
      // a field twice made the template's regex invalid: every ingest and search of the stream failed
      const twice = fields.find((f, i) => fields.indexOf(f) !== i);
      if (twice !== undefined)
        throw new DdlError(`loghub template names <${twice}> twice`, arg.line, arg.col, file);
      format = { kind: 'loghub', template: arg.text };
    }
  } else {
    throw new DdlError(
      `unknown format '${fmtName}' (expected json, logfmt, regex(...) or loghub(...))`,
      fmtTok.line,
      fmtTok.col,
      file,
    );
  }
  kw('COLUMNS');
  const seen = new Set<string>();
  const columnToks: Tok[] = [];
  const columns = list(() => {
    const t = peek();
    columnToks.push(t);
    const cname = ident('a column name');
    if (cname.includes('.') && (format.kind === 'regex' || format.kind === 'loghub'))
      throw new DdlError(
        `column '${cname}': a name with dots is a path into JSON or a logfmt key; ${format.kind} fields have none`,
        t.line,
        t.col,
        file,
      );
    const tt = peek();
    const type = ident('a column type').toUpperCase() as ColumnType;
    if (!columnTypes.includes(type))
      throw new DdlError(
        `unknown column type '${tt.text}' (expected ${columnTypes.join(', ')})`,
        tt.line,
        tt.col,
        file,
      );
    if (seen.has(cname)) throw new DdlError(`column '${cname}' is declared twice`, t.line, t.col, file);
    seen.add(cname);
    return { name: cname, type };
  });
  // Every line of a regex or loghub format has the same fields, known here: a column that takes none of
  // them was null in every row (a typo, a group not named). The first TEXT column is let be: it holds the
  // lines the format does not match (a `raw TEXT` column). A stream created before keeps opening.
  if ((format.kind === 'regex' || format.kind === 'loghub') && !opts.existing) {
    const names = format.kind === 'regex' ? regexGroupNames(format.pattern) : loghubFields(format.template);
    const rawCol = columns.findIndex((c) => c.type === 'TEXT');
    columnSources(columns, names).forEach((src, i) => {
      if (src !== null || i === rawCol) return;
      const c = columns[i]!;
      const t = columnToks[i]!;
      const fields = format.kind === 'regex' ? 'named groups' : 'template fields';
      throw new DdlError(
        `column '${c.name}' matches no field of the ${format.kind} format, so it would be null in every row ` +
          `(its ${fields}: ${names.join(', ')}; a column takes the field of its name, any case` +
          `${c.type === 'TIMESTAMP' ? ', or for a TIMESTAMP timestamp, ts, date and time' : ''}): ` +
          `name a field ${format.kind === 'regex' ? `(?<${c.name}>...)` : `<${c.name}>`} or rename the column`,
        t.line,
        t.col,
        file,
      );
    });
  }
  let index: IndexDef[] = [];
  const indexed = new Set<string>();
  if (isKw('INDEX')) {
    p++;
    index = list(() => {
      const t = peek();
      let tokens = false;
      let col: string;
      if (isKw('TOKENS') && toks[p + 1]?.text === '(') {
        p++;
        punct('(');
        col = ident('a column name');
        punct(')');
        tokens = true;
      } else col = ident('a column name or TOKENS(column)');
      if (!seen.has(col))
        throw new DdlError(`INDEX names '${col}', which is not a declared column`, t.line, t.col, file);
      // a number has no tokens: TOKENS of one indexed nothing, and CONTAINS refuses such a column. A
      // stream created before keeps opening (its entry still indexes nothing; searches verify every row).
      const type = columns.find((c) => c.name === col)!.type;
      if (tokens && type !== 'STRING' && type !== 'TEXT' && !opts.existing)
        throw new DdlError(
          `TOKENS(${col}): column '${col}' is ${type}, and TOKENS indexes the words of a STRING or TEXT column (what CONTAINS looks for); index its values with INDEX (${col})`,
          t.line,
          t.col,
          file,
        );
      const entry = tokens ? `TOKENS(${col})` : col;
      if (indexed.has(entry)) throw new DdlError(`INDEX names ${entry} twice`, t.line, t.col, file);
      indexed.add(entry);
      return { column: col, tokens };
    });
  }
  const def: StreamDef = {
    name,
    sources,
    format,
    columns,
    index,
    chunkEveryMs: 10_000,
    chunkBytesMax: 4 << 20,
    storage: { hot: 'express', hotForMs: 86_400_000, cold: 'standard' },
    retainMs: 30 * 86_400_000,
  };
  // a duration of more than nothing (`what` names it when it is 0)
  const duration = (what: string) => {
    const at = peek();
    const n = num('a number');
    const t = peek();
    const u = ident('a time unit (SECONDS, MINUTES, HOURS, DAYS)').toUpperCase();
    const ms = unitMs[u];
    if (ms === undefined) throw new DdlError(`unknown time unit '${t.text}'`, t.line, t.col, file);
    if (n * ms <= 0)
      throw new DdlError(`${what} must be more than 0, got ${n} ${t.text}`, at.line, at.col, file);
    // a time holds +-8.64e15 ms (ECMAScript's Date range): a longer span means nothing at the stream's clock;
    // a stream created before the bound (`existing`) keeps opening, its span the longest a Date holds
    if (n * ms > durationMsMax) {
      if (opts.existing) return durationMsMax;
      throw new DdlError(
        `${what} must be at most ${durationMsMax / unitMs.DAYS!} DAYS, got ${n} ${t.text}`,
        at.line,
        at.col,
        file,
      );
    }
    return n * ms;
  };
  const storageClass = () => {
    const t = peek();
    const c = ident('a storage class (express, standard)').toLowerCase();
    if (c !== 'express' && c !== 'standard')
      throw new DdlError(
        `unknown storage class '${t.text}' (expected express or standard)`,
        t.line,
        t.col,
        file,
      );
    return c;
  };
  // A clause given twice is refused where the second starts: the second silently replaced the first (a
  // CHUNK ... OR 4 MB followed by a CHUNK EVERY 5 SECONDS kept the 4 MB and took the 5 s). A stream
  // created before keeps working: its stored DDL, parsed as an existing stream's, takes the last one.
  const clauses = new Set<string>();
  while (peek().kind !== 'eof' && !(peek().kind === 'punct' && peek().text === ';')) {
    const c = peek();
    const clause = c.kind === 'ident' ? c.text.toUpperCase() : '';
    if (clauses.has(clause) && !opts.existing)
      throw new DdlError(`${clause} is given twice (give each clause once)`, c.line, c.col, file);
    clauses.add(clause);
    if (isKw('CHUNK')) {
      p++;
      kw('EVERY');
      def.chunkEveryMs = duration('CHUNK EVERY');
      if (isKw('OR')) {
        p++;
        const at = peek();
        const n = num('a size');
        const t = peek();
        const u = ident('a size unit (KB, MB, GB)').toUpperCase();
        const b = unitBytes[u];
        if (b === undefined) throw new DdlError(`unknown size unit '${t.text}'`, t.line, t.col, file);
        def.chunkBytesMax = Math.round(n * b);
        // (it was checked after the statement and reported at its first word: "got 'CREATE'")
        if (def.chunkBytesMax < 1024)
          throw new DdlError(`CHUNK size must be at least 1 KB, got ${n} ${t.text}`, at.line, at.col, file);
        // a stream created before the bound keeps its size (`existing`: its stored DDL, reopened)
        if (def.chunkBytesMax > chunkSizeMax && !opts.existing)
          throw new DdlError(`CHUNK size must be at most 32 MB, got ${n} ${t.text}`, at.line, at.col, file);
      }
    } else if (isKw('STORAGE')) {
      p++;
      def.storage.hot = storageClass();
      if (isKw('FOR')) {
        p++;
        def.storage.hotForMs = duration('STORAGE ... FOR');
        kw('THEN');
        const t = peek();
        def.storage.cold = storageClass();
        if (def.storage.hot === 'standard' && def.storage.cold === 'express')
          throw new DdlError(
            'STORAGE standard ... THEN express: data only moves from express to standard',
            t.line,
            t.col,
            file,
          );
      } else def.storage.cold = def.storage.hot;
    } else if (isKw('RETAIN')) {
      p++;
      def.retainMs = duration('RETAIN');
    } else fail('expected CHUNK, STORAGE, RETAIN or end of statement');
  }
  if (peek().kind === 'punct') p++;
  if (peek().kind !== 'eof') fail('expected end of input after the statement');
  return def;
}
