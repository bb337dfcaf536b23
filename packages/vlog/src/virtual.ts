/**
 * VirtualLog: the Loglet API over a chain of segments kept in a MetaStore (Delos' virtual log).
 *
 * reconfigure(spec) = seal the active segment, read its tail, CAS a new chain in which the sealed segment
 * ends at that tail and a new segment (a loglet opened from `spec`) starts there, then fetch the chain.
 * Any client can start or finish a reconfiguration: sealing is idempotent, and of racing CASes exactly one
 * wins; losers adopt the winner's chain. A client whose append hits a sealed segment refreshes the chain
 * and retries on the new active segment. Reads route to the segment that owns each position.
 */
import { checkAtLeastZero, kindOf, shown } from '@strata/cli';
import {
  badBatch,
  type Chain,
  checkPosition,
  checkReadRange,
  type Loglet,
  LogletUnavailableError,
  type LogRecord,
  type MetaStore,
  type Payload,
  SealedError,
  type Segment,
  type TailInfo,
  TrimmedError,
  VersionConflictError,
} from './contract.js';

/**
 * Opens the loglet for a segment: its spec URL, the position it starts at, and its index in the chain
 * (unique, unlike the start: segments sealed empty share their start with their successor).
 */
export type LogletFactory = (spec: string, start: number, index: number) => Promise<Loglet>;

/** How long an append keeps retrying across reconfigurations before it gives up. */
export const appendTimeoutMs = 10_000;
/** Pause between chain refreshes while a reconfiguration is being finished by someone else. */
const refreshPauseMs = 2;
/** Pause before asking the failover policy again when it found no replacement. */
const failoverPauseMs = 50;

/**
 * Decides what replaces an active loglet that failed an operation (or that a failure detector checks): the
 * spec of a new loglet to reconfigure to, or undefined to leave it (it may be healthy, or no replacement
 * is available yet). See `nativeFailover` in failover.ts.
 */
export type Failover = (active: {
  segment: Segment;
  /** Its index in the chain (unique: the chain only grows). */
  index: number;
  loglet: Loglet;
  segments: Segment[];
  error?: Error;
}) => Promise<string | undefined>;

/**
 * Throws a TypeError unless `spec` is a loglet spec: a non-empty string (what it names is `checkSpec`'s to
 * judge). Without one, `reconfigure(undefined)` sealed nothing but failed deep in a factory with "Cannot
 * read properties of undefined", and a factory that took any value chained it.
 */
function checkSpecType(what: string, spec: unknown): void {
  if (typeof spec !== 'string' || spec === '')
    throw new TypeError(
      `${what}: the loglet spec must be a non-empty string (a URL such as file:DIR), got ${typeof spec === 'string' ? "''" : kindOf(spec)}`,
    );
}

/**
 * Refuses options a log cannot keep, before anything is written: `appendTimeoutMs` is a deadline on the
 * log's clock (no timer), any number of ms from 0 (Infinity: never give up); NaN was a deadline never passed.
 */
function checkLogOptions(opts: VirtualLogOptions): void {
  if (opts.appendTimeoutMs !== undefined)
    checkAtLeastZero('VirtualLog appendTimeoutMs', opts.appendTimeoutMs, 'milliseconds');
}

export interface VirtualLogOptions {
  appendTimeoutMs?: number;
  /** When the active loglet is unavailable, reconfigure to what this returns, and retry. */
  failover?: Failover;
  /**
   * Readies the loglet for spec `spec` at chain index `index` before a reconfiguration seals the active
   * one (`prepareLoglet` in open.ts: a native loglet's sequencer claims it), taking that work off the
   * seal-to-first-append path. Errors are ignored.
   */
  prepare?: (spec: string, index: number) => Promise<void>;
  /**
   * Throws if `spec` names no loglet the factory could open (`checkLogletSpec` in open.ts). Called before a
   * chain takes a spec (`create`, `reconfigure`): a segment whose loglet cannot be opened could be neither
   * appended to, read nor sealed, so a typo would end the log.
   */
  checkSpec?: (spec: string) => void;
  /**
   * Takes the loglet of a new segment (spec, start, index) for this log before a chain names it, throwing
   * `LogletOwnedError` when another log holds it (`claimLoglet` in open.ts). Called after the seal, before
   * the new chain is written: a refused reconfiguration leaves the log sealed, to be reconfigured again.
   */
  claim?: (spec: string, start: number, index: number) => Promise<void>;
  /** The clock's sleep (injected by the simulation harness). */
  sleep?: (ms: number) => Promise<void>;
  /** The clock (injected by the simulation harness). */
  nowMs?: () => number;
}

