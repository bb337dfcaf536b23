/**
 * The query language of `strata search --where`:
 *
 *   expr   := or
 *   or     := and ('OR' and)*
 *   and    := unary ('AND' unary)*
 *   unary  := 'NOT' unary | '(' expr ')' | cmp
 *   cmp    := column ('=' | '!=' | '<' | '<=' | '>' | '>=') value     (column: a name, or a path a.b)
 *           | column [NOT] 'IN' '(' value (',' value)* ')'
 *           | column 'CONTAINS' 'text'
 *   value  := 'quoted string' | number
 *
 * Values compared to TIMESTAMP columns may be timestamps as strings ('2008-11-09 20:36:15'). A null cell
 * fails every comparison except `!=` (and NOT of a failing one). `CONTAINS` is token containment (see
 * tokenize): every token of the text must be a token of the value, whole (`wholeTokens`).
 */
import { type ColumnDef, identEnd, type StreamDef } from './ddl.js';
import { type Cell, parseTimestamp, type Row, wholeTokens } from './formats.js';

export type CmpOp = '=' | '!=' | '<' | '<=' | '>' | '>=';
export type Expr =
  | { k: 'and' | 'or'; a: Expr; b: Expr }
  | { k: 'not'; a: Expr }
  | { k: 'cmp'; col: number; op: CmpOp; v: Cell }
  | { k: 'in'; col: number; vs: Cell[] }
  | { k: 'contains'; col: number; tokens: string[] }
  | { k: 'true' };

/** A query error, with the character position (1-based) in the expression. */
export class QueryError extends Error {
  override name = 'QueryError';
  constructor(
    readonly detail: string,
    readonly column: number,
  ) {
    super(`--where, column ${column}: ${detail}`);
  }
}

/** Bound on a query's length in characters and on its nesting depth. */
export const queryCharsMax = 64 * 1024;
export const queryDepthMax = 256;

interface QTok {
  t: 'id' | 'str' | 'num' | 'op' | 'eof';
  s: string;
  pos: number;
}

function lexQuery(src: string): QTok[] {
  if (src.length > queryCharsMax) throw new QueryError(`query is longer than ${queryCharsMax} characters`, 1);
  const out: QTok[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const pos = i + 1;
    if (/[A-Za-z_]/.test(c)) {
      const j = identEnd(src, i);
      out.push({ t: 'id', s: src.slice(i, j), pos });
      i = j;
    } else if (/[0-9-]/.test(c)) {
      const m = /^-?\d+(\.\d+)?([eE][-+]?\d+)?/.exec(src.slice(i));
      if (!m) throw new QueryError(`unexpected '${c}'`, pos);
      out.push({ t: 'num', s: m[0], pos });
      i += m[0].length;
    } else if (c === "'" || c === '"') {
      let j = i + 1;
      let s = '';
      for (;;) {
        if (j >= src.length) throw new QueryError('unterminated string', pos);
        if (src[j] === c) {
          if (src[j + 1] === c) {
            s += c;
            j += 2;
            continue;
          }
          break;
        }
        s += src[j];
        j++;
      }
      out.push({ t: 'str', s, pos });
      i = j + 1;
    } else {
      const two = src.slice(i, i + 2);
      if (two === '!=' || two === '<=' || two === '>=' || two === '<>') {
        out.push({ t: 'op', s: two === '<>' ? '!=' : two, pos });
        i += 2;
      } else if ('=<>(),'.includes(c)) {
        out.push({ t: 'op', s: c, pos });
        i++;
      } else throw new QueryError(`unexpected character '${c}'`, pos);
    }
  }
  out.push({ t: 'eof', s: '', pos: src.length + 1 });
  return out;
}

/**
 * `items` (at least one) joined pairwise into a balanced tree, in their order: for associative joins (AND,
 * OR), whose chains would otherwise make trees as deep as they are long. A left-deep chain of 8,000 ANDs
 * (within the length bound) overflowed the stack of every walk over it, the search's among them.
 */
export function balanced<T>(items: readonly T[], join: (a: T, b: T) => T, from = 0, to = items.length): T {
  if (to - from <= 1) return items[from]!;
  const mid = (from + to) >>> 1;
  return join(balanced(items, join, from, mid), balanced(items, join, mid, to));
}

