/**
 * A loglet over @strata/objstore (the cold/backup loglet of part 2): each batch is one object whose key is
 * its first position, written with If-None-Match: *, so of racing appenders exactly one claims a slot and
 * the others retry at the next one. Sealing claims the next free slot with a seal marker the same way, so
 * once seal has returned no append can be acknowledged: its slot is taken.
 *
 *   PREFIX/0000000000000000  {count: 3, records}    positions 0..2
 *   PREFIX/0000000000000003  {count: 1, records}    position 3
 *   PREFIX/0000000000000004  {seal: true}           sealed; tail 4
 *   PREFIX/trim                                     the trim point
 *
 * Object body: u32 count (0xffffffff = seal marker), then count times (u32 length, bytes).
 */
import type { ObjectStore } from '@strata/objstore';
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

const SEAL = 0xffffffff;
/** Bound on the slot starts a client remembers (`ObjectStoreLoglet.known`). */
const slotStartsMax = 10_000;
/** Batches a read fetches at once: on a remote store each is a round trip, one after another before. */
const readBatchesInFlight = 8;
/** Bound on a trim's conditional puts (each lost only to another client's trim landing first). */
const trimAttemptsMax = 100;
/**
 * Bound on one append's or seal's conditional puts for a slot, each lost to another writer taking the slot
 * first (every loss is another writer's progress; past the bound the call fails as unavailable rather than
 * retry for as long as a store keeps refusing).
 */
const slotAttemptsMax = 1_000;

/** Digits of a slot's key: every log position (at most 2^53 - 1) has 16 or fewer. */
const slotKeyDigits = 16;

function slotKey(prefix: string, pos: number): string {
  return `${prefix}/${String(pos).padStart(slotKeyDigits, '0')}`;
}

/** Whether `name` (a key less its prefix and slash) is a slot's: the trim point and an OWNER are not. */
function isSlotName(name: string): boolean {
  return name.length === slotKeyDigits && /^[0-9]+$/.test(name);
}

function encodeBatch(batch: Payload[]): Buffer {
  const parts: Buffer[] = [Buffer.alloc(4)];
  parts[0]!.writeUInt32BE(batch.length, 0);
  for (const p of batch) {
    const l = Buffer.alloc(4);
    l.writeUInt32BE(p.length, 0);
    parts.push(l, Buffer.from(p.buffer, p.byteOffset, p.byteLength));
  }
  return Buffer.concat(parts);
}

function decodeBatch(b: Uint8Array, key: string): { seal: boolean; records: Payload[] } {
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  if (buf.length < 4) throw new Error(`log object ${key} is corrupt: ${buf.length} bytes`);
  const n = buf.readUInt32BE(0);
  if (n === SEAL) return { seal: true, records: [] };
  // written only by an empty append of a version before 2026-12-06 (which then hung every walk): a slot
  // takes at least one position
  if (n === 0) throw new Error(`log object ${key} is corrupt: a batch of no records`);
  const records: Payload[] = [];
  let p = 4;
  for (let i = 0; i < n; i++) {
    if (p + 4 > buf.length) throw new Error(`log object ${key} is corrupt: record ${i} is cut`);
    const l = buf.readUInt32BE(p);
    if (p + 4 + l > buf.length) throw new Error(`log object ${key} is corrupt: record ${i} overruns`);
    records.push(Uint8Array.from(buf.subarray(p + 4, p + 4 + l)));
    p += 4 + l;
  }
  return { seal: false, records };
}

