// Hot swap: while writers append continuously, the log is reconfigured from one kind of loglet to another
// and back (native -> file -> object store -> native). No acknowledged append is lost, none appears twice,
// positions stay dense; the writers' longest stall is reported (the bench measures it; no timing asserts).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileMetaStore, LogServer, nativeSpec, openLoglet, Sequencer, VirtualLog } from '../src/index.js';

const root = mkdtempSync(join(tmpdir(), 'vlog-hotswap-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('hot swap between loglet kinds under load', () => {
  it('native -> file -> objstore -> native with 4 writers appending: nothing lost, nothing twice, dense', async () => {
    const servers = [0, 1, 2].map((i) => new LogServer(join(root, `ls${i}`)));
    const addrs = await Promise.all(servers.map(async (s) => `127.0.0.1:${await s.listen(0)}`));
    const seq = new Sequencer();
    const seqAddr = `127.0.0.1:${await seq.listen(0)}`;
    const factory = (spec: string, start: number, i: number) => openLoglet(spec, start, i, root);
    const metaPath = join(root, 'meta.json');
    const v = await VirtualLog.create(new FileMetaStore(metaPath), factory, nativeSpec(seqAddr, addrs, 'hs'));
    const specs = [`file:./seg`, `objstore:file:./objs`, nativeSpec(seqAddr, addrs, 'hs2')];
    const acked = new Map<number, string>();
    let stop = false;
    let stallMax = 0;
    const writers = [0, 1, 2, 3].map(async (w) => {
      for (let i = 0; !stop; i++) {
        const payload = `w${w}-${i}`;
        const t = performance.now();
        const [p] = await v.append([Buffer.from(payload)]);
        stallMax = Math.max(stallMax, performance.now() - t);
        expect(acked.has(p!)).toBe(false);
        acked.set(p!, payload);
      }
    });
    for (const spec of specs) {
      await new Promise((r) => setTimeout(r, 150));
      await v.reconfigure(spec);
    }
    await new Promise((r) => setTimeout(r, 150));
    stop = true;
    await Promise.all(writers);
    const kinds = v.segments.map((s) => s.spec.split(':')[0]);
    expect(kinds).toEqual(['native', 'file', 'objstore', 'native']);
    // a fresh client reads everything back
    const r = await VirtualLog.connect(new FileMetaStore(metaPath), factory);
    const { tail } = await r.checkTail();
    const recs = await r.read(0, tail);
    expect(recs.map((x) => x.position)).toEqual(Array.from({ length: tail }, (_, i) => i));
    expect(tail).toBe(acked.size); // no unacknowledged extras: nothing failed
    const seen = new Set<string>();
    for (const x of recs) {
      const s = Buffer.from(x.payload).toString();
      expect(seen.has(s)).toBe(false);
      seen.add(s);
      expect(acked.get(x.position)).toBe(s);
    }
    // every segment got records
    for (const [i, s] of r.segments.entries())
      if (i < r.segments.length - 1) expect(s.end!).toBeGreaterThan(s.start);
    console.log(
      `hot swap: ${acked.size} appends across 3 swaps, longest writer stall ${stallMax.toFixed(1)} ms`,
    );
    await r.close();
    await v.close();
    await seq.close();
    for (const s of servers) await s.close();
  }, 60_000);
});