export class ChainError extends Error {
  override name = 'ChainError';
}

/** A segment's loglet is another log's (its location's OWNER names that log): this log never wrote it. */
export class LogletOwnedError extends Error {
  override name = 'LogletOwnedError';
}

export class VirtualLog implements Loglet {
  readonly start = 0;
  private chain: Chain = { segments: [] };
  private version = 0;
  /** Open loglets by segment index; promises, so that concurrent callers share one open. */
  private readonly loglets = new Map<number, Promise<Loglet>>();
  private trimPoint = 0;

  constructor(
    readonly meta: MetaStore<Chain & { trim?: number }>,
    readonly open: LogletFactory,
    readonly opts: VirtualLogOptions = {},
  ) {
    checkLogOptions(opts);
  }

  /** Creates a new log whose first segment is `spec`; fails if the MetaStore already holds a chain. */
  static async create(
    meta: MetaStore<Chain & { trim?: number }>,
    open: LogletFactory,
    spec: string,
    opts?: VirtualLogOptions,
  ): Promise<VirtualLog> {
    checkLogOptions(opts ?? {});
    checkSpecType('create', spec);
    opts?.checkSpec?.(spec);
    await meta.put({ segments: [{ start: 0, spec }] }, 0);
    const v = new VirtualLog(meta, open, opts);
    await v.refresh();
    return v;
  }

  /** Opens an existing log. */
  static async connect(
    meta: MetaStore<Chain & { trim?: number }>,
    open: LogletFactory,
    opts?: VirtualLogOptions,
  ): Promise<VirtualLog> {
    const v = new VirtualLog(meta, open, opts);
    await v.refresh();
    if (v.chain.segments.length === 0)
      throw new ChainError('no log here: the MetaStore holds no chain (create it first)');
    return v;
  }

  /**
   * Fetches the chain from the MetaStore. Whether the chain has moved past a segment `i` a call used is
   * `active() !== i` after this, not whether this fetch changed the version: another call of this client
   * (an append that met the seal) may have fetched the new chain first (until 2026-12-07, beside such an
   * append, `checkTail` reported the live log sealed at the old segment's tail, below records acknowledged
   * before the call).
   */
  async refresh(): Promise<Chain> {
    const { version, value } = await this.meta.get();
    if (version !== this.version || !value) {
      this.version = version;
      this.chain = value ? { segments: value.segments } : { segments: [] };
      this.trimPoint = value?.trim ?? 0;
    }
    return this.chain;
  }

  /** The first position not trimmed (0 until a trim): where a read of the whole log starts. */
  get firstPosition(): number {
    return this.trimPoint;
  }

  /** The current chain (as last fetched). */
  get segments(): Chain['segments'] {
    return this.chain.segments;
  }

  private async loglet(i: number): Promise<Loglet> {
    const seg = this.chain.segments[i]!;
    let l = this.loglets.get(i);
    if (!l) {
      l = this.open(seg.spec, seg.start, i);
      this.loglets.set(i, l);
      l.catch(() => this.loglets.delete(i));
    }
    return l;
  }

  private sleep(ms: number): Promise<void> {
    return this.opts.sleep ? this.opts.sleep(ms) : new Promise<void>((r) => setTimeout(r, ms));
  }

  private now(): number {
    return this.opts.nowMs ? this.opts.nowMs() : Date.now();
  }

  /** The active segment's loglet. */
  activeLoglet(): Promise<Loglet> {
    return this.loglet(this.active());
  }

  private active(): number {
    if (this.chain.segments.length === 0) throw new ChainError('the log has no segments');
    return this.chain.segments.length - 1;
  }

  append(batch: Payload[]): Promise<number[]> {
    const bad = badBatch(batch);
    if (bad) return Promise.reject(bad);
    // fast path: the active segment's loglet is open; the retry loop starts only when it fails
    const f = this.fast;
    if (f !== undefined && f.index === this.chain.segments.length - 1)
      return f.loglet
        .append(batch)
        .catch((e: unknown) => this.appendRetrying(batch, { index: f.index, loglet: f.loglet, e }));
    return this.appendRetrying(batch);
  }

  /** The active segment's open loglet, once known (the append fast path). */
  private fast: { index: number; loglet: Loglet } | undefined;