export class ObjectStoreLoglet implements Loglet {
  /** First position not known to be taken; a cache, re-verified by every conditional put. */
  private next: number;
  private sealedAt: number | undefined;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly store: ObjectStore,
    private readonly prefix: string,
    readonly start = 0,
  ) {
    this.next = start;
  }

  /**
   * The first positions of the slots listed at or after `from` (ascending), page by page. Listed under
   * `PREFIX/`, not `PREFIX/0` (until 2026-12-07): a slot at 10^15 or above has no leading zero, so a loglet
   * starting there listed none of its slots, reported its start as the tail and retried an append at a
   * taken slot forever. The keys that are not slots (`trim`, `OWNER`) sort after every slot: the listing
   * ends at the first.
   */
  private async *slotsFrom(from: number): AsyncGenerator<number> {
    let after: string | undefined = from > this.start ? slotKey(this.prefix, from - 1) : undefined;
    for (;;) {
      const page = await this.store.list(`${this.prefix}/`, after === undefined ? {} : { startAfter: after });
      for (const o of page.objects) {
        const name = o.key.slice(this.prefix.length + 1);
        if (!isSlotName(name)) return;
        yield Number(name);
      }
      if (page.nextStartAfter === undefined) return;
      after = page.nextStartAfter;
    }
  }

  /**
   * Reads the slot at `at` and learns from it (a seal, or where the batch ends): what the slot holds.
   * `next` is shared by concurrent walks (an append's and a checkTail's): it is moved from the slot read,
   * never by adding to whatever another walk left there (that skipped a slot).
   */
  private async learnSlot(at: number): Promise<'free' | 'seal' | 'batch'> {
    let obj: Uint8Array;
    try {
      obj = await this.store.get(slotKey(this.prefix, at));
    } catch (e) {
      if ((e as Error).name === 'NotFoundError') return 'free';
      throw e;
    }
    const b = decodeBatch(obj, slotKey(this.prefix, at));
    if (b.seal) {
      this.sealedAt = at;
      return 'seal';
    }
    this.noteSlot(at, b.records.length);
    if (at + b.records.length > this.next) this.next = at + b.records.length;
    return 'batch';
  }

  /**
   * Walks the slots from `this.next` to the first free one; learns a seal on the way. A client that has
   * walked this loglet before (`next` past its start) first reads the slot at `next`: when it is free the
   * client is at the tail, as slots are taken in order (a writer takes one only after reading or listing
   * every slot before it, and none is removed), so one get that misses replaces a listing of the
   * loglet's objects, the common case of a reader checking the tail. Otherwise a long way (a fresh client
   * of a long log) is jumped by listing: the last slot listed is read, and the walk goes on from there (a
   * slot taken meanwhile is found by the walk).
   */
  private async advance(): Promise<void> {
    // a seal seen is final: no slot is taken after a seal marker (no batch count leads past it), so the
    // tail is known. Until 2026-12-07 every walk listed again from the seal: a read after a tail check
    // paid a listing (a round trip on a remote store, a stat or a directory read on a `file:` one); a
    // fresh client's tail check and read of 4 sealed loglets of 64 batches over objstore's express
    // latency model took 220-324 ms, now 211-242 (a probe, 2 runs of 5 each)
    if (this.sealedAt !== undefined) return;
    if (this.next > this.start && (await this.learnSlot(this.next)) !== 'batch') return;
    let last: number | undefined;
    for await (const first of this.slotsFrom(this.next)) {
      // a read that follows lists from here, not from the loglet's start again (or lists nothing)
      this.noteListed(last, first);
      last = first;
    }
    // no slot at or after `next` when listed: nothing to walk (and no get that is bound to miss); a
    // slot written after the listing began belongs to an append not yet acknowledged when this started
    if (last === undefined) return;
    if (last > this.next) this.next = last;
    while ((await this.learnSlot(this.next)) === 'batch') {}
  }

  append(batch: Payload[]): Promise<number[]> {
    const bad = badBatch(batch);
    if (bad) return Promise.reject(bad);
    // no slot for no records: a slot of none would leave `next` where it is, so every walk after it would
    // read that slot forever (and nothing needs the tail: as StripedLoglet's and ZooKeeper's, it takes none)
    if (batch.length === 0) return Promise.resolve([]);
    const run = this.chain.then(async () => {
      for (let attempt = 0; ; attempt++) {
        await this.advance();
        if (this.sealedAt !== undefined) throw new SealedError(this.sealedAt);
        const first = this.next;
        try {
          await this.store.put(slotKey(this.prefix, first), encodeBatch(batch), { ifNoneMatch: '*' });
        } catch (e) {
          // another writer took the slot
          if ((e as Error).name === 'PreconditionFailedError') {
            this.checkSlotAttempts('append', attempt);
            continue;
          }
          throw e;
        }
        if (first + batch.length > this.next) this.next = first + batch.length; // a walk may be past it
        this.noteSlot(first, batch.length);
        return batch.map((_, i) => first + i);
      }
    });
    this.chain = run.catch(() => undefined);
    return run;
  }

  async checkTail(): Promise<TailInfo> {
    await this.advance();
    return { tail: this.sealedAt ?? this.next, sealed: this.sealedAt !== undefined };
  }

  /**
   * The trim point (the loglet's start when never trimmed). A trim object that is not a position is an
   * error naming it: read as NaN, it meant no trim, and trimmed positions were read again.
   */
  private async trimPoint(): Promise<number> {
    const key = `${this.prefix}/trim`;
    let text: string;
    try {
      text = Buffer.from(await this.store.get(key)).toString('utf8');
    } catch (e) {
      if ((e as Error).name === 'NotFoundError') return this.start;
      throw e;
    }
    const pos = /^\d{1,16}$/.test(text) ? Number(text) : Number.NaN;
    if (!Number.isSafeInteger(pos))
      throw new Error(
        `log object ${key} is corrupt: the trim point is '${text.slice(0, 40)}', not a position`,
      );
    return pos;
  }

  async read(from: number, to: number): Promise<LogRecord[]> {
    checkReadRange(from, to);
    // the trim point and the tail at once: on a remote store each is a round trip (and either may move
    // right after it is read, whatever their order)
    const [trim, { tail }] = await Promise.all([this.trimPoint(), this.checkTail()]);
    if (from < trim) throw new TrimmedError(from, trim);
    const end = Math.min(to, tail);
    const out: LogRecord[] = [];
    if (from >= end) return out;
    // batches are keyed by their first position and are contiguous: the batch holding `from` is the last
    // one starting at or before it. When this client knows every slot from there to `end` with its count,
    // those are the batches; otherwise list from a known slot start at or before `from` (or the loglet's
    // start), skip the batches that end before `from` without fetching them, and fetch the ones that overlap
    const overlapping = this.knownBatches(from, end) ?? (await this.listBatches(from, end));
    // fetched `readBatchesInFlight` at a time (a remote store's round trips overlap), taken in order; a
    // seal marker ends the records
    for (let i = 0; i < overlapping.length; i += readBatchesInFlight) {
      const starts = overlapping.slice(i, i + readBatchesInFlight);
      const batches = await Promise.all(
        starts.map(async (first) => {
          const key = slotKey(this.prefix, first);
          return decodeBatch(await this.store.get(key), key);
        }),
      );
      for (const [j, b] of batches.entries()) {
        if (b.seal) return out;
        const first = starts[j]!;
        this.noteSlot(first, b.records.length);
        b.records.forEach((payload, k) => {
          const p = first + k;
          if (p >= from && p < end) out.push({ position: p, payload });
        });
      }
    }
    return out;
  }

  /** The slots from a known start at or before `from` up to `end` that overlap [from, end), listed. */
  private async listBatches(from: number, end: number): Promise<number[]> {
    const overlapping: number[] = [];
    let pending: number | undefined;
    for await (const first of this.slotsFrom(this.known(from))) {
      this.noteListed(pending, first);
      if (first >= end) break;
      // the previous batch ends where this one starts: it is read only if it reaches `from`
      if (pending !== undefined && first > from) overlapping.push(pending);
      pending = first;
    }
    if (pending !== undefined) overlapping.push(pending);
    return overlapping;
  }

  /**
   * The slots overlapping [from, end) when this client knows them all: from the greatest known start at or
   * before `from`, each slot's count leads to the next (slots are contiguous and never rewritten), up to
   * `end`. Undefined when a count on the way is not known: then the slots are listed. A client that read
   * or listed the log up to its tail reads what follows a tail check with gets alone: on a remote store a
   * listing is a round trip, and a reader following the tail paid one a read.
   */
  private knownBatches(from: number, end: number): number[] | undefined {
    const out: number[] = [];
    for (let s = this.known(from); s < end; ) {
      const count = this.slots.get(s);
      // (a slot holds at least one record; a count of 0 would never reach `end`)
      if (count === undefined || count <= 0) return undefined;
      if (s + count > from) out.push(s);
      s += count;
    }
    return out;
  }

  /**
   * Slots seen by this client, listed, read or written (a read of a long log need not list from the
   * beginning again), each with its count of records where known, at most `slotStartsMax`, the oldest
   * seen dropped first.
   */
  private readonly slots = new Map<number, number | undefined>();

  /** Notes a slot start, with its count of records when known (a count once known is kept). */
  private noteSlot(first: number, count?: number): void {
    if (count === undefined && this.slots.has(first)) return;
    this.slots.set(first, count);
    if (this.slots.size > slotStartsMax) this.slots.delete(this.slots.keys().next().value!);
  }

  /** Notes `first` as listed right after `previous` (when defined): no slot between, so that is its count. */
  private noteListed(previous: number | undefined, first: number): void {
    if (previous !== undefined) this.noteSlot(previous, first - previous);
    this.noteSlot(first);
  }

  /** The greatest slot start known to be at or before `pos` (the loglet's start at worst). */
  private known(pos: number): number {
    let best = this.start;
    for (const b of this.slots.keys()) if (b <= pos && b > best) best = b;
    return best;
  }

  /**
   * Raises the trim point to `pos`, never lowers it: a conditional put on the version read (until
   * 2026-12-07 an unconditional one, so of two clients trimming at once the lower trim could land last,
   * and positions a trim had answered for read again).
   */
  async prefixTrim(pos: number): Promise<void> {
    checkPosition('prefixTrim: pos', pos);
    const key = `${this.prefix}/trim`;
    for (let attempt = 0; ; attempt++) {
      const info = await this.store.head(key);
      if (pos <= (info === undefined ? this.start : await this.trimPoint())) return;
      try {
        await this.store.put(
          key,
          Buffer.from(String(pos)),
          info ? { ifMatch: info.etag } : { ifNoneMatch: '*' },
        );
        return;
      } catch (e) {
        // another client's trim landed between the head and the put: read the point again
        if ((e as Error).name !== 'PreconditionFailedError' || attempt + 1 >= trimAttemptsMax) throw e;
      }
    }
  }

  seal(): Promise<TailInfo> {
    const run = this.chain.then(async () => {
      for (let attempt = 0; ; attempt++) {
        await this.advance();
        if (this.sealedAt !== undefined) return { tail: this.sealedAt, sealed: true };
        try {
          await this.store.put(slotKey(this.prefix, this.next), Buffer.from([0xff, 0xff, 0xff, 0xff]), {
            ifNoneMatch: '*',
          });
          this.sealedAt = this.next;
        } catch (e) {
          if ((e as Error).name !== 'PreconditionFailedError') throw e;
          this.checkSlotAttempts('seal', attempt);
        }
      }
    });
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** Throws once `what` has lost the race for a slot `slotAttemptsMax` times. */
  private checkSlotAttempts(what: string, attempt: number): void {
    if (attempt + 1 >= slotAttemptsMax)
      throw new LogletUnavailableError(
        `${what} on ${this.prefix}: another writer took the slot ${slotAttemptsMax} times in a row`,
      );
  }

  async close(): Promise<void> {}
}
