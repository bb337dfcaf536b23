/**
 * The ingestion server (the agent that ships to it is in agent.ts). HTTP on 127.0.0.1 in tests.
 *
 *   agent                                              server
 *   GET /streams/NAME                      -->         {name, ddl}  (the agent builds leaves from it)
 *   POST /streams/NAME/chunks?source=S&from=A&to=B&leaf=N   body = chunk (B - A bytes) | leaf (N bytes),
 *                                            deflated when Content-Encoding: deflate
 *   Idempotency-Key: block id (HighwayHash of S, A, B, chunk)   validate id and leaf, write block and leaf,
 *                                            <--200 {id, new}--  append to the progress log, then acknowledge
 *
 * A retried chunk has the same id, so it is acknowledged without a second block record. The server keeps
 * no state of its own beyond object storage and the progress log, so several can run over one data
 * directory: the progress log orders their appends and every reader keeps the first record of a block id.
 *
 * Searches (`searchOverHttp`):
 *   GET /streams/NAME/search?where=EXPR[&limit=N][&cursor=C][&since=T][&until=T]
 *                                            <--200 {rows: [{column: value}], cursor?}--
 * EXPR as `strata search --where`; rows in log order, at most `limit` (default 100, at most
 * `searchPageRowsMax`); `cursor` when the limit cut the result, for the next page. A bad parameter is a 400
 * naming it.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { inflateSync } from 'node:zlib';
import { listenOn } from '@strata/cli';
import { chunkBytesMax } from './agent.js';
import { blockId } from './block.js';
import { CursorError } from './cursor.js';
import { parseTimestamp } from './formats.js';
import { decodeNode } from './node.js';
import { type Expr, QueryError } from './query.js';
import { type Periodic, periodMsMax, runEvery, serialQueue } from './schedule.js';
import { type IndexPolicy, maintainSummary, rowObject, Stream } from './stream.js';

export interface IngestServer {
  server: Server;
  port: number;
  close(): Promise<void>;
}

async function body(req: IncomingMessage): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of req) {
    n += (c as Buffer).length;
    if (n > chunkBytesMax)
      throw Object.assign(new Error(`chunk is over ${chunkBytesMax} bytes`), { status: 413 });
    parts.push(c as Buffer);
  }
  return Buffer.concat(parts);
}

/** Bound on keys in a leaf an agent ships (a chunk of at most chunkBytesMax has fewer). */
export const leafKeysMax = 1 << 22;

export interface IngestServerOptions {
  port?: number;
  /** Run the indexer after each chunk. */
  index?: boolean;
  /** Recompute each shipped leaf from the rows and refuse one that differs (tests; costs what the leaf saves). */
  verifyLeaves?: boolean;
  /** The index policy of the streams it opens (compaction among it); default `defaultPolicy`. */
  policy?: Partial<IndexPolicy>;
  /**
   * Run `Stream.maintain()` on each stream this server has opened (a stream opens on its first request)
   * every this many ms, queued behind the stream's chunks so it never overlaps them or itself. Off when
   * absent. A failed run is logged and retried the next period.
   */
  maintainEveryMs?: number;
  /** Where maintenance reports go (one line each); default stderr. */
  log?: (line: string) => void;
}

/** Checks a leaf an agent shipped: a sound level-0 node (checksum), one child, sorted distinct keys. */
export function checkLeaf(bytes: Uint8Array): Float64Array {
  let n: ReturnType<typeof decodeNode>;
  try {
    n = decodeNode(bytes, 'shipped leaf');
  } catch (e) {
    // the agent's bytes, not the server, are at fault: a 4xx, which an agent does not retry
    const m = (e as Error).message;
    throw Object.assign(new Error(m.startsWith('shipped leaf') ? m : `shipped leaf: ${m}`), { status: 400 });
  }
  const h = n.header;
  if (h.level !== 0 || h.children.length !== 1 || n.keys.length > leafKeysMax)
    throw Object.assign(new Error('shipped leaf: not a level-0 leaf of one block'), { status: 400 });
  for (let i = 1; i < n.keys.length; i++)
    if (!(n.keys[i - 1]! < n.keys[i]!))
      throw Object.assign(new Error('shipped leaf: keys are not sorted and distinct'), { status: 400 });
  return n.keys;
}

