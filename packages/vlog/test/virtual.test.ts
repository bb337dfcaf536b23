import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { captureIo } from '@strata/cli';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { byteLines } from '../src/cli.js';
import {
  commands,
  FailureDetector,
  LogletOwnedError,
  LogServer,
  MemoryLoglet,
  MemoryMetaStore,
  NativeLoglet,
  openLog,
  openMeta,
  SealedError,
  Sequencer,
  TrimmedError,
  VirtualLog,
} from '../src/index.js';
import { claimLoglet } from '../src/open.js';
import { simulate } from '../src/sim.js';

const root = mkdtempSync(join(tmpdir(), 'vlog-virt-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const b = (s: string) => new Uint8Array(Buffer.from(s));

describe('VirtualLog', () => {
  it('keeps appending across a reconfiguration: nothing lost, nothing twice, positions dense', async () => {
    const v = await openLog('hot', { meta: `file:${root}/m1`, loglet: `file:${root}/a`, create: true });
    let stop = false;
    const acked: [number, string][] = [];
    const writers = Array.from({ length: 4 }, async (_, w) => {
      for (let i = 0; !stop; i++) {
        const [p] = await v.append([b(`w${w}-${i}`)]);
        acked.push([p!, `w${w}-${i}`]);
        // a memory loglet resolves in microtasks only: give timers a turn
        await new Promise((r) => setImmediate(r));
      }
    });
    await new Promise((r) => setTimeout(r, 50));
    const at = await v.reconfigure(`file:${root}/b`);
    await new Promise((r) => setTimeout(r, 50));
    await v.reconfigure(`mem://c`);
    await new Promise((r) => setTimeout(r, 30));
    stop = true;
    await Promise.all(writers);
    expect(v.segments).toHaveLength(3);
    expect(v.segments[1]!.start).toBe(at);
    const { tail } = await v.checkTail();
    const recs = await v.read(0, tail);
    expect(recs.map((r) => r.position)).toEqual(Array.from({ length: tail }, (_, i) => i));
    const byPos = new Map(recs.map((r) => [r.position, Buffer.from(r.payload).toString()]));
    for (const [p, s] of acked) expect(byPos.get(p)).toBe(s);
    expect(new Set(recs.map((r) => Buffer.from(r.payload).toString())).size).toBe(recs.length);
    await v.close();
  });

  it('reads a range of 200,000 records in one call (they were spread as arguments: a RangeError past about 150,000)', async () => {
    const v = await VirtualLog.create(
      new MemoryMetaStore() as never,
      async (_s, start) => new MemoryLoglet(start),
      'mem://big',
    );
    const rec = b('r');
    for (let i = 0; i < 200; i++) await v.append(Array.from({ length: 1000 }, () => rec));
    const recs = await v.read(0, 200_000);
    expect(recs).toHaveLength(200_000);
    expect(recs[199_999]!.position).toBe(199_999);
    await v.close();
  });

  it('of racing reconfigurations exactly one chain wins; a second client adopts it', async () => {
    const meta = new MemoryMetaStore();
    const loglets = new Map<number, MemoryLoglet>();
    const f = async (_s: string, start: number) => {
      if (!loglets.has(start)) loglets.set(start, new MemoryLoglet(start));
      return loglets.get(start)!;
    };
    const a = await VirtualLog.create(meta as never, f, 'mem://0');
    const c = await VirtualLog.connect(meta as never, f);
    await a.append([b('x'), b('y')]);
    const [ra, rc] = await Promise.all([a.reconfigure('mem://A'), c.reconfigure('mem://C')]);
    expect(ra).toBe(2);
    expect(rc).toBe(2);
    await a.refresh();
    await c.refresh();
    expect(a.segments).toEqual(c.segments);
    expect(a.segments).toHaveLength(2);
    expect(['mem://A', 'mem://C']).toContain(a.segments[1]!.spec);
    expect(await c.append([b('z')])).toEqual([2]);
  });

  it('trims no further than the tail: records appended after a trim past it stay readable', async () => {
    const v = await VirtualLog.create(
      new MemoryMetaStore(),
      async (_s, start) => new MemoryLoglet(start),
      'm',
    );
    await v.append([b('a'), b('b')]);
    await v.prefixTrim(99);
    expect(await v.append([b('c')])).toEqual([2]);
    expect((await v.read(2, 3)).map((r) => Buffer.from(r.payload).toString())).toEqual(['c']);
    await expect(v.read(1, 2)).rejects.toBeInstanceOf(TrimmedError);
    await v.close();
  });

  it('a sealed log (no successor) rejects appends after its timeout', async () => {
    const v = await VirtualLog.create(
      new MemoryMetaStore() as never,
      async (_s, st) => new MemoryLoglet(st),
      'mem://s',
      { appendTimeoutMs: 30 },
    );
    await v.seal();
    const w = new VirtualLog((v as unknown as { meta: never }).meta, async (_s, st) => new MemoryLoglet(st), {
      appendTimeoutMs: 20,
    });
    await w.refresh();
    await expect(v.append([b('x')])).rejects.toBeDefined();
    await expect(w.append([b('x')])).resolves.toEqual([0]); // a different loglet instance: not sealed
    expect(SealedError).toBeDefined();
  });
});

describe('deterministic simulation', () => {
  it("two logs given one location do not share a loglet: the second is refused (it read and appended among the first one's)", async () => {
    for (const [k, loglet] of [
      `file:${root}/shared-f`,
      `objstore:file:${root}/shared-o`,
      'mem://shared-m',
    ].entries()) {
      const meta = (n: string) =>
        loglet.startsWith('mem:') ? `mem://own-${n}` : `file:${root}/own-${k}-${n}`;
      const one = await openLog('one', { meta: meta('1'), loglet, create: true });
      await one.append([b('x'), b('y')]);
      // a second log created there is refused, with nothing written
      await expect(openLog('two', { meta: meta('2'), loglet, create: true }), loglet).rejects.toThrow(
        /segment 0-0 there belongs to log 'one', not 'two': give each log a location of its own/,
      );
      await expect(openLog('two', { meta: meta('2') })).rejects.toThrow(/no log named 'two'/);
      // the same log opened again (another client, a restart) is its owner
      const again = await openLog('one', { meta: meta('1') });
      expect((await again.read(0, 2)).map((r) => Buffer.from(r.payload).toString())).toEqual(['x', 'y']);
      await again.close();
      await one.close();
    }
  });

  it("a file: segment whose OWNER is empty (a claim cut short) is refused, saying so, not as another log's", async () => {
    const loglet = `file:${root}/torn-owner`;
    const log = await openLog('t', { meta: `file:${root}/torn-owner-meta`, loglet, create: true });
    await log.append([b('x')]);
    await log.close();
    const owner = join(root, 'torn-owner', '0-0', 'OWNER');
    expect(readFileSync(owner, 'utf8')).toBe('t');
    // written whole through a file of its own, which is gone
    expect(readdirSync(join(root, 'torn-owner', '0-0')).filter((f) => f.startsWith('OWNER'))).toEqual([
      'OWNER',
    ]);
    writeFileSync(owner, '');
    const again = openLog('t', { meta: `file:${root}/torn-owner-meta` }).then((l) => l.read(0, 1));
    await expect(again).rejects.toThrow(
      /segment 0-0 there has an empty OWNER file .*remove it if no log names the segment/,
    );
  });

  it("a log's objstore segments share one store (one directory listing kept, not one per segment)", async () => {
    const loglet = `objstore:file:${root}/shared-store`;
    const v = await openLog('s', { meta: `file:${root}/shared-store-meta`, loglet, create: true });
    for (let i = 0; i < 3; i++) {
      await v.append([b(`r${i}`)]);
      await v.reconfigure(loglet);
    }
    await v.append([b('r3')]);
    expect((await v.read(0, 4)).map((r) => Buffer.from(r.payload).toString())).toEqual([
      'r0',
      'r1',
      'r2',
      'r3',
    ]);
    const inside = v as unknown as { loglets: Map<number, Promise<{ store: unknown }>> };
    const stores = new Set(await Promise.all([...inside.loglets.values()].map(async (l) => (await l).store)));
    expect(inside.loglets.size).toBe(4);
    expect(stores.size).toBe(1);
    await v.close();
  });

  it('of logs claiming one objstore segment at once exactly one gets it; claims by its owner all succeed, and write nothing once it is held', async () => {
    const spec = `objstore:file:${root}/claim-race`;
    const tries = await Promise.allSettled(
      ['p', 'q', 'r', 'p'].map((log) => claimLoglet(spec, 0, 0, process.cwd(), log)),
    );
    const won = tries.flatMap((t, i) => (t.status === 'fulfilled' ? [['p', 'q', 'r', 'p'][i]!] : []));
    expect(new Set(won).size).toBe(1);
    for (const t of tries) if (t.status === 'rejected') expect(t.reason).toBeInstanceOf(LogletOwnedError);
    const owner = won[0]!;
    // the owner's later claims (every open of the log) read the claim and write nothing
    // (a conditional put would write its file in tmp/ and take a lock file there before failing)
    const dirs = ['objects', 'tmp'].map((d) => join(root, 'claim-race', d));
    const before = dirs.map((d) => [readdirSync(d).length, statSync(d).mtimeMs]);
    await Promise.all([1, 2, 3].map(() => claimLoglet(spec, 0, 0, process.cwd(), owner)));
    expect(dirs.map((d) => [readdirSync(d).length, statSync(d).mtimeMs])).toEqual(before);
    await expect(claimLoglet(spec, 0, 0, process.cwd(), `${owner}x`)).rejects.toBeInstanceOf(
      LogletOwnedError,
    );
  });

  it("a reconfiguration onto another log's segment is refused and the log goes on elsewhere; a chain naming one is repaired", async () => {
    const at = (d: string) => `file:${root}/re-${d}`;
    // log A's segment 1 starts at 0 in re-x; log B's would be the same one (index 1, start 0)
    const a = await openLog('A', { meta: at('meta-a'), loglet: at('z'), create: true });
    await a.reconfigure(at('x'));
    await a.append([b('a1')]);
    const bl = await openLog('B', { meta: at('meta-b'), loglet: at('y'), create: true });
    await expect(bl.reconfigure(at('x'))).rejects.toBeInstanceOf(LogletOwnedError);
    // refused after the seal: B is sealed, and goes on on a location of its own
    expect(await bl.reconfigure(at('w'))).toBe(0);
    expect(await bl.append([b('b1')])).toEqual([0]);
    await bl.close();
    // a chain written before reconfigurations claimed their loglets, naming A's segment: B's appends fail,
    // and a reconfiguration ends that segment where it starts (it never held a record of B's)
    const store = openMeta(at('meta-c'), 'C', root);
    await store.put(
      {
        segments: [
          { start: 0, end: 0, spec: at('u') },
          { start: 0, spec: at('x') },
        ],
      },
      0,
    );
    await store.close();
    const c = await openLog('C', { meta: at('meta-c') });
    await expect(c.append([b('c1')])).rejects.toThrow(/belongs to log 'A', not 'C'/);
    expect(await c.reconfigure(at('v'))).toBe(0);
    expect(await c.append([b('c1')])).toEqual([0]);
    expect((await c.read(0, 1)).map((r) => Buffer.from(r.payload).toString())).toEqual(['c1']);
    await c.close();
    expect((await a.read(0, 1)).map((r) => Buffer.from(r.payload).toString())).toEqual(['a1']);
    await a.close();
  });

  it('1,000 seeded fault schedules: zero checker violations', async () => {
    const bad: string[] = [];
    let acked = 0;
    let reconf = 0;
    for (let seed = 1; seed <= 1000; seed++) {
      const r = await simulate(seed, { clients: 2, appendsPerClient: 6, reconfigurers: 2 });
      acked += r.acknowledged;
      reconf += r.reconfigurations;
      if (r.violations.length) bad.push(`seed ${seed}: ${r.violations.join('; ')}`);
    }
    expect(bad).toEqual([]);
    expect(acked).toBeGreaterThan(5000);
    expect(reconf).toBeGreaterThan(1000);
  }, 180_000);

  for (const [loglet, what] of [
    ['objstore', 'ObjectStoreLoglets (a loglet per client, racing in conditional puts)'],
    ['striped', 'StripedLoglets (3 stripes, each behind the network on its own)'],
  ] as const)
    it(`1,000 seeded fault schedules over ${what}`, async () => {
      const bad: string[] = [];
      let acked = 0;
      for (let seed = 1; seed <= 1000; seed++) {
        const r = await simulate(seed, { clients: 2, appendsPerClient: 6, reconfigurers: 2, loglet });
        acked += r.acknowledged;
        if (r.violations.length) bad.push(`seed ${seed}: ${r.violations.join('; ')}`);
      }
      expect(bad).toEqual([]);
      expect(acked).toBeGreaterThan(5000);
    }, 180_000);

  it('the checker catches a loglet whose seal does not stop appends', async () => {
    let caught = 0;
    for (let seed = 1; seed <= 50; seed++) {
      const r = await simulate(seed, {
        clients: 3,
        appendsPerClient: 10,
        reconfigurers: 2,
        brokenSeal: true,
      });
      if (r.violations.length) caught++;
    }
    expect(caught).toBeGreaterThan(10);
  });

  it('a seed replays exactly', async () => {
    const a = await simulate(4242, { clients: 3, appendsPerClient: 10 });
    const c = await simulate(4242, { clients: 3, appendsPerClient: 10 });
    expect(c).toEqual(a);
  });
});

describe('strata log', () => {
  const cmd = commands[0]!;
  const jsonLines = (out: string) =>
    out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
  const run = async (args: string[], stdin: string | Buffer = '') => {
    const c = captureIo(stdin, {}, root);
    const code = await cmd.run(args, c.io);
    return { code, out: c.stdout(), err: c.stderr() };
  };
  it('append stores each line as its bytes (a byte that is not UTF-8 was stored as U+FFFD); read --json gives them back', async () => {
    const meta = ['--meta', 'file:./bytesmeta'];
    expect((await run(['create', 'by', ...meta])).code).toBe(0);
    const input = Buffer.from([0x78, 0x00, 0x79, 0x0d, 0x0a, 0xff, 0xfe, 0x0a, 0x0a, 0x61, 0x0d, 0x62]);
    expect((await run(['append', 'by', ...meta], input)).out).toBe('0\n1\n2\n3\n');
    const r = await run(['read', 'by', '--json', ...meta]);
    expect(jsonLines(r.out)).toEqual([
      { position: 0, payload: 'x\u0000y' },
      { position: 1, payload: '//4=', encoding: 'base64' },
      { position: 2, payload: '' },
      { position: 3, payload: 'a\rb' },
    ]);
    // plain read: each record's bytes after its position (it printed a binary one in base64, like text)
    const c = captureIo('', {}, root);
    expect(await cmd.run(['read', 'by', ...meta], c.io)).toBe(0);
    expect(c.stdoutBytes()).toEqual(
      Buffer.concat([
        Buffer.from('0\tx\0y\n1\t'),
        Buffer.from([0xff, 0xfe]),
        Buffer.from('\n2\t\n3\ta\rb\n'),
      ]),
    );
  });

  it('byteLines: the lines of any bytes in any chunks, as split at LF with a CR before it dropped; a line over the bound is refused', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc
          .uint8Array({ maxLength: 300, size: 'max' })
          .map((b) => b.map((x) => [0x0a, 0x0d, 0x61, x][x % 4]!)),
        fc.array(fc.nat(40), { maxLength: 20 }),
        async (bytes, cuts) => {
          const chunks: Uint8Array[] = [];
          let at = 0;
          for (const c of cuts) {
            chunks.push(bytes.subarray(at, Math.min(bytes.length, at + c)));
            at = Math.min(bytes.length, at + c);
          }
          chunks.push(bytes.subarray(at));
          const got: string[] = [];
          for await (const l of byteLines(chunks, 1 << 20)) got.push(l.toString('latin1'));
          const text = Buffer.from(bytes).toString('latin1');
          const want = text.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
          if (text === '' || text.endsWith('\n')) want.pop();
          expect(got).toEqual(want);
        },
      ),
      { numRuns: 500 },
    );
    const long = [Buffer.from('ok\n'), Buffer.alloc(600, 0x61), Buffer.alloc(600, 0x62), Buffer.from('\n')];
    const seen: string[] = [];
    await expect(
      (async () => {
        for await (const l of byteLines(long, 1000)) seen.push(l.toString());
      })(),
    ).rejects.toThrow('line 2 of the input is over 1000 bytes, the most a record may hold');
    expect(seen).toEqual(['ok']);
    // a line of exactly the bound, with its CR, is taken
    const exact: Buffer[] = [];
    for await (const l of byteLines([Buffer.alloc(1000, 0x61), Buffer.from('\r\n')], 1000)) exact.push(l);
    expect(exact.map((l) => l.length)).toEqual([1000]);
  });

  it('append with a pool fails over from a dead sequencer by itself', async () => {
    const servers = [0, 1, 2, 3].map((i) => new LogServer(join(root, `pool-ls${i}`)));
    const addrs = await Promise.all(servers.map(async (x) => `127.0.0.1:${await x.listen(0)}`));
    const seqs = [new Sequencer(), new Sequencer()];
    const seqAddrs = await Promise.all(seqs.map(async (x) => `127.0.0.1:${await x.listen(0)}`));
    const meta = ['--meta', 'file:./poolmeta'];
    const pool = ['--sequencers', seqAddrs.join(','), '--servers', addrs.join(',')];
    const spec = `native://${seqAddrs[0]}?servers=${addrs.slice(0, 3).join(',')}&id=pool`;
    expect((await run(['create', 'pl', ...meta, '--loglet', spec])).code).toBe(0);
    expect((await run(['append', 'pl', ...meta, ...pool], 'a\nb\n')).out).toBe('0\n1\n');
    await seqs[0]!.close(); // the sequencer dies
    const r = await run(['append', 'pl', ...meta, ...pool], 'c\n');
    expect(r.code).toBe(0);
    expect(r.out).toBe('2\n');
    const chain = (await run(['chain', 'pl', ...meta])).out;
    expect(chain).toContain(`native://${seqAddrs[1]}`);
    await seqs[1]!.close();
    for (const x of servers) await x.close();
  }, 30_000);

  it('monitor needs the pool to fail over to; a bad pool address is a usage error', async () => {
    const r = await run(['monitor', 'ev', '--meta', 'file:./climeta']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--sequencers and --servers/);
    const b = await run(['append', 'ev', '--meta', 'file:./climeta', '--servers', 'nohost'], 'x\n');
    expect(b.code).toBe(2);
  });

  it('create, append, read --json, tail, reconfigure, chain, trim', async () => {
    const meta = ['--meta', 'file:./climeta'];
    expect((await run(['create', 'ev', ...meta, '--loglet', 'file:./cliseg'])).code).toBe(0);
    // again: it exists (it said "created" and exited 0 whatever --loglet asked)
    expect((await run(['create', 'ev', ...meta, '--loglet', 'file:./cliseg'])).out).toBe(
      'ev exists: file:./cliseg\n',
    );
    const other = await run(['create', 'ev', ...meta, '--loglet', 'file:./elsewhere']);
    expect([other.code, other.err]).toEqual([
      1,
      "strata log create: log 'ev' exists, on file:./cliseg: not created on file:./elsewhere\n",
    ]);
    expect((await run(['append', 'ev', ...meta], 'one\ntwo\nthree\n')).out).toBe('0\n1\n2\n');
    expect((await run(['reconfigure', 'ev', ...meta, '--loglet', 'file:./cliseg2'])).out).toMatch(
      /starts at 3/,
    );
    expect((await run(['append', 'ev', ...meta], 'four\n')).out).toBe('3\n');
    const r = await run(['read', 'ev', ...meta, '--json']);
    expect(jsonLines(r.out)).toEqual([
      { position: 0, payload: 'one' },
      { position: 1, payload: 'two' },
      { position: 2, payload: 'three' },
      { position: 3, payload: 'four' },
    ]);
    expect((await run(['tail', 'ev', ...meta])).out).toBe('4\n');
    expect((await run(['chain', 'ev', ...meta])).out).toMatch(
      /\[0, 3\)\tfile:.*cliseg\n\[3, \)\tfile:.*cliseg2/,
    );
    const past = await run(['trim', 'ev', ...meta, '--to', '99']);
    expect(past.code).toBe(1);
    expect(past.err).toMatch(/--to 99 is past the tail \(4\)/);
    expect((await run(['trim', 'ev', ...meta, '--to', '2'])).code).toBe(0);
    expect((await run(['read', 'ev', ...meta, '--from', '2'])).out).toBe('2\tthree\n3\tfour\n');
    // the whole log after a trim: from its first record kept (it failed on position 0); an explicit --from
    // below the trim still says what was trimmed
    expect((await run(['read', 'ev', ...meta])).out).toBe('2\tthree\n3\tfour\n');
    expect((await run(['read', 'ev', ...meta, '--from', '0'])).err).toMatch(
      /position 0 was trimmed \(the log starts at 2\)/,
    );
    // --to is not included: an empty range prints nothing, a reversed one is a usage error
    expect((await run(['read', 'ev', ...meta, '--from', '3', '--to', '4'])).out).toBe('3\tfour\n');
    expect(await run(['read', 'ev', ...meta, '--from', '3', '--to', '3'])).toMatchObject({
      code: 0,
      out: '',
    });
    const reversed = await run(['read', 'ev', ...meta, '--from', '3', '--to', '2']);
    expect([reversed.code, reversed.out]).toEqual([2, '']);
    expect(reversed.err).toMatch(/--from 3 is past --to 2/);
    const missing = await run(['tail', 'nope', ...meta]);
    expect(missing.code).toBe(1);
    expect(missing.out).toBe('');
  });

  it('refuses a loglet spec it could not open before a chain takes it: a typo cannot end the log', async () => {
    const meta = ['--meta', 'file:./specmeta'];
    for (const bad of ['bogus:x', 'file:', 'striped:file:./a|', 'native://127.0.0.1:1', 'zk://127.0.0.1']) {
      const c = await run(['create', 'sp', ...meta, '--loglet', bad]);
      expect(c.code, bad).toBe(1);
      expect(c.err).toContain(bad);
    }
    expect((await run(['create', 'sp', ...meta, '--loglet', 'file:./specseg'])).code).toBe(0);
    expect((await run(['append', 'sp', ...meta], 'a\n')).out).toBe('0\n');
    const r = await run(['reconfigure', 'sp', ...meta, '--loglet', 'bogus:x']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/loglet spec 'bogus:x': unknown kind/);
    // the active segment was not sealed: the log goes on where it was
    expect((await run(['chain', 'sp', ...meta])).out).toMatch(/^\[0, \)\tfile:.*specseg\n$/);
    expect((await run(['append', 'sp', ...meta], 'b\n')).out).toBe('1\n');
    expect((await run(['read', 'sp', ...meta])).out).toBe('0\ta\n1\tb\n');
  });

  it('a chain whose active segment no loglet can open (chained before specs were checked) is repaired by reconfigure', async () => {
    const meta = ['--meta', 'file:./stuckmeta'];
    expect((await run(['create', 'st', ...meta, '--loglet', 'file:./stuckseg'])).code).toBe(0);
    expect((await run(['append', 'st', ...meta], 'a\nb\n')).out).toBe('0\n1\n');
    // what the code before the spec check wrote for 'reconfigure --loglet bogus:x': segment 0 sealed at
    // its tail, then a segment nobody can open
    const store = openMeta('file:./stuckmeta', 'st', root);
    const { version, value } = await store.get();
    const good = value!.segments[0]!.spec;
    await store.put(
      {
        segments: [
          { start: 0, end: 2, spec: good },
          { start: 2, spec: 'bogus:x' },
        ],
      },
      version,
    );
    await store.close();
    expect((await run(['append', 'st', ...meta], 'c\n')).code).toBe(1);
    const r = await run(['reconfigure', 'st', ...meta, '--loglet', 'file:./stuckseg2']);
    expect(r.code, r.err).toBe(0);
    expect((await run(['chain', 'st', ...meta])).out).toMatch(
      /^\[0, 2\)\tfile:.*stuckseg\n\[2, 2\)\tbogus:x\n\[2, \)\tfile:.*stuckseg2\n$/,
    );
    expect((await run(['append', 'st', ...meta], 'c\n')).out).toBe('2\n');
    expect((await run(['read', 'st', ...meta])).out).toBe('0\ta\n1\tb\n2\tc\n');
    expect((await run(['trim', 'st', ...meta, '--to', '3'])).code).toBe(0);
    expect((await run(['append', 'st', ...meta], 'd\n')).out).toBe('3\n');
    expect((await run(['read', 'st', ...meta, '--from', '3'])).out).toBe('3\td\n');
  });
});

