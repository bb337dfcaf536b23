import { resolve } from 'node:path';
import {
  CliError,
  type Command,
  type DemoStep,
  group,
  type Io,
  intFlag,
  output,
  parseFlags,
  parseHostPort,
  UsageError,
  untilStopped,
  writableDir,
} from '@strata/cli';
import { FailureDetector, nativeFailover } from './failover.js';
import { type OpenLogOptions, openLog } from './open.js';
import { recordBytesMax } from './providers/file.js';
import { LogServer, Sequencer } from './providers/native.js';
import type { Failover, VirtualLog } from './virtual.js';

const common = { meta: { type: 'string' } } as const;
const defaultMeta = 'file:./.strata/meta';

/**
 * The lines of a byte stream as bytes (a line's CR before its LF dropped; a last line without LF counted),
 * without decoding them: a readline decoded each as UTF-8, so a byte that is not UTF-8 was stored as U+FFFD.
 * A line over `lineBytesMax` is an error naming it (it was held whole, however long).
 */
export async function* byteLines(
  input: AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string>,
  lineBytesMax: number,
): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let held = 0;
  let n = 0;
  const tooLong = (line: number) =>
    new CliError(`line ${line} of the input is over ${lineBytesMax} bytes, the most a record may hold`);
  /** The line ending at `end` of `c` (after the parts held), a copy of its own without its CR. */
  const line = (c: Buffer, from: number, end: number): Buffer => {
    const whole = Buffer.concat([...parts, c.subarray(from, end)]);
    parts = [];
    held = 0;
    n++;
    const cut = whole.length > 0 && whole[whole.length - 1] === 0x0d ? whole.subarray(0, -1) : whole;
    if (cut.length > lineBytesMax) throw tooLong(n);
    return cut;
  };
  for await (const chunk of input) {
    const c =
      typeof chunk === 'string'
        ? Buffer.from(chunk)
        : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    let at = 0;
    for (let nl = c.indexOf(0x0a); nl >= 0; nl = c.indexOf(0x0a, at)) {
      yield line(c, at, nl);
      at = nl + 1;
    }
    if (at < c.length) {
      // a line that cannot fit a record is refused before it is all held
      if (held + c.length - at > lineBytesMax + 1) throw tooLong(n + 1);
      parts.push(Buffer.from(c.subarray(at)));
      held += c.length - at;
    }
  }
  if (held > 0) yield line(Buffer.alloc(0), 0, 0);
}

const newline = Buffer.from('\n');

function payloadText(p: Uint8Array): { payload: string; encoding?: 'base64' } {
  const t = Buffer.from(p).toString('utf8');
  return Buffer.from(t, 'utf8').equals(Buffer.from(p))
    ? { payload: t }
    : { payload: Buffer.from(p).toString('base64'), encoding: 'base64' };
}

async function withLog<T>(
  name: string | undefined,
  meta: string | undefined,
  io: Io,
  f: (l: VirtualLog) => Promise<T>,
  create = false,
  loglet?: string,
  extra: Partial<OpenLogOptions> = {},
): Promise<T> {
  if (!name) throw new UsageError('expected the log NAME');
  let log: VirtualLog;
  try {
    log = await openLog(name, {
      ...extra,
      meta: meta ?? defaultMeta,
      create,
      cwd: io.cwd,
      ...(loglet ? { loglet } : {}),
    });
  } catch (e) {
    throw new CliError((e as Error).message);
  }
  try {
    return await f(log);
  } finally {
    await log.close();
  }
}

const poolFlags = { sequencers: { type: 'string' }, servers: { type: 'string' } } as const;

/** The native failover policy from `--sequencers A,B --servers C,D,E,F`, if given. */
function poolFailover(values: { sequencers?: string; servers?: string }): Failover | undefined {
  const list = (v: string | undefined) => (v ?? '').split(',').filter(Boolean);
  const sequencers = list(values.sequencers);
  const servers = list(values.servers);
  if (sequencers.length === 0 && servers.length === 0) return undefined;
  for (const a of [...sequencers, ...servers]) parseHostPort(a, '--sequencers/--servers');
  return nativeFailover({ sequencers, servers });
}

function sub(name: string, summary: string, usage: string, example: string, run: Command['run']): Command {
  return {
    name,
    summary,
    help: `${summary}\n\nUsage: strata log ${usage}\n\nMetaStore URLs: file:DIR (default ${defaultMeta}), mem://NAME, zk://HOST:PORT/PATH, etcd://HOST:PORT/KEY.\nLoglet specs: file:DIR, mem://NAME, objstore:STORE_URL, zk://HOST:PORT/PATH, native://SEQ_HOST:PORT?servers=H1:P1,H2:P2,H3:P3&id=NAME, striped:SPEC|SPEC|... (one range striped across nested loglets).\n\nExample:\n  ${example}`,
    run,
  };
}

