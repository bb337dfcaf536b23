/**
 * StripedLoglet: one address range striped across k nested loglets (Delos' StripedLoglet; for example k
 * NativeLoglets with rotating sequencers over the same LogServers), sealed as a whole.
 *
 * Striping is by batch, not by record. Each nested loglet ("stripe") holds batches, one batch per nested
 * position (its "round"). The log's order is round-robin over the stripes, round by round; slot
 * g = round * k + stripe:
 *
 *     stripe 0:  [b0: 2 recs] [b3: 0 (fill)] [b6: 1]
 *     stripe 1:  [b1: 1 rec ] [b4: 3       ] ...
 *     stripe 2:  [b2: 2 recs] [b5: 1       ]
 *     positions: b0=0-1, b1=2, b2=3-4, b3=-, b4=5-7, b5=8, b6=9 ...
 *
 * A batch's positions are the records of every earlier slot plus its index, so positions are dense and a
 * batch's positions consecutive, as the Loglet contract demands. Stripes have independent sequencers, so
 * racing appenders fill stripes unevenly; a slot nobody wrote would stall every later slot, so an appender
 * fills the stripes behind its own slot with empty batches (which take no positions, so readers never see
 * them) and acknowledges only once every earlier slot exists. That makes the complete prefix of slots the
 * committed log; after every stripe is sealed it is fixed, and every acknowledged batch is inside it.
 *
 * Trimming: the positions of a slot depend on every earlier slot, which trimming deletes. Each batch
 * carries a landmark, "slot G starts at position P" (its writer's knowledge when it wrote), and
 * `prefixTrim` first writes a fill whose landmark names the first kept slot, so a client that opens the
 * loglet later anchors at the first landmark above the trimmed slots.
 */
import {
  badBatch,
  checkPosition,
  checkReadRange,
  type Loglet,
  LogletUnavailableError,
  type LogRecord,
  type Payload,
  SealedError,
  type TailInfo,
  TrimmedError,
} from '../contract.js';

/** Decoded batches kept for reads (older ones are read again from their stripe). */
export const stripedBatchesCachedMax = 4096;
/**
 * Bound on how long an append waits for its slot to join the complete prefix once every earlier slot was
 * seen written (a nested loglet may acknowledge a position before an earlier one is readable).
 */
export const stripedPlaceTimeoutMs = 30_000;
/** Bound on a stripe's reads from its trim point while other clients keep trimming it. */
const fetchTrimmedAttemptsMax = 100;

const batchMagic = 0x53; // 'S'
const headerBytes = 1 + 4 + 8 + 8;

interface Batch {
  records: Payload[];
  /** Landmark: slot `markSlot` starts at position `markPos` (-1 when absent). */
  markSlot: number;
  markPos: number;
}

/** One nested record: magic, count, landmark, then each record as u32 length + bytes. */
export function encodeStripeBatch(records: Payload[], markSlot: number, markPos: number): Uint8Array {
  let size = headerBytes;
  for (const r of records) size += 4 + r.length;
  const out = new Uint8Array(size);
  const v = new DataView(out.buffer);
  out[0] = batchMagic;
  v.setUint32(1, records.length, true);
  v.setFloat64(5, markSlot, true);
  v.setFloat64(13, markPos, true);
  let o = headerBytes;
  for (const r of records) {
    v.setUint32(o, r.length, true);
    out.set(r, o + 4);
    o += 4 + r.length;
  }
  return out;
}

export function decodeStripeBatch(bytes: Uint8Array, where: string): Batch {
  const bad = (why: string) => new Error(`striped loglet: ${where}: ${why}`);
  if (bytes.length < headerBytes || bytes[0] !== batchMagic) throw bad('not a striped batch');
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = v.getUint32(1, true);
  const markSlot = v.getFloat64(5, true);
  const markPos = v.getFloat64(13, true);
  if (!Number.isInteger(markSlot) || !Number.isInteger(markPos)) throw bad('bad landmark');
  const records: Payload[] = [];
  let o = headerBytes;
  for (let i = 0; i < n; i++) {
    if (o + 4 > bytes.length) throw bad(`record ${i} of ${n} is cut off`);
    const len = v.getUint32(o, true);
    if (o + 4 + len > bytes.length) throw bad(`record ${i} of ${n} is cut off`);
    records.push(bytes.subarray(o + 4, o + 4 + len));
    o += 4 + len;
  }
  if (o !== bytes.length) throw bad(`${bytes.length - o} bytes after the last record`);
  return { records, markSlot, markPos };
}

