/**
 * threshold.config: the suppress and event_filter entries a sensor adds to its rules (Snort 2.9's and
 * Suricata's file; Snort 3 carries the same as its `suppress` and `event_filter` tables):
 *
 *   suppress gen_id G, sig_id S [, track by_src|by_dst|by_either, ip IPSPEC]
 *   event_filter gen_id G, sig_id S, type limit|threshold|both, track by_src|by_dst|by_rule|by_both,
 *       count C, seconds T
 *   threshold ...        the older name of event_filter, the same fields
 *   rate_filter gen_id G, sig_id S, track by_src|by_dst|by_rule|by_both, count C, seconds T,
 *       new_action alert|drop|pass|log|sdrop|reject, timeout T [, apply_to IPSPEC]
 *
 * Fields are `name value`, comma separated, in any order, each once; a line ending in `\` goes on on the
 * next. sig_id 0 means every rule of gen_id, gen_id 0 with sig_id 0 every rule (a sig_id with gen_id 0 is
 * refused, as Suricata does). How the entries apply to a rule (`EventFilters.rateOf`):
 *
 * - suppress: every entry whose gid:sid covers the rule holds its matches (without `ip`: all of them; with:
 *   those whose source, destination or either address is in IPSPEC); flowbits and actions still happen.
 * - event_filter for the rule's own gid:sid: replaces the rule's `threshold:` (Suricata's override); a
 *   rule's `detection_filter:` stays and is asked first, as Snort filters the events a detection_filter
 *   lets through (Suricata's util-threshold-config.c removes a detection_filter too). `count -1` (Snort's)
 *   turns filtering off for that rule.
 * - event_filter with sig_id 0 (or gen_id 0): only for rules that have neither `threshold:` nor
 *   `detection_filter:`, and only when the rule has no entry of its own; gen_id G wins over gen_id 0.
 *   Counting is per rule (gid:sid) and tracked key, whichever entry applies.
 * - rate_filter (the Snort 2.9 manual, 2.4.1 "Rate Filtering"; Suricata reads the same): once a rule has
 *   matched more than `count` times within `seconds` for a tracked key, its matches for that key take
 *   `new_action` instead of the rule's action for `timeout` seconds (0: for good), then count afresh.
 *   Several may cover one rule (its own gid:sid and the wildcards): each counts, and the first tripped one,
 *   in the order of the files, gives the action. `apply_to` (by_src or by_dst only) limits it to tracked
 *   addresses in IPSPEC. It acts before suppress and event_filter, which then govern the alert.
 *
 * Refused with an error naming file:line and the field: unknown fields or values, a second event_filter
 * for one gid:sid, rate_filter's `seconds 0` (Snort allows it only for its gid 135 events, which this engine
 * does not raise) and `apply_to` with by_rule or by_both.
 */

import { addrBytesTest, expandedSpec, splitTopLevel } from './netspec.js';
import type { RateFilterSpec, RateSpec, SuppressSpec } from './threshold.js';

/** A suppress entry of a threshold.config, with its file and line. */
export interface SuppressEntry {
  kind: 'suppress';
  gid: number;
  sid: number;
  /** Absent: every match of the rule. */
  track?: 'by_src' | 'by_dst' | 'by_either';
  /** The address spec as written (`$VAR`s are replaced when an engine takes the entry). */
  ip?: string;
  file: string;
  line: number;
}

/** An event_filter (or threshold) entry of a threshold.config, with its file and line. */
export interface EventFilterEntry {
  kind: 'event_filter';
  gid: number;
  sid: number;
  type: 'limit' | 'threshold' | 'both';
  track: 'by_src' | 'by_dst' | 'by_rule' | 'by_both';
  /** -1: no filter for the rules it covers (it overrides a wider entry). */
  count: number;
  seconds: number;
  file: string;
  line: number;
}

/** A rate_filter entry of a threshold.config, with its file and line. */
export interface RateFilterEntry extends Omit<RateFilterSpec, 'id' | 'applyTo'> {
  kind: 'rate_filter';
  gid: number;
  sid: number;
  /** The address spec as written (by_src, by_dst); `$VAR`s are replaced when an engine takes the entry. */
  applyTo?: string;
  file: string;
  line: number;
}

export type ThresholdEntry = SuppressEntry | EventFilterEntry | RateFilterEntry;

/** A threshold.config entry that cannot be read or applied: the message names file:line and the field. */
export class ThresholdConfigError extends Error {
  override name = 'ThresholdConfigError';
}

/** Lines one entry may span with `\` continuations at most (a bound on what one error can point into). */
export const entryLinesMax = 64;

const idMax = 2 ** 32 - 1;

/**
 * Reads a threshold.config's text. Blank lines and `#` comments are skipped; CRLF and whitespace are taken.
 * Throws a ThresholdConfigError at the first entry it cannot read.
 */
