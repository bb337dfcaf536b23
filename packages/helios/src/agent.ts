/**
 * The agent: runs on the source host, reads a file (from its checkpoint, following appends and
 * rotation) or a stream (stdin), cuts chunks of complete lines by size OR age, builds each chunk's
 * level-0 leaf locally (the paper's federated indexing: the ingestion tier stores it as is and the
 * indexer never re-parses the block), and ships chunk + leaf to an ingestion server.
 *
 *   source --read (readBytes at a time)--> pending lines --cut: >= chunkBytes, or oldest line >= chunkEveryMs-->
 *     one chunk in flight: POST /streams/NAME/chunks?source=S&from=A&to=B&leaf=N   body = deflate(chunk | leaf)
 *     Idempotency-Key = block id; retried with backoff; on 200 the checkpoint moves to B (fsync'ed)
 *
 * Memory is bounded: at most one chunk in flight (plus its leaf) and at most chunkBytes + readBytes
 * pending. While the chunk in flight is unacknowledged and the pending bytes are full, the agent does not
 * read: a file simply waits, and a stream (stdin) stops being pulled, so the pipe fills and its writer
 * blocks (backpressure).
 */

import { createHash } from 'node:crypto';
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { deflateSync } from 'node:zlib';
import { timerMsMax, writeFileDurableSync } from '@strata/cli';
import { blockId, blockPageRows } from './block.js';
import { checkChunkBytes, chunkSizeMax, parseDdl, type StreamDef } from './ddl.js';
import { type Cell, RowParser } from './formats.js';
import { columnKeys, concatKeys, sortUnique } from './keys.js';
import { encodeNode, leafNode } from './node.js';

/** Bound on one request body (a chunk and its leaf), in bytes: twice the largest chunk a stream takes. */
export const chunkBytesMax = 2 * chunkSizeMax;
/** Bound on retries of one chunk by the agent. */
export const agentRetriesMax = 8;
/** Backoff of the first retry, in ms (doubles each time, up to agentBackoffMsMax). */
export const agentBackoffMs = 50;
/** Bound on the backoff between two retries, in ms. */
export const agentBackoffMsMax = 2_000;
/** Bytes read from the source per read call (at most). */
export const agentReadBytes = 256 << 10;
/**
 * A followed file's first bytes kept (and in its checkpoint, their SHA-256) to tell it from a file cut
 * shorter in place and written again past the agent's offset between two looks, which its size cannot.
 */
export const agentHeadBytes = 1024;
/**
 * Deadline of one request, its answer's body included, in ms: a server that accepted the connection and
 * never answered (or stalled mid-answer) held the agent forever. A timed-out request is retried.
 */
export const agentRequestTimeoutMs = 30_000;
/**
 * The slowest upload a request's deadline allows for, in bytes per ms (100 KB/s: 10 s more per MB of
 * body), so that a chunk on a slow uplink is not cut off and sent again forever.
 */
export const agentUploadBytesPerMsMin = 100;

export interface AgentOptions {
  /** Ingestion server base URL, e.g. http://127.0.0.1:7070 */
  url: string;
  stream: string;
  /** A file to ship (resumes at its checkpoint). */
  file?: string;
  /** Cut a chunk at this many bytes (default: the DDL's CHUNK ... OR n MB). */
  chunkBytes?: number;
  /** Cut a chunk when its oldest line has waited this long, in ms (default: the DDL's CHUNK EVERY n SECONDS). */
  chunkEveryMs?: number;
  /** Build each chunk's level-0 leaf here and ship it with the chunk (default true). */
  localIndex?: boolean;
  /** Retries of one request before giving up (default agentRetriesMax; backoff doubles up to agentBackoffMsMax). */
  retriesMax?: number;
  /** Deflate each request body (Content-Encoding: deflate; default true). */
  compress?: boolean;
  /**
   * Deadline of one request and its answer, in ms (default agentRequestTimeoutMs), plus its body's time at
   * agentUploadBytesPerMsMin.
   */
  requestTimeoutMs?: number;
  /** The stream's DDL (default: fetched from the server, GET /streams/NAME). */
  ddl?: string;
  /** Bound on the agent's chunk buffers incl. the leaf in flight, in bytes (default 3 x chunkBytes + 2 x agentReadBytes). */
  memoryBytesMax?: number;
  /** Checkpoint file for `file` (default FILE.strata-ckpt). */
  checkpoint?: string;
}

