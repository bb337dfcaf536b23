import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { table } from '@strata/bench';
import {
  CliError,
  type Command,
  type DemoStep,
  group,
  type Io,
  intFlag,
  openInput,
  output,
  Progress,
  parseFlags,
  UsageError,
} from '@strata/cli';
import { NotFoundError, PreconditionFailedError } from './contract.js';
import { costReport, loadPrices, type Workload } from './cost.js';
import { openStore } from './index.js';
import { WalStore } from './wal.js';

const storeFlag = { store: { type: 'string' } } as const;
const defaultStore = 'file:./.strata/objects';

/**
 * `--range` as HTTP's byte ranges (RFC 9110 14.1.2) name them: A-B (inclusive), A- (from A to the end) or
 * -N (the last N bytes, whose start needs the object's size: `size` is asked for only then).
 */
async function parseRange(r: string, size: () => Promise<number>): Promise<{ start: number; end: number }> {
  const m = /^(\d*)-(\d*)$/.exec(r);
  const [a, b] = m ? [m[1]!, m[2]!] : ['', ''];
  const offset = (x: string) => x === '' || Number.isSafeInteger(Number(x));
  if (!m || (a === '' && b === '') || !offset(a) || !offset(b))
    throw new UsageError(`--range: expected A-B, A- or -N (byte offsets, inclusive), got '${r}'`);
  if (a === '') {
    const n = Number(b);
    if (n === 0) throw new UsageError(`--range: the last 0 bytes are no range ('${r}')`);
    const total = await size();
    return { start: Math.max(0, total - n), end: Math.max(0, total - 1) };
  }
  // an end before the start is the flag's fault, as the other malformed ranges (it was the store's
  // RangeError, exit 1)
  if (b !== '' && Number(b) < Number(a))
    throw new UsageError(`--range: the end ${b} is before the start ${a} ('${r}')`);
  // an end past the object's is clamped by the store
  return { start: Number(a), end: b === '' ? Number.MAX_SAFE_INTEGER : Number(b) };
}

function sub(name: string, summary: string, usage: string, example: string, run: Command['run']): Command {
  return { name, summary, help: `${summary}\n\nUsage: strata store ${usage}\n\nExample:\n  ${example}`, run };
}

async function withStore<T>(
  url: string | undefined,
  io: Io,
  f: (s: Awaited<ReturnType<typeof openStore>>) => Promise<T>,
): Promise<T> {
  const s = await openStore(url ?? defaultStore, { cwd: io.cwd });
  try {
    return await f(s);
  } finally {
    await s.close();
  }
}

/** A failed precondition as the CLI reports it (exit 1, `precondition failed`); other errors as they are. */
function preconditionAsCliError(e: unknown): never {
  if (e instanceof PreconditionFailedError) throw new CliError('precondition failed');
  throw e;
}

const put = sub(
  'put',
  'store an object from a file or stdin; prints the new etag',
  'put KEY [FILE|-] [--store URL] [--if-none-match *] [--if-match ETAG]',
  "strata store put logs/a.txt README.md --store file:./data --if-none-match '*'",
  async (argv, io) => {
    const { values, positionals } = parseFlags(
      argv,
      {
        ...storeFlag,
        'if-none-match': { type: 'string' },
        'if-match': { type: 'string' },
      },
      2,
    );
    const [key, file = '-'] = positionals;
    if (!key) throw new UsageError('expected KEY');
    if (values['if-none-match'] !== undefined && values['if-none-match'] !== '*')
      throw new UsageError("--if-none-match: only '*' is supported");
    // an empty etag (a script's unset variable) made the put unconditional: a lost update
    if (values['if-match'] === '') throw new UsageError("--if-match: expected an etag, got ''");
    const body = file === '-' ? io.stdin : openInput(resolve(io.cwd, file), file).stream;
    return withStore(values.store, io, async (s) => {
      const etag = await s
        .put(key, body, {
          ...(values['if-none-match'] ? { ifNoneMatch: '*' as const } : {}),
          ...(values['if-match'] !== undefined ? { ifMatch: values['if-match'] } : {}),
        })
        .catch(preconditionAsCliError);
      output(io, values.json, { key, etag }, () => etag);
      return 0;
    });
  },
);

const get = sub(
  'get',
  'write an object (or a byte range of it) to stdout',
  'get KEY [--range A-B|A-|-N] [--store URL]   (-N: the last N bytes; write --range=-N)',
  'strata store get logs/a.txt --range 0-99 --store file:./data',
  async (argv, io) => {
    const { values, positionals } = parseFlags(argv, { ...storeFlag, range: { type: 'string' } }, 1);
    const [key] = positionals;
    if (!key) throw new UsageError('expected KEY');
    return withStore(values.store, io, async (s) => {
      const range = values.range
        ? await parseRange(values.range, async () => {
            const info = await s.head(key);
            if (!info) throw new NotFoundError(key);
            return info.size;
          })
        : undefined;
      const stream = await s.getStream(key, range ? { range } : {});
      await pipeline(stream, io.stdout, { end: false });
      return 0;
    });
  },
);