  /**
   * Appends, riding out reconfigurations: an append that finds its loglet sealed adopts the new chain (or,
   * with a failover policy, finishes a reconfiguration left unfinished), one that finds it unavailable
   * refreshes and fails over. `failed` is a first attempt that already failed. The timeout counts from here.
   */
  private async appendRetrying(
    batch: Payload[],
    failed?: { index: number; loglet: Loglet; e: unknown },
  ): Promise<number[]> {
    const deadline = this.now() + (this.opts.appendTimeoutMs ?? appendTimeoutMs);
    let sealedSince = -1;
    let pending = failed;
    for (;;) {
      let i: number;
      let l: Loglet;
      let e: unknown;
      if (pending) {
        ({ index: i, loglet: l, e } = pending);
        pending = undefined;
      } else {
        i = this.active();
        l = await this.loglet(i);
        this.fast = { index: i, loglet: l };
        try {
          return await l.append(batch);
        } catch (err) {
          e = err;
        }
      }
      if (e instanceof LogletUnavailableError) {
        // the record may or may not be in the failed loglet; it is sent again to the next one
        if (this.now() > deadline) throw e;
        await this.afterUnavailable(i, l, e);
        continue;
      }
      if (!(e instanceof SealedError)) throw e;
      // sealed: someone is reconfiguring; adopt the new chain when it lands (the chain moved past `i`)
      if (this.now() > deadline) throw e;
      await this.refresh();
      if (this.active() !== i) {
        sealedSince = -1;
        continue;
      }
      if (sealedSince < 0) sealedSince = this.now();
      // the reconfiguration was left unfinished (its author failed before the CAS): finish it
      if (this.opts.failover && this.now() - sealedSince >= failoverPauseMs) {
        sealedSince = -1;
        if (await this.failOver(i, l, e)) continue;
      }
      await this.sleep(refreshPauseMs);
    }
  }

  /**
   * After active segment `i` failed with `e`: the loglet may have been replaced already (a dead sequencer
   * cannot say it was sealed), so refresh; if not, fail over (without a policy: rethrow `e`). Returns when
   * the caller should try again.
   */
  private async afterUnavailable(i: number, l: Loglet, e: LogletUnavailableError): Promise<void> {
    await this.refresh();
    if (this.active() !== i) return;
    if (!this.opts.failover) throw e;
    if (await this.failOver(i, l, e)) return;
    await this.sleep(failoverPauseMs);
  }

  /**
   * Asks the failover policy about active segment `i`, which failed with `error` (or is being checked by a
   * failure detector), and reconfigures if it names a replacement. Returns whether the chain moved on.
   */
  async failOver(i: number, loglet: Loglet, error?: Error, f = this.opts.failover): Promise<boolean> {
    if (!f) return false;
    await this.refresh();
    if (this.active() !== i) return true; // someone else already reconfigured
    const spec = await f({
      segment: this.chain.segments[i]!,
      index: i,
      loglet,
      segments: this.chain.segments,
      error,
    });
    if (spec === undefined) return false;
    try {
      await this.reconfigure(spec, { ifActive: i });
      return true;
    } catch (e) {
      if (e instanceof LogletUnavailableError) return false; // the seal needs a majority: try again later
      throw e;
    }
  }

  async checkTail(): Promise<TailInfo> {
    const deadline = this.now() + (this.opts.appendTimeoutMs ?? appendTimeoutMs);
    for (;;) {
      const i = this.active();
      const l = await this.loglet(i);
      let t: TailInfo;
      try {
        t = await l.checkTail();
      } catch (e) {
        if (!(e instanceof LogletUnavailableError) || this.now() > deadline) throw e;
        await this.afterUnavailable(i, l, e);
        continue;
      }
      if (!t.sealed) return t;
      // sealed: the log is, unless a successor is chained (the chain moved past `i`)
      await this.refresh();
      if (this.active() === i) return { tail: t.tail, sealed: true };
    }
  }

  async read(from: number, to: number): Promise<LogRecord[]> {
    checkReadRange(from, to);
    if (from < this.trimPoint) throw new TrimmedError(from, this.trimPoint);
    const out: LogRecord[] = [];
    let pos = from;
    let refreshed = false;
    for (let i = 0; i < this.chain.segments.length && pos < to; i++) {
      const seg = this.chain.segments[i]!;
      const end = seg.end ?? Number.POSITIVE_INFINITY;
      if (pos >= end) continue;
      const recs = await (await this.loglet(i)).read(pos, Math.min(to, end));
      // one by one: spread as arguments, a segment's 150,000 records overflowed the stack (RangeError)
      for (const r of recs) out.push(r);
      if (recs.length > 0) pos = recs[recs.length - 1]!.position + 1;
      if (pos >= Math.min(to, end)) continue;
      // short of `to` in what this client last knew as the active segment: its tail, unless another client
      // sealed it and chained a successor since this client's chain was fetched (a reader that never
      // appends nor checks the tail read nothing past a reconfiguration, forever). One fetch of the chain
      // per read that stops there; a read up to a tail just checked (`checkTail` fetches it) never does.
      if (seg.end !== undefined || refreshed) break;
      refreshed = true;
      await this.refresh();
      if (this.chain.segments.length - 1 <= i) break; // still the last (see refresh)
      i--; // this segment again, up to the end it was sealed at, then its successors
    }
    return out;
  }

