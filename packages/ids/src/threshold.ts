/**
 * Alert rate control per rule: `threshold` (types limit, threshold, both, backoff) and `detection_filter`,
 * each tracked by source, destination, both, rule or flow, as the Snort 2.9 manual (3.7.x "threshold",
 * 3.7.10 "detection_filter") and Suricata's rule thresholding docs (`backoff`, `by_flow`, `unique_on`)
 * describe them:
 *
 * | type             | alerts                                                                  |
 * | ---------------- | ----------------------------------------------------------------------- |
 * | limit            | the first `count` matches of each `seconds` window                      |
 * | threshold        | every `count`-th match within a window                                  |
 * | both             | once per window, at the `count`-th match                                |
 * | backoff          | at match count, count*m, count*m^2, ... (m = `multiplier`)              |
 * | detection_filter | every match after the first `count` of a window (with `unique_on`: every |
 * |                  | match once more than `count` distinct ports were seen in the window)    |
 *
 * A window starts at the first match of a tracked key and lasts `seconds`. State is bounded: at most
 * `trackedMax` keys (the least recently used goes first).
 *
 * threshold.config (threshold-config.ts) adds to a rule's spec: its `suppress` entries, asked first (a match
 * one of them holds back is not counted by any filter), and `event_filter` specs chained by `next`, each
 * asked only when the one before let the match through (Suricata's order: the rule's detection_filter,
 * then the file's filter). Each kind counts on its own keys, per gid:sid.
 */

import { addrTest, sharedEntry } from './netspec.js';

export interface RateSpec {
  /** `event_filter`: threshold.config's; `suppress`: a spec that only carries `suppress` entries. */
  kind: 'threshold' | 'detection_filter' | 'event_filter' | 'suppress';
  /** `suppress`: counts nothing, lets every match through (its `suppress` entries are asked first). */
  type: 'limit' | 'threshold' | 'both' | 'backoff' | 'detection_filter' | 'suppress';
  track: 'by_src' | 'by_dst' | 'by_both' | 'by_rule' | 'by_flow';
  count: number;
  seconds: number;
  multiplier: number;
  uniqueOn?: 'src_port' | 'dst_port';
  /** threshold.config's suppress entries for the rule: a match any of them holds does not alert. */
  suppress?: SuppressSpec[];
  /** The filter asked next when this one lets a match through. */
  next?: RateSpec;
}

/**
 * A suppress entry as it applies: `by_rule` (no ip) holds every match; the others hold a match whose source
 * (`by_src`), destination (`by_dst`) or either address is in `ip`, an address spec with its variables
 * already replaced (netspec.ts reads it: CIDR, IPv6, `!`, `[...]` lists, ranges). Plain data: specs go
 * from worker threads to the merger (`Alert.rate`).
 */
export interface SuppressSpec {
  track: 'by_src' | 'by_dst' | 'by_either' | 'by_rule';
  ip?: string;
}

/**
 * What the filters of a rule decide on one of its matches, as Suricata's PacketAlertThreshold does:
 * - `alert`;
 * - `silent`: no alert, but the rule's action still applies (a suppress entry, a limit past its count,
 *   both past its one alert, a backoff between its alerts);
 * - `none`: no alert and no action, as if the rule had not matched (a detection_filter up to its count, a
 *   threshold or both short of theirs): an IPS drop rule with `detection_filter: ..., count 5` drops from the
 *   sixth match on, not from the first.
 */
export type RateDecision = 'alert' | 'silent' | 'none';

/**
 * A threshold.config rate_filter as it applies (`EventFilters.rateFiltersOf`; threshold-config.ts has the
 * semantics): `id` numbers it among the engine's, so each counts on keys of its own; `applyTo` has its
 * variables replaced.
 */
export interface RateFilterSpec {
  id: number;
  track: 'by_src' | 'by_dst' | 'by_rule' | 'by_both';
  count: number;
  seconds: number;
  newAction: 'alert' | 'drop' | 'pass' | 'log' | 'sdrop' | 'reject';
  /** Seconds the new action lasts once tripped; 0: for good. */
  timeout: number;
  applyTo?: string;
}

/**
 * What a RateLimiter held back: matches a suppress entry held, and those a filter held; and matches whose
 * action a rate_filter changed.
 */
export interface RateCounts {
  alertsSuppressed: number;
  alertsRateFiltered: number;
  actionsRateFiltered: number;
}

/** A rate_filter's state for one rule and tracked key: its window, or the time its new action ends. */
interface RateFilterState {
  startUs: number;
  count: number;
  /** When the new action ends (Infinity: never); -1 while not tripped. */
  untilUs: number;
}

