// A tiered store's conditional calls and listings, each stopped midway while a move runs, and bad keys:
// each case failed before its fix.
import { describe, expect, it } from 'vitest';
import { InvalidKeyError, MemStore, NotFoundError, TieredStore } from '../src/index.js';
import { Gated, settle, turns } from './helpers/gated.js';

const bytes = (t: string) => Buffer.from(t);
const text = (b: Uint8Array) => Buffer.from(b).toString();

describe('tiers: conditional calls and listings racing moves', () => {
  const auto = { defaultClass: 'auto' as const, idleMsBeforeStandard: 0 };

  it('a conditional delete of an object written again after a move does not bring the moved version back', async () => {
    const standard = new MemStore();
    const t = new TieredStore(new MemStore(), standard, auto);
    await t.put('k', bytes('v1'));
    expect(await t.moveIdle(Date.now() + 10)).toBe(1);
    const v2 = await t.put('k', bytes('v2')); // to express; v1's copy stays in standard, shadowed
    await t.delete('k', { ifMatch: v2 });
    await expect(t.get('k')).rejects.toBeInstanceOf(NotFoundError);
    expect(await t.head('k')).toBeUndefined();
    expect((await t.list('')).objects).toEqual([]);
    expect(await standard.head('k')).toBeUndefined();
  });

  for (const cond of [false, true])
    it(`a get while a${cond ? ' conditional' : ''} delete of an object written again after a move runs never returns the moved version`, async () => {
      const standard = new Gated();
      const t = new TieredStore(new MemStore(), standard, auto);
      await t.put('k', bytes('v1'));
      expect(await t.moveIdle(Date.now() + 10)).toBe(1);
      const v2 = await t.put('k', bytes('v2'));
      standard.hold('delete'); // the delete stops at its first call of standard
      const deleting = t.delete('k', cond ? { ifMatch: v2 } : {});
      await turns();
      const got = await t.get('k').then(text, (e: unknown) => (e instanceof NotFoundError ? 'none' : e));
      expect(['v2', 'none']).toContain(got); // v1 was read between the express and the standard delete
      standard.release('delete');
      await deleting;
      await expect(t.get('k')).rejects.toBeInstanceOf(NotFoundError);
    });

  it('a put while a delete of a moved object runs is not lost to the delete (found by the race test, seed 1703506287)', async () => {
    const express = new Gated();
    const t = new TieredStore(express, new MemStore(), auto);
    await t.put('k', bytes('v1'));
    expect(await t.moveIdle(Date.now() + 10)).toBe(1); // v1 in standard only
    express.hold('delete'); // the delete has removed v1 from standard, its express delete waits
    const deleting = t.delete('k');
    await turns();
    await expect(t.get('k')).rejects.toBeInstanceOf(NotFoundError); // readers see it gone
    let put = false;
    const putting = t.put('k', bytes('v2')).then(() => {
      put = true;
    });
    await turns();
    // the put waits for the delete (same key, same process): acknowledged before it, the delete's express
    // delete removed it afterwards, and an acknowledged write was lost
    expect(put).toBe(false);
    express.release('delete');
    await deleting;
    await putting;
    expect(text(await t.get('k'))).toBe('v2');
  });

  it('a get finds an object that left express before its first look and standard before its second (race test seed 763847502)', async () => {
    /** A MemStore whose gets wait at a gate while it is held, before they read. */
    class SlowGets extends MemStore {
      gate: Promise<void> | undefined;
      override async get(...a: Parameters<MemStore['get']>) {
        await this.gate;
        return super.get(...a);
      }
    }
    const standard = new SlowGets();
    const t = new TieredStore(new MemStore(), standard, auto);
    const v1 = await t.put('k', bytes('v1'));
    expect(await t.moveIdle(Date.now() + 10)).toBe(1); // v1 in standard only
    let open!: () => void;
    standard.gate = new Promise((r) => {
      open = r;
    });
    const reading = settle(t.get('k')); // express has nothing: it waits to read standard
    await turns();
    await t.put('k', bytes('v2')); // to express, shadowing v1
    // a delete of v1 removes the shadowed v1 from standard, then finds v2 in express and fails
    await expect(t.delete('k', { ifMatch: v1 })).rejects.toThrow('etag');
    open();
    const r = await reading;
    // v1 and then v2 stood all along: the get read nothing in standard, then v2 in express
    expect(r.ok && text(r.v)).toBe('v2');
  });

  it('a listing lists an object a move takes from express to standard meanwhile', async () => {
    const express = new Gated();
    const t = new TieredStore(express, new MemStore(), auto);
    await t.put('k', bytes('v1'));
    express.hold('list');
    const listing = t.list('');
    await turns();
    express.release('list'); // express's page holds k; standard's is read after it
    const moving = t.moveIdle(Date.now() + 10);
    expect((await listing).objects.map((o) => o.key)).toEqual(['k']);
    await moving;
    // and the other way round: express's page read after the move, standard's before it, missed k
    await t.put('j', bytes('v1'));
    const slow = new Gated();
    const standardFirst = new TieredStore(slow, t.standard, auto);
    // slow's page is empty (it holds nothing), as express's is after j moved; only the order matters
    slow.hold('list');
    const racing = standardFirst.list('');
    await turns();
    await t.moveIdle(Date.now() + 10);
    slow.release('list');
    expect((await racing).objects.map((o) => o.key)).toEqual(['j', 'k']);
  });

  it('a create-only put racing a move of the object in the same process fails (it made a second object)', async () => {
    const express = new Gated();
    const standard = new MemStore();
    const t = new TieredStore(express, standard, auto);
    await t.put('k', bytes('v1'));
    express.hold('head'); // the put's look at express waits; the move runs meanwhile
    const create = settle(t.put('k', bytes('v2'), { ifNoneMatch: '*' }));
    await turns();
    const moving = t.moveIdle(Date.now() + 10);
    await turns();
    express.release('head');
    await moving;
    const c = await create;
    expect(c.ok ? 'created' : (c.e as Error).name).toBe('PreconditionFailedError');
    expect(text(await t.get('k'))).toBe('v1');
  });

  it('a key that is not a string is an InvalidKeyError, as from any store (its class lookup threw a TypeError)', async () => {
    const t = new TieredStore(new MemStore(), new MemStore(), { classes: { 'logs/': 'auto' } });
    const bad = undefined as unknown as string;
    for (const op of [
      () => t.put(bad, bytes('x')),
      () => t.get(bad),
      () => t.getStream(bad),
      () => t.head(bad),
      () => t.delete(bad),
    ])
      await expect(op()).rejects.toThrow(InvalidKeyError);
  });
});