export interface AgentStats {
  chunks: number;
  lines: number;
  bytes: number;
  retries: number;
  /** Acknowledged offset in the current source. */
  offset: number;
  /** Bytes of level-0 leaves built here and shipped. */
  leafBytes: number;
  /** Bytes sent (request bodies: chunks and leaves, deflated unless compress is false). */
  wireBytes: number;
  /** Chunks cut because their oldest line reached chunkEveryMs (the rest were cut by size or at the end). */
  chunksByTime: number;
  /**
   * Times a followed file was cut shorter in place (copytruncate), or cut and written again past the
   * offset read (its first bytes changed), and read again from its start.
   */
  truncations: number;
  /** Largest number of bytes the agent held in its chunk buffers (pending + in flight), and its bound. */
  bufferedBytesPeak: number;
  memoryBytesMax: number;
  elapsedMs: number;
  cpuUserMs: number;
  cpuSystemMs: number;
  /** CPU time (user + system) as a percentage of one core over elapsedMs. */
  cpuPercent: number;
  rssBytes: number;
  heapUsedBytes: number;
}

type Fetch = typeof fetch;

interface Pending {
  parts: Buffer[];
  bytes: number;
  /** Source offset of the first pending byte. */
  from: number;
  /** When the oldest pending byte was read (ms, monotonic), or -1. */
  sinceMs: number;
}

/** Ms until the oldest pending line is `everyMs` old (0 or less: its chunk is due); Infinity with none. */
function dueInMs(p: Pending, everyMs: number): number {
  return p.sinceMs < 0 ? Number.POSITIVE_INFINITY : p.sinceMs + everyMs - performance.now();
}

/** Ships chunks to one server and stream: local leaves, one chunk in flight, checkpointing, stats. */
class Shipper {
  stats: AgentStats;
  private parser: RowParser | undefined;
  private def: StreamDef | undefined;
  private inflight: Promise<void> | undefined;
  private inflightBytes = 0;
  private readonly cpu0 = process.cpuUsage();
  private readonly t0 = performance.now();
  chunkBytes: number;
  everyMs: number;

  constructor(
    readonly opts: AgentOptions,
    private readonly onAck: (source: string, to: number) => void,
    private readonly fetchFn: Fetch = fetch,
  ) {
    if (!/^https?:\/\/[^/]/.test(opts.url))
      throw new Error(`url '${opts.url}': expected the ingestion server as http://HOST:PORT`);
    this.chunkBytes = opts.chunkBytes ?? 4 << 20;
    this.everyMs = opts.chunkEveryMs ?? Number.POSITIVE_INFINITY;
    this.stats = this.bound();
  }

  private bound(): AgentStats {
    const opts = this.opts;
    checkChunkBytes('agent chunkBytes', this.chunkBytes);
    // pending: up to chunkBytes + one read; in flight: one chunk and its leaf (a leaf is well under a
    // chunk in practice: distinct keys x about 17 bytes).
    const memMin = 2 * this.chunkBytes + 2 * agentReadBytes;
    const memoryBytesMax = opts.memoryBytesMax ?? memMin + this.chunkBytes;
    if (memoryBytesMax < memMin)
      throw new Error(
        `memoryBytesMax ${memoryBytesMax} is below what one chunk in flight and one pending need (${memMin} = 2 x chunkBytes + 2 x ${agentReadBytes}): lower chunkBytes or raise the bound`,
      );
    return {
      chunks: 0,
      lines: 0,
      bytes: 0,
      retries: 0,
      offset: 0,
      leafBytes: 0,
      wireBytes: 0,
      chunksByTime: 0,
      truncations: 0,
      bufferedBytesPeak: 0,
      memoryBytesMax,
      elapsedMs: 0,
      cpuUserMs: 0,
      cpuSystemMs: 0,
      cpuPercent: 0,
      rssBytes: 0,
      heapUsedBytes: 0,
    };
  }