/** Parses `type limit, track by_src, count 5, seconds 60` (threshold) or `track ..., count, seconds`. */
export function parseRate(kind: 'threshold' | 'detection_filter', v: string): RateSpec {
  // a field given twice (the last was taken), one misspelt or not of this option (ignored: detection_filter's
  // `type limit`) is refused, as Snort 3's detection_filter takes track, count and seconds only
  const names =
    kind === 'detection_filter'
      ? ['track', 'count', 'seconds', 'unique_on']
      : ['type', 'track', 'count', 'seconds', 'multiplier', 'unique_on'];
  const f: Record<string, string> = {};
  for (const part of v.split(',')) {
    const [k, val] = part.trim().split(/\s+/, 2) as [string, string | undefined];
    if (!k) continue;
    if (!names.includes(k)) throw new Error(`${kind}: unknown field '${k}' (${names.join(', ')})`);
    if (f[k] !== undefined) throw new Error(`${kind}: ${k} is given twice`);
    f[k] = val ?? '';
  }
  const type = kind === 'detection_filter' ? 'detection_filter' : f.type;
  if (!['limit', 'threshold', 'both', 'backoff', 'detection_filter'].includes(type ?? ''))
    throw new Error(`${kind}: unknown type '${f.type ?? ''}'`);
  const track = f.track ?? '';
  if (!['by_src', 'by_dst', 'by_both', 'by_rule', 'by_flow'].includes(track))
    throw new Error(`${kind}: unknown track '${track}'`);
  // whole numbers, count from 1 (Snort's ranges); a `count` or `seconds` without its number read as 0
  const count = /^\d+$/.test(f.count ?? '') ? Number(f.count) : Number.NaN;
  if (!(count >= 1)) throw new Error(`${kind}: bad count '${f.count ?? ''}' (a whole number from 1)`);
  const seconds = type === 'backoff' ? 0 : /^\d+$/.test(f.seconds ?? '') ? Number(f.seconds) : Number.NaN;
  if (!(seconds >= 0)) throw new Error(`${kind}: bad seconds '${f.seconds ?? ''}' (a whole number)`);
  // Snort 3's range for detection_filter (1:): a window of 0 s held each match alone
  if (kind === 'detection_filter' && seconds < 1)
    throw new Error(`detection_filter: seconds ${f.seconds} is below 1`);
  const multiplier = type === 'backoff' ? Number(f.multiplier) : 1;
  if (!Number.isFinite(multiplier) || multiplier < 1)
    throw new Error(`${kind}: bad multiplier '${f.multiplier}'`);
  const spec: RateSpec = {
    kind,
    type: type as RateSpec['type'],
    track: track as RateSpec['track'],
    count,
    seconds,
    multiplier,
  };
  if (f.unique_on !== undefined) {
    if (f.unique_on !== 'src_port' && f.unique_on !== 'dst_port')
      throw new Error(`${kind}: bad unique_on '${f.unique_on}'`);
    spec.uniqueOn = f.unique_on;
  }
  return spec;
}

interface Entry {
  startUs: number;
  count: number;
  /** backoff: the match number that alerts next. */
  next: number;
  alerted: boolean;
  ports?: Set<number>;
}

/** Keys tracked at most (rule and tracked value together). */
export const trackedMax = 65536;

export interface RateEvent {
  sid: number;
  gid: number;
  src: string;
  dst: string;
  sp: number;
  dp: number;
  flowId: number;
  tsUs: number;
}

/** Suppress ip tests built at most per limiter (each spec's text is tested on an event's address text). */
export const suppressTestsMax = 4096;

export class RateLimiter {
  private readonly entries = new Map<string, Entry>();
  private readonly ipTests = new Map<string, (ip: string) => boolean>();
  /** Matches that did not alert, by cause; `countInto` points it at the engine's stats. */
  private counts: RateCounts = { alertsSuppressed: 0, alertsRateFiltered: 0, actionsRateFiltered: 0 };
  private readonly rateFilterStates = new Map<string, RateFilterState>();

  /** Matches that did not alert: held by a suppress entry or by a filter. */
  get suppressed(): number {
    return this.counts.alertsSuppressed + this.counts.alertsRateFiltered;
  }

  /** Counts from now on into `stats` (its two counters set to 0 when absent). */
  countInto(stats: Partial<RateCounts>): void {
    stats.alertsSuppressed ??= 0;
    stats.alertsRateFiltered ??= 0;
    stats.actionsRateFiltered ??= 0;
    this.counts = stats as RateCounts;
  }

  /** Records a match of a rule with `spec`; returns whether it raises an alert. */
  allow(spec: RateSpec, e: RateEvent): boolean {
    return this.decide(spec, e) === 'alert';
  }