const create = sub(
  'create',
  'create a log whose first segment is a loglet spec',
  'create NAME [--meta URL] [--loglet SPEC]',
  'strata log create events --meta file:./meta --loglet file:./seg',
  async (argv, io) => {
    const { values, positionals } = parseFlags(argv, { ...common, loglet: { type: 'string' } }, 1);
    const name = positionals[0];
    if (!name) throw new UsageError('expected the log NAME');
    const chainOf = (l: VirtualLog) => l.segments.map((s) => s.spec).join(' -> ');
    // a log that exists is said to exist (it printed "created" and its chain, whatever --loglet asked)
    let existing: VirtualLog | undefined;
    try {
      existing = await openLog(name, { meta: values.meta ?? defaultMeta, cwd: io.cwd });
    } catch {
      existing = undefined;
    }
    if (existing) {
      const segments = existing.segments;
      const chain = chainOf(existing);
      await existing.close();
      if (values.loglet !== undefined && values.loglet !== segments[0]!.spec)
        throw new CliError(`log '${name}' exists, on ${chain}: not created on ${values.loglet}`);
      output(io, values.json, { name, chain: segments, exists: true }, () => `${name} exists: ${chain}`);
      return 0;
    }
    return withLog(
      name,
      values.meta,
      io,
      async (l) => {
        output(io, values.json, { name, chain: l.segments }, () => `created ${name}: ${chainOf(l)}`);
        return 0;
      },
      true,
      values.loglet,
    );
  },
);

const append = sub(
  'append',
  'append records from stdin, one per line; prints each acknowledged position',
  'append NAME [--meta URL] [--batch N] [--sequencers H:P,... --servers H:P,...]',
  'printf "a\\nb\\n" | strata log append events --meta file:./meta',
  async (argv, io) => {
    const { values, positionals } = parseFlags(
      argv,
      { ...common, ...poolFlags, batch: { type: 'string' } },
      1,
    );
    const batchMax = intFlag('batch', values.batch, 256, 1, 65536);
    // with a pool of spare sequencers and LogServers, a native loglet that fails is replaced from it
    const failover = poolFailover(values);
    return withLog(
      positionals[0],
      values.meta,
      io,
      async (l) => {
        let batch: Uint8Array[] = [];
        const flush = async () => {
          if (batch.length === 0) return;
          const ps = await l.append(batch);
          // a position is printed only once its record is acknowledged
          io.stdout.write(
            values.json
              ? ps.map((p) => `${JSON.stringify({ position: p })}\n`).join('')
              : `${ps.join('\n')}\n`,
          );
          batch = [];
        };
        try {
          for await (const line of byteLines(io.stdin, recordBytesMax)) {
            batch.push(line);
            if (batch.length >= batchMax) await flush();
          }
          await flush();
        } catch (e) {
          throw new CliError(
            `append failed; ${batch.length} record(s) not acknowledged: ${(e as Error).message}`,
          );
        }
        return 0;
      },
      false,
      undefined,
      failover ? { failover } : {},
    );
  },
);

const monitor = sub(
  'monitor',
  'watch a log on native loglets and reconfigure away from a sequencer or LogServer that fails',
  'monitor NAME --sequencers H:P,... --servers H:P,... [--interval MS] [--meta URL]',
  'strata log monitor events --sequencers 127.0.0.1:7000,127.0.0.1:7100 --servers 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003,127.0.0.1:7004',
  async (argv, io) => {
    const { values, positionals } = parseFlags(
      argv,
      {
        ...common,
        ...poolFlags,
        interval: { type: 'string' },
      },
      1,
    );
    const failover = poolFailover(values);
    if (!failover) throw new UsageError('expected --sequencers and --servers: the pool to fail over to');
    const intervalMs = intFlag('interval', values.interval, 500, 10, 3_600_000);
    return withLog(positionals[0], values.meta, io, async (l) => {
      const d = new FailureDetector(l, failover, { intervalMs });
      let seen = l.segments.length;
      const report = setInterval(() => {
        if (l.segments.length === seen) return;
        seen = l.segments.length;
        const s = l.segments[seen - 1]!;
        output(
          io,
          values.json,
          { reconfigured: positionals[0], start: s.start, spec: s.spec },
          () => `${positionals[0]}: reconfigured at ${s.start} to ${s.spec}`,
        );
      }, intervalMs);
      d.start();
      const stopped = untilStopped();
      output(
        io,
        values.json,
        { monitoring: positionals[0], intervalMs },
        () => `monitoring ${positionals[0]} every ${intervalMs} ms`,
      );
      await stopped;
      clearInterval(report);
      await d.stop();
      return 0;
    });
  },
);

