/**
 * A key-value table on the log, after the DelosTable idea (Balakrishnan et al., OSDI'20, §2): every write
 * is a log append, and each replica materialises the table locally by applying the log in order, so all
 * replicas agree. Reads are linearizable: `get` first syncs to the log's tail (checkTail, then apply every
 * record up to it) and then reads the local state. Writes are deterministic commands: a conditional put is
 * decided when it is applied, at its position, identically on every replica.
 *
 * Snapshots go to an object store: the table's entries as of a log position, under
 * `<prefix>/snapshot-<position 16 digits>.json`. A new replica loads the newest snapshot and applies only
 * the log suffix after it; after a snapshot the log can be trimmed below its position.
 *
 * Record format (one JSON object per log record): {"op":"put","k":K,"v":V}, {"op":"del","k":K}, or
 * {"op":"cas","k":K,"v":V|null,"if":V|null} (set K to V, or delete it when V is null, only if its current
 * value is `if`, null meaning absent). Keys and values are strings.
 */
import { checkWhole, shown } from '@strata/cli';
import type { ObjectStore } from '@strata/objstore';
import type { Loglet } from './contract.js';

type Command =
  | { op: 'put'; k: string; v: string }
  | { op: 'del'; k: string }
  | { op: 'cas'; k: string; v: string | null; if: string | null };

/** A log record that is not a table command (a bug or a foreign writer): named with its position. */
export class TableRecordError extends Error {
  override name = 'TableRecordError';
}

function decode(position: number, payload: Uint8Array): Command {
  let c: unknown;
  try {
    c = JSON.parse(Buffer.from(payload).toString('utf8'));
  } catch {
    throw new TableRecordError(`log position ${position}: not a table command (not JSON)`);
  }
  const o = c as Record<string, unknown>;
  const str = (x: unknown) => typeof x === 'string';
  const strOrNull = (x: unknown) => x === null || typeof x === 'string';
  if (o && str(o.k)) {
    if (o.op === 'put' && str(o.v)) return o as Command;
    if (o.op === 'del') return o as Command;
    if (o.op === 'cas' && strOrNull(o.v) && strOrNull(o.if)) return o as Command;
  }
  throw new TableRecordError(
    `log position ${position}: not a table command: ${JSON.stringify(c).slice(0, 80)}`,
  );
}

export interface TableOptions {
  /** Where snapshots go (none: no snapshots, replicas replay the whole log). */
  snapshots?: ObjectStore;
  /** Key prefix of this table's snapshots (default `table`). */
  prefix?: string;
  /** Records read per batch while syncing. */
  readBatch?: number;
}

export class LogTable {
  private readonly state = new Map<string, string>();
  /** The next log position to apply. */
  private applied = 0;
  /** Outcomes of conditional puts this replica appended, by position, until applied. */
  private readonly outcomes = new Map<number, (ok: boolean) => void>();
  private syncing: Promise<void> | undefined;

  private constructor(
    readonly log: Loglet,
    private readonly o: TableOptions,
  ) {}

  /** Opens a replica: the newest snapshot, if any, then the log after it. */
  static async open(log: Loglet, o: TableOptions = {}): Promise<LogTable> {
    // a batch of 0 read nothing, and the sync asked again forever without yielding
    if (o.readBatch !== undefined) checkWhole('LogTable: readBatch', o.readBatch, 1);
    if (o.prefix !== undefined && (typeof o.prefix !== 'string' || o.prefix === ''))
      throw new TypeError(`LogTable: prefix must be a non-empty string, got ${shown(o.prefix)}`);
    const t = new LogTable(log, o);
    await t.loadSnapshot();
    await t.sync();
    return t;
  }

  private get prefix(): string {
    return this.o.prefix ?? 'table';
  }

  /** The log position up to which this replica has applied (exclusive). */
  get position(): number {
    return this.applied;
  }

  get size(): number {
    return this.state.size;
  }

  private async append(c: Command): Promise<number> {
    const [p] = await this.log.append([Buffer.from(JSON.stringify(c), 'utf8')]);
    return p!;
  }

  /** Sets `key`; resolves with the record's position once it is durable (not yet applied here). */
  put(key: string, value: string): Promise<number> {
    return this.append({ op: 'put', k: key, v: value });
  }

  delete(key: string): Promise<number> {
    return this.append({ op: 'del', k: key });
  }

  /**
   * Sets `key` to `value` (or deletes it when `value` is null) only if its value is `expected` (null:
   * absent) when the command is applied at its log position. Resolves with whether it took effect.
   */
  async compareAndSet(key: string, expected: string | null, value: string | null): Promise<boolean> {
    const p = await this.append({ op: 'cas', k: key, v: value, if: expected });
    const outcome = new Promise<boolean>((resolve) => this.outcomes.set(p, resolve));
    await this.syncTo(p + 1);
    return outcome;
  }