  /**
   * Fetches the stream's DDL from the server (unless given): it defines the rows and keys of local
   * leaves, and its CHUNK clause is the default for chunkBytes and chunkEveryMs.
   */
  async init(): Promise<void> {
    const o = this.opts;
    if (o.localIndex === false && o.chunkBytes !== undefined && o.chunkEveryMs !== undefined) return;
    let ddl = o.ddl;
    if (ddl === undefined) {
      const u = `${o.url}/streams/${o.stream}`;
      const body = await this.retry(`GET ${u}`, (signal) => this.fetchFn(u, { signal }));
      let answer: { ddl?: unknown };
      try {
        answer = JSON.parse(body.toString('utf8')) as { ddl?: unknown };
      } catch {
        answer = {};
      }
      if (typeof answer?.ddl !== 'string')
        throw new Error(`GET ${u}: the answer holds no stream definition (is it a Strata ingestion server?)`);
      ddl = answer.ddl;
    }
    // the server's stream, created before bounds added since perhaps (parseDdl's `existing`); its chunks
    // are cut at the size one request takes (a stream's CHUNK size was not bounded until 2026-12-05)
    this.def = parseDdl(ddl, `stream ${o.stream}`, { existing: true });
    this.chunkBytes = o.chunkBytes ?? Math.min(this.def.chunkBytesMax, chunkSizeMax);
    this.everyMs = o.chunkEveryMs ?? this.def.chunkEveryMs;
    const retries = this.stats.retries;
    this.stats = this.bound();
    this.stats.retries = retries;
    if (o.localIndex !== false && this.def.index.length > 0) this.parser = new RowParser(this.def);
  }

  private pendingBytes = 0;

  /** Records the bytes held right now (pending + in flight) against the bound. */
  account(pendingBytes = this.pendingBytes): void {
    this.pendingBytes = pendingBytes;
    const held = pendingBytes + this.inflightBytes;
    if (held > this.stats.bufferedBytesPeak) this.stats.bufferedBytesPeak = held;
    if (held > this.stats.memoryBytesMax)
      throw new Error(
        `agent: ${held} bytes buffered (chunks and leaf) is over memoryBytesMax ${this.stats.memoryBytesMax}: lower chunkBytes or raise the bound`,
      );
  }

  /** `req` until it succeeds, at most retriesMax times more; the error names the request (`what`). */
  private async retry(
    what: string,
    req: (signal: AbortSignal) => Promise<Response>,
    bodyBytes = 0,
  ): Promise<Buffer> {
    // plus the time the body takes at agentUploadBytesPerMsMin: an edge agent's slow uplink is no fault
    const ms =
      (this.opts.requestTimeoutMs ?? agentRequestTimeoutMs) + Math.ceil(bodyBytes / agentUploadBytesPerMsMin);
    for (let attempt = 0; ; attempt++) {
      try {
        // the answer's body under the same deadline: a server that sent its status and then stalled
        const signal = AbortSignal.timeout(ms);
        const r = await req(signal);
        const body = Buffer.from(await r.arrayBuffer());
        if (r.ok) return body;
        const msg = body.toString('utf8');
        if (r.status >= 400 && r.status < 500)
          throw Object.assign(new Error(`server refused: ${r.status} ${msg}`), { fatal: true });
        throw new Error(`server error ${r.status}: ${msg}`);
      } catch (e) {
        const fatal = (e as { fatal?: boolean }).fatal === true;
        if (fatal || attempt >= (this.opts.retriesMax ?? agentRetriesMax)) {
          // fetch's own error is 'fetch failed', its cause the connection's (ECONNREFUSED 127.0.0.1:7070)
          const err = e as Error & { cause?: { message?: string } };
          const why = err.message === 'fetch failed' && err.cause?.message ? err.cause.message : err.message;
          const tries = attempt > 0 ? ` (${attempt + 1} attempts)` : '';
          throw Object.assign(new Error(`${what}: ${why}${tries}`, { cause: e }), { fatal });
        }
        this.stats.retries++;
        const ms = Math.min(agentBackoffMs * 2 ** attempt, agentBackoffMsMax);
        await new Promise((r) => setTimeout(r, ms));
      }
    }
  }

  /** Waits until no chunk is in flight (so the next one can be cut without holding two). */
  async ready(): Promise<void> {
    if (this.inflight) await this.inflight;
    this.inflight = undefined;
  }

