/**
 * The progress log: an append-only log of JSON records on a @strata/vlog VirtualLog. A resolved append is
 * durably committed; a crash mid-append leaves the records either committed or absent (vlog's contract).
 *
 *   position:  0        1        2              tail
 *              [block]  [block]  [node, wm ...]  | next append goes here
 */
import { openLog, type VirtualLog } from '@strata/vlog';

export type ProgressRecord =
  | {
      t: 'block';
      id: string;
      key: string;
      source: string;
      from: number;
      to: number;
      rows: number;
      rawBytes: number;
      bytes: number;
      min: (string | number | null)[];
      max: (string | number | null)[];
      leaf?: string;
    }
  | { t: 'node'; level: number; from: number; to: number; key: string; keys: number; bytes: number }
  | { t: 'wm'; level: number; to: number }
  | {
      t: 'rewrite';
      seq: number;
      key: string;
      rows: number;
      bytes: number;
      min: (string | number | null)[];
      max: (string | number | null)[];
    }
  | { t: 'erase'; where: string; blocks: number[]; rows: number; at: number };

/** Bound on one record's encoded size. */
export const recordBytesMax = 1 << 20;

const enc = new TextEncoder();
const dec = new TextDecoder();

/**
 * The stream's progress log on a @strata/vlog VirtualLog (file loglets, file MetaStore under `dir`).
 * Records are JSON; a resolved append is durably committed (the VirtualLog contract).
 */
export class ProgressLog {
  private constructor(private readonly log: VirtualLog) {}

  static async open(dir: string, name: string): Promise<ProgressLog> {
    const log = await openLog(name, { meta: `file:${dir}`, create: true });
    return new ProgressLog(log);
  }

  /** Appends records as one batch; resolves with their positions once committed. */
  async append(batch: ProgressRecord[]): Promise<number[]> {
    const payloads = batch.map((r) => {
      const b = enc.encode(JSON.stringify(r));
      if (b.length > recordBytesMax)
        throw new Error(`progress record of ${b.length} bytes is over recordBytesMax`);
      return b;
    });
    return this.log.append(payloads);
  }

  /** Records in [from, to). */
  async read(from: number, to: number): Promise<ProgressRecord[]> {
    const recs = await this.log.read(from, to);
    return recs.map((r) => {
      try {
        return JSON.parse(dec.decode(r.payload)) as ProgressRecord;
      } catch {
        throw new Error(`progress log record ${r.position} is not JSON (corrupt log)`);
      }
    });
  }

  async checkTail(): Promise<{ tail: number; sealed: boolean }> {
    return this.log.checkTail();
  }

  async close(): Promise<void> {
    await this.log.close();
  }
}
