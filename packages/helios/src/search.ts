/**
 * What a search computes apart from the Stream's state: the plan of index keys an expression needs, which
 * children of an index node and which pages of a block may hold them, and the rows of a page that match.
 */

import { checkWhole, kindOf, shown } from '@strata/cli';
import type { BlockReader } from './block.js';
import { parseCursor } from './cursor.js';
import type { StreamDef } from './ddl.js';
import { type Cell, type Row, tokenCharsMax, tokenize } from './formats.js';
import { hashKey, tokenKey, valueKey } from './keys.js';
import type { NodeHeader } from './node.js';
import { balanced, type Expr, evalExpr } from './query.js';

export interface SearchOptions {
  /** false: skip the index and scan every block (same rows, slower). */
  useIndex?: boolean;
  limit?: number;
  since?: number;
  until?: number;
  /**
   * Continue after the page that returned this cursor (its `cursor`): only rows at or after its position
   * in log order (cursor.ts). A malformed one is a CursorError.
   */
  cursor?: string;
}

/**
 * Refuses what a search cannot mean, naming it: an expression that is not one (parse one with
 * `Stream.parse`), a limit that is not a whole number of at least 0 (0: the stats alone), a since or until
 * that is not a time in milliseconds, a cursor that is not one a search returned. Before, a limit of -1 found nothing, NaN everything, 1.5 two rows,
 * and a since of NaN nothing.
 */
export function checkSearch(expr: unknown, opts: SearchOptions): void {
  if (typeof expr !== 'object' || expr === null || typeof (expr as { k?: unknown }).k !== 'string')
    throw new TypeError(`search: expected a query expression (from Stream.parse), got ${kindOf(expr)}`);
  const { limit, since, until, useIndex, cursor } = opts;
  if (limit !== undefined) checkWhole('search: limit', limit, 0);
  if (cursor !== undefined) parseCursor(cursor);
  for (const [name, v] of [
    ['since', since],
    ['until', until],
  ] as const)
    if (v !== undefined && !(typeof v === 'number' && Number.isFinite(v)))
      throw new RangeError(`search: ${name} must be a time in milliseconds since the epoch, got ${shown(v)}`);
  if (useIndex !== undefined && typeof useIndex !== 'boolean')
    throw new TypeError(`search: useIndex must be true or false, got ${kindOf(useIndex)}`);
}

export interface SearchStats {
  blocksTotal: number;
  blocksIndexed: number;
  tailBlocks: number;
  nodesRead: number;
  orphansVisited: number;
  candidateBlocks: number;
  prunedByMinMax: number;
  /** Blocks read of which no page was tested (key filters, or a needle the query needs is absent). */
  prunedByNeedle: number;
  blocksRead: number;
  /** Pages of the blocks read that were inflated and tested, and those skipped by key filter or needle. */
  pagesRead: number;
  pagesSkipped: number;
  /** Bytes of block objects fetched, and the (range) gets that fetched them. */
  blockBytesFetched: number;
  blockGets: number;
  /** Bytes of index node objects fetched (whole or in parts), and the gets that fetched them. */
  nodeBytesFetched: number;
  nodeGets: number;
  rowsScanned: number;
  rowsMatched: number;
  levels: { level: number; nodes: number; watermark: number }[];
}

export interface SearchResult {
  rows: Row[];
  /** The block sequence number of each row. */
  seqs: number[];
  /**
   * Where the next page starts (pass it as `cursor`), when the search stopped at its limit: more rows may
   * match after the last one returned. Absent when the search saw every row it could match.
   */
  cursor?: string;
  stats: SearchStats;
}

export type Plan =
  | { p: 'all' }
  | { p: 'none' }
  | { p: 'key'; key: number }
  | { p: 'and' | 'or'; a: Plan; b: Plan };

/** What a search needs of an index node: its header, and the children that hold a key. */
export interface NodeView {
  header: NodeHeader;
  find(key: number): Promise<Uint32Array> | Uint32Array;
}

/**
 * The rows of page p that match `e` (row indexes within the page): a row whose needle columns lack a
 * needle is rejected before the other columns are looked at. Counts rows scanned and matched.
 */
export function matchingRows(
  e: Expr,
  blk: BlockReader,
  p: number,
  needles: { col: number; needle: string }[],
  used: Set<number>,
  stats: SearchStats,
  /** Rows of the page before this one are passed over (a search cursor's position inside the page). */
  from = 0,
): number[] {
  const n = blk.pages[p]!.rows;
  stats.rowsScanned += n;
  let rows: number[];
  if (needles.length > 0) {
    // the rows whose cell text holds the needles, found in the page's column text: no column is parsed
    const first = needles[0]!;
    rows = blk.pageRowsWith(p, first.col, first.needle);
    if (from > 0) rows = rows.filter((i) => i >= from);
    for (let k = 1; k < needles.length && rows.length > 0; k++) {
      const nd = needles[k]!;
      rows = rows.filter((i) => blk.pageCellHas(p, i, nd.col, nd.needle));
    }
  } else rows = Array.from({ length: Math.max(0, n - from) }, (_, i) => i + from);
  if (rows.length === 0) return rows;
  const usedCols: number[] = [...used];
  // The row loop is a function of its own: the first searches of a process optimize whatever holds a hot
  // loop, and one that also reached pageColumn (inflate, TextDecoder, JSON.parse) through inlining took
  // TurboFan 8-26 ms a compile, twice.
  const out =
    rows.length * 8 > n
      ? verifyRows(
          e,
          rows,
          usedCols,
          usedCols.map((c) => blk.pageColumn(p, c)),
          blk.ncols,
        )
      : verifyCells(e, rows, usedCols, blk, p);
  stats.rowsMatched += out.length;
  return out;
}