  /**
   * The keys of a chunk's rows (given as columns), a page of `blockPageRows` at a time, as the ingest's
   * blocks take them: TOKENS columns go to the keys as JSON text too, which the WebAssembly token scan
   * reads (the same keys; the JavaScript scan of the strings was a fifth of the agent's main thread at
   * 20,000 lines/s), and a page's text keeps the scan's memory small (a chunk's whole column had grown
   * the module by some 30 MB). Unsorted, with repeats across pages.
   */
  private chunkKeys(cols: Cell[][], rows: number): Float64Array {
    const def = this.def!;
    const tokenCols = new Set<number>();
    for (const d of def.index)
      if (d.tokens) tokenCols.add(def.columns.findIndex((col) => col.name === d.column));
    const parts: Float64Array[] = [];
    for (let from = 0; from < rows; from += blockPageRows) {
      const page = cols.map((c) => c.slice(from, Math.min(rows, from + blockPageRows)));
      const json: Uint8Array[] = [];
      for (const c of tokenCols) json[c] = Buffer.from(JSON.stringify(page[c]));
      parts.push(columnKeys(def, page, json));
    }
    return parts.length === 0 ? new Float64Array(0) : concatKeys(parts);
  }

  /** Sends a chunk once the one in flight is acknowledged; resolves once this one is in flight. */
  async send(source: string, from: number, chunk: Buffer, byTime: boolean): Promise<void> {
    await this.ready();
    const to = from + chunk.length;
    let lines = 0;
    for (let i = 0; i < chunk.length; i++) if (chunk[i] === 10) lines++;
    if (chunk.length > 0 && chunk[chunk.length - 1] !== 10) lines++;
    let leaf: Uint8Array | undefined;
    if (this.parser && this.def) {
      const text = chunk.toString('utf8');
      const ls = text.split('\n');
      if (ls[ls.length - 1] === '') ls.pop();
      // parsed straight into columns, the shape the keys are taken from (no array per row)
      const cols: Cell[][] = this.def.columns.map(() => new Array<Cell>(ls.length));
      for (let i = 0; i < ls.length; i++) this.parser.rowInto(ls[i]!, cols, i);
      leaf = encodeNode(leafNode(0, 0, 1, 0, sortUnique(this.chunkKeys(cols, ls.length))));
    }
    const raw = leaf ? Buffer.concat([chunk, leaf]) : chunk;
    const compress = this.opts.compress !== false;
    const body = compress ? deflateSync(raw, { level: 1 }) : raw;
    const id = blockId(source, from, to, chunk);
    const u = `${this.opts.url}/streams/${this.opts.stream}/chunks?source=${encodeURIComponent(source)}&from=${from}&to=${to}${leaf ? `&leaf=${leaf.length}` : ''}`;
    this.inflightBytes = Math.max(raw.length, body.length); // both exist while compressing
    this.account();
    this.inflight = (async () => {
      await this.retry(
        `POST ${u}`,
        (signal) =>
          this.fetchFn(u, {
            method: 'POST',
            body,
            headers: { 'idempotency-key': id, ...(compress ? { 'content-encoding': 'deflate' } : {}) },
            signal,
          }),
        body.length,
      );
      this.stats.chunks++;
      if (byTime) this.stats.chunksByTime++;
      this.stats.lines += lines;
      this.stats.bytes += chunk.length;
      this.stats.leafBytes += leaf?.length ?? 0;
      this.stats.wireBytes += body.length;
      this.stats.offset = to;
      this.onAck(source, to);
      this.inflightBytes = 0;
    })();
    // An unobserved rejection is seen by the next send or by drain.
    this.inflight.catch(() => {});
  }

  drain(): Promise<void> {
    return this.ready();
  }

  finish(): AgentStats {
    const cpu = process.cpuUsage(this.cpu0);
    const mem = process.memoryUsage();
    const s = this.stats;
    s.elapsedMs = performance.now() - this.t0;
    s.cpuUserMs = cpu.user / 1000;
    s.cpuSystemMs = cpu.system / 1000;
    s.cpuPercent = s.elapsedMs > 0 ? (100 * (s.cpuUserMs + s.cpuSystemMs)) / s.elapsedMs : 0;
    s.rssBytes = mem.rss;
    s.heapUsedBytes = mem.heapUsed;
    return s;
  }
}

function take(p: Pending, n: number): Buffer {
  const all = p.parts.length === 1 ? p.parts[0]! : Buffer.concat(p.parts);
  const out = Buffer.from(all.subarray(0, n));
  const rest = all.subarray(n);
  p.parts = rest.length > 0 ? [Buffer.from(rest)] : [];
  p.bytes = rest.length;
  p.from += n;
  return out;
}