const head = sub(
  'head',
  "print an object's size, etag and time",
  'head KEY [--store URL] [--json]',
  'strata store head logs/a.txt --store file:./data',
  async (argv, io) => {
    const { values, positionals } = parseFlags(argv, storeFlag, 1);
    const [key] = positionals;
    if (!key) throw new UsageError('expected KEY');
    return withStore(values.store, io, async (s) => {
      const h = await s.head(key);
      if (!h) throw new CliError(`no object with key '${key}'`);
      output(
        io,
        values.json,
        h,
        () => `${h.key}\t${h.size}\t${h.etag}\t${new Date(h.modifiedMs).toISOString()}`,
      );
      return 0;
    });
  },
);

const ls = sub(
  'ls',
  'list objects under a prefix',
  'ls [PREFIX] [--limit N] [--start-after KEY] [--store URL] [--json]',
  'strata store ls logs/ --store file:./data',
  async (argv, io) => {
    const { values, positionals } = parseFlags(
      argv,
      {
        ...storeFlag,
        limit: { type: 'string' },
        'start-after': { type: 'string' },
      },
      1,
    );
    const limit = intFlag('limit', values.limit, Number.MAX_SAFE_INTEGER, 1);
    return withStore(values.store, io, async (s) => {
      let after = values['start-after'];
      let n = 0;
      while (n < limit) {
        const page = await s.list(positionals[0] ?? '', {
          limit: Math.min(1000, limit - n),
          ...(after !== undefined ? { startAfter: after } : {}),
        });
        for (const o of page.objects) output(io, values.json, o, () => `${o.size}\t${o.etag}\t${o.key}`);
        n += page.objects.length;
        if (page.nextStartAfter === undefined) break;
        after = page.nextStartAfter;
      }
      return 0;
    });
  },
);

const rm = sub(
  'rm',
  'delete objects',
  'rm KEY... [--store URL] [--if-match ETAG]',
  'strata store rm logs/a.txt --store file:./data',
  async (argv, io) => {
    const { values, positionals } = parseFlags(argv, { ...storeFlag, 'if-match': { type: 'string' } });
    if (positionals.length === 0) throw new UsageError('expected at least one KEY');
    const ifMatch = values['if-match'];
    if (ifMatch === '') throw new UsageError("--if-match: expected an etag, got ''");
    if (ifMatch !== undefined && positionals.length > 1)
      throw new UsageError('--if-match: one KEY only (the etag is of one object)');
    return withStore(values.store, io, async (s) => {
      for (const k of positionals)
        await s.delete(k, ifMatch === undefined ? {} : { ifMatch }).catch(preconditionAsCliError);
      return 0;
    });
  },
);

const cp = sub(
  'cp',
  'copy objects under a prefix from one store to another',
  'cp PREFIX --from URL --to URL',
  'strata store cp logs/ --from file:./data --to mem:',
  async (argv, io) => {
    const { values, positionals } = parseFlags(argv, { from: { type: 'string' }, to: { type: 'string' } }, 1);
    if (!values.from || !values.to) throw new UsageError('expected --from URL and --to URL');
    const src = await openStore(values.from, { cwd: io.cwd });
    const dst = await openStore(values.to, { cwd: io.cwd });
    try {
      let after: string | undefined;
      let n = 0;
      const progress = new Progress(io.stderr, { total: 0, label: 'cp', quiet: values.quiet === true });
      for (;;) {
        const page = await src.list(positionals[0] ?? '', after === undefined ? {} : { startAfter: after });
        for (const o of page.objects) {
          await dst.put(o.key, await src.getStream(o.key));
          n++;
          progress.tick(o.size);
        }
        if (page.nextStartAfter === undefined) break;
        after = page.nextStartAfter;
      }
      progress.finish();
      output(io, values.json, { copied: n }, () => `copied ${n} objects`);
      return 0;
    } finally {
      await src.close();
      await dst.close();
    }
  },
);

const money = (x: number) => `$${x.toFixed(2)}`;

const cost = sub(
  'cost',
  'monthly cost of a workload on S3 Standard, S3 Express One Zone and express WAL + standard',
  'cost --workload FILE [--json]   (FILE: {"writesPerSecond":1000,"writeBytes":1024,"retainDays":30}; optional readsPerSecond, readBytes, walFlushMs, walPackBytes)',
  'strata store cost --workload workload.json',
  async (argv, io) => {
    const { values } = parseFlags(argv, { workload: { type: 'string' } }, 0);
    if (!values.workload) throw new UsageError('expected --workload FILE');
    let w: Workload;
    try {
      w = JSON.parse(readFileSync(resolve(io.cwd, values.workload), 'utf8')) as Workload;
    } catch (e) {
      throw new CliError(`--workload ${values.workload}: ${(e as Error).message}`);
    }
    const prices = loadPrices();
    let lines: ReturnType<typeof costReport>;
    try {
      lines = costReport(w, prices);
    } catch (e) {
      throw new CliError(`--workload ${values.workload}: ${(e as Error).message}`);
    }
    if (values.json) {
      output(
        io,
        true,
        { prices: { date: prices.date, source: prices.source }, workload: w, lines },
        () => '',
      );
      return 0;
    }
    io.stdout.write(`prices: ${prices.region}, ${prices.date} (${prices.source})\n`);
    io.stdout.write(
      `${table(
        ['option', 'requests', 'transfer', 'storage', 'total/month', 'PUTs/month', 'p50', 'p99'],
        lines.map((l) => [
          l.option,
          money(l.requests),
          money(l.transfer),
          money(l.storage),
          money(l.total),
          l.putsPerMonth.toExponential(2),
          `${l.latencyP50Ms} ms`,
          `${l.latencyP99Ms} ms`,
        ]),
      )}\n`,
    );
    return 0;
  },
);