export interface StripedLogletOptions {
  /** The clock (injected by the simulation harness); default the real one. */
  sleep?: (ms: number) => Promise<void>;
  nowMs?: () => number;
}

export class StripedLoglet implements Loglet {
  private readonly k: number;
  /** Committed nested tail per stripe (in rounds), as last learned. */
  private readonly known: number[];
  /** Rounds handed to this client's own appends, so concurrent appends spread over the stripes. */
  private readonly guess: number[];
  /** Per stripe: this client's nested appends in flight, and its one fill in flight. */
  private readonly inflight: Set<Promise<void>>[];
  private readonly filling: (Promise<void> | undefined)[];
  /** Per stripe: the next round to fetch, and fetched batches not yet in the prefix. */
  private readonly fetched: number[];
  private readonly pending: { slot: number; batch: Batch }[][];
  /** Per stripe: the first round its loglet still holds (0 until a read finds it trimmed). */
  private readonly floor: number[];
  /** Landmark slots seen in placed batches, ascending: where a sealed loglet may be trimmed. */
  private marks: number[] = [];
  /** The complete prefix: slots [base, next) start at starts[g - base]; it ends at position `end`. */
  private base = 0;
  private next = 0;
  private end: number;
  private starts: number[] = [];
  /** Whether `next`/`end` are known (false after another client trimmed slots this one had not read). */
  private anchored = true;
  private trimPos: number;
  private readonly cache = new Map<number, Payload[]>();
  private queue: Promise<unknown> = Promise.resolve();

  private readonly sleep: (ms: number) => Promise<void>;
  private readonly nowMs: () => number;

  /** `stripes` are the nested loglets, in stripe order; positions start at `start`. */
  constructor(
    readonly start: number,
    private readonly stripes: Loglet[],
    o: StripedLogletOptions = {},
  ) {
    this.sleep = o.sleep ?? ((ms) => new Promise<void>((r) => setTimeout(r, ms)));
    this.nowMs = o.nowMs ?? Date.now;
    if (stripes.length === 0) throw new Error('a striped loglet needs at least one stripe');
    this.k = stripes.length;
    this.known = stripes.map(() => 0);
    this.guess = stripes.map(() => 0);
    this.inflight = stripes.map(() => new Set());
    this.filling = stripes.map(() => undefined);
    this.fetched = stripes.map(() => 0);
    this.pending = stripes.map(() => []);
    this.floor = stripes.map(() => 0);
    this.end = start;
    this.trimPos = start;
  }

  private round(i: number, nestedPos: number): number {
    return nestedPos - this.stripes[i]!.start;
  }