const read = sub(
  'read',
  'print records in log order',
  'read NAME [--from N] [--to N] [--follow] [--json] [--meta URL]',
  'strata log read events --from 0 --json --meta file:./meta',
  async (argv, io) => {
    const { values, positionals } = parseFlags(
      argv,
      {
        ...common,
        from: { type: 'string' },
        to: { type: 'string' },
        follow: { type: 'boolean' },
      },
      1,
    );
    const fromFlag = values.from === undefined ? undefined : intFlag('from', values.from, 0);
    const to = intFlag('to', values.to, Number.MAX_SAFE_INTEGER);
    // --to is the end, not included: --from N --to N is an empty range, past it a mistake (it printed
    // nothing and exited 0, as an empty range does)
    if (fromFlag !== undefined && fromFlag > to)
      throw new UsageError(`--from ${fromFlag} is past --to ${to} (--to is the first position not read)`);
    return withLog(positionals[0], values.meta, io, async (l) => {
      // without --from, the log from its first record kept (it was position 0: after a trim, an error)
      let from = fromFlag ?? l.firstPosition;
      for (;;) {
        const { tail } = await l.checkTail();
        while (from < Math.min(tail, to)) {
          const recs = await l.read(from, Math.min(tail, to, from + 1024));
          if (recs.length === 0) break;
          for (const r of recs)
            io.stdout.write(
              values.json
                ? `${JSON.stringify({ position: r.position, ...payloadText(r.payload) })}\n`
                : // the record's bytes as append took them (base64 of a binary one could not be told from text)
                  Buffer.concat([Buffer.from(`${r.position}\t`), r.payload, newline]),
            );
          from = recs[recs.length - 1]!.position + 1;
        }
        if (!values.follow || from >= to) return 0;
        await new Promise((r) => setTimeout(r, 100));
        await l.refresh();
      }
    });
  },
);

const tail = sub(
  'tail',
  'print the first unwritten position and whether the log is sealed',
  'tail NAME [--meta URL] [--json]',
  'strata log tail events --meta file:./meta',
  async (argv, io) => {
    const { values, positionals } = parseFlags(argv, common, 1);
    return withLog(positionals[0], values.meta, io, async (l) => {
      const t = await l.checkTail();
      output(io, values.json, t, () => `${t.tail}${t.sealed ? ' (sealed)' : ''}`);
      return 0;
    });
  },
);

const seal = sub(
  'seal',
  'seal the active segment (no append is acknowledged after this returns)',
  'seal NAME [--meta URL]',
  'strata log seal events --meta file:./meta',
  async (argv, io) => {
    const { values, positionals } = parseFlags(argv, common, 1);
    return withLog(positionals[0], values.meta, io, async (l) => {
      const t = await l.seal();
      output(io, values.json, t, () => `sealed at ${t.tail}`);
      return 0;
    });
  },
);

const trim = sub(
  'trim',
  'discard records below a position',
  'trim NAME --to N [--meta URL]',
  'strata log trim events --to 1000 --meta file:./meta',
  async (argv, io) => {
    const { values, positionals } = parseFlags(argv, { ...common, to: { type: 'string' } }, 1);
    if (values.to === undefined) throw new UsageError('expected --to N');
    const to = intFlag('to', values.to, 0);
    return withLog(positionals[0], values.meta, io, async (l) => {
      const { tail } = await l.checkTail();
      if (to > tail)
        throw new CliError(`--to ${to} is past the tail (${tail}): there is nothing there to trim yet`);
      await l.prefixTrim(to);
      return 0;
    });
  },
);

const chain = sub(
  'chain',
  'print the chain of segments',
  'chain NAME [--meta URL] [--json]',
  'strata log chain events --meta file:./meta',
  async (argv, io) => {
    const { values, positionals } = parseFlags(argv, common, 1);
    return withLog(positionals[0], values.meta, io, async (l) => {
      output(io, values.json, l.segments, () =>
        l.segments.map((s) => `[${s.start}, ${s.end ?? ''})\t${s.spec}`).join('\n'),
      );
      return 0;
    });
  },
);

const reconfigure = sub(
  'reconfigure',
  'seal the active segment and continue the log on a new loglet',
  'reconfigure NAME --loglet SPEC [--meta URL]',
  'strata log reconfigure events --loglet file:./seg2 --meta file:./meta',
  async (argv, io) => {
    const { values, positionals } = parseFlags(argv, { ...common, loglet: { type: 'string' } }, 1);
    if (!values.loglet) throw new UsageError('expected --loglet SPEC');
    return withLog(positionals[0], values.meta, io, async (l) => {
      const t0 = performance.now();
      const at = await l.reconfigure(values.loglet!);
      output(
        io,
        values.json,
        { start: at, ms: performance.now() - t0 },
        () => `new segment ${values.loglet} starts at ${at} (${(performance.now() - t0).toFixed(1)} ms)`,
      );
      return 0;
    });
  },
);

