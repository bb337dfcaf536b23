// Gates and helpers for tests that stop a store call midway while other calls run.
import { MemStore } from '../../src/index.js';

/**
 * A MemStore whose calls of some kinds (of one key, or of any but the WAL's packs) wait at a gate while it
 * is held (`hold`, `release`): puts and deletes before they write, heads and listings after they read (a
 * reply in flight), and `putReply` puts after they wrote (the object there before the store answers, as a
 * file store's is once renamed, before its directory's sync).
 */
export class Gated extends MemStore {
  private readonly gates = new Map<string, { wait: Promise<void>; open: () => void; key?: string }>();
  hold(op: GatedOp, key?: string): void {
    let open!: () => void;
    const wait = new Promise<void>((r) => {
      open = r;
    });
    this.gates.set(op, { wait, open, ...(key !== undefined ? { key } : {}) });
  }
  release(op: GatedOp): void {
    this.gates.get(op)?.open();
    this.gates.delete(op);
  }
  private async pass(op: GatedOp, key: string): Promise<void> {
    const g = this.gates.get(op);
    if (g && (g.key === undefined ? !key.startsWith('.wal-packs/') : g.key === key)) await g.wait;
  }
  override async put(...a: Parameters<MemStore['put']>) {
    await this.pass('put', a[0]);
    const etag = await super.put(...a);
    await this.pass('putReply', a[0]);
    return etag;
  }
  override async delete(...a: Parameters<MemStore['delete']>) {
    await this.pass('delete', a[0]);
    return super.delete(...a);
  }
  override async head(...a: Parameters<MemStore['head']>) {
    // read now, answered once released
    const info = await super.head(...a);
    await this.gates.get('head')?.wait;
    return info;
  }
  override async list(...a: Parameters<MemStore['list']>) {
    // the page as it was when asked for, handed back once released (as a remote store's reply in flight)
    const page = await super.list(...a);
    await this.gates.get('list')?.wait;
    return page;
  }
}

type GatedOp = 'put' | 'putReply' | 'delete' | 'head' | 'list';

export const turns = async (n = 5) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};
export const settle = <T>(p: Promise<T>) =>
  p.then(
    (v) => ({ ok: true as const, v }),
    (e: unknown) => ({ ok: false as const, e }),
  );
