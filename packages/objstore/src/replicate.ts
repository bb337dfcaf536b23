/**
 * Asynchronous replication of namespaces (key prefixes) of a store to a second store.
 *
 * Writes go to the primary and are acknowledged by it; the replica follows. Before a write under a
 * replicated prefix is sent to the primary, its key is recorded in a local journal (fsync'd, group
 * committed), so that a crash can never lose the intent to replicate it. A background worker copies each
 * pending key's *current* state from the primary to the replica (the object, or a delete when the primary
 * no longer has it), so replication is idempotent, later writes of a key coalesce into one copy, and the
 * replica converges to the primary whatever order the copies complete in. Failed copies are retried with
 * jittered exponential backoff. On open, the journal's pending keys are queued again; `resync()` compares
 * the two namespaces by listing and repairs any divergence (for a replica that was restored or edited).
 *
 * Journal (`replication.journal`): one JSON object per line, `{"i":SEQ,"k":KEY}` (intent) or `{"d":SEQ}`
 * (done); a torn last line is ignored. It is rewritten with only the pending intents once it grows.
 */
import { open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { checkTimerMs, checkWhole, makeDirs } from '@strata/cli';
import { type DeleteOptions, NotFoundError, type ObjectStore, type PutOptions } from './contract.js';
import { validateDelete, validateKey, validatePut } from './keys.js';
import { StoreWrapper } from './layers.js';
import { collectBody } from './util.js';

export interface ReplicationOptions {
  /** Key prefixes to replicate (default: every key). */
  prefixes?: string[];
  /** Directory of the replication journal (the express tier); without it, pending copies live in memory. */
  journalDir?: string;
  /** Copies in flight at once. */
  concurrency?: number;
  /** Cap of the retry backoff. */
  retryMsMax?: number;
}

export interface ReplicationStats {
  /** Copies (puts or deletes) made on the replica. */
  copied: number;
  /** Failed copy attempts (each retried). */
  failures: number;
  /** Keys waiting to be copied. */
  pending: number;
  /** Age of the oldest pending key, ms (the replication lag). */
  lagMs: number;
}

const journalName = 'replication.journal';
/** Rewrite the journal when it holds this many more lines than pending keys. */
const journalCompactLines = 10_000;

export class ReplicatedStore extends StoreWrapper {
  /** Pending keys: the newest journal sequence number and when it was first queued. */
  private readonly pending = new Map<string, { seq: number; since: number }>();
  /**
   * Intents journaled (or being journaled) whose writes to the primary have not returned: not pending yet
   * (a copy then could read the state before the write), but a rewrite of the journal keeps them.
   */
  private readonly writing = new Map<number, string>();
  private readonly queue: string[] = [];
  private readonly inFlight = new Set<string>();
  private seq = 0;
  private journalLines = 0;
  private journal?: import('node:fs/promises').FileHandle;
  private journalWaiting: { line: string; resolve: () => void; reject: (e: unknown) => void }[] = [];
  private journalFlushing = false;
  /** The running group-commit loop of the journal. */
  private journalLoop: Promise<void> = Promise.resolve();
  private closed = false;
  /** Aborted by `close`: ends the retries' backoff sleeps (a close waited for one, up to `retryMsMax`). */
  private readonly closing = new AbortController();
  private idle: (() => void)[] = [];
  private copied = 0;
  private failures = 0;
  private compacting?: Promise<void>;
  private readonly running = new Set<Promise<void>>();

  private constructor(
    primary: ObjectStore,
    readonly replica: ObjectStore,
    private readonly o: ReplicationOptions,
  ) {
    super(primary);
  }

  /** Opens replication of `primary` to `replica`, re-queueing what the journal says is pending. */
  static async open(
    primary: ObjectStore,
    replica: ObjectStore,
    o: ReplicationOptions = {},
  ): Promise<ReplicatedStore> {
    // a concurrency of 0 or NaN copied nothing, ever (and waitIdle never returned)
    if (o.concurrency !== undefined) checkWhole('replication concurrency', o.concurrency, 1);
    if (o.retryMsMax !== undefined) checkTimerMs('replication retryMsMax', o.retryMsMax, 1);
    const r = new ReplicatedStore(primary, replica, o);
    if (o.journalDir) await r.recover(o.journalDir);
    return r;
  }

  override get url(): string {
    return `replicate(${this.inner.url} -> ${this.replica.url})`;
  }

  private replicated(key: string): boolean {
    const ps = this.o.prefixes;
    return !ps || ps.some((p) => key.startsWith(p));
  }

  private async recover(dir: string): Promise<void> {
    await makeDirs(dir);
    const path = join(dir, journalName);
    const text = await readFile(path, 'utf8').catch(() => '');
    const intents = new Map<number, string>();
    const lines = text.split('\n');
    for (const [n, line] of lines.entries()) {
      if (line === '') continue;
      let o: { i?: number; k?: string; d?: number };
      try {
        o = JSON.parse(line) as typeof o;
      } catch {
        if (n === lines.length - 1 || (n === lines.length - 2 && lines[n + 1] === '')) break; // torn tail
        throw new Error(`replication journal ${path}, line ${n + 1}: not JSON`);
      }
      if (typeof o.i === 'number' && typeof o.k === 'string') {
        // a key no store takes (journaled before keys were checked first) would be retried for ever
        if (isKey(o.k)) intents.set(o.i, o.k);
      } else if (typeof o.d === 'number') intents.delete(o.d);
      this.seq = Math.max(this.seq, o.i ?? o.d ?? 0);
    }
    const now = Date.now();
    for (const [s, k] of intents)
      this.pending.set(k, { seq: Math.max(s, this.pending.get(k)?.seq ?? 0), since: now });
    // start the journal afresh with only what is pending
    await this.rewriteJournal(path);
    for (const k of this.pending.keys()) this.queue.push(k);
    this.pump();
  }

  private async rewriteJournal(path: string): Promise<void> {
    const tmp = `${path}.tmp`;
    const fh = await open(tmp, 'w');
    // with the intents of writes in flight: a crash after such a write lands must still find its key
    const intents = [...this.pending].map(([k, p]) => [p.seq, k] as const).concat([...this.writing]);
    const body = intents.map(([i, k]) => `${JSON.stringify({ i, k })}\n`).join('');
    await fh.writeFile(body);
    await fh.sync();
    await fh.close();
    await this.journal?.close();
    await rename(tmp, path);
    const d = await open(this.o.journalDir!, 'r');
    await d.sync();
    await d.close();
    this.journal = await open(path, 'a');
    this.journalLines = intents.length;
  }

  /** Appends lines to the journal; resolves once they are durable (group commit). */
  private journalAppend(line: string): Promise<void> {
    if (!this.o.journalDir) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.journalWaiting.push({ line, resolve, reject });
      if (!this.journalFlushing) this.journalLoop = this.journalFlush();
    });
  }

  private async journalFlush(): Promise<void> {
    this.journalFlushing = true;
    while (this.journalWaiting.length > 0) {
      await this.compacting;
      const batch = this.journalWaiting;
      this.journalWaiting = [];
      try {
        await this.journal!.write(batch.map((b) => `${b.line}\n`).join(''));
        await this.journal!.datasync();
        this.journalLines += batch.length;
        for (const b of batch) b.resolve();
      } catch (e) {
        for (const b of batch) b.reject(e);
      }
    }
    this.journalFlushing = false;
    if (this.journalLines > this.pending.size + journalCompactLines && !this.compacting) {
      this.compacting = this.rewriteJournal(join(this.o.journalDir!, journalName))
        .catch(() => undefined)
        .finally(() => {
          this.compacting = undefined;
        });
    }
  }

  /** Records the intent to replicate `key` (durably), runs `write` on the primary, then queues the copy. */
  private async replicatedWrite<T>(key: string, write: () => Promise<T>): Promise<T> {
    if (!this.replicated(key)) return write();
    const seq = ++this.seq;
    this.writing.set(seq, key);
    try {
      await this.journalAppend(JSON.stringify({ i: seq, k: key }));
    } catch (e) {
      this.writing.delete(seq);
      throw e;
    }
    try {
      return await write();
    } finally {
      this.writing.delete(seq);
      // queued even if the write failed: the copy reads the primary's state, whatever it is
      const p = this.pending.get(key);
      if (p) p.seq = seq;
      else {
        this.pending.set(key, { seq, since: Date.now() });
        this.queue.push(key);
      }
      this.pump();
    }
  }

  override async put(key: string, body: Uint8Array | Readable, opts?: PutOptions): Promise<string> {
    // before the intent is journaled: a bad key's copy failed for ever (retried, and again after a reopen),
    // and flush() never returned
    validatePut(key, body, opts ?? {});
    const data = await collectBody(body);
    return this.replicatedWrite(key, () => this.inner.put(key, data, opts));
  }

  override async delete(key: string, opts?: DeleteOptions): Promise<void> {
    validateDelete(key, opts ?? {});
    return this.replicatedWrite(key, () => this.inner.delete(key, opts));
  }

  private pump(): void {
    const max = this.o.concurrency ?? 4;
    while (!this.closed && this.inFlight.size < max && this.queue.length > 0) {
      const key = this.queue.shift()!;
      if (this.inFlight.has(key)) continue; // it is re-queued when the copy in flight ends
      this.inFlight.add(key);
      const c = this.copy(key);
      this.running.add(c);
      void c.finally(() => this.running.delete(c));
    }
    if (this.pending.size === 0) for (const f of this.idle.splice(0)) f();
  }

  /** Copies the primary's current state of `key` to the replica, retrying until it succeeds. */
  private async copy(key: string): Promise<void> {
    for (let attempt = 0; !this.closed; attempt++) {
      const seq = this.pending.get(key)?.seq ?? 0;
      try {
        let data: Uint8Array | undefined;
        try {
          data = await this.inner.get(key);
        } catch (e) {
          if (!(e instanceof NotFoundError)) throw e;
        }
        if (data) await this.replica.put(key, data);
        else await this.replica.delete(key);
        this.copied++;
        const p = this.pending.get(key);
        if (p && p.seq === seq) {
          this.pending.delete(key);
          await this.journalAppend(JSON.stringify({ d: seq })).catch(() => undefined);
        }
        break;
      } catch {
        this.failures++;
        const cap = this.o.retryMsMax ?? 5_000;
        const ms = Math.min(cap, 10 * 2 ** Math.min(attempt, 16)) * (0.5 + Math.random() / 2);
        await sleep(ms, this.closing.signal);
      }
    }
    // written again while this copy ran (its queue entry was skipped as in flight): copy again
    if (!this.closed && this.pending.has(key)) this.queue.push(key);
    this.inFlight.delete(key);
    this.pump();
  }

  get stats(): ReplicationStats {
    let oldest = Number.POSITIVE_INFINITY;
    for (const p of this.pending.values()) oldest = Math.min(oldest, p.since);
    return {
      copied: this.copied,
      failures: this.failures,
      pending: this.pending.size,
      lagMs: this.pending.size === 0 ? 0 : Date.now() - oldest,
    };
  }

  /** Resolves once every write made so far is on the replica. */
  flush(): Promise<void> {
    if (this.pending.size === 0) return Promise.resolve();
    return new Promise((r) => this.idle.push(r));
  }

  /**
   * Compares the replicated namespaces of the two stores by listing (size and content) and queues a copy
   * for every key that differs or is missing on either side. Returns how many keys it queued.
   */
  async resync(): Promise<number> {
    let n = 0;
    for (const prefix of this.o.prefixes ?? ['']) {
      const a = await listAll(this.inner, prefix);
      const b = await listAll(this.replica, prefix);
      const keys = new Set([...a.keys(), ...b.keys()]);
      for (const k of keys) {
        if (this.pending.has(k)) continue; // a copy is coming
        const x = a.get(k);
        const y = b.get(k);
        let differs = x === undefined || y === undefined || x !== y;
        if (!differs) {
          // either side may have lost the key since it was listed (a delete through this store, or its copy
          // to the replica): that is a difference too, not an error (it failed the whole resync)
          const [p, q] = await Promise.all([orAbsent(this.inner.get(k)), orAbsent(this.replica.get(k))]);
          differs = !p || !q || !Buffer.from(p).equals(Buffer.from(q));
        }
        if (differs && !this.pending.has(k)) {
          const seq = ++this.seq;
          await this.journalAppend(JSON.stringify({ i: seq, k }));
          this.pending.set(k, { seq, since: Date.now() });
          this.queue.push(k);
          n++;
        }
      }
    }
    this.pump();
    return n;
  }

  /** Stops copying (pending keys stay in the journal for the next open) and closes both stores. */
  override async close(): Promise<void> {
    this.closed = true;
    this.closing.abort();
    await Promise.all(this.running);
    while (this.journalFlushing) await this.journalLoop;
    await this.compacting;
    await this.journal?.close();
    await this.inner.close();
    await this.replica.close();
  }
}

/** Resolves after `ms`, or as soon as `signal` aborts; the timer does not keep the process alive. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const wake = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', wake);
      resolve();
    };
    const timer = setTimeout(wake, ms);
    timer.unref?.();
    signal.addEventListener('abort', wake, { once: true });
  });
}

function isKey(k: string): boolean {
  try {
    validateKey(k);
    return true;
  } catch {
    return false;
  }
}

/** The bytes, or undefined for an object that is not there. */
async function orAbsent(got: Promise<Uint8Array>): Promise<Uint8Array | undefined> {
  try {
    return await got;
  } catch (e) {
    if (e instanceof NotFoundError) return undefined;
    throw e;
  }
}

/** Key -> size of every object under `prefix`. */
async function listAll(s: ObjectStore, prefix: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  let after: string | undefined;
  for (;;) {
    const page = await s.list(prefix, after === undefined ? {} : { startAfter: after });
    for (const o of page.objects) out.set(o.key, o.size);
    if (page.nextStartAfter === undefined) return out;
    after = page.nextStartAfter;
  }
}