const bench = sub(
  'bench',
  'p50/p99 latency and throughput of PUT and GET for 4 KiB and 1 MiB objects',
  'bench [--store URL] [--count N] [--json]   (N operations of each kind, default 100; --json: one object per row)',
  'strata store bench --store file:./data --count 200',
  async (argv, io) => {
    const { values } = parseFlags(argv, { ...storeFlag, count: { type: 'string' } }, 0);
    const count = intFlag('count', values.count, 100, 1, 1_000_000);
    return withStore(values.store, io, async (s) => {
      const rows: string[][] = [];
      // --json was taken and the table printed anyway
      const results: {
        op: 'PUT' | 'GET';
        sizeBytes: number;
        latencyMsP50: number;
        latencyMsP99: number;
        opsPerSecond: number;
        mibPerSecond: number;
      }[] = [];
      for (const size of [4096, 1 << 20]) {
        const body = new Uint8Array(size).map((_, i) => i * 13);
        for (const op of ['PUT', 'GET'] as const) {
          const lat: number[] = [];
          const t0 = performance.now();
          for (let i = 0; i < count; i++) {
            const k = `bench/${size}/${i}`;
            const t = performance.now();
            if (op === 'PUT') await s.put(k, body);
            else await s.get(k);
            lat.push(performance.now() - t);
          }
          const secs = (performance.now() - t0) / 1000;
          lat.sort((a, b) => a - b);
          const pct = (p: number) => lat[Math.min(lat.length - 1, Math.ceil((p / 100) * lat.length) - 1)]!;
          results.push({
            op,
            sizeBytes: size,
            latencyMsP50: pct(50),
            latencyMsP99: pct(99),
            opsPerSecond: count / secs,
            mibPerSecond: (count * size) / secs / 2 ** 20,
          });
          rows.push([
            op,
            `${size === 4096 ? '4 KiB' : '1 MiB'}`,
            `${pct(50).toFixed(2)} ms`,
            `${pct(99).toFixed(2)} ms`,
            `${(count / secs).toFixed(0)}/s`,
            `${((count * size) / secs / 2 ** 20).toFixed(1)} MiB/s`,
          ]);
        }
        for (let i = 0; i < count; i++) await s.delete(`bench/${size}/${i}`);
      }
      if (values.json) for (const r of results) io.stdout.write(`${JSON.stringify(r)}\n`);
      else io.stdout.write(`${table(['op', 'size', 'p50', 'p99', 'ops', 'throughput'], rows)}\n`);
      return 0;
    });
  },
);

export const commands: Command[] = [
  group('store', 'object storage: put/get/head/ls/rm/cp, the cost model, a latency bench', [
    put,
    get,
    head,
    ls,
    rm,
    cp,
    cost,
    bench,
  ]),
];

export const demos: DemoStep[] = [
  {
    name: 'objstore',
    async run(io, dir) {
      const store = await openStore(`file:${join(dir, 'standard')}`);
      const wal = await WalStore.open(store, {
        dir: join(dir, 'wal'),
        flushIntervalMs: 5,
        packBytes: 256 << 10,
      });
      const n = 2000;
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: n }, (_, i) =>
          wal.put(`events/${String(i).padStart(6, '0')}`, new Uint8Array(1024).fill(i & 0xff)),
        ),
      );
      const ms = performance.now() - t0;
      await wal.packNow();
      const back = await wal.get('events/001234');
      if (back[0] !== (1234 & 0xff)) throw new Error('demo: read back the wrong bytes');
      io.stdout.write(
        `WAL: ${n} durable 1 KiB writes in ${ms.toFixed(0)} ms (${((n / ms) * 1000).toFixed(0)}/s) in ${wal.stats.groupCommits} group commits; ` +
          `packed into ${wal.stats.packsWritten} object(s) on the standard tier (${wal.stats.storePuts} PUTs instead of ${n})\n`,
      );
      await wal.close();
      const lines = costReport({ writesPerSecond: 1000, writeBytes: 1024, retainDays: 30 });
      for (const l of lines)
        io.stdout.write(
          `cost of 1,000 writes/s of 1 KiB kept 30 days, ${l.option}: ${money(l.total)}/month\n`,
        );
    },
  },
];