/** Where to cut: the end of the last complete line within `max` bytes (-1: none). */
function cutAt(p: Pending, max: number): number {
  const all = p.parts.length === 1 ? p.parts[0]! : Buffer.concat(p.parts);
  if (p.parts.length > 1) p.parts = [all];
  const nl = all.lastIndexOf(10, Math.min(max, all.length) - 1);
  return nl < 0 ? -1 : nl + 1;
}

/**
 * Cuts and sends what is due: full chunks always; with `due` (the oldest line is old enough, or the
 * source ended) also the complete lines that remain, and with `final` a last line without a newline.
 */
async function flush(sh: Shipper, source: string, p: Pending, due: boolean, final: boolean): Promise<void> {
  while (p.bytes >= sh.chunkBytes) {
    await sh.ready();
    const n = cutAt(p, sh.chunkBytes);
    if (n < 0)
      throw new Error(`${source}: a line at offset ${p.from} is longer than chunkBytes ${sh.chunkBytes}`);
    const from = p.from;
    const c = take(p, n);
    sh.account(p.bytes);
    await sh.send(source, from, c, false);
  }
  if (due && p.bytes > 0) {
    await sh.ready();
    const n = final ? p.bytes : cutAt(p, p.bytes);
    if (n > 0) {
      const from = p.from;
      const c = take(p, n);
      sh.account(p.bytes);
      await sh.send(source, from, c, !final);
    }
  }
  if (p.bytes === 0) p.sinceMs = -1;
  else if (due) p.sinceMs = performance.now(); // a line without its newline yet: wait another interval
}

/** A checkpoint: the source, the offset acknowledged, and the SHA-256 of the file's first bytes read. */
interface Checkpoint {
  source: string;
  offset: number;
  head?: { bytes: number; sha256: string };
}

/**
 * A checkpoint as `saveCheckpoint` writes it; anything else is an error naming the file (a damaged one was
 * a bare JSON error, or, of another shape, taken as no checkpoint: the file shipped again from its start,
 * cut into other chunks than before, which the server cannot tell from new ones). One without `head` (as
 * written before it was kept) is taken as it is.
 */
function readCheckpoint(path: string): Checkpoint {
  const text = readFileSync(path, 'utf8');
  let c: unknown;
  try {
    c = JSON.parse(text);
  } catch {
    c = undefined;
  }
  const o = c as
    | { source?: unknown; offset?: unknown; head?: { bytes?: unknown; sha256?: unknown } }
    | undefined;
  const head = o?.head;
  if (
    typeof o !== 'object' ||
    o === null ||
    typeof o.source !== 'string' ||
    !Number.isSafeInteger(o.offset) ||
    (o.offset as number) < 0 ||
    (head !== undefined &&
      (typeof head !== 'object' ||
        head === null ||
        !Number.isSafeInteger(head.bytes) ||
        (head.bytes as number) < 1 ||
        (head.bytes as number) > agentHeadBytes ||
        typeof head.sha256 !== 'string' ||
        !/^[0-9a-f]{64}$/.test(head.sha256)))
  )
    throw new Error(
      `checkpoint ${path} is not {"source": NAME, "offset": BYTES} (${JSON.stringify(text.slice(0, 60))}): remove it to ship the file from its start`,
    );
  return o as Checkpoint;
}

function saveCheckpoint(path: string, source: string, offset: number, head: Buffer): void {
  const c: Checkpoint = { source, offset };
  if (head.length > 0) c.head = { bytes: head.length, sha256: sha256(head) };
  writeFileDurableSync(path, JSON.stringify(c));
}

function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

/** The first `n` bytes of the open file `fd` (fewer if it is shorter). */
function readHead(fd: number, n: number): Buffer {
  const b = Buffer.alloc(n);
  let got = 0;
  while (got < n) {
    const k = readSync(fd, b, got, n - got, got);
    if (k === 0) break;
    got += k;
  }
  return b.subarray(0, got);
}

/**
 * Ships a file's complete lines from its checkpoint to the server and returns at the end of the file
 * (a last line without a newline waits for it). The checkpoint advances only after the server
 * acknowledges and is saved with fsync, so a killed agent resumes without loss, and a chunk resent after a
 * lost acknowledgement is deduplicated by its id.
 */