  /**
   * Records a match of a rule with `spec` and decides it (`RateDecision`): its suppress entries first, then
   * each filter of the chain in turn, the first that does not let it alert deciding (the ones after it do
   * not count it).
   */
  decide(spec: RateSpec, e: RateEvent): RateDecision {
    if (spec.suppress && this.suppressedBy(spec.suppress, e)) {
      this.counts.alertsSuppressed++;
      return 'silent';
    }
    for (let s: RateSpec | undefined = spec; s !== undefined; s = s.next) {
      if (s.type === 'suppress') continue;
      const d = this.decideOne(s, e);
      if (d !== 'alert') {
        this.counts.alertsRateFiltered++;
        return d;
      }
    }
    return 'alert';
  }

  /**
   * The action of a match of a rule its `filters` cover: the new action of the first one tripped for the
   * match's tracked key (counted in `actionsRateFiltered`), or undefined for the rule's own. Every filter
   * that applies counts the match; one tripped counts nothing until its new action ends, then a new window
   * starts at the match after.
   */
  rateFilterAction(
    filters: readonly RateFilterSpec[],
    e: RateEvent,
  ): RateFilterSpec['newAction'] | undefined {
    let action: RateFilterSpec['newAction'] | undefined;
    for (const f of filters) {
      const by = trackedBy(f.track, e);
      if (f.applyTo !== undefined && !this.ipTest(f.applyTo)(by)) continue;
      const key = `${f.id}|${e.gid}:${e.sid}|${by}`;
      let g = this.rateFilterStates.get(key);
      if (g && (g.untilUs >= 0 ? e.tsUs >= g.untilUs : e.tsUs - g.startUs > f.seconds * 1e6)) g = undefined;
      if (!g) g = { startUs: e.tsUs, count: 0, untilUs: -1 };
      if (g.untilUs < 0 && ++g.count > f.count)
        g.untilUs = f.timeout === 0 ? Number.POSITIVE_INFINITY : e.tsUs + f.timeout * 1e6;
      keepRecent(this.rateFilterStates, key, g);
      if (g.untilUs >= 0 && action === undefined) action = f.newAction;
    }
    if (action !== undefined) this.counts.actionsRateFiltered++;
    return action;
  }

  /** The test of an address spec (its variables replaced), made once per spec. */
  private ipTest(ip: string): (addr: string) => boolean {
    return sharedEntry(this.ipTests, suppressTestsMax, ip, () => addrTest(ip, {}));
  }

  private suppressedBy(entries: readonly SuppressSpec[], e: RateEvent): boolean {
    for (const x of entries) {
      if (x.track === 'by_rule' || x.ip === undefined) return true;
      const ip = x.ip;
      const test = this.ipTest(ip);
      if (x.track !== 'by_dst' && test(e.src)) return true;
      if (x.track !== 'by_src' && test(e.dst)) return true;
    }
    return false;
  }

  /** One filter's decision on a match (its window and count updated). */
  private decideOne(spec: RateSpec, e: RateEvent): RateDecision {
    const by = trackedBy(spec.track, e);
    const key = `${spec.kind}|${e.gid}:${e.sid}|${by}`;
    let g = this.entries.get(key);
    const windowUs = spec.seconds * 1e6;
    if (g && spec.type !== 'backoff' && e.tsUs - g.startUs > windowUs) g = undefined;
    if (!g) {
      g = { startUs: e.tsUs, count: 0, next: spec.count, alerted: false };
      if (spec.uniqueOn) g.ports = new Set();
    }
    keepRecent(this.entries, key, g);
    if (g.ports) g.ports.add(spec.uniqueOn === 'src_port' ? e.sp : e.dp);
    g.count++;
    switch (spec.type) {
      case 'limit':
        return g.count <= spec.count ? 'alert' : 'silent';
      case 'threshold':
        if (g.count < spec.count) return 'none';
        g.count = 0;
        g.startUs = e.tsUs;
        return 'alert';
      case 'both':
        if (g.alerted) return 'silent';
        if (g.count < spec.count) return 'none';
        g.alerted = true;
        return 'alert';
      case 'backoff':
        if (g.count !== Math.max(1, g.next)) return 'silent';
        g.next = Math.max(1, g.next) * spec.multiplier;
        return 'alert';
      default:
        return (g.ports ? g.ports.size > spec.count : g.count > spec.count) ? 'alert' : 'none';
    }
  }
}

/** The key a filter tracks a match by (by_rule: one key for all). */
function trackedBy(track: RateSpec['track'], e: RateEvent): string {
  return track === 'by_src'
    ? e.src
    : track === 'by_dst'
      ? e.dst
      : track === 'by_both'
        ? `${e.src}|${e.dst}`
        : track === 'by_flow'
          ? String(e.flowId)
          : '';
}

/**
 * Sets `key` to `v` as the most recently used entry of `m` (a Map keeps insertion order: its first key is
 * the least recently used), dropping that first one past `trackedMax` entries.
 */
function keepRecent<V>(m: Map<string, V>, key: string, v: V): void {
  m.delete(key);
  m.set(key, v);
  if (m.size > trackedMax) m.delete(m.keys().next().value as string);
}