  async prefixTrim(pos: number): Promise<void> {
    checkPosition('prefixTrim: pos', pos);
    // never past the tail: the positions there are not written yet, and a trim point past them would
    // discard the next records as they are acknowledged ('strata log trim --to 99' at tail 2 did)
    pos = Math.min(pos, (await this.checkTail()).tail);
    for (;;) {
      await this.refresh();
      if (pos <= this.trimPoint) return;
      try {
        await this.meta.put({ segments: this.chain.segments, trim: pos }, this.version);
        await this.refresh();
        break;
      } catch (e) {
        if (!(e instanceof VersionConflictError)) throw e;
      }
    }
    for (let i = 0; i < this.chain.segments.length; i++) {
      const seg = this.chain.segments[i]!;
      // an empty sealed segment holds nothing to trim (and its loglet may be one nobody can open)
      if (seg.start < pos && (seg.end === undefined || seg.end > seg.start))
        await (await this.loglet(i)).prefixTrim(pos);
    }
  }

  /** Seals the whole log: the active segment, without installing a successor. */
  async seal(): Promise<TailInfo> {
    return (await this.loglet(this.active())).seal();
  }

  /**
   * Reconfigures to a new loglet: seal, read the tail, CAS the new chain. Returns the position where the
   * new segment starts. If another client's reconfiguration wins the race, this one adopts it. With
   * `ifActive`, only segment `ifActive` is replaced: if the chain has moved past it, nothing is done.
   */
  async reconfigure(spec: string, o: { ifActive?: number } = {}): Promise<number> {
    checkSpecType('reconfigure', spec);
    if (o.ifActive !== undefined && !(Number.isSafeInteger(o.ifActive) && o.ifActive >= 0))
      throw new RangeError(
        `reconfigure: ifActive must be a segment index (a whole number of at least 0), got ${shown(o.ifActive)}`,
      );
    this.opts.checkSpec?.(spec);
    for (;;) {
      await this.refresh();
      const i = this.active();
      // only if segment `ifActive` is still the active one: otherwise someone else reconfigured it
      if (o.ifActive !== undefined && i !== o.ifActive) return this.chain.segments[i]!.start;
      // ready the successor while the seal and the CAS run
      void this.opts.prepare?.(spec, i + 1).catch(() => undefined);
      const sealedVersion = this.version;
      // a segment whose spec no factory could open (chained before specs were checked, 2026-12-03) never
      // took a record: it ends where it starts, unsealed, and the log goes on past it
      const { tail } = this.unopenable(i)
        ? { tail: this.chain.segments[i]!.start }
        : await this.sealActive(i);
      await this.opts.claim?.(spec, tail, i + 1);
      const segs = this.chain.segments.map((s) => ({ ...s }));
      segs[i]!.end = tail;
      segs.push({ start: tail, spec });
      try {
        await this.meta.put({ segments: segs, trim: this.trimPoint }, sealedVersion);
        await this.refresh();
        return tail;
      } catch (e) {
        if (!(e instanceof VersionConflictError)) throw e;
        await this.refresh();
        // someone else extended the chain past the segment we sealed: their reconfiguration won
        if (this.chain.segments.length > segs.length - 1)
          return this.chain.segments[this.chain.segments.length - 1]!.start;
      }
    }
  }

  /**
   * Seals active segment `i`. One whose loglet another log holds (chained before reconfigurations claimed
   * their loglets, 2026-12-04) never took a record of this log: it ends where it starts.
   */
  private async sealActive(i: number): Promise<{ tail: number }> {
    try {
      return await (await this.loglet(i)).seal();
    } catch (e) {
      if (!(e instanceof LogletOwnedError)) throw e;
      this.loglets.delete(i);
      return { tail: this.chain.segments[i]!.start };
    }
  }

  /** Whether segment `i`'s spec is one `checkSpec` refuses: no loglet was ever opened from it. */
  private unopenable(i: number): boolean {
    const check = this.opts.checkSpec;
    if (!check) return false;
    try {
      check(this.chain.segments[i]!.spec);
      return false;
    } catch {
      return true;
    }
  }

  async close(): Promise<void> {
    for (const l of this.loglets.values()) await (await l.catch(() => undefined))?.close();
    this.loglets.clear();
    this.fast = undefined;
    await this.meta.close();
  }
}