  async append(batch: Payload[]): Promise<number[]> {
    const bad = badBatch(batch);
    if (bad) throw bad;
    if (batch.length === 0) return [];
    // a lone appender goes round-robin and never needs a fill
    const i = this.firstStripe();
    this.guess[i] = Math.max(this.guess[i]!, this.known[i]!) + 1;
    const mine = this.marked(batch);
    const nested = this.stripes[i]!.append([encodeStripeBatch(batch, mine.markSlot, mine.markPos)]);
    // fills of stripe i wait for this: it is about to take one of the rounds they would fill
    const settled = nested.then(
      () => undefined,
      () => undefined,
    );
    this.inflight[i]!.add(settled);
    void settled.then(() => this.inflight[i]!.delete(settled));
    const [p] = await this.sealedAsOurs(nested);
    const r = this.round(i, p!);
    this.raiseKnown(i, r + 1);
    this.learn(i, r, mine);
    const g = r * this.k + i;
    // every earlier slot must exist before this one is acknowledged
    try {
      await Promise.all(
        this.stripes.map((_, s) => (s === i ? undefined : this.fillTo(s, s < i ? r + 1 : r))),
      );
    } catch (e) {
      if (!(e instanceof SealedError)) throw e;
      // A stripe was sealed before our fill, but a racing appender may have written the slot first, and
      // then our batch is in the sealed log: finish the seal (a stripe is sealed only by a whole-loglet
      // seal) and look. Reporting SealedError for a batch that is in the log would make it appear twice.
      await this.seal();
      if (this.next > g) return this.positionsOf(g, batch.length);
      throw new SealedError(this.end);
    }
    const deadline = this.nowMs() + stripedPlaceTimeoutMs;
    for (let attempt = 0; ; attempt++) {
      const sealed = await this.advanceShared(attempt > 0);
      if (this.next > g) return this.positionsOf(g, batch.length);
      // sealed with a slot before ours missing: ours is past the sealed tail, never acknowledged
      if (sealed.length > 0 && sealed.every(Boolean)) {
        this.stopWaiting(g);
        throw new SealedError(this.end);
      }
      if (this.nowMs() > deadline) {
        this.stopWaiting(g);
        throw new LogletUnavailableError(`striped loglet: slot ${g} did not join the committed prefix`);
      }
      // the earlier slots are usually this client's own appends, about to land: wait for the prefix to
      // move past g, or poll the stripes after a backoff (another client's appends)
      if (attempt > 0) await Promise.race([this.placedPast(g), this.sleep(Math.min(2 ** attempt, 50))]);
    }
  }

  /**
   * Makes stripe s hold at least `rounds` batches, writing empty fills for the missing ones. This
   * client's own appends in flight to s come first (they take those rounds), and one fill at a time per
   * stripe: with many appends in flight, fills computed from one stale tail each would overshoot by far,
   * and every round a stripe runs ahead is a round the others must then fill.
   */
  private async fillTo(s: number, rounds: number): Promise<void> {
    for (;;) {
      if (this.known[s]! >= rounds) return;
      if (this.inflight[s]!.size > 0) {
        await Promise.all(this.inflight[s]!);
        continue;
      }
      const f = this.filling[s];
      if (f) {
        await f.catch(() => undefined);
        continue;
      }
      const p = this.fillOnce(s, rounds);
      this.filling[s] = p;
      try {
        await p;
      } finally {
        if (this.filling[s] === p) this.filling[s] = undefined;
      }
      return;
    }
  }

  private async fillOnce(s: number, rounds: number): Promise<void> {
    const l = this.stripes[s]!;
    const t = this.round(s, (await l.checkTail()).tail);
    this.raiseKnown(s, t);
    if (t >= rounds) return;
    const empty = this.marked([]);
    const fill = encodeStripeBatch([], empty.markSlot, empty.markPos);
    const ps = await this.sealedAsOurs(l.append(Array.from({ length: rounds - t }, () => fill)));
    this.raiseKnown(s, this.round(s, ps[ps.length - 1]!) + 1);
    for (const q of ps) this.learn(s, this.round(s, q), empty);
  }

  /** The stripe whose next slot (as far as this client knows) comes first in the log's order. */
  private firstStripe(): number {
    const nextSlot = (s: number) => Math.max(this.guess[s]!, this.known[s]!) * this.k + s;
    let i = 0;
    for (let s = 1; s < this.k; s++) if (nextSlot(s) < nextSlot(i)) i = s;
    return i;
  }

  /** A batch carrying this client's landmark (where the prefix it knows ends), if it knows one. */
  private marked(records: Payload[]): Batch {
    return this.anchored
      ? { records, markSlot: this.next, markPos: this.end }
      : { records, markSlot: -1, markPos: -1 };
  }

  private raiseKnown(i: number, rounds: number): void {
    if (rounds > this.known[i]!) this.known[i] = rounds;
  }

  /** The positions of the n records of the batch in slot g (placed). */
  private positionsOf(g: number, n: number): number[] {
    const first = this.slotStart(g);
    return Array.from({ length: n }, (_, j) => first + j);
  }

  /**
   * A batch this client wrote at stripe i, round r: when it is the next one to fetch from that stripe it
   * goes straight into the pending queue, so the client does not read back what it just wrote.
   */
  private learn(i: number, r: number, batch: Batch): void {
    if (!this.anchored || this.fetched[i] !== r) return;
    this.pending[i]!.push({ slot: r * this.k + i, batch });
    this.fetched[i] = r + 1;
  }