/** Rows one search request returns at most (`limit`). */
export const searchPageRowsMax = 10_000;

const searchParams = new Set(['where', 'limit', 'cursor', 'since', 'until']);

/** A search request's answer (see the module's comment); a bad parameter throws with status 400. */
async function searchOverHttp(
  s: Stream,
  params: URLSearchParams,
): Promise<{ rows: unknown[]; cursor?: string }> {
  const bad = (msg: string) => Object.assign(new Error(msg), { status: 400 });
  for (const k of params.keys())
    if (!searchParams.has(k)) throw bad(`unknown parameter '${k}' (where, limit, cursor, since, until)`);
  let expr: Expr;
  try {
    expr = s.parse(params.get('where') ?? '');
  } catch (e) {
    if (e instanceof QueryError) throw bad(`where: ${e.message}`);
    throw e;
  }
  const limitText = params.get('limit') ?? '100';
  const limit = /^\d{1,6}$/.test(limitText) ? Number(limitText) : Number.NaN;
  if (!(limit <= searchPageRowsMax))
    throw bad(`limit '${limitText}': a whole number from 0 to ${searchPageRowsMax}`);
  const time = (name: 'since' | 'until') => {
    const v = params.get(name);
    if (v === null) return undefined;
    const t = parseTimestamp(v);
    if (t === null) throw bad(`${name} '${v}' is not a timestamp (e.g. 2008-11-09T20:36:15Z)`);
    return t;
  };
  const since = time('since');
  const until = time('until');
  if ((since !== undefined || until !== undefined) && !s.def.columns.some((c) => c.type === 'TIMESTAMP'))
    throw bad(`since and until: stream ${s.def.name} has no TIMESTAMP column`);
  const cursor = params.get('cursor') ?? undefined;
  let res: Awaited<ReturnType<Stream['search']>>;
  try {
    res = await s.search(expr, {
      limit,
      ...(cursor !== undefined ? { cursor } : {}),
      ...(since !== undefined ? { since } : {}),
      ...(until !== undefined ? { until } : {}),
    });
  } catch (e) {
    if (e instanceof CursorError) throw bad(e.message);
    throw e;
  }
  return {
    rows: res.rows.map((r) => rowObject(s.def, r)),
    ...(res.cursor !== undefined && { cursor: res.cursor }),
  };
}