export function parseThresholdConfig(text: string, file = '<threshold>'): ThresholdEntry[] {
  const out: ThresholdEntry[] = [];
  const filters = new Map<string, number>();
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = i + 1;
    let t = lines[i]!.trim();
    if (t === '' || t.startsWith('#')) continue;
    let spanned = 1;
    while (t.endsWith('\\') && i + 1 < lines.length) {
      if (++spanned > entryLinesMax)
        throw new ThresholdConfigError(
          `${file}:${line}: an entry continues over more than ${entryLinesMax} lines`,
        );
      t = `${t.slice(0, -1)} ${lines[++i]!.trim()}`;
    }
    const entry = parseEntry(t, file, line);
    if (entry.kind === 'event_filter') {
      const key = `${entry.gid}:${entry.sid}`;
      const had = filters.get(key);
      // Snort refuses a second event_filter for one gid:sid; which one Suricata applies depends on order
      if (had !== undefined)
        throw new ThresholdConfigError(
          `${file}:${line}: event_filter: gen_id ${entry.gid}, sig_id ${entry.sid} already has one (line ${had})`,
        );
      filters.set(key, line);
    }
    out.push(entry);
  }
  return out;
}

function parseEntry(t: string, file: string, line: number): ThresholdEntry {
  const m = /^([A-Za-z_]+)\s*(.*)$/.exec(t);
  const word = m?.[1]?.toLowerCase() ?? '';
  const fail = (what: string, msg: string) => new ThresholdConfigError(`${file}:${line}: ${what}: ${msg}`);
  if (word !== 'suppress' && word !== 'event_filter' && word !== 'threshold' && word !== 'rate_filter')
    throw fail('entry', `expected suppress, event_filter, threshold or rate_filter, got '${t.slice(0, 40)}'`);
  const kind = word === 'suppress' ? 'suppress' : word === 'rate_filter' ? 'rate_filter' : 'event_filter';
  const names =
    kind === 'suppress'
      ? ['gen_id', 'sig_id', 'track', 'ip']
      : kind === 'rate_filter'
        ? ['gen_id', 'sig_id', 'track', 'count', 'seconds', 'new_action', 'timeout', 'apply_to']
        : ['gen_id', 'sig_id', 'type', 'track', 'count', 'seconds'];
  const f = new Map<string, string>();
  for (const part of splitFields(m![2]!)) {
    if (part === '') throw fail(word, 'an empty field (a comma too many?)');
    const fm = /^([A-Za-z_]+)\s*(.*)$/.exec(part);
    const name = fm?.[1]?.toLowerCase() ?? '';
    if (!names.includes(name))
      throw fail(word, `unknown field '${part.slice(0, 30)}' (expected ${names.join(', ')})`);
    if (f.has(name)) throw fail(word, `${name} is given twice`);
    const value = fm![2]!.trim();
    if (value === '') throw fail(word, `${name} has no value`);
    f.set(name, value);
  }
  const id = (name: string): number => {
    const v = f.get(name);
    if (v === undefined) throw fail(word, `${name} is missing`);
    const n = /^\d{1,10}$/.test(v) ? Number(v) : Number.NaN;
    if (!(n <= idMax)) throw fail(word, `bad ${name} '${v}' (a whole number, 0 for all)`);
    return n;
  };
  const gid = id('gen_id');
  const sid = id('sig_id');
  if (gid === 0 && sid !== 0)
    throw fail(word, `sig_id ${sid} with gen_id 0 (give the rule's gen_id, or 0 for both)`);
  const oneOf = <T extends string>(name: string, values: readonly T[]): T => {
    const v = f.get(name);
    if (v === undefined) throw fail(word, `${name} is missing`);
    if (!values.includes(v.toLowerCase() as T))
      throw fail(word, `bad ${name} '${v}' (one of ${values.join(', ')})`);
    return v.toLowerCase() as T;
  };
  // variables are replaced when an engine takes the entry (EventFilters); the rest is checked now
  const checkedIp = (name: string): string => {
    const ip = f.get(name)!;
    try {
      if (!ip.includes('$')) addrBytesTest(ip, {});
    } catch (err) {
      throw fail(word, `bad ${name} '${ip}': ${(err as Error).message}`);
    }
    return ip;
  };
  if (kind === 'suppress') {
    const e: SuppressEntry = { kind, gid, sid, file, line };
    if (!f.has('track') && !f.has('ip')) return e;
    if (!f.has('ip')) throw fail(word, 'track needs ip (suppress ... track by_src, ip 10.0.0.0/8)');
    e.track = oneOf('track', ['by_src', 'by_dst', 'by_either'] as const);
    e.ip = checkedIp('ip');
    return e;
  }
  // (an event_filter's type is asked first, as before rate_filter was read)
  const type = kind === 'event_filter' ? oneOf('type', ['limit', 'threshold', 'both'] as const) : 'limit';
  const track = oneOf('track', ['by_src', 'by_dst', 'by_rule', 'by_both'] as const);
  const countText = f.get('count');
  if (countText === undefined) throw fail(word, 'count is missing');
  const count = countText === '-1' ? -1 : /^\d{1,10}$/.test(countText) ? Number(countText) : Number.NaN;
  if (
    kind === 'rate_filter'
      ? !(count >= 1 && count <= idMax)
      : !(count === -1 || (count >= 1 && count <= idMax))
  )
    throw fail(
      word,
      `bad count '${countText}' (a whole number from 1${kind === 'rate_filter' ? '' : ', or -1 for no filter'})`,
    );
  const secondsText = f.get('seconds');
  if (secondsText === undefined) throw fail(word, 'seconds is missing');
  const seconds = /^\d{1,10}$/.test(secondsText) ? Number(secondsText) : Number.NaN;
  // Snort reads 0 as a count over the whole run, where the rule keyword's 0 is a window of one instant
  if (!(seconds >= 1 && seconds <= idMax))
    throw fail(word, `bad seconds '${secondsText}' (a whole number from 1)`);
  if (kind === 'rate_filter') {
    const newAction = oneOf('new_action', ['alert', 'drop', 'pass', 'log', 'sdrop', 'reject'] as const);
    const timeoutText = f.get('timeout');
    if (timeoutText === undefined) throw fail(word, 'timeout is missing');
    const timeout = /^\d{1,10}$/.test(timeoutText) ? Number(timeoutText) : Number.NaN;
    if (!(timeout <= idMax)) throw fail(word, `bad timeout '${timeoutText}' (a whole number, 0 for good)`);
    const e: RateFilterEntry = { kind, gid, sid, track, count, seconds, newAction, timeout, file, line };
    if (f.has('apply_to')) {
      if (track !== 'by_src' && track !== 'by_dst')
        throw fail(word, `apply_to needs track by_src or by_dst, not ${track}`);
      e.applyTo = checkedIp('apply_to');
    }
    return e;
  }
  return { kind, gid, sid, type, track, count, seconds, file, line };
}

