/**
 * The ingestion server and the agent that ships to it over HTTP (127.0.0.1 in tests).
 *
 *   agent                                              server
 *   read complete lines from the checkpoint  --POST /streams/NAME/chunks?source=S&from=A&to=B-->
 *   Idempotency-Key: block id (HighwayHash of S, A, B, bytes)   validate the id, write block, append to
 *                                            <--200 {id, new}--  the progress log, then acknowledge
 *   save checkpoint B (fsync), next chunk
 *
 * A retried chunk has the same id, so the server acknowledges it without writing twice. The server keeps
 * no state of its own beyond what is in object storage and the progress log; requests to one stream are
 * serialized in this process (one server per data directory here).
 */
import {
  closeSync,
  existsSync,
  fsyncSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { resolve } from 'node:path';
import { blockId } from './block.js';
import { Stream } from './stream.js';

/** Bound on one request body (a chunk), in bytes. */
export const chunkBytesMax = 64 << 20;
/** Bound on retries of one chunk by the agent. */
export const agentRetriesMax = 8;
/** Backoff of the first retry, in ms (doubles each time). */
export const agentBackoffMs = 50;

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

/** Starts an ingestion server over a data directory; `index: true` runs the indexer after each chunk. */
export async function startIngestServer(
  dataDir: string,
  opts: { port?: number; index?: boolean } = {},
): Promise<IngestServer> {
  const streams = new Map<string, Promise<Stream>>();
  const queues = new Map<string, Promise<unknown>>();
  const open = (name: string) => {
    let s = streams.get(name);
    if (!s) {
      s = Stream.open(dataDir, name);
      s.catch(() => streams.delete(name));
      streams.set(name, s);
    }
    return s;
  };
  const serial = <T>(name: string, f: () => Promise<T>): Promise<T> => {
    const prev = queues.get(name) ?? Promise.resolve();
    const next = prev.then(f, f);
    queues.set(
      name,
      next.catch(() => {}),
    );
    return next;
  };
  const server = createServer((req, res) => {
    const reply = (status: number, value: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(value));
    };
    (async () => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      const m = /^\/streams\/([A-Za-z_][A-Za-z0-9_]*)\/chunks$/.exec(url.pathname);
      if (req.method !== 'POST' || !m) return reply(404, { error: `no route ${req.method} ${url.pathname}` });
      const name = m[1]!;
      const source = url.searchParams.get('source');
      const from = Number(url.searchParams.get('from'));
      const to = Number(url.searchParams.get('to'));
      const key = req.headers['idempotency-key'];
      const bytes = await body(req);
      if (!source || !Number.isSafeInteger(from) || !Number.isSafeInteger(to) || to - from !== bytes.length)
        return reply(400, { error: 'need source, from and to with to - from = body length' });
      const id = blockId(source, from, to, bytes);
      if (key !== id)
        return reply(400, { error: `Idempotency-Key ${String(key)} is not the block id ${id}` });
      const text = bytes.toString('utf8');
      const lines = text.split('\n');
      if (lines[lines.length - 1] === '') lines.pop();
      const s = await open(name);
      const isNew = await serial(name, async () => {
        const r = await s.ingestChunk(source, from, to, lines, bytes);
        if (opts.index) await s.indexStep();
        return r;
      });
      reply(200, { id, new: isNew, rows: lines.length });
    })().catch((e: Error & { status?: number }) => {
      if (!res.headersSent) reply(e.status ?? 500, { error: e.message });
    });
  });
  await new Promise<void>((r) => server.listen(opts.port ?? 0, '127.0.0.1', () => r()));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    server,
    port,
    async close() {
      await new Promise<void>((r) => server.close(() => r()));
      for (const s of streams.values()) await (await s).close();
    },
  };
}

export interface AgentOptions {
  /** Ingestion server base URL, e.g. http://127.0.0.1:7070 */
  url: string;
  stream: string;
  file: string;
  chunkBytes?: number;
  /** Checkpoint file (default FILE.strata-ckpt). */
  checkpoint?: string;
}

export interface AgentStats {
  chunks: number;
  lines: number;
  bytes: number;
  retries: number;
  offset: number;
  cpuUserMs: number;
  rssBytes: number;
}

/**
 * Ships a file's complete lines from its checkpoint to the server, one chunk in flight (memory is bounded
 * by `chunkBytes`); the checkpoint advances only after the server acknowledges, and is saved with fsync,
 * so a killed agent resumes without loss, and a resent chunk is deduplicated by its id.
 */
export async function runAgentOnce(opts: AgentOptions): Promise<AgentStats> {
  const chunkBytes = opts.chunkBytes ?? 4 << 20;
  if (chunkBytes > chunkBytesMax) throw new Error(`chunkBytes ${chunkBytes} is over ${chunkBytesMax}`);
  const file = resolve(opts.file);
  const ckpt = opts.checkpoint ?? `${file}.strata-ckpt`;
  const st = statSync(file);
  const source = `agent:${file}#${st.ino}`;
  let offset = 0;
  if (existsSync(ckpt)) {
    const c = JSON.parse(readFileSync(ckpt, 'utf8')) as { source: string; offset: number };
    if (c.source === source) offset = c.offset;
  }
  const cpu0 = process.cpuUsage();
  const stats: AgentStats = { chunks: 0, lines: 0, bytes: 0, retries: 0, offset, cpuUserMs: 0, rssBytes: 0 };
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(chunkBytes);
    for (;;) {
      const n = readSync(fd, buf, 0, chunkBytes, offset);
      if (n === 0) break;
      const cut = buf.subarray(0, n).lastIndexOf(10);
      if (cut < 0) {
        if (n === chunkBytes)
          throw new Error(`${file}: a line at offset ${offset} is longer than chunkBytes ${chunkBytes}`);
        break; // an incomplete last line waits for its newline
      }
      const chunk = Buffer.from(buf.subarray(0, cut + 1));
      const to = offset + chunk.length;
      const id = blockId(source, offset, to, chunk);
      const u = `${opts.url}/streams/${opts.stream}/chunks?source=${encodeURIComponent(source)}&from=${offset}&to=${to}`;
      for (let attempt = 0; ; attempt++) {
        try {
          const r = await fetch(u, { method: 'POST', body: chunk, headers: { 'idempotency-key': id } });
          if (r.ok) {
            await r.arrayBuffer();
            break;
          }
          const msg = await r.text();
          if (r.status >= 400 && r.status < 500)
            throw Object.assign(new Error(`server refused the chunk: ${msg}`), { fatal: true });
          throw new Error(`server error ${r.status}: ${msg}`);
        } catch (e) {
          if ((e as { fatal?: boolean }).fatal || attempt >= agentRetriesMax) throw e;
          stats.retries++;
          await new Promise((r) => setTimeout(r, agentBackoffMs * 2 ** attempt));
        }
      }
      let lines = 0;
      for (let i = 0; i < chunk.length; i++) if (chunk[i] === 10) lines++;
      offset = to;
      stats.chunks++;
      stats.lines += lines;
      stats.bytes += chunk.length;
      const tmp = `${ckpt}.tmp`;
      writeFileSync(tmp, JSON.stringify({ source, offset }));
      const cfd = openSync(tmp, 'r');
      fsyncSync(cfd);
      closeSync(cfd);
      renameSync(tmp, ckpt);
    }
  } finally {
    closeSync(fd);
  }
  const cpu = process.cpuUsage(cpu0);
  stats.offset = offset;
  stats.cpuUserMs = cpu.user / 1000;
  stats.rssBytes = process.memoryUsage().rss;
  return stats;
}