export async function runAgentOnce(opts: AgentOptions, fetchFn?: Fetch): Promise<AgentStats> {
  return runAgentFile(opts, { followMs: 0 }, fetchFn);
}

/**
 * Ships a file; with `followMs > 0` keeps polling it every followMs for appended lines, cutting a chunk
 * when it reaches chunkBytes or its oldest line is chunkEveryMs old, until `signal` aborts (then it ships
 * what is pending and returns). A rotated file (a new inode at the path) is drained first, then the new
 * one starts at offset 0 as a new source.
 */
export async function runAgentFile(
  opts: AgentOptions,
  follow: { followMs: number; signal?: AbortSignal },
  fetchFn?: Fetch,
): Promise<AgentStats> {
  if (!opts.file) throw new Error('runAgentFile: opts.file is required');
  const file = resolve(opts.file);
  const ckpt = opts.checkpoint ?? `${file}.strata-ckpt`;
  // the file's first bytes as read (at most agentHeadBytes; all of them while readPos is below that)
  let head = Buffer.alloc(0);
  const sh = new Shipper(opts, (source, to) => saveCheckpoint(ckpt, source, to, head), fetchFn);
  await sh.init();
  let ino = statSync(file).ino;
  let source = `agent:${file}#${ino}`;
  const c = existsSync(ckpt) ? readCheckpoint(ckpt) : undefined;
  let fd = openSync(file, 'r');
  try {
    let offset = 0;
    // the same file cut shorter in place (copytruncate rotation), or cut and written again past the
    // offset (its first bytes are not those read): what it holds now is new, from its start
    if (c && c.source === source && c.offset <= fstatSync(fd).size) {
      const now = readHead(fd, c.head?.bytes ?? Math.min(c.offset, agentHeadBytes));
      if (c.head === undefined || (now.length === c.head.bytes && sha256(now) === c.head.sha256)) {
        offset = c.offset;
        head = Buffer.from(now.subarray(0, Math.min(now.length, offset)));
      }
    }
    sh.stats.offset = offset;
    const p: Pending = { parts: [], bytes: 0, from: offset, sinceMs: -1 };
    let readPos = offset;
    const buf = Buffer.alloc(agentReadBytes);
    /** Whether the file is shorter than the offset read, or its first bytes are not those read. */
    const cut = () =>
      fstatSync(fd).size < readPos || (head.length > 0 && !readHead(fd, head.length).equals(head));
    /** Ships what is pending and starts over at offset 0: of the new file at the path, or of this one. */
    const restart = async (rotated: boolean) => {
      await flush(sh, source, p, true, true);
      await sh.drain();
      if (rotated) {
        closeSync(fd);
        fd = openSync(file, 'r');
        ino = statSync(file).ino;
        source = `agent:${file}#${ino}`;
      } else {
        sh.stats.truncations++;
        saveCheckpoint(ckpt, source, 0, Buffer.alloc(0)); // a restart before the next acknowledgement starts at 0 too
      }
      p.from = 0;
      readPos = 0;
      head = Buffer.alloc(0);
    };
    for (;;) {
      sh.account(p.bytes);
      const n = readSync(fd, buf, 0, buf.length, readPos);
      if (n > 0) {
        if (readPos < agentHeadBytes)
          head = Buffer.concat([head, buf.subarray(0, Math.min(n, agentHeadBytes - readPos))]);
        readPos += n;
        if (p.sinceMs < 0) p.sinceMs = performance.now();
        p.parts.push(Buffer.from(buf.subarray(0, n)));
        p.bytes += n;
        sh.account(p.bytes);
        await flush(sh, source, p, false, false);
        continue;
      }
      // End of the file for now.
      const stopped = follow.signal?.aborted === true;
      if (follow.followMs <= 0 || stopped) {
        await flush(sh, source, p, true, false);
        break;
      }
      if (dueInMs(p, sh.everyMs) <= 0) await flush(sh, source, p, true, false);
      // rotated (a new inode at the path), looked at here, at the old inode's end: its last bytes are read
      // first; then the new file from its start
      let rotated = false;
      try {
        rotated = statSync(file).ino !== ino;
      } catch {
        rotated = false; // moved away and not recreated yet: keep draining the old inode
      }
      if (rotated) {
        await restart(true);
        continue;
      }
      const waitMs = Math.min(follow.followMs, Math.max(1, dueInMs(p, sh.everyMs)));
      await new Promise<void>((r) => {
        const done = () => {
          clearTimeout(t);
          follow.signal?.removeEventListener('abort', done);
          r();
        };
        const t = setTimeout(done, waitMs);
        follow.signal?.addEventListener('abort', done);
      });
      // cut shorter in place (logrotate's copytruncate; it was read from the old end on: nothing until the
      // file grew past it, then from the middle of a line, the lines before it lost), or cut and written
      // again past the offset since the last look (its first bytes are not those read), looked at before
      // reading on (bytes read first would be the new file's, from the middle of a line): what is left of
      // the old content is shipped, the file read from its start
      if (cut()) await restart(false);
    }
    await sh.drain();
  } finally {
    closeSync(fd);
  }
  return sh.finish();
}