/** Fields split at commas outside `[...]` (an ip list holds commas); none for an empty text. */
function splitFields(s: string): string[] {
  return s.trim() === '' ? [] : splitTopLevel(s);
}

/**
 * threshold.config's entries as one engine applies them: indexed by gid:sid, their ip specs with the
 * engine's variables replaced (an undefined variable or a bad spec throws a ThresholdConfigError naming
 * the entry's file:line).
 */
export class EventFilters {
  private readonly suppress = new Map<string, SuppressSpec[]>();
  private readonly filters = new Map<string, EventFilterEntry>();
  /** rate_filter entries of the latency events (gen_id 134): they change nothing, the events have no action. */
  private readonly inert: RateFilterEntry[] = [];
  /** rate_filter entries by `gid:sid` (wildcards too), each list in the order of the files. */
  private readonly rateFilters = new Map<string, RateFilterSpec[]>();
  /** The entries naming one gid:sid (not a wildcard), by `gid:sid`, until a rule or event of it is asked for. */
  private readonly unasked = new Map<string, ThresholdEntry[]>();

  constructor(entries: readonly ThresholdEntry[], vars: Record<string, string>) {
    for (const e of entries) {
      const key = `${e.gid}:${e.sid}`;
      if (e.sid !== 0) this.unasked.set(key, [...(this.unasked.get(key) ?? []), e]);
      if (e.kind === 'event_filter') {
        // as within a file (parseThresholdConfig): a second one for a gid:sid, here from another file, is
        // refused (the first one was kept, silently)
        const had = this.filters.get(key);
        if (had)
          throw new ThresholdConfigError(
            `${e.file}:${e.line}: event_filter: gen_id ${e.gid}, sig_id ${e.sid} already has one (${had.file}:${had.line})`,
          );
        this.filters.set(key, e);
        continue;
      }
      if (e.kind === 'rate_filter') {
        if (e.gid === latencyEventsGid) this.inert.push(e);
        const spec: RateFilterSpec = {
          id: this.rateFilterCount++,
          track: e.track,
          count: e.count,
          seconds: e.seconds,
          newAction: e.newAction,
          timeout: e.timeout,
        };
        if (e.applyTo !== undefined) spec.applyTo = expandedIp(e, 'rate_filter', 'apply_to', e.applyTo, vars);
        this.rateFilters.set(key, [...(this.rateFilters.get(key) ?? []), spec]);
        continue;
      }
      let spec: SuppressSpec = { track: 'by_rule' };
      if (e.ip !== undefined && e.track !== undefined)
        spec = { track: e.track, ip: expandedIp(e, 'suppress', 'ip', e.ip, vars) };
      const list = this.suppress.get(key) ?? [];
      list.push(spec);
      this.suppress.set(key, list);
    }
  }

