import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  CliError,
  type Command,
  type DemoStep,
  formatBytes,
  group,
  type Io,
  intFlag,
  output,
  Progress,
  parseBytes,
  parseFlags,
  timerMsMax,
  UsageError,
  untilStopped,
  writableDir,
} from '@strata/cli';
import { type AgentStats, runAgentFile, runAgentStream } from './agent.js';
import { CursorError, parseCursor } from './cursor.js';
import { DdlError } from './ddl.js';
import { exportParquet } from './export.js';
import { dateMsMax, parseTimestamp, type Row } from './formats.js';
import { ProgressLog } from './progress.js';
import { type Expr, QueryError } from './query.js';
import { parseDurationMs, runEvery, serialQueue } from './schedule.js';
import type { SearchResult } from './search.js';
import { startIngestServer } from './server.js';
import {
  createStream,
  defaultPolicy,
  type IndexPolicy,
  maintainSummary,
  rowObject,
  Stream,
  streamDir,
} from './stream.js';

const dataFlag = { data: { type: 'string' } } as const;
const dataDir = (io: Io, v: string | undefined) => resolve(io.cwd, v ?? './.strata');
const compactFlag = { 'compact-every': { type: 'string' } } as const;
const maintainFlag = { 'maintain-every': { type: 'string' } } as const;

/** `--compact-every N` (blocks; 0: never) as an index policy. */
function compactPolicy(v: string | undefined): Partial<IndexPolicy> {
  return v === undefined
    ? {}
    : { compactEveryBlocks: intFlag('compact-every', v, defaultPolicy.compactEveryBlocks, 0) };
}

