/**
 * Ordered, batched appends: a stream's ingestion builds and writes several chunks at once, and their
 * progress records must reach the log in the chunks' order, each only after every chunk before it.
 */

/**
 * Appends records in the order they were added, each once it is ready and every record before it is
 * appended, and all that are ready together in one batch (one log append for several chunks while the
 * log is busy). After a failure (of a record or an append) nothing more is appended: every later record
 * fails too, so no chunk is acknowledged after one that was not.
 */
export class OrderedAppends<R> {
  private ready: Promise<unknown> = Promise.resolve();
  private batch: { rec: R; done: (pos: number) => void; fail: (e: unknown) => void }[] = [];
  private appending = false;
  /** The first failure (a record's or an append's), whatever it was rejected with (undefined too). */
  private failure: { error: unknown } | undefined;

  constructor(private readonly append: (recs: R[]) => Promise<number[]>) {}

  /** Resolves with the record's log position once it is appended. */
  add(rec: Promise<R>): Promise<number> {
    // Handled below once the records before it are appended; until then a record that fails early (a put
    // refused at once) would be an unhandled rejection, which ends a Node process.
    rec.catch(() => undefined);
    return new Promise<number>((done, fail) => {
      this.ready = this.ready
        .then(() => rec)
        .then(
          (r) => {
            if (this.failure) fail(this.failure.error);
            else {
              this.batch.push({ rec: r, done, fail });
              void this.drain();
            }
          },
          (e) => {
            this.failure ??= { error: e };
            fail(e);
          },
        );
    });
  }

  private async drain(): Promise<void> {
    if (this.appending) return;
    this.appending = true;
    while (this.batch.length > 0) {
      const b = this.batch;
      this.batch = [];
      try {
        if (this.failure) throw this.failure.error;
        const pos = await this.append(b.map((x) => x.rec));
        for (let i = 0; i < b.length; i++) b[i]!.done(pos[i]!);
      } catch (e) {
        this.failure ??= { error: e };
        for (const x of b) x.fail(e);
      }
    }
    this.appending = false;
  }
}
