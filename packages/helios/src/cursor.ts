/**
 * A search's cursor: where a search that stopped at its limit stopped, so the next search given it
 * continues strictly after the last row returned.
 *
 * A search returns rows in log order: by block sequence number (the order blocks were acknowledged in the
 * progress log), then by row within the block. That order is total and stable: a block's sequence number
 * never changes, new blocks only get larger ones, and compaction, indexing, tiers and gc change the index
 * and where objects live, never a block's rows. So a position in it is a cursor:
 *
 *   blocks   ... | seq 7: r0 r1 r2 r3 | seq 8: r0 r1 | (ingested later) seq 9: ...
 *                              ^ cursor (seq 7, next row 3): the next page starts at seq 7's r3
 *
 * A page given a cursor returns the matching rows at or after its position: nothing before it reappears,
 * nothing after it is skipped, and rows acknowledged after the first page (all in blocks after every
 * existing one) appear in a later page. Rows erased between pages do not appear. An erasure rewrites a
 * block without its erased rows, which moves the rows after them: a cursor that points inside a block
 * rewritten since it was made (its `rewrites` behind the block's) is mapped through the runs of rows each
 * rewrite removed (its progress record's `erased`). Where a rewrite recorded none (more than
 * `eraseRunsMax` runs, or an older version's) the cursor is refused with a CursorError rather than
 * answered wrong (search again from the start). A block that expired under RETAIN is simply gone.
 *
 * A cursor is a position, not a query: given with another expression, that search continues from there.
 * The text form is `c1.SEQ.ROW.REWRITES` in decimal. It is opaque to callers: pass it back as it was given.
 */

import { kindOf, shown } from '@strata/cli';

export interface CursorPosition {
  /** The block sequence number the next page starts in. */
  seq: number;
  /** The row of that block the next page starts at (rows before it were returned). */
  row: number;
  /** How many times that block had been rewritten by an erasure when the cursor was made. */
  rewrites: number;
}

/** A cursor that is not one this version writes, or one an erasure has since made meaningless. */
export class CursorError extends Error {
  override name = 'CursorError';
}

/** Bound on a cursor's text: its three numbers are safe integers (16 digits each) and its prefix. */
export const cursorCharsMax = 64;

const cursorRe = /^c1\.(0|[1-9][0-9]{0,15})\.(0|[1-9][0-9]{0,15})\.(0|[1-9][0-9]{0,15})$/;

/** The text form of a position. */
export function formatCursor(p: CursorPosition): string {
  return `c1.${p.seq}.${p.row}.${p.rewrites}`;
}

/** Parses a cursor from `formatCursor`; anything else is a CursorError that shows what was given. */
export function parseCursor(text: unknown): CursorPosition {
  const bad = (why: string): never => {
    const s =
      typeof text !== 'string'
        ? kindOf(text)
        : shown(text.length > cursorCharsMax ? `${text.slice(0, cursorCharsMax)}...` : text);
    throw new CursorError(
      `search: malformed cursor ${s}: ${why} (pass back the cursor a search returned, as it was)`,
    );
  };
  if (typeof text !== 'string') return bad('expected a string');
  if (text.length > cursorCharsMax) return bad(`longer than ${cursorCharsMax} characters`);
  const m = cursorRe.exec(text);
  if (!m) return bad('expected c1.SEQ.ROW.REWRITES');
  const [seq, row, rewrites] = [m[1], m[2], m[3]].map(Number) as [number, number, number];
  if (!Number.isSafeInteger(seq) || !Number.isSafeInteger(row) || !Number.isSafeInteger(rewrites))
    return bad('a number past 2^53');
  return { seq, row, rewrites };
}