/** `--maintain-every DURATION` in ms, or undefined (off). */
function maintainEvery(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  try {
    return parseDurationMs(v, '--maintain-every');
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

async function withStream<T>(
  io: Io,
  data: string | undefined,
  name: string | undefined,
  f: (s: Stream) => Promise<T>,
  policy: Partial<IndexPolicy> = {},
): Promise<T> {
  if (!name) throw new UsageError('expected a stream name');
  let s: Stream;
  try {
    s = await Stream.open(dataDir(io, data), name, policy);
  } catch (e) {
    throw new CliError((e as Error).message);
  }
  try {
    return await f(s);
  } finally {
    await s.close();
  }
}

function formatRow(s: Stream, r: Row): string {
  return s.def.columns
    .map((c, i) => {
      const v = r[i];
      if (v === null || v === undefined) return `${c.name}=-`;
      // a time past a Date's range (ingested before 2026-12-05, when such epoch values were read) as its number
      if (c.type === 'TIMESTAMP' && typeof v === 'number' && Math.abs(v) <= dateMsMax)
        return `${c.name}=${new Date(v).toISOString()}`;
      return `${c.name}=${typeof v === 'string' && /\s/.test(v) ? JSON.stringify(v) : v}`;
    })
    .join(' ');
}

function explainText(res: SearchResult): string {
  const st = res.stats;
  const lv = st.levels.map((l) => `L${l.level}: ${l.nodes} nodes, watermark ${l.watermark}`).join('; ');
  return [
    `plan: hybrid index scan over ${st.blocksIndexed} indexed blocks, then scan of ${st.tailBlocks} not-yet-indexed blocks`,
    `index levels: ${lv || 'none'}`,
    `nodes read: ${st.nodesRead} (orphans visited: ${st.orphansVisited}); node bytes fetched: ${st.nodeBytesFetched} in ${st.nodeGets} gets`,
    `candidate blocks from index: ${st.candidateBlocks}; pruned by min/max: ${st.prunedByMinMax}; skipped by needle check: ${st.prunedByNeedle}; blocks read: ${st.blocksRead} of ${st.blocksTotal}`,
    `pages read: ${st.pagesRead}; pages skipped: ${st.pagesSkipped}; block bytes fetched: ${st.blockBytesFetched} in ${st.blockGets} gets`,
    `rows scanned: ${st.rowsScanned}; rows matched: ${st.rowsMatched}`,
  ].join('\n');
}

function timeFlag(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const t = parseTimestamp(v);
  if (t === null) throw new UsageError(`--${name}: '${v}' is not a timestamp (e.g. 2008-11-09T20:36:15Z)`);
  return t;
}

const create: Command = {
  name: 'create',
  summary: 'create a stream from a DDL file',
  help: `Create a stream from a CREATE STREAM statement.

Usage: strata stream create --ddl FILE [--data DIR]

Example: strata stream create --ddl hdfs.sql --data ./.strata`,
  async run(argv, io) {
    const f = parseFlags(argv, { ...dataFlag, ddl: { type: 'string' } }, 0);
    if (!f.values.ddl) throw new UsageError('--ddl FILE is required');
    const path = resolve(io.cwd, f.values.ddl);
    if (!existsSync(path)) throw new CliError(`${path}: no such file`);
    try {
      const def = createStream(dataDir(io, f.values.data), readFileSync(path, 'utf8'), f.values.ddl);
      output(
        io,
        f.values.json,
        { stream: def.name, columns: def.columns, index: def.index },
        () =>
          `created stream ${def.name}: ${def.columns.length} columns, index (${def.index.map((d) => (d.tokens ? `TOKENS(${d.column})` : d.column)).join(', ')})`,
      );
    } catch (e) {
      if (e instanceof DdlError) throw new CliError(e.message);
      throw new CliError((e as Error).message);
    }
    return 0;
  },
};

const ingest: Command = {
  name: 'ingest',
  summary: 'ingest files into a stream (agent, ingestion and indexer in one process)',
  help: `Ingest files into a stream from each file's checkpoint, then index.

Usage: strata stream ingest STREAM FILE... [--data DIR] [--no-index] [--chunk BYTES] [--compact-every N] [--final]

Re-running is safe: each file resumes at its checkpointed offset and a repeated block is not written twice.
A last line without a newline (a writer may be in the middle of it) is left for the next run and said so
on stderr; --final ingests it (the file is complete).
The indexer compacts the index every N blocks it indexes (default ${defaultPolicy.compactEveryBlocks}; 0: never).

Example: strata stream ingest hdfs /var/log/hdfs/HDFS_2k.log --data ./.strata`,
  async run(argv, io) {
    const f = parseFlags(argv, {
      ...dataFlag,
      ...compactFlag,
      'no-index': { type: 'boolean' },
      chunk: { type: 'string' },
      final: { type: 'boolean' },
    });
    const [name, ...files] = f.positionals;
    if (files.length === 0) throw new UsageError('expected STREAM FILE...');
    const policy = compactPolicy(f.values['compact-every']);
    return withStream(
      io,
      f.values.data,
      name,
      async (s) => {
        const t0 = performance.now();
        const tot = { lines: 0, blocksWritten: 0, blocksDeduped: 0, bytes: 0 };
        for (const file of files)
          if (!existsSync(resolve(io.cwd, file)))
            throw new CliError(`${resolve(io.cwd, file)}: no such file`);
        const total = files.reduce((n, file) => n + statSync(resolve(io.cwd, file)).size, 0);
        const progress = new Progress(io.stderr, { total, label: 'ingest', quiet: f.values.quiet === true });
        for (const file of files) {
          const p = resolve(io.cwd, file);
          const st = await s.ingestFile(p, {
            ...(f.values.chunk ? { chunkBytes: intFlag('chunk', f.values.chunk, 0, 1024) } : {}),
            final: f.values.final === true,
            onRead: (n) => progress.tick(n),
          });
          if (st.unfinishedBytes)
            io.stderr.write(
              `${p}: its last ${st.unfinishedBytes} bytes are a line without a newline, left for the next run (--final ingests it)\n`,
            );
          for (const c of st.emptyColumns ?? [])
            io.stderr.write(
              `${p}: warning: column '${c}' has no value in any of the ${st.lines} lines ingested (no line has a field of its name, or none of its type: check the DDL's COLUMNS)\n`,
            );
          tot.lines += st.lines;
          tot.blocksWritten += st.blocksWritten;
          tot.blocksDeduped += st.blocksDeduped;
          tot.bytes += st.bytes;
        }
        progress.finish();
        const t1 = performance.now();
        if (!f.values['no-index']) await s.indexAll();
        const t2 = performance.now();
        const sz = s.sizes();
        output(io, f.values.json, { ...tot, ingestMs: t1 - t0, indexMs: t2 - t1, ...sz }, () =>
          [
            `ingested ${tot.lines} lines (${formatBytes(tot.bytes)}) in ${tot.blocksWritten} blocks (${tot.blocksDeduped} already present) in ${(t1 - t0).toFixed(0)} ms; indexed in ${(t2 - t1).toFixed(0)} ms`,
            `stream ${name}: ${sz.rows} rows in ${sz.blocks} blocks, data ${formatBytes(sz.blockBytes)} (raw ${formatBytes(sz.rawBytes)}), index ${formatBytes(sz.indexBytes)} in ${sz.nodes} nodes`,
          ].join('\n'),
        );
        return 0;
      },
      policy,
    );
  },
};

const erase: Command = {
  name: 'erase',
  summary: 'erase the rows matching an expression (rewrites blocks, records the erasure)',
  help: `Erase rows: find blocks through the index, rewrite them without the matching rows, record it in the progress log.

Usage: strata stream erase STREAM --where EXPR [--data DIR]

Example: strata stream erase hdfs --where "content CONTAINS 'blk_38865049064139660'"`,
  async run(argv, io) {
    const f = parseFlags(argv, { ...dataFlag, where: { type: 'string' } }, 1);
    if (!f.values.where) throw new UsageError('--where EXPR is required');
    return withStream(io, f.values.data, f.positionals[0], async (s) => {
      const where = f.values.where!;
      try {
        s.parse(where);
      } catch (e) {
        if (e instanceof QueryError) throw new UsageError(e.message);
        throw e;
      }
      const r = await s.erase(where);
      output(
        io,
        f.values.json,
        r,
        () => `erased ${r.rows} rows from ${r.blocks} blocks; rewrote ${r.nodesRewritten} index nodes`,
      );
      return 0;
    });
  },
};

const exportCmd: Command = {
  name: 'export',
  summary: 'write rows and index nodes as Parquet (read them with DuckDB, Spark, Trino)',
  help: `Export a stream's rows and its live index nodes as Parquet (zstd): DIR/rows.parquet, DIR/index.parquet.

Usage: strata stream export STREAM --parquet DIR [--data DIR]

Example: strata stream export hdfs --parquet ./hdfs-parquet && duckdb -c "SELECT level, count(*) FROM './hdfs-parquet/rows.parquet' GROUP BY 1"`,
  async run(argv, io) {
    const f = parseFlags(argv, { ...dataFlag, parquet: { type: 'string' } }, 1);
    if (!f.values.parquet) throw new UsageError('--parquet DIR is required');
    return withStream(io, f.values.data, f.positionals[0], async (s) => {
      const r = await exportParquet(s, resolve(io.cwd, f.values.parquet!));
      output(
        io,
        f.values.json,
        r,
        () => `wrote ${r.rows} rows and ${r.indexEntries} index entries: ${r.files.join(', ')}`,
      );
      return 0;
    });
  },
};

const serve: Command = {
  name: 'serve',
  summary: 'run an ingestion server (HTTP on 127.0.0.1) over a data directory',
  help: `Run the ingestion server: POST /streams/NAME/chunks?source=S&from=A&to=B with Idempotency-Key = block id.
Acknowledges after the progress-log append commits; a repeated block id is acknowledged without a write.
GET /streams/NAME/search?where=EXPR[&limit=N][&cursor=C][&since=T][&until=T] answers {rows, cursor?}:
EXPR as strata search's, at most N rows (default 100, at most 10,000), the cursor of the next page when cut.

Usage: strata stream serve [--port N] [--no-index] [--compact-every N] [--maintain-every DURATION] [--data DIR]

The indexer compacts a stream's index every N blocks it indexes (default ${defaultPolicy.compactEveryBlocks}; 0: never).
--maintain-every runs \`strata stream maintain\` (tiers, RETAIN, gc) on each stream the server has opened, every
DURATION (500ms, 30s, 10m, 1h, 1d), queued behind its chunks; off by default. A failed run is logged to
stderr and retried the next period.

Example: strata stream serve --port 7070 --data ./.strata --maintain-every 10m`,
  async run(argv, io) {
    const f = parseFlags(
      argv,
      {
        ...dataFlag,
        ...compactFlag,
        ...maintainFlag,
        port: { type: 'string' },
        'no-index': { type: 'boolean' },
      },
      0,
    );
    const every = maintainEvery(f.values['maintain-every']);
    const data = dataDir(io, f.values.data);
    writableDir(data, '--data'); // before serving: it came up and answered every request 404
    const srv = await startIngestServer(data, {
      port: intFlag('port', f.values.port, 7070, 0, 65535),
      index: !f.values['no-index'],
      policy: compactPolicy(f.values['compact-every']),
      ...(every !== undefined ? { maintainEveryMs: every } : {}),
      log: (line) => io.stderr.write(`strata stream serve: ${line}\n`),
    });
    const stopped = untilStopped(); // before "ready": a supervisor may signal as soon as it reads it
    io.stderr.write(`strata stream serve: listening on http://127.0.0.1:${srv.port}\n`);
    await stopped;
    await srv.close();
    return 0;
  },
};

const agent: Command = {
  name: 'agent',
  summary: 'ship a file or stdin to an ingestion server (local leaves, retries, idempotent, bounded memory)',
  help: `Ship a file's (or stdin's) lines to an ingestion server. A file resumes at the checkpoint in
FILE.strata-ckpt; stdin ("-") has no checkpoint (its source is named by --source, default stdin:HOST:PID:START).

Usage: strata stream agent STREAM FILE|- --url URL [--chunk BYTES] [--every SECONDS] [--follow MS]
         [--memory BYTES] [--no-local-index] [--no-compress] [--retries N] [--source NAME] [--json]

A chunk is cut when it reaches --chunk bytes or its oldest line is --every seconds old (defaults: the
stream's CHUNK EVERY n SECONDS OR m MB). Each chunk's level-0 leaf is built here and shipped with it
(--no-local-index: the server builds it); request bodies are deflated (--no-compress: sent as they are).
A request is retried --retries times (default 8, unlimited with --follow), backoff doubling from 50 ms to
2 s. --follow MS polls the file every MS milliseconds until SIGINT (rotation starts a new source at
offset 0; a file cut shorter in place, or whose first 1,024 bytes changed, is read again from its start).
Stdin is read until it ends or until SIGINT; then what was read is shipped and the report printed.
--memory bounds the chunk buffers (default 3 x chunk + 512 KiB);
at the bound the agent stops reading, so a writer into stdin blocks. The report gives CPU time, CPU % of
one core, RSS and heap.

Example: strata stream agent hdfs /var/log/hdfs.log --url http://127.0.0.1:7070 --follow 1000
         tail -F app.log | strata stream agent app - --url http://127.0.0.1:7070 --every 5`,
  async run(argv, io) {
    const f = parseFlags(
      argv,
      {
        url: { type: 'string' },
        chunk: { type: 'string' },
        every: { type: 'string' },
        follow: { type: 'string' },
        memory: { type: 'string' },
        source: { type: 'string' },
        'no-local-index': { type: 'boolean' },
        'no-compress': { type: 'boolean' },
        retries: { type: 'string' },
      },
      2,
    );
    const [stream, file] = f.positionals;
    if (!stream || !file || !f.values.url) throw new UsageError('expected STREAM FILE|- --url URL');
    // a poll past a timer's 2^31 - 1 ms fired every millisecond
    const follow = f.values.follow ? intFlag('follow', f.values.follow, 1000, 10, timerMsMax) : 0;
    const opts = {
      url: f.values.url,
      stream,
      ...(f.values.chunk ? { chunkBytes: parseBytes(f.values.chunk, '--chunk') } : {}),
      ...(f.values.every ? { chunkEveryMs: 1000 * intFlag('every', f.values.every, 10, 0) } : {}),
      ...(f.values.memory ? { memoryBytesMax: parseBytes(f.values.memory, '--memory') } : {}),
      localIndex: !f.values['no-local-index'],
      compress: !f.values['no-compress'],
      // a follower outlives server restarts: it retries for as long as it runs
      retriesMax: f.values.retries
        ? intFlag('retries', f.values.retries, 8, 0)
        : follow
          ? Number.MAX_SAFE_INTEGER
          : 8,
    };
    let st: AgentStats;
    try {
      if (file === '-') {
        // stdin has no end in `tail -F app.log | strata stream agent ... -`: SIGINT or SIGTERM ships what
        // was read and prints the report, as --follow does for a file
        const ac = new AbortController();
        const stop = () => ac.abort();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        try {
          st = await runAgentStream(io.stdin, {
            ...opts,
            ...(f.values.source ? { source: f.values.source } : {}),
            signal: ac.signal,
          });
        } finally {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
        }
        // a pipe still open keeps the process alive
        if (ac.signal.aborted) io.stdin.destroy();
      } else {
        const ac = new AbortController();
        if (follow) void untilStopped().then(() => ac.abort());
        st = await runAgentFile(
          { ...opts, file: resolve(io.cwd, file) },
          { followMs: follow, signal: ac.signal },
        );
      }
    } catch (e) {
      throw new CliError(`agent: ${(e as Error).message}`);
    }
    output(
      io,
      f.values.json,
      st,
      () =>
        `shipped ${st.lines} lines in ${st.chunks} chunks (${st.chunksByTime} cut by time, ${st.retries} retries, leaves ${formatBytes(st.leafBytes)}, ${formatBytes(st.wireBytes)} on the wire), offset ${st.offset}; cpu ${(st.cpuUserMs + st.cpuSystemMs).toFixed(0)} ms (${st.cpuPercent.toFixed(1)}% of a core over ${(st.elapsedMs / 1000).toFixed(1)} s), rss ${formatBytes(st.rssBytes)}, heap ${formatBytes(st.heapUsedBytes)}, buffers peak ${formatBytes(st.bufferedBytesPeak)} of ${formatBytes(st.memoryBytesMax)}`,
    );
    return 0;
  },
};

const indexCmd: Command = {
  name: 'index',
  summary: 'run the indexer: follow the progress log and build the index bottom-up',
  help: `Run the indexer over a stream: index every acknowledged block, then (with --follow MS) keep polling
the progress log every MS milliseconds until SIGINT. Safe beside ingestion servers and other indexers on
the same data directory: a node record that lost a race is ignored by every reader.

Usage: strata stream index STREAM [--follow MS] [--compact-every N] [--maintain-every DURATION] [--data DIR] [--json]

The indexer compacts the index every N blocks it indexes (default ${defaultPolicy.compactEveryBlocks}; 0: never).
--maintain-every runs \`strata stream maintain\` (tiers, RETAIN, gc) every DURATION (500ms, 30s, 10m, 1h, 1d)
while the indexer runs, never beside an indexer step; off by default. A failed run is logged to stderr and
retried the next period.

Example: strata stream index hdfs --follow 1000 --maintain-every 10m --data ./.strata`,
  async run(argv, io) {
    const f = parseFlags(
      argv,
      { ...dataFlag, ...compactFlag, ...maintainFlag, follow: { type: 'string' } },
      1,
    );
    // a poll past a timer's 2^31 - 1 ms fired every millisecond
    const follow = f.values.follow ? intFlag('follow', f.values.follow, 1000, 10, timerMsMax) : 0;
    const every = maintainEvery(f.values['maintain-every']);
    return withStream(
      io,
      f.values.data,
      f.positionals[0],
      async (s) => {
        let stopped = !follow;
        if (follow) void untilStopped().then(() => (stopped = true));
        const t0 = performance.now();
        let blocks = 0;
        // indexer steps and maintenance runs take turns on the stream
        const turn = serialQueue();
        const maintenance =
          every === undefined
            ? undefined
            : runEvery(every, () => turn(() => s.maintain()), {
                onRun: (m) => io.stderr.write(`strata stream index: maintain: ${maintainSummary(m)}\n`),
                onError: (e) =>
                  io.stderr.write(
                    `strata stream index: maintain failed (retried next period): ${(e as Error).message}\n`,
                  ),
              });
        try {
          for (;;) {
            const n = await turn(() => s.indexStep(64));
            blocks += n;
            if (n > 0) continue;
            if (stopped) break;
            await new Promise((r) => setTimeout(r, follow));
          }
        } finally {
          await maintenance?.stop();
        }
        const r = {
          blocks,
          indexedBlocks: s.indexedBlocks,
          blockCount: s.blockCount,
          ms: performance.now() - t0,
          compactions: s.compactions,
          maintainRuns: maintenance?.runs ?? 0,
          maintainFailures: maintenance?.failures ?? 0,
        };
        output(
          io,
          f.values.json,
          r,
          () =>
            `indexed ${blocks} blocks (${r.indexedBlocks}/${r.blockCount}) in ${r.ms.toFixed(0)} ms; compaction merged ${r.compactions.nodesMerged} nodes into ${r.compactions.runs}`,
        );
        return 0;
      },
      compactPolicy(f.values['compact-every']),
    );
  },
};

const compact: Command = {
  name: 'compact',
  summary: 'merge runs of small index nodes into fewer (what the indexer does every --compact-every blocks)',
  help: `Compact a stream's index once: at each level, runs of adjacent small nodes under one parent (or among
the orphans) are merged into nodes of up to --fanout children (default ${defaultPolicy.compactFanoutMax}), and the
nodes above rewritten to name them, one all-or-none progress-log record per parent. Safe beside servers,
indexers and searches. The superseded node objects are left to \`strata stream maintain\`.

Usage: strata stream compact STREAM [--fanout N] [--data DIR] [--json]

Example: strata stream compact hdfs --data ./.strata`,
  async run(argv, io) {
    const f = parseFlags(argv, { ...dataFlag, fanout: { type: 'string' } }, 1);
    const policy = f.values.fanout
      ? { compactFanoutMax: intFlag('fanout', f.values.fanout, defaultPolicy.compactFanoutMax, 1) }
      : {};
    return withStream(
      io,
      f.values.data,
      f.positionals[0],
      async (s) => {
        const before = s.sizes();
        const st = await s.compact();
        const after = s.sizes();
        const r = {
          ...st,
          nodesBefore: before.nodes,
          nodesAfter: after.nodes,
          indexBytesBefore: before.indexBytes,
          indexBytesAfter: after.indexBytes,
        };
        output(
          io,
          f.values.json,
          r,
          () =>
            `merged ${st.nodesMerged} nodes into ${st.runs} (${st.pathNodes} rewritten above them, ${st.records} records, ${st.racesLost} lost a race): ${before.nodes} -> ${after.nodes} nodes, index ${formatBytes(before.indexBytes)} -> ${formatBytes(after.indexBytes)}`,
        );
        return 0;
      },
      policy,
    );
  },
};

const maintain: Command = {
  name: 'maintain',
  summary: 'apply STORAGE tiers and RETAIN, and collect superseded index objects',
  help: `Housekeeping under the stream's DDL: move objects idle for the hot period from the express tier
(DIR/express) to standard (DIR/objects), expire blocks acknowledged more than RETAIN ago, and delete
objects nothing live refers to (superseded index nodes, expired or erased blocks) older than --grace-ms
(default 600000: an indexer or server may be between writing an object and recording it).

Usage: strata stream maintain STREAM [--grace-ms N] [--data DIR] [--json]

Long-running servers and indexers can run it themselves: --maintain-every DURATION on serve and index.

Example: strata stream maintain hdfs --data ./.strata   # e.g. hourly from cron`,
  async run(argv, io) {
    const f = parseFlags(argv, { ...dataFlag, 'grace-ms': { type: 'string' } }, 1);
    return withStream(io, f.values.data, f.positionals[0], async (s) => {
      const r = await s.maintain(
        f.values['grace-ms'] ? { graceMs: intFlag('grace-ms', f.values['grace-ms'], 600_000, 0) } : {},
      );
      output(io, f.values.json, r, () => maintainSummary(r));
      return 0;
    });
  },
};

const shareLog: Command = {
  name: 'share-log',
  summary: "move a stream's progress log from a file loglet (one process) to the shared loglet",
  help: `Streams created before the shared progress log keep a file loglet, safe for one process at a time.
This seals it and chains a shared (object-store) segment after it, so servers, indexers and searches can
then run side by side. Stop every process that has the stream open first.

Usage: strata stream share-log STREAM [--data DIR] [--json]

Example: strata stream share-log hdfs --data ./.strata`,
  async run(argv, io) {
    const f = parseFlags(argv, { ...dataFlag }, 1);
    const name = f.positionals[0];
    if (!name) throw new UsageError('expected STREAM');
    const dir = join(streamDir(dataDir(io, f.values.data), name), 'progress');
    if (!existsSync(dir)) throw new CliError(`no stream '${name}' in ${dataDir(io, f.values.data)}`);
    let n: number;
    try {
      n = await ProgressLog.migrateToShared(dir, 'progress');
    } catch (e) {
      throw new CliError(`share-log: ${(e as Error).message}`);
    }
    output(io, f.values.json, { shared: true, copied: n }, () =>
      n === 0 ? 'the progress log was already shared' : `copied ${n} records onto the shared progress log`,
    );
    return 0;
  },
};

const info: Command = {
  name: 'info',
  summary: 'show a stream: rows, blocks, index levels and watermarks, sizes',
  help: `Show a stream's state.

Usage: strata stream info STREAM [--data DIR] [--json]

Example: strata stream info hdfs`,
  async run(argv, io) {
    const f = parseFlags(argv, { ...dataFlag }, 1);
    return withStream(io, f.values.data, f.positionals[0], async (s) => {
      const sz = s.sizes();
      const res = await s.search({ k: 'true' }, { limit: 0 });
      const unfinished = s.erasuresUnfinished;
      output(
        io,
        f.values.json,
        {
          ...sz,
          indexedBlocks: s.indexedBlocks,
          levels: res.stats.levels,
          racesLost: s.racesLost,
          erasuresUnfinished: unfinished,
        },
        () =>
          [
            `${sz.rows} rows in ${sz.blocks} blocks (${s.indexedBlocks} indexed); data ${formatBytes(sz.blockBytes)}, raw ${formatBytes(sz.rawBytes)}, index ${formatBytes(sz.indexBytes)}`,
            ...res.stats.levels.map((l) => `level ${l.level}: ${l.nodes} nodes, watermark ${l.watermark}`),
            ...(unfinished.length > 0
              ? [
                  `erasures unfinished (their keys still in the index until the next erase or maintain): blocks ${unfinished.join(', ')}`,
                ]
              : []),
          ].join('\n'),
      );
      return 0;
    });
  },
};

const search: Command = {
  name: 'search',
  summary: 'search a stream (index + not-yet-indexed tail: every acknowledged row)',
  help: `Search a stream with an expression over its columns.

Usage: strata search STREAM --where EXPR [--since T] [--until T] [--limit N] [--cursor C] [--count] [--json] [--explain] [--no-index] [--data DIR]

EXPR: col = 'v', col != 'v', col IN ('a','b'), col < 10, ts >= '2008-11-09 20:00:00', col CONTAINS 'token', AND, OR, NOT, ( ).

Rows come in log order. When --limit cut the result, the cursor of the next page is printed on stderr
(\`next page: --cursor C\`, or \`{"cursor":"C"}\` with --json); the same search with --cursor C continues
strictly after the last row printed (rows ingested since that come after it appear too).

Example: strata search hdfs --where "content CONTAINS 'blk_38865049064139660'" --count`,
  async run(argv, io) {
    const f = parseFlags(
      argv,
      {
        ...dataFlag,
        where: { type: 'string' },
        since: { type: 'string' },
        until: { type: 'string' },
        limit: { type: 'string' },
        cursor: { type: 'string' },
        count: { type: 'boolean' },
        explain: { type: 'boolean' },
        'no-index': { type: 'boolean' },
      },
      1,
    );
    return withStream(io, f.values.data, f.positionals[0], async (s) => {
      let expr: Expr;
      try {
        expr = s.parse(f.values.where ?? '');
      } catch (e) {
        if (e instanceof QueryError) throw new UsageError(e.message);
        throw e;
      }
      const since = timeFlag('since', f.values.since);
      const until = timeFlag('until', f.values.until);
      const limit = f.values.count ? undefined : intFlag('limit', f.values.limit, 100, 0);
      const cursor = f.values.cursor;
      if (cursor !== undefined) {
        try {
          parseCursor(cursor);
        } catch (e) {
          if (e instanceof CursorError) throw new UsageError(`--cursor: ${e.message}`);
          throw e;
        }
      }
      const res = await s.search(expr, {
        useIndex: !f.values['no-index'],
        ...(limit !== undefined ? { limit } : {}),
        ...(cursor !== undefined ? { cursor } : {}),
        ...(since !== undefined ? { since } : {}),
        ...(until !== undefined ? { until } : {}),
      });
      if (f.values.count) {
        output(
          io,
          f.values.json,
          f.values.explain
            ? { count: res.stats.rowsMatched, stats: res.stats }
            : { count: res.stats.rowsMatched },
          () =>
            f.values.explain ? `${res.stats.rowsMatched}\n${explainText(res)}` : `${res.stats.rowsMatched}`,
        );
        return 0;
      }
      if (f.values.json)
        for (const r of res.rows) io.stdout.write(`${JSON.stringify(rowObject(s.def, r))}\n`);
      else for (const r of res.rows) io.stdout.write(`${formatRow(s, r)}\n`);
      if (f.values.explain) io.stderr.write(`${explainText(res)}\n`);
      if (res.cursor !== undefined)
        io.stderr.write(
          f.values.json
            ? `${JSON.stringify({ cursor: res.cursor })}\n`
            : `next page: --cursor ${res.cursor}\n`,
        );
      return 0;
    });
  },
};

export const commands: Command[] = [
  group(
    'stream',
    'Helios streams: create from DDL, ingest, erase, info, export, serve, agent, index, compact, maintain, share-log',
    [create, ingest, erase, info, exportCmd, serve, agent, indexCmd, compact, maintain, shareLog],
  ),
  search,
];

/** The DDL the demo and tests use for loghub HDFS. */
export const hdfsDdl = `CREATE STREAM hdfs SOURCES ('file:HDFS_2k.log')
  FORMAT loghub('<Date> <Time> <Pid> <Level> <Component>: <Content>')
  COLUMNS (ts TIMESTAMP, pid INT, level STRING, component STRING, content TEXT)
  INDEX (level, component, TOKENS(content))
  CHUNK EVERY 10 SECONDS OR 16 KB
  STORAGE express FOR 1 DAY THEN standard RETAIN 30 DAYS`;

function sampleFile(dir: string): string {
  for (const base of [
    resolve(process.cwd(), '../shared'),
    resolve(process.cwd(), '../../shared'),
    '/work/shared',
  ]) {
    const p = join(base, 'data/loghub/HDFS/HDFS_2k.log');
    if (existsSync(p)) return p;
  }
  const p = join(dir, 'HDFS_gen.log');
  const lines: string[] = [];
  for (let i = 0; i < 2000; i++)
    lines.push(
      `081109 ${String(200000 + i).slice(0, 6)} ${100 + (i % 50)} ${i % 97 === 0 ? 'WARN' : 'INFO'} dfs.DataNode$PacketResponder: PacketResponder ${i % 3} for block blk_${(i * 7919) % 100003}${i} terminating`,
    );
  writeFileSync(p, `${lines.join('\n')}\n`);
  return p;
}

export const demos: DemoStep[] = [
  {
    name: 'helios',
    async run(io, dir) {
      const data = join(dir, 'helios');
      const file = sampleFile(dir);
      createStream(data, hdfsDdl);
      const s = await Stream.open(data, 'hdfs', { mergeKeysMax: 2000, addKeysMax: 20_000, fanoutMax: 8 });
      try {
        const t0 = performance.now();
        const st = await s.ingestFile(file);
        const t1 = performance.now();
        io.stdout.write(
          `helios: ingested ${st.lines} lines of ${file} into ${st.blocksWritten} blocks in ${(t1 - t0).toFixed(0)} ms\n`,
        );
        // Query while only half the blocks are indexed: the tail scan still sees every row.
        await s.indexStep(Math.floor(s.blockCount / 2));
        const counts = new Map<string, number>();
        for await (const { rows } of s.scan())
          for (const r of rows)
            for (const t of String(r[4]).match(/blk_-?\d+/g) ?? []) counts.set(t, (counts.get(t) ?? 0) + 1);
        const needle = [...counts].find(([, n]) => n === 1)?.[0] ?? 'blk_0';
        const q = s.parse(`content CONTAINS '${needle}'`);
        const half = await s.search(q);
        io.stdout.write(
          `helios: needle '${needle}' with ${half.stats.blocksIndexed}/${half.stats.blocksTotal} blocks indexed: ${half.stats.rowsMatched} row(s), ${half.stats.tailBlocks} tail blocks scanned\n`,
        );
        const t2 = performance.now();
        await s.indexAll();
        const t3 = performance.now();
        const full = await s.search(q);
        const noIdx = await s.search(q, { useIndex: false });
        const sz = s.sizes();
        io.stdout.write(
          `helios: indexed in ${(t3 - t2).toFixed(0)} ms; index ${formatBytes(sz.indexBytes)} for ${formatBytes(sz.rawBytes)} raw (${((100 * sz.indexBytes) / sz.rawBytes).toFixed(1)}%), levels: ${full.stats.levels.map((l) => `L${l.level}=${l.nodes}`).join(' ')}\n`,
        );
        io.stdout.write(
          `helios: needle with index: ${full.stats.rowsMatched} row(s), ${full.stats.nodesRead} nodes and ${full.stats.blocksRead}/${full.stats.blocksTotal} blocks read; without index: ${noIdx.stats.rowsMatched} row(s), ${noIdx.stats.blocksRead} blocks read\n`,
        );
        if (
          full.stats.rowsMatched !== noIdx.stats.rowsMatched ||
          half.stats.rowsMatched !== noIdx.stats.rowsMatched
        )
          throw new Error('helios demo: index and full scan disagree');
        const warn = await s.search(s.parse("level = 'WARN'"));
        io.stdout.write(
          `helios: level = 'WARN': ${warn.stats.rowsMatched} rows from ${warn.stats.blocksRead} blocks\n`,
        );
      } finally {
        await s.close();
      }
    },
  },
];

/** A scratch directory for quick experiments (used by tests). */
export function scratchDir(prefix = 'helios-'): { dir: string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, done: () => rmSync(dir, { recursive: true, force: true }) };
}