  /**
   * Extends the prefix once for every caller that arrives while the previous extension runs: callers
   * join the queued one (which has not started, so it sees their writes) instead of queueing one each.
   */
  private queued: { fresh: boolean; p: Promise<boolean[]> } | null = null;
  private advanceShared(fresh: boolean): Promise<boolean[]> {
    const q = this.queued;
    if (q) {
      q.fresh ||= fresh;
      return q.p;
    }
    const entry: { fresh: boolean; p: Promise<boolean[]> } = { fresh, p: Promise.resolve([]) };
    entry.p = this.serial(() => {
      if (this.queued === entry) this.queued = null;
      return this.advance(entry.fresh);
    });
    this.queued = entry;
    return entry.p;
  }

  /** A nested SealedError becomes ours, carrying our tail as far as it is known. */
  private async sealedAsOurs<T>(p: Promise<T>): Promise<T> {
    try {
      return await p;
    } catch (e) {
      if (e instanceof SealedError) throw new SealedError(this.end);
      throw e;
    }
  }

  /** Where slot g starts (the prefix's end for the first slot not in it). */
  private slotStart(g: number): number {
    return g < this.next ? this.starts[g - this.base]! : this.end;
  }

  /** Runs f after every earlier queued call: the prefix is extended by one caller at a time. */
  private serial<T>(f: () => Promise<T>): Promise<T> {
    const run = this.queue.then(f, f);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Fetches new batches from every stripe (up to each one's tail when `fresh`, else up to what this
   * client knows) and extends the complete prefix with them. Returns each stripe's sealed bit when fresh.
   */
  private async advance(fresh: boolean): Promise<boolean[]> {
    const sealed = this.stripes.map(() => false);
    const trimmed = await Promise.all(
      this.stripes.map(async (_, i) => {
        if (fresh) sealed[i] = await this.checkStripeTail(i);
        return this.fetch(i);
      }),
    );
    if (trimmed.some(Boolean)) {
      // another client trimmed slots this one had not placed: start again from what every stripe holds,
      // up to tails checked again now. The trimmer wrote its landmark (naming the first slot it kept)
      // before it trimmed anything, so tails checked after a trim was seen hold it; with the tails checked
      // before, a client could miss it and anchor at a later landmark, taking kept positions for trimmed
      // ones (a fresh client's read at the trim point failed with TrimmedError, "the log starts at" the
      // next batch's position; found by the model test over 3 memory stripes, 2026-12-08)
      this.anchored = false;
      await this.fetchToTails(sealed, fresh, true);
    }
    if (!this.anchored && !this.anchor()) {
      // stripes trimmed with no landmark above the trimmed slots among the batches fetched: the trimmer
      // wrote its landmark before it trimmed anything, past the tails this client had checked (until
      // 2026-12-07 a client catching up beside another's trim failed here). Check the tails again.
      await this.fetchToTails(sealed, fresh, false);
      if (!this.anchor())
        throw new Error(
          'striped loglet: slots were trimmed without a landmark above them; positions unknown',
        );
    }
    if (this.anchored) this.place();
    return sealed;
  }

  /**
   * Checks every stripe's tail again (its sealed bit into `sealed` when `fresh`) and fetches up to it;
   * `restart`: from each stripe's floor, its pending batches dropped.
   */
  private async fetchToTails(sealed: boolean[], fresh: boolean, restart: boolean): Promise<void> {
    await Promise.all(
      this.stripes.map(async (_, i) => {
        const stripeSealed = await this.checkStripeTail(i);
        if (fresh) sealed[i] = stripeSealed;
        if (restart) {
          this.fetched[i] = this.floor[i]!;
          this.pending[i] = [];
        }
        await this.fetch(i);
      }),
    );
  }

  /** Checks stripe i's tail, raising what this client knows of it to there; returns its sealed bit. */
  private async checkStripeTail(i: number): Promise<boolean> {
    const t = await this.stripes[i]!.checkTail();
    this.raiseKnown(i, this.round(i, t.tail));
    return t.sealed;
  }

  /** Reads stripe i's batches up to its known tail into its pending queue; true if it was trimmed. */
  private async fetch(i: number): Promise<boolean> {
    const l = this.stripes[i]!;
    if (this.fetched[i]! >= this.known[i]!) return false;
    let recs: LogRecord[];
    let trimmed = false;
    try {
      recs = await l.read(l.start + this.fetched[i]!, l.start + this.known[i]!);
    } catch (e) {
      if (!(e instanceof TrimmedError)) throw e;
      trimmed = true;
      recs = await this.readFromTrim(i, e);
    }
    for (const rec of recs) {
      const r = this.round(i, rec.position);
      if (r !== this.fetched[i]) continue;
      this.pending[i]!.push({
        slot: r * this.k + i,
        batch: decodeStripeBatch(rec.payload, `stripe ${i} round ${r}`),
      });
      this.fetched[i] = r + 1;
    }
    return trimmed;
  }

  /**
   * Stripe i's batches from its trim point (`e`'s) up to its known tail. A client trimming meanwhile may
   * move the trim point again: then from the new one (until 2026-12-07 that TrimmedError escaped, so a
   * client catching up beside another's trims failed checkTail, append and prefixTrim with it).
   */
  private async readFromTrim(i: number, e: TrimmedError): Promise<LogRecord[]> {
    const l = this.stripes[i]!;
    for (let attempt = 1; ; attempt++) {
      this.floor[i] = this.round(i, e.trimPoint);
      this.fetched[i] = this.floor[i]!;
      this.pending[i] = [];
      try {
        return await l.read(e.trimPoint, l.start + Math.max(this.known[i]!, this.fetched[i]!));
      } catch (again) {
        if (!(again instanceof TrimmedError) || attempt >= fetchTrimmedAttemptsMax) throw again;
        e = again;
      }
    }
  }

  private waiters: { g: number; resolve: () => void }[] = [];

  /** Drops the waiter of an append that gave up on slot g (its slot may never join the prefix). */
  private stopWaiting(g: number): void {
    if (this.waiters.length > 0) this.waiters = this.waiters.filter((w) => w.g !== g);
  }

  /** Resolves once the prefix has moved past slot g. */
  private placedPast(g: number): Promise<void> {
    if (this.next > g) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ g, resolve }));
  }

  /** Moves fetched batches into the prefix, in slot order, up to the first slot not yet fetched. */
  private place(): void {
    this.extend();
    if (this.waiters.length > 0) {
      const still: { g: number; resolve: () => void }[] = [];
      for (const w of this.waiters)
        if (this.next > w.g) w.resolve();
        else still.push(w);
      this.waiters = still;
    }
  }

  private extend(): void {
    for (;;) {
      const i = this.next % this.k;
      const q = this.pending[i]!;
      // drop batches of slots already placed (fetched again after a re-anchor)
      while (q.length > 0 && q[0]!.slot < this.next) q.shift();
      const head = q[0];
      if (!head || head.slot !== this.next) return;
      q.shift();
      this.starts.push(this.end);
      this.cacheBatch(this.next, head.batch.records);
      const m = head.batch.markSlot;
      if (m >= 0 && m > (this.marks[this.marks.length - 1] ?? -1)) this.marks.push(m);
      this.end += head.batch.records.length;
      this.next++;
    }
  }

  /**
   * After a trim this client did not see: every slot below some point is gone, so the prefix restarts at
   * the first landmark above the last missing slot. False when batches are pending but none carries a
   * landmark above the trimmed slots (the caller checks the tails again).
   */
  private anchor(): boolean {
    let gone = -1; // the last slot no stripe can return
    for (let i = 0; i < this.k; i++)
      if (this.floor[i]! > 0) gone = Math.max(gone, (this.floor[i]! - 1) * this.k + i);
    let best: { slot: number; pos: number } | undefined;
    for (const q of this.pending)
      for (const { batch } of q)
        if (batch.markSlot > gone && (!best || batch.markSlot < best.slot))
          best = { slot: batch.markSlot, pos: batch.markPos };
    if (!best) return this.pending.every((q) => q.length === 0); // (all empty: nothing to anchor on yet)
    this.base = this.next = best.slot;
    this.end = best.pos;
    this.starts = [];
    this.marks = [];
    this.cache.clear();
    if (best.pos > this.trimPos) this.trimPos = best.pos;
    this.anchored = true;
    return true;
  }

  private cacheBatch(g: number, records: Payload[]): void {
    this.cache.set(g, records);
    if (this.cache.size > stripedBatchesCachedMax) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
  }

  async checkTail(): Promise<TailInfo> {
    const sealed = await this.advanceShared(true);
    return { tail: this.end, sealed: sealed.every(Boolean) };
  }

  async read(from: number, to: number): Promise<LogRecord[]> {
    checkReadRange(from, to);
    // one caller at a time: a trim may move the prefix's base under a read
    return this.serial(() => this.readSerial(from, to));
  }

  private async readSerial(from: number, to: number): Promise<LogRecord[]> {
    if (to > this.end) await this.advance(true);
    if (from < this.trimPos) throw new TrimmedError(from, this.trimPos);
    const stop = Math.min(to, this.end);
    const out: LogRecord[] = [];
    if (from >= stop) return out;
    // the slot holding `from`: the last slot starting at or before it
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid]! <= from) lo = mid;
      else hi = mid - 1;
    }
    for (let g = this.base + lo; g < this.next; g++) {
      const first = this.slotStart(g);
      if (first >= stop) break;
      let records: Payload[];
      try {
        records = await this.batchAt(g);
      } catch (e) {
        // trimmed by another client: positions up to this slot's end are gone
        if (e instanceof TrimmedError) throw new TrimmedError(from, this.slotStart(g + 1));
        throw e;
      }
      for (let j = 0; j < records.length; j++) {
        const p = first + j;
        if (p >= from && p < stop) out.push({ position: p, payload: records[j]! });
      }
    }
    return out;
  }

  private async batchAt(g: number): Promise<Payload[]> {
    const hit = this.cache.get(g);
    if (hit) return hit;
    const i = g % this.k;
    const r = (g - i) / this.k;
    const l = this.stripes[i]!;
    const [rec] = await l.read(l.start + r, l.start + r + 1);
    if (!rec) throw new Error(`striped loglet: stripe ${i} round ${r} is missing below the tail`);
    return decodeStripeBatch(rec.payload, `stripe ${i} round ${r}`).records;
  }

  async prefixTrim(pos: number): Promise<void> {
    checkPosition('prefixTrim: pos', pos);
    await this.serial(async () => {
      const sealed = await this.advance(true);
      pos = Math.min(pos, this.end);
      if (pos <= this.trimPos) return;
      this.trimPos = pos;
      // the first slot that keeps a record at or above pos
      let g = this.base;
      while (g < this.next && this.slotStart(g + 1) <= pos) g++;
      if (!sealed.every(Boolean)) {
        // a landmark naming the first kept slot, written before anything is deleted
        const i = this.firstStripe();
        const fill = encodeStripeBatch([], g, this.slotStart(g));
        try {
          const [p] = await this.stripes[i]!.append([fill]);
          this.raiseKnown(i, this.round(i, p!) + 1);
        } catch (e) {
          if (!(e instanceof SealedError)) throw e;
          return; // sealed meanwhile: keep the stored slots (trimming is a hint)
        }
      } else {
        // sealed: only a landmark already stored can anchor later readers; trim no further than it
        let newest = -1;
        for (const m of this.marks) if (m <= g && m >= this.base) newest = m;
        if (newest <= this.base) return;
        g = newest;
      }
      await Promise.all(
        this.stripes.map((l, i) => {
          const rounds = Math.max(0, Math.ceil((g - i) / this.k));
          return rounds > 0 ? l.prefixTrim(l.start + rounds) : undefined;
        }),
      );
      this.starts.splice(0, g - this.base);
      this.marks = this.marks.filter((m) => m >= g);
      for (const key of [...this.cache.keys()]) if (key < g) this.cache.delete(key);
      this.base = g;
    });
  }

  async seal(): Promise<TailInfo> {
    await Promise.all(this.stripes.map((l) => l.seal()));
    await this.serial(() => this.advance(true));
    return { tail: this.end, sealed: true };
  }

  async close(): Promise<void> {
    await Promise.all(this.stripes.map((l) => l.close()));
  }
}