  /** A linearizable read: sync to the tail, then read. */
  async get(key: string): Promise<string | undefined> {
    await this.sync();
    return this.state.get(key);
  }

  /** The value as this replica has it now (may be stale). */
  getLocal(key: string): string | undefined {
    return this.state.get(key);
  }

  /** Linearizable scan of the keys starting with `prefix`, in key order. */
  async scan(prefix = ''): Promise<[string, string][]> {
    await this.sync();
    return [...this.state]
      .filter(([k]) => k.startsWith(prefix))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }

  /** Applies every record below the log's current tail. */
  async sync(): Promise<void> {
    const { tail } = await this.log.checkTail();
    await this.syncTo(tail);
  }

  /** Applies every record below `to`. Concurrent callers share one reader. */
  private async syncTo(to: number): Promise<void> {
    while (this.applied < to) {
      const before = this.applied;
      let mine = false;
      if (!this.syncing) {
        mine = true;
        this.syncing = this.readApply(to).finally(() => {
          this.syncing = undefined;
        });
      }
      await this.syncing;
      // a read of our own that found nothing below a tail the log reported: asking again would find
      // nothing forever (and never yield)
      if (mine && this.applied === before)
        throw new TableRecordError(
          `the log read from position ${before} returned nothing, though its tail is past it`,
        );
    }
  }

  private async readApply(to: number): Promise<void> {
    const batch = this.o.readBatch ?? 4096;
    while (this.applied < to) {
      const recs = await this.log.read(this.applied, Math.min(to, this.applied + batch));
      if (recs.length === 0) return;
      for (const r of recs) {
        if (r.position !== this.applied)
          throw new TableRecordError(`log gap: expected position ${this.applied}, read ${r.position}`);
        this.apply(r.position, decode(r.position, r.payload));
        this.applied = r.position + 1;
      }
    }
  }

  private apply(position: number, c: Command): void {
    if (c.op === 'put') this.state.set(c.k, c.v);
    else if (c.op === 'del') this.state.delete(c.k);
    else {
      const ok = (this.state.get(c.k) ?? null) === c.if;
      if (ok) {
        if (c.v === null) this.state.delete(c.k);
        else this.state.set(c.k, c.v);
      }
      const done = this.outcomes.get(position);
      if (done) {
        this.outcomes.delete(position);
        done(ok);
      }
    }
  }

  private snapshotKey(position: number): string {
    return `${this.prefix}/snapshot-${String(position).padStart(16, '0')}.json`;
  }

  /** Writes a snapshot of the table as of the current tail; returns its position. */
  async snapshot(): Promise<number> {
    const store = this.o.snapshots;
    if (!store) throw new Error('this table has no snapshot store');
    await this.sync();
    const position = this.applied;
    const body = JSON.stringify({ position, entries: [...this.state] });
    await store.put(this.snapshotKey(position), Buffer.from(body, 'utf8'));
    return position;
  }

  /** Snapshots, then trims the log below the snapshot: new replicas start from the snapshot. */
  async snapshotAndTrim(): Promise<number> {
    const position = await this.snapshot();
    await this.log.prefixTrim(position);
    return position;
  }

  private async loadSnapshot(): Promise<void> {
    const store = this.o.snapshots;
    if (!store) return;
    let newest: string | undefined;
    let after: string | undefined;
    for (;;) {
      const page = await store.list(`${this.prefix}/snapshot-`, { ...(after ? { startAfter: after } : {}) });
      for (const o of page.objects) if (!newest || o.key > newest) newest = o.key;
      if (!page.nextStartAfter) break;
      after = page.nextStartAfter;
    }
    if (!newest) return;
    const raw = Buffer.from(await store.get(newest)).toString('utf8');
    let snap: { position: number; entries: [string, string][] };
    try {
      snap = JSON.parse(raw) as typeof snap;
      if (typeof snap !== 'object' || snap === null) throw new Error('not a JSON object');
      if (!Number.isSafeInteger(snap.position) || snap.position < 0)
        throw new Error('its position is not a whole number >= 0');
      if (!Array.isArray(snap.entries)) throw new Error('its entries are not an array');
      // each entry a [key, value] pair of strings (a number among them failed as "not iterable")
      const bad = snap.entries.findIndex(
        (e) => !Array.isArray(e) || e.length !== 2 || typeof e[0] !== 'string' || typeof e[1] !== 'string',
      );
      if (bad >= 0) throw new Error(`entry ${bad} is not a [key, value] pair of strings`);
    } catch (e) {
      throw new TableRecordError(`snapshot ${newest} is malformed: ${(e as Error).message}`);
    }
    this.state.clear();
    for (const [k, v] of snap.entries) this.state.set(k, v);
    this.applied = snap.position;
  }
}