/** The rows of `rows` that match `e`, given the columns `usedCols` (cells `cols`) the expression reads. */
function verifyRows(e: Expr, rows: number[], usedCols: number[], cols: Cell[][], ncols: number): number[] {
  const out: number[] = [];
  const partial: Row = new Array(ncols).fill(null);
  for (const i of rows) {
    for (let j = 0; j < cols.length; j++) partial[usedCols[j]!] = cols[j]![i] ?? null;
    if (evalExpr(e, partial)) out.push(i);
  }
  return out;
}

/** verifyRows for a few rows of page p: their cells are parsed alone. */
function verifyCells(e: Expr, rows: number[], usedCols: number[], blk: BlockReader, p: number): number[] {
  const out: number[] = [];
  const partial: Row = new Array(blk.ncols).fill(null);
  for (const i of rows) {
    for (const c of usedCols) partial[c] = blk.pageCell(p, i, c);
    if (evalExpr(e, partial)) out.push(i);
  }
  return out;
}

/** Whether a page whose key filter answers `has` may hold a row the plan selects. */
export function pageMay(p: Plan, has: (key: number) => boolean): boolean {
  switch (p.p) {
    case 'all':
      return true;
    case 'none':
      return false;
    case 'key':
      return has(p.key);
    case 'and':
      return pageMay(p.a, has) && pageMay(p.b, has);
    case 'or':
      return pageMay(p.a, has) || pageMay(p.b, has);
  }
}

/** The index keys an expression needs, as a plan over the stream's indexed columns. */
export function planFor(e: Expr, def: StreamDef): Plan {
  const byValue = (col: number) => def.index.some((d) => !d.tokens && d.column === def.columns[col]!.name);
  const byToken = (col: number) => def.index.some((d) => d.tokens && d.column === def.columns[col]!.name);
  const allTokens = (col: number, toks: string[]): Plan =>
    balanced(
      // the index keys a token cut to tokenCharsMax (a CONTAINS holds its tokens whole)
      toks.map((t): Plan => ({ p: 'key', key: hashKey(tokenKey(col, t.slice(0, tokenCharsMax))) })),
      (a, b) => ({ p: 'and', a, b }),
    );
  switch (e.k) {
    case 'and':
      return { p: 'and', a: planFor(e.a, def), b: planFor(e.b, def) };
    case 'or':
      return { p: 'or', a: planFor(e.a, def), b: planFor(e.b, def) };
    case 'cmp':
      if (e.op !== '=' || e.v === null) return { p: 'all' };
      if (byValue(e.col)) return { p: 'key', key: hashKey(valueKey(e.col, e.v)) };
      if (byToken(e.col) && typeof e.v === 'string') {
        const toks = tokenize(e.v);
        if (toks.length > 0) return allTokens(e.col, toks);
      }
      return { p: 'all' };
    case 'in': {
      if (!byValue(e.col)) return { p: 'all' };
      const vs = e.vs.filter((v): v is string | number => v !== null);
      if (vs.length === 0) return { p: 'none' };
      return balanced(
        vs.map((v): Plan => ({ p: 'key', key: hashKey(valueKey(e.col, v)) })),
        (a, b) => ({ p: 'or', a, b }),
      );
    }
    case 'contains':
      return byToken(e.col) ? allTokens(e.col, e.tokens) : { p: 'all' };
    default:
      return { p: 'all' };
  }
}

/** The children of a node that may hold a match; null means all of them. */
export async function evalPlan(p: Plan, node: NodeView): Promise<Set<number> | null> {
  switch (p.p) {
    case 'all':
      return null;
    case 'none':
      return new Set();
    case 'key':
      return new Set(await node.find(p.key));
    case 'and': {
      const a = await evalPlan(p.a, node);
      if (a && a.size === 0) return a;
      const b = await evalPlan(p.b, node);
      if (!a) return b;
      if (!b) return a;
      return new Set([...a].filter((x) => b.has(x)));
    }
    case 'or': {
      const a = await evalPlan(p.a, node);
      if (!a) return null;
      const b = await evalPlan(p.b, node);
      if (!b) return null;
      for (const x of b) a.add(x);
      return a;
    }
  }
}