describe('timeouts and intervals', () => {
  it('a timeout or interval a timer cannot keep is a RangeError naming it (NaN: a deadline never passed, or one that fired at once)', async () => {
    const meta = new MemoryMetaStore();
    const open = async (_s: string, start: number) => new MemoryLoglet(start);
    await expect(
      VirtualLog.create(meta as never, open, 'a', { appendTimeoutMs: Number.NaN }),
    ).rejects.toThrow('VirtualLog appendTimeoutMs must be a number of milliseconds >= 0, got NaN');
    const v = await VirtualLog.create(meta as never, open, 'a', { appendTimeoutMs: 0 });
    expect(() => new FailureDetector(v, async () => undefined, { intervalMs: -1 })).toThrow(
      'FailureDetector intervalMs must be a number of milliseconds from 0 to 2147483647, got -1',
    );
    expect(() => new NativeLoglet('x', 0, '127.0.0.1:1', ['127.0.0.1:2'], { timeoutMs: 2 ** 31 })).toThrow(
      'NativeLoglet timeoutMs must be a number of milliseconds from 1 to 2147483647, got 2147483648',
    );
    expect(
      () => new NativeLoglet('x', 0, '127.0.0.1:1', ['127.0.0.1:2'], { timeoutMs: '5' as never }),
    ).toThrow("got '5'");
  });

  it('a LogServer refuses a read reply bound that is not a whole number >= 1 (NaN bounded nothing)', () => {
    for (const readReplyBytesMax of [0, Number.NaN])
      expect(() => new LogServer(root, { readReplyBytesMax })).toThrow(
        `LogServer readReplyBytesMax must be a whole number of at least 1, got ${readReplyBytesMax}`,
      );
  });
});