/** Starts an ingestion server over a data directory. */
export async function startIngestServer(
  dataDir: string,
  opts: IngestServerOptions = {},
): Promise<IngestServer> {
  const every = opts.maintainEveryMs;
  if (every !== undefined && !(Number.isInteger(every) && every >= 1 && every <= periodMsMax))
    throw new Error(`startIngestServer: maintainEveryMs ${every} is not an integer in [1, ${periodMsMax}]`);
  const streams = new Map<string, Promise<Stream>>();
  const queues = new Map<string, <T>(f: () => Promise<T>) => Promise<T>>();
  const schedules: Periodic[] = [];
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  let closing = false;
  const serial = <T>(name: string, f: () => Promise<T>): Promise<T> => {
    let q = queues.get(name);
    if (!q) queues.set(name, (q = serialQueue()));
    return q(f);
  };
  const open = (name: string) => {
    let s = streams.get(name);
    if (!s) {
      s = Stream.open(dataDir, name, opts.policy ?? {}).then(
        (st) => {
          if (every !== undefined && !closing)
            schedules.push(
              runEvery(every, () => serial(name, () => st.maintain()), {
                onRun: (r) => log(`maintain ${name}: ${maintainSummary(r)}`),
                onError: (e) => log(`maintain ${name} failed (retried next period): ${(e as Error).message}`),
              }),
            );
          return st;
        },
        (e: Error) => {
          streams.delete(name);
          // a client is told the stream is missing, not where this server keeps its data
          if (/^no stream/.test(e.message))
            throw Object.assign(new Error(`no stream '${name}'`), { status: 404 });
          throw Object.assign(e, { status: 500 });
        },
      );
      streams.set(name, s);
    }
    return s;
  };
  const server = createServer((req, res) => {
    const reply = (status: number, value: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(value));
    };
    (async () => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      const g = /^\/streams\/([A-Za-z_][A-Za-z0-9_]*)$/.exec(url.pathname);
      if (req.method === 'GET' && g) {
        const s = await open(g[1]!);
        return reply(200, { name: s.def.name, ddl: s.ddl });
      }
      const q = /^\/streams\/([A-Za-z_][A-Za-z0-9_]*)\/search$/.exec(url.pathname);
      if (req.method === 'GET' && q)
        return reply(200, await searchOverHttp(await open(q[1]!), url.searchParams));
      const m = /^\/streams\/([A-Za-z_][A-Za-z0-9_]*)\/chunks$/.exec(url.pathname);
      if (req.method !== 'POST' || !m) return reply(404, { error: `no route ${req.method} ${url.pathname}` });
      const name = m[1]!;
      const source = url.searchParams.get('source');
      const from = Number(url.searchParams.get('from'));
      const to = Number(url.searchParams.get('to'));
      const leafLen = Number(url.searchParams.get('leaf') ?? 0);
      const key = req.headers['idempotency-key'];
      const wire = await body(req);
      const enc = req.headers['content-encoding'];
      if (enc !== undefined && enc !== 'identity' && enc !== 'deflate')
        return reply(415, { error: `Content-Encoding ${enc}: use deflate or none` });
      let all: Buffer;
      try {
        all = enc === 'deflate' ? inflateSync(wire, { maxOutputLength: chunkBytesMax }) : wire;
      } catch (e) {
        return reply(400, {
          error: `body does not inflate (bound ${chunkBytesMax} bytes): ${(e as Error).message}`,
        });
      }
      if (
        !source ||
        !Number.isSafeInteger(from) ||
        from < 0 ||
        !Number.isSafeInteger(to) ||
        !Number.isSafeInteger(leafLen) ||
        leafLen < 0 ||
        to - from !== all.length - leafLen
      )
        return reply(400, {
          error: 'need source, from >= 0, to (and leaf=N) with to - from + N = body length',
        });
      const bytes = all.subarray(0, to - from);
      const leaf = leafLen > 0 ? all.subarray(to - from) : undefined;
      const id = blockId(source, from, to, bytes);
      if (key !== id) {
        const k = String(key);
        return reply(400, {
          error:
            key === undefined
              ? `no Idempotency-Key header: it must be the block id ${id}`
              : `Idempotency-Key ${k.length > 80 ? `${k.slice(0, 80)}...` : k} is not the block id ${id}`,
        });
      }
      const leafKeys = leaf ? checkLeaf(leaf) : undefined;
      const text = bytes.toString('utf8');
      const lines = text.split('\n');
      if (lines[lines.length - 1] === '') lines.pop();
      const s = await open(name);
      const isNew = await serial(name, async () => {
        const r = await s.ingestChunk(source, from, to, lines, bytes, {
          ...(leaf && leafKeys ? { leaf, leafKeys } : {}),
          verifyLeaf: opts.verifyLeaves === true,
        });
        if (opts.index) await s.indexStep();
        return r;
      });
      reply(200, { id, new: isNew, rows: lines.length });
    })().catch((e: Error & { status?: number }) => {
      if (!res.headersSent) reply(e.status ?? 500, { error: e.message });
    });
  });
  const port = await listenOn(server, opts.port ?? 0, '127.0.0.1');
  return {
    server,
    port,
    async close() {
      closing = true;
      await new Promise<void>((r) => server.close(() => r()));
      // a maintenance run in progress finishes first; none starts after this
      for (const p of schedules) await p.stop();
      for (const s of streams.values()) await (await s.catch(() => undefined))?.close();
    },
  };
}