/** Parses a --where expression against the stream's columns. An empty expression matches every row. */
export function parseQuery(src: string, def: StreamDef): Expr {
  if (src.trim() === '') return { k: 'true' };
  const toks = lexQuery(src);
  let p = 0;
  let depth = 0;
  const peek = () => toks[p]!;
  const fail = (msg: string, t = peek()): never => {
    throw new QueryError(`${msg}, got ${t.t === 'eof' ? 'end of input' : `'${t.s}'`}`, t.pos);
  };
  const isKw = (k: string) => peek().t === 'id' && peek().s.toUpperCase() === k;
  const isOp = (o: string) => peek().t === 'op' && peek().s === o;
  const colOf = (t: QTok): [number, ColumnDef] => {
    const i = def.columns.findIndex((c) => c.name === t.s);
    if (i < 0)
      throw new QueryError(
        `unknown column '${t.s}' (stream ${def.name} has ${def.columns.map((c) => c.name).join(', ')})`,
        t.pos,
      );
    return [i, def.columns[i]!];
  };
  const value = (col: ColumnDef): Cell => {
    const t = peek();
    if (t.t !== 'str' && t.t !== 'num') fail('expected a value (a quoted string or a number)');
    p++;
    if (col.type === 'STRING' || col.type === 'TEXT') return t.s;
    if (col.type === 'TIMESTAMP') {
      const v = parseTimestamp(t.s);
      if (v === null) throw new QueryError(`'${t.s}' is not a timestamp`, t.pos);
      return v;
    }
    const n = Number(t.s);
    if (!Number.isFinite(n))
      throw new QueryError(`'${t.s}' is not a number (column ${col.name} is ${col.type})`, t.pos);
    // an INT cell holds integers up to 2^53; a literal past it is rounded (9007199254740993 matched
    // 9007199254740992), so it is refused
    if (col.type === 'INT' && Math.abs(n) > Number.MAX_SAFE_INTEGER)
      throw new QueryError(
        `'${t.s}' is past 2^53, where INT values are not exact (column ${col.name})`,
        t.pos,
      );
    return n;
  };
  const orE = (): Expr => {
    if (++depth > queryDepthMax) fail(`nesting deeper than ${queryDepthMax}`);
    const terms = [andE()];
    while (isKw('OR')) {
      p++;
      terms.push(andE());
    }
    depth--;
    return balanced(terms, (a, b) => ({ k: 'or', a, b }));
  };
  const andE = (): Expr => {
    const terms = [unary()];
    while (isKw('AND')) {
      p++;
      terms.push(unary());
    }
    return balanced(terms, (a, b) => ({ k: 'and', a, b }));
  };
  const unary = (): Expr => {
    if (isKw('NOT')) {
      p++;
      if (++depth > queryDepthMax) fail(`nesting deeper than ${queryDepthMax}`);
      const a = unary();
      depth--;
      return { k: 'not', a };
    }
    if (isOp('(')) {
      p++;
      const e = orE();
      if (!isOp(')')) fail("expected ')'");
      p++;
      return e;
    }
    const t = peek();
    if (t.t !== 'id') fail('expected a column name');
    p++;
    const [col, cdef] = colOf(t);
    let negate = false;
    if (isKw('NOT')) {
      p++;
      negate = true;
      if (!isKw('IN')) fail('expected IN after NOT');
    }
    if (isKw('IN')) {
      p++;
      if (!isOp('(')) fail("expected '(' after IN");
      p++;
      const vs = [value(cdef)];
      while (isOp(',')) {
        p++;
        vs.push(value(cdef));
      }
      if (!isOp(')')) fail("expected ')' to close IN");
      p++;
      const e: Expr = { k: 'in', col, vs };
      return negate ? { k: 'not', a: e } : e;
    }
    if (isKw('CONTAINS')) {
      p++;
      const v = peek();
      if (v.t !== 'str') fail('expected a quoted string after CONTAINS');
      p++;
      if (cdef.type !== 'STRING' && cdef.type !== 'TEXT')
        throw new QueryError(`CONTAINS needs a STRING or TEXT column; ${cdef.name} is ${cdef.type}`, t.pos);
      const tokens = wholeTokens(v.s);
      if (tokens.length === 0) throw new QueryError(`'${v.s}' has no tokens to look for`, v.pos);
      return { k: 'contains', col, tokens };
    }
    const o = peek();
    if (o.t !== 'op' || !['=', '!=', '<', '<=', '>', '>='].includes(o.s))
      fail('expected =, !=, <, <=, >, >=, IN or CONTAINS');
    p++;
    return { k: 'cmp', col, op: o.s as CmpOp, v: value(cdef) };
  };
  const e = orE();
  if (peek().t !== 'eof') fail('expected AND, OR or end of expression');
  return e;
}

