import {
  badBatch,
  checkPosition,
  checkReadRange,
  type Loglet,
  type LogRecord,
  type MetaStore,
  type Payload,
  SealedError,
  type TailInfo,
  TrimmedError,
  VersionConflictError,
  type Versioned,
} from '../contract.js';

/** A loglet in memory: for tests, simulation and single-process use. Appends are "durable" at once. */
export class MemoryLoglet implements Loglet {
  private readonly records: Payload[] = [];
  private sealed = false;
  private trim: number;

  constructor(readonly start = 0) {
    this.trim = start;
  }

  async append(batch: Payload[]): Promise<number[]> {
    const bad = badBatch(batch);
    if (bad) throw bad;
    if (this.sealed) throw new SealedError(this.start + this.records.length);
    const first = this.start + this.records.length;
    for (const p of batch) this.records.push(p);
    return batch.map((_, i) => first + i);
  }

  async checkTail(): Promise<TailInfo> {
    return { tail: this.start + this.records.length, sealed: this.sealed };
  }

  async read(from: number, to: number): Promise<LogRecord[]> {
    checkReadRange(from, to);
    if (from < this.trim) throw new TrimmedError(from, this.trim);
    const end = Math.min(to, this.start + this.records.length);
    const out: LogRecord[] = [];
    for (let p = Math.max(from, this.start); p < end; p++)
      out.push({ position: p, payload: this.records[p - this.start]! });
    return out;
  }

  async prefixTrim(pos: number): Promise<void> {
    checkPosition('prefixTrim: pos', pos);
    this.trim = Math.max(this.trim, Math.min(pos, this.start + this.records.length));
  }

  async seal(): Promise<TailInfo> {
    this.sealed = true;
    return this.checkTail();
  }

  async close(): Promise<void> {}
}

/** A register in memory; `put` is atomic because nothing awaits between the check and the write. */
export class MemoryMetaStore<T = unknown> implements MetaStore<T> {
  private version = 0;
  private value: T | undefined;

  async get(): Promise<Versioned<T>> {
    return {
      version: this.version,
      value: this.value === undefined ? undefined : structuredClone(this.value),
    };
  }

  async put(value: T, expectedVersion: number): Promise<number> {
    if (expectedVersion !== this.version) throw new VersionConflictError(expectedVersion, this.version);
    this.value = structuredClone(value);
    this.version++;
    return this.version;
  }

  async close(): Promise<void> {}
}
