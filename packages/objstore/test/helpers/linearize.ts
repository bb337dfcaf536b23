/**
 * A linearizability checker for one key's history of object store calls (Wing and Gong's search, with
 * Lowe's memo of states seen): is there an order of the calls, each taking effect at one instant between
 * its invocation and its response, in which a register of the key's body gives every answer observed?
 * Histories here are a dozen calls a key, so a search over orders is cheap.
 */
import { etagOf } from '../../src/index.js';

/**
 * What a call observed: its etag or bytes, a failed precondition, or no object; or nothing known (it failed
 * because the store closed under it: a write may have taken effect, at any time after it was invoked).
 */
export type Outcome =
  | { kind: 'ok'; etag?: string; body?: string; size?: number }
  | { kind: 'precondition' }
  | { kind: 'absent' }
  | { kind: 'unknown' };

export interface Call {
  op: 'put' | 'create' | 'replace' | 'del' | 'cdel' | 'get' | 'head';
  /** The body a put writes (text). */
  body?: string;
  /** The etag of an `ifMatch` (replace, cdel). */
  ifMatch?: string;
  range?: { start: number; end: number };
  /** Logical times: every invocation and response takes the next tick of one clock. */
  inv: number;
  res: number;
  out: Outcome;
}

export const etagOfText = (t: string): string => etagOf(Buffer.from(t));

type State = string | undefined;

/** The states `c` may leave from `s`: none when its outcome is not what the register gives there. */
function steps(s: State, c: Call): State[] {
  if (c.out.kind !== 'unknown') {
    const r = step(s, c, c.out);
    return r ? [r.next] : [];
  }
  // no effect, or the effect of its success
  const done = step(s, c, { kind: 'ok', etag: c.body === undefined ? '' : etagOfText(c.body) });
  return done && done.next !== s ? [s, done.next] : [s];
}

/** The state after `c` from `s` had it observed `o`, or null when the register gives another outcome. */
function step(s: State, c: Call, o: Outcome): { next: State } | null {
  const written = () => (o.kind === 'ok' && o.etag === etagOfText(c.body!) ? { next: c.body } : null);
  switch (c.op) {
    case 'put':
      return written();
    case 'create':
      return s === undefined ? written() : o.kind === 'precondition' ? { next: s } : null;
    case 'replace':
      return s !== undefined && etagOfText(s) === c.ifMatch
        ? written()
        : o.kind === 'precondition'
          ? { next: s }
          : null;
    case 'del':
      return o.kind === 'ok' ? { next: undefined } : null;
    case 'cdel':
      return s !== undefined && etagOfText(s) === c.ifMatch
        ? o.kind === 'ok'
          ? { next: undefined }
          : null
        : o.kind === 'precondition'
          ? { next: s }
          : null;
    case 'get': {
      if (s === undefined) return o.kind === 'absent' ? { next: s } : null;
      const want = c.range ? s.slice(c.range.start, c.range.end + 1) : s;
      return o.kind === 'ok' && o.body === want ? { next: s } : null;
    }
    case 'head':
      if (s === undefined) return o.kind === 'absent' ? { next: s } : null;
      return o.kind === 'ok' && o.etag === etagOfText(s) && o.size === Buffer.byteLength(s)
        ? { next: s }
        : null;
  }
}

/**
 * An order of `calls` from `initial` that explains every outcome, as the states after each call; undefined
 * when there is none (the history is not linearizable). At most 30 calls.
 */
export function linearize(calls: readonly Call[], initial: State): State[] | undefined {
  if (calls.length > 30) throw new RangeError(`linearize: ${calls.length} calls, at most 30`);
  const all = (1 << calls.length) - 1;
  const seen = new Set<string>();
  const order: State[] = [];
  const search = (done: number, s: State): boolean => {
    if (done === all) return true;
    const memo = `${done}|${s === undefined ? '-' : `+${s}`}`;
    if (seen.has(memo)) return false;
    let firstRes = Number.POSITIVE_INFINITY;
    for (let i = 0; i < calls.length; i++)
      if (!(done & (1 << i))) firstRes = Math.min(firstRes, calls[i]!.res);
    for (let i = 0; i < calls.length; i++) {
      const c = calls[i]!;
      // only a call invoked before every remaining call's response can take effect next
      if (done & (1 << i) || c.inv > firstRes) continue;
      for (const next of steps(s, c)) {
        order.push(next);
        if (search(done | (1 << i), next)) return true;
        order.pop();
      }
    }
    seen.add(memo);
    return false;
  };
  return search(0, initial) ? order : undefined;
}

/** A history as lines, for a failure's message. */
export function showHistory(calls: readonly Call[], initial: State): string {
  const lines = [...calls]
    .sort((a, b) => a.inv - b.inv)
    .map((c) => {
      const arg = [
        c.body !== undefined ? `'${c.body.slice(0, 24)}'(${etagOfText(c.body).slice(0, 6)})` : '',
        c.ifMatch !== undefined ? `ifMatch ${c.ifMatch.slice(0, 6)}` : '',
        c.range ? `${c.range.start}-${c.range.end}` : '',
      ]
        .filter(Boolean)
        .join(' ');
      const o = c.out;
      const out =
        o.kind === 'ok'
          ? `ok ${o.etag?.slice(0, 6) ?? ''}${o.body !== undefined ? ` '${o.body.slice(0, 24)}'` : ''}`
          : o.kind;
      return `  [${c.inv}, ${c.res}] ${c.op} ${arg} -> ${out}`;
    });
  return `from ${initial === undefined ? 'absent' : `'${initial.slice(0, 24)}'`}:\n${lines.join('\n')}`;
}