function cmp(a: Cell, b: Cell): number {
  if (typeof a === 'number' && typeof b === 'number') return a < b ? -1 : a > b ? 1 : 0;
  const x = String(a);
  const y = String(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Does the row match? The one definition both the index path and the brute-force oracle use. */
export function evalExpr(e: Expr, row: Row): boolean {
  switch (e.k) {
    case 'true':
      return true;
    case 'and':
      return evalExpr(e.a, row) && evalExpr(e.b, row);
    case 'or':
      return evalExpr(e.a, row) || evalExpr(e.b, row);
    case 'not':
      return !evalExpr(e.a, row);
    case 'in': {
      const v = row[e.col];
      if (v === null || v === undefined) return false;
      for (const x of e.vs) if (x !== null && cmp(v, x) === 0) return true;
      return false;
    }
    case 'contains': {
      const v = row[e.col];
      if (typeof v !== 'string') return false;
      const have = new Set(wholeTokens(v));
      for (const t of e.tokens) if (!have.has(t)) return false;
      return true;
    }
    case 'cmp': {
      const v = row[e.col];
      if (v === null || v === undefined || e.v === null) return e.op === '!=';
      const c = cmp(v, e.v);
      switch (e.op) {
        case '=':
          return c === 0;
        case '!=':
          return c !== 0;
        case '<':
          return c < 0;
        case '<=':
          return c <= 0;
        case '>':
          return c > 0;
        case '>=':
          return c >= 0;
      }
    }
  }
}

/** Could any row of a block with these per-column min/max match? False only when none can. */
export function mayMatchRange(e: Expr, min: Cell[], max: Cell[]): boolean {
  switch (e.k) {
    case 'and':
      return mayMatchRange(e.a, min, max) && mayMatchRange(e.b, min, max);
    case 'or':
      return mayMatchRange(e.a, min, max) || mayMatchRange(e.b, min, max);
    case 'cmp': {
      const lo = min[e.col];
      const hi = max[e.col];
      if (typeof lo !== 'number' || typeof hi !== 'number' || typeof e.v !== 'number') return true;
      switch (e.op) {
        case '=':
          return e.v >= lo && e.v <= hi;
        case '<':
          return lo < e.v;
        case '<=':
          return lo <= e.v;
        case '>':
          return hi > e.v;
        case '>=':
          return hi >= e.v;
        default:
          return true;
      }
    }
    default:
      return true;
  }
}

/**
 * Substrings that must occur in a column's JSON text for any row to match: the tokens of a CONTAINS and
 * the JSON form of a string compared with `=`, on every AND path. Only ASCII needles: JSON.stringify
 * leaves those unchanged inside a string, so absence from the text proves no row matches.
 */
export function requiredNeedles(
  e: Expr,
  out: { col: number; needle: string; raw: string }[] = [],
): { col: number; needle: string; raw: string }[] {
  const ascii = (s: string) => /^[\x20-\x7e]*$/.test(s);
  switch (e.k) {
    case 'and':
      requiredNeedles(e.a, out);
      requiredNeedles(e.b, out);
      break;
    case 'contains':
      for (const t of e.tokens) if (ascii(t)) out.push({ col: e.col, needle: t, raw: t });
      break;
    case 'cmp':
      if (e.op === '=' && typeof e.v === 'string' && ascii(e.v))
        out.push({ col: e.col, needle: JSON.stringify(e.v), raw: e.v });
      break;
    default:
      break;
  }
  return out;
}

/** The columns an expression reads. */
export function columnsOf(e: Expr, out = new Set<number>()): Set<number> {
  switch (e.k) {
    case 'and':
    case 'or':
      columnsOf(e.a, out);
      columnsOf(e.b, out);
      break;
    case 'not':
      columnsOf(e.a, out);
      break;
    case 'true':
      break;
    default:
      out.add(e.col);
  }
  return out;
}