  /** Rate filters numbered so far (each counts on keys of its own). */
  private rateFilterCount = 0;

  /**
   * The rate_filters covering rule gid:sid (its own and the wildcards'), in the order of the files;
   * undefined when none does.
   */
  rateFiltersOf(gid: number, sid: number): RateFilterSpec[] | undefined {
    this.unasked.delete(`${gid}:${sid}`);
    if (this.rateFilters.size === 0) return undefined;
    const out: RateFilterSpec[] = [];
    for (const key of new Set([`${gid}:${sid}`, `${gid}:0`, '0:0']))
      for (const x of this.rateFilters.get(key) ?? []) out.push(x);
    return out.length === 0 ? undefined : out.sort((a, b) => a.id - b.id);
  }

  /**
   * The rate spec of rule gid:sid whose own `threshold:` or `detection_filter:` is `own`: unchanged when no
   * entry covers the rule (the same object, or undefined).
   */
  rateOf(gid: number, sid: number, own: RateSpec | undefined): RateSpec | undefined {
    this.unasked.delete(`${gid}:${sid}`);
    const suppress: SuppressSpec[] = [];
    for (const key of new Set([`${gid}:${sid}`, `${gid}:0`, '0:0']))
      for (const x of this.suppress.get(key) ?? []) suppress.push(x);
    const mine = this.filters.get(`${gid}:${sid}`);
    const wide = mine ? undefined : (this.filters.get(`${gid}:0`) ?? this.filters.get('0:0'));
    let rate = own;
    if (mine) {
      // the file's filter replaces the rule's threshold; a detection_filter stays, asked first
      const kept = own?.kind === 'detection_filter' ? own : undefined;
      rate = mine.count === -1 ? kept : chain(kept, filterSpec(mine));
    } else if (wide && wide.count !== -1 && own === undefined) rate = filterSpec(wide);
    if (suppress.length === 0) return rate;
    const base: RateSpec = rate ?? {
      kind: 'suppress',
      type: 'suppress',
      track: 'by_rule',
      count: 0,
      seconds: 0,
      multiplier: 1,
    };
    return { ...base, suppress };
  }

  /**
   * The entries naming a gid:sid no rule or event of the engine had (a rule not loaded, a typo): they do
   * nothing, which a sensor's operator should hear of (Suricata warns of a suppress for an unknown rule).
   * Meaningful once every rule was compiled and the engine's own events asked for.
   */
  unmatched(): ThresholdEntry[] {
    // (an inert entry of a sid the engine does not raise is both unasked and inert: listed once)
    const out = new Set([...this.unasked.values()].flat().concat(this.inert));
    return [...out].sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line);
  }
}

/** `EventFilters.unmatched`'s entries as warnings naming file:line. */
export function unmatchedWarnings(entries: readonly ThresholdEntry[]): string[] {
  return entries.map((e) =>
    e.kind === 'rate_filter' && e.gid === latencyEventsGid
      ? `${e.file}:${e.line}: rate_filter gen_id ${e.gid}, sig_id ${e.sid}: a latency event has no action to change (the entry does nothing)`
      : `${e.file}:${e.line}: ${e.kind} gen_id ${e.gid}, sig_id ${e.sid}: no rule loaded has this gid:sid (the entry does nothing)`,
  );
}

/** The generator of the engine's latency events (its only events that are not a rule's). */
export const latencyEventsGid = 134;

/** An entry's address spec with the engine's variables replaced (an error names its file:line and field). */
function expandedIp(
  e: { file: string; line: number },
  word: string,
  field: string,
  spec: string,
  vars: Record<string, string>,
): string {
  let ip: string | undefined;
  try {
    addrBytesTest(spec, vars);
    ip = expandedSpec(spec, vars);
  } catch (err) {
    throw new ThresholdConfigError(
      `${e.file}:${e.line}: ${word}: bad ${field} '${spec}': ${(err as Error).message}`,
    );
  }
  if (ip === undefined)
    throw new ThresholdConfigError(
      `${e.file}:${e.line}: ${word}: ${field} '${spec}' names an undefined variable`,
    );
  return ip;
}

function filterSpec(e: EventFilterEntry): RateSpec {
  return {
    kind: 'event_filter',
    type: e.type,
    track: e.track,
    count: e.count,
    seconds: e.seconds,
    multiplier: 1,
  };
}

function chain(first: RateSpec | undefined, then: RateSpec): RateSpec {
  return first ? { ...first, next: then } : then;
}