/**
 * Ships a stream (stdin) until it ends, or until `signal` aborts: then it reads no more and ships what it
 * has taken, as at the end (the input is left as it is; a read under way when the signal came is
 * dropped). Chunks are cut by size or age, one is in flight at a time, and the stream is not pulled
 * while the buffers are full, so a fast writer is held back by the pipe. A stream cannot be re-read, so
 * there is no checkpoint: the source is named `source` (default stdin:HOST:PID:START) and its offsets
 * count from 0; a chunk resent within the run is deduplicated.
 */
export async function runAgentStream(
  input: AsyncIterable<Uint8Array | string>,
  opts: AgentOptions & { source?: string; signal?: AbortSignal },
  fetchFn?: Fetch,
): Promise<AgentStats> {
  const sh = new Shipper(opts, () => {}, fetchFn);
  await sh.init();
  const source = opts.source ?? `stdin:${hostname()}:${process.pid}:${Date.now()}`;
  const p: Pending = { parts: [], bytes: 0, from: 0, sinceMs: -1 };
  const it = input[Symbol.asyncIterator]();
  const signal = opts.signal;
  // `tail -F app.log | strata stream agent ... -` has no end but SIGINT: the lines taken and not yet
  // shipped were lost with the process, and its report never printed
  const stopped = signal
    ? new Promise<'stop'>((res) => {
        if (signal.aborted) res('stop');
        else signal.addEventListener('abort', () => res('stop'), { once: true });
      })
    : undefined;
  let next: Promise<IteratorResult<Uint8Array | string>> | undefined;
  for (;;) {
    if (signal?.aborted) break;
    next ??= it.next();
    let timer: NodeJS.Timeout | undefined;
    const timed = p.sinceMs >= 0 && Number.isFinite(sh.everyMs);
    const waits: Promise<IteratorResult<Uint8Array | string> | 'due' | 'stop'>[] = [next];
    if (stopped) waits.push(stopped);
    if (timed)
      waits.push(
        new Promise<'due'>((res) => {
          // a timer takes at most 2^31 - 1 ms (a longer one fires after 1 ms): a longer wait is cut in turns
          timer = setTimeout(() => res('due'), Math.min(Math.max(0, dueInMs(p, sh.everyMs)), timerMsMax));
        }),
      );
    const r = waits.length > 1 ? await Promise.race(waits) : await next;
    if (timer) clearTimeout(timer);
    if (r === 'stop') break;
    if (r === 'due') {
      if (dueInMs(p, sh.everyMs) <= 0) await flush(sh, source, p, true, false);
      continue;
    }
    next = undefined;
    if (r.done) break;
    const chunk = typeof r.value === 'string' ? Buffer.from(r.value) : Buffer.from(r.value);
    // A read larger than the read bound is taken in pieces, so pending never exceeds its share.
    for (let o = 0; o < chunk.length; o += agentReadBytes) {
      const piece = chunk.subarray(o, o + agentReadBytes);
      if (p.sinceMs < 0) p.sinceMs = performance.now();
      p.parts.push(piece);
      p.bytes += piece.length;
      sh.account(p.bytes);
      await flush(sh, source, p, false, false);
    }
  }
  // stopped with a read under way: nothing waits for it, nor for its failure (the input closed under it)
  next?.catch(() => {});
  await flush(sh, source, p, true, true);
  await sh.drain();
  return sh.finish();
}