const server = sub(
  'server',
  'run a LogServer (durable storage for native loglets)',
  'server --dir DIR --listen 127.0.0.1:PORT [--pool-writes]',
  'strata log server --dir ./ls1 --listen 127.0.0.1:7001',
  async (argv, io) => {
    const { values } = parseFlags(
      argv,
      {
        dir: { type: 'string' },
        listen: { type: 'string' },
        'pool-writes': { type: 'boolean' },
      },
      0,
    );
    if (!values.dir) throw new UsageError('expected --dir DIR');
    const { host, port } = parseHostPort(values.listen, '--listen');
    // a process of its own: group commits are written on the event loop, unless --pool-writes (for a
    // server of many busy loglets, whose writes then overlap in the thread pool)
    const dir = resolve(io.cwd, values.dir);
    writableDir(dir, '--dir'); // before serving: it said it was up and failed each request
    const s = new LogServer(dir, { writesOnLoop: values['pool-writes'] !== true });
    const p = await s.listen(port, host);
    const stopped = untilStopped(); // before "ready": a supervisor may signal as soon as it reads it
    output(io, values.json, { host, port: p }, () => `LogServer on ${host}:${p}, data in ${values.dir}`);
    await stopped;
    await s.close();
    return 0;
  },
);

const sequencer = sub(
  'sequencer',
  'run a sequencer for native loglets over a set of LogServers',
  'sequencer --listen 127.0.0.1:PORT [--servers H1:P1,H2:P2,H3:P3]',
  'strata log sequencer --listen 127.0.0.1:7000 --servers 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003',
  async (argv, io) => {
    const { values } = parseFlags(argv, { listen: { type: 'string' }, servers: { type: 'string' } }, 0);
    // the LogServers come with each loglet's spec; --servers is the default for requests without them
    const servers = (values.servers ?? '').split(',').filter(Boolean);
    // 'bad' was taken, and every request that used the default then failed on it
    for (const a of servers) parseHostPort(a, '--servers');
    const { host, port } = parseHostPort(values.listen, '--listen');
    const s = new Sequencer(servers);
    const p = await s.listen(port, host);
    const stopped = untilStopped(); // before "ready": a supervisor may signal as soon as it reads it
    output(
      io,
      values.json,
      { host, port: p, servers },
      () => `sequencer on ${host}:${p}${servers.length ? ` over ${servers.join(', ')}` : ''}`,
    );
    await stopped;
    await s.close();
    return 0;
  },
);

export const commands: Command[] = [
  group(
    'log',
    'virtual shared logs (Delos): create, append, read, tail, seal, trim, chain, reconfigure, server, sequencer, monitor',
    [create, append, read, tail, seal, trim, chain, reconfigure, server, sequencer, monitor],
  ),
];

export const demos: DemoStep[] = [
  {
    name: 'vlog',
    async run(io, dir) {
      const log = await openLog('demo', {
        meta: `file:${dir}/meta`,
        loglet: `file:${dir}/segment-a`,
        create: true,
      });
      const writer = (async () => {
        let n = 0;
        let stallMs = 0;
        const t0 = performance.now();
        while (performance.now() - t0 < 600) {
          const t = performance.now();
          await log.append([Buffer.from(`event ${n}`)]);
          stallMs = Math.max(stallMs, performance.now() - t);
          n++;
        }
        return { n, stallMs };
      })();
      await new Promise((r) => setTimeout(r, 200));
      const t = performance.now();
      const at = await log.reconfigure(`file:${dir}/segment-b`);
      const reconfMs = performance.now() - t;
      const { n, stallMs } = await writer;
      const recs = await log.read(0, n);
      const dense = recs.every(
        (r, i) => r.position === i && Buffer.from(r.payload).toString() === `event ${i}`,
      );
      if (!dense || recs.length !== n) throw new Error('demo: the log lost or reordered records');
      io.stdout.write(
        `appended ${n} durable records while swapping loglets at position ${at} (reconfiguration ${reconfMs.toFixed(1)} ms, ` +
          `longest writer stall ${stallMs.toFixed(1)} ms); read back ${recs.length} records, dense and in order; chain: ` +
          `${log.segments.map((s) => `[${s.start},${s.end ?? ''})`).join(' ')}\n`,
      );
      await log.close();
    },
  },
];
