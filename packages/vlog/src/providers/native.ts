/**
 * NativeLoglet, after Delos' native loglet: a sequencer assigns positions and forwards each batch to N
 * LogServers; an append is acknowledged once a majority has it durable (fsync'd). LogServers keep each
 * loglet's records in a FileLoglet (HighwayHash-64 checksum per record, group commit, torn-tail recovery).
 *
 * Safety rests on four rules:
 * - A LogServer accepts a batch only at its own next position, so a server that holds position p holds
 *   every position below it, and a majority acknowledging p means every position up to p is committed.
 * - Every record of a loglet comes from one sequencer incarnation: before its first append a sequencer
 *   claims the loglet on a majority of LogServers (a durable owner, first claimer wins), and a LogServer
 *   refuses appends from any other owner. A restarted sequencer is a new incarnation and cannot claim a
 *   loglet its predecessor used, so two replicas never hold different records at one position; the log
 *   moves on to a new loglet instead (the VirtualLog reconfigures).
 * - Seal sets the durable sealed bit on a majority, takes the highest local tail T of that majority, and
 *   repairs: it copies the records below T to every sealed replica that lacks them, so that a majority
 *   holds all of [start, T) before T is used. Every acknowledged record is below T (majorities intersect).
 * - checkTail asks the sequencer, which knows the committed tail exactly; reads return only records below
 *   it (below T once sealed), fetched from any replica that has them.
 *
 * The loglet itself needs no leader election: when the sequencer or a majority of LogServers fails,
 * operations fail with LogletUnavailableError and the VirtualLog reconfigures to a new loglet (see
 * `failover.ts` for the failure detector that picks replacements).
 *
 * The protocol runs over a `Net`: TCP here, the simulated network in `sim-native.ts`. TCP frames, both
 * directions: u32 frame length | u32 JSON header length | JSON header | body. Requests carry `id` (echoed
 * in the reply) and `op`; record batches travel in the body as u32-length-prefixed payloads.
 */

import { randomUUID } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { checkTimerMs, checkWhole, listenOn } from '@strata/cli';
import {
  badBatch,
  checkPosition,
  checkReadRange,
  type Loglet,
  LogletUnavailableError,
  type LogRecord,
  type Payload,
  SealedError,
  type TailInfo,
  TrimmedError,
} from '../contract.js';
import { isHostPort } from './addr.js';
import { type Disk, NodeDisk } from './disk.js';
import { FileLoglet } from './file.js';

/** Largest frame on the wire. */
const frameBytesMax = 128 * 2 ** 20;
/** How long a request waits for its reply. */
export const requestTimeoutMs = 5_000;
/** Records per repair message. */
const repairBatch = 1024;

export interface Header {
  id: number;
  op?: string;
  [k: string]: unknown;
}

/** One side of a connection: sends frames to the peer. */
export interface Wire {
  send(h: Record<string, unknown>, body?: Body): void;
}

/** A client's connection to a server. */
export interface Link extends Wire {
  /** Resolves once connected; rejects if the connection cannot be made. */
  readonly ready: Promise<void>;
  onFrame(cb: (h: Header, body: Buffer) => void): void;
  /** Called once when the connection is lost or closed. */
  onClose(cb: () => void): void;
  close(): void;
}

/** A server's handler for one connection: called for each frame, in arrival order. */
export type ConnectionHandler = (h: Header, body: Buffer, wire: Wire) => void;

/** What the protocol needs from the world: connections and timers (real, or the simulation's). */
export interface Net {
  connect(addr: string): Link;
  setTimer(fn: () => void, ms: number): { cancel(): void };
}

/** A frame's body: a batch of payloads, or a batch already encoded by `encodeBody` (sent as it is). */
export type Body = Payload[] | Buffer;

/** Encodes a batch as a frame body: each payload as u32 length | bytes. An encoded body is returned as is. */
export function encodeBody(body: Body): Buffer {
  if (!Array.isArray(body)) return body;
  const out = Buffer.allocUnsafe(bodyBytes(body));
  writeBody(body, out, 0);
  return out;
}

function bodyBytes(body: Body): number {
  if (!Array.isArray(body)) return body.length;
  let n = 0;
  for (const p of body) n += 4 + p.length;
  return n;
}

function writeBody(body: Body, out: Buffer, at: number): void {
  if (!Array.isArray(body)) {
    out.set(body, at);
    return;
  }
  let o = at;
  for (const p of body) {
    out.writeUInt32BE(p.length, o);
    out.set(p, o + 4);
    o += 4 + p.length;
  }
}

export function encodeFrame(h: Record<string, unknown>, body: Body = []): Buffer {
  const json = JSON.stringify(h);
  const jl = Buffer.byteLength(json, 'utf8');
  const bl = bodyBytes(body);
  const out = Buffer.allocUnsafe(8 + jl + bl);
  out.writeUInt32BE(4 + jl + bl, 0);
  out.writeUInt32BE(jl, 4);
  out.write(json, 8, 'utf8');
  writeBody(body, out, 8 + jl);
  return out;
}

/** Calls `record(offset, length)` for each record of an encoded batch; throws on a malformed batch. */
function eachRecord(b: Buffer, record: (at: number, length: number) => void): void {
  for (let p = 0; p < b.length; ) {
    if (p + 4 > b.length) throw new Error(`malformed record batch: ${b.length - p} stray bytes at ${p}`);
    const l = b.readUInt32BE(p);
    if (p + 4 + l > b.length)
      throw new Error(`malformed record batch: record at ${p} of ${l} bytes overruns ${b.length}`);
    record(p + 4, l);
    p += 4 + l;
  }
}

export function decodeBody(b: Buffer): Payload[] {
  const out: Payload[] = [];
  // views: a frame is never reused or written to
  eachRecord(b, (at, l) => out.push(b.subarray(at, at + l)));
  return out;
}

/** The number of records in an encoded batch (checked as `decodeBody` checks it, without a view per record). */
export function countBody(b: Buffer): number {
  let n = 0;
  eachRecord(b, () => n++);
  return n;
}

/** Calls `onFrame` for each complete frame on the socket; a malformed frame closes the connection. */
function frames(sock: Socket, onFrame: (h: Header, body: Buffer) => void): void {
  let buf: Buffer = Buffer.alloc(0);
  sock.on('data', (c: Buffer) => {
    buf = buf.length ? Buffer.concat([buf, c]) : c;
    while (buf.length >= 8) {
      const len = buf.readUInt32BE(0);
      const jl = buf.readUInt32BE(4);
      if (len < 4 || len > frameBytesMax || jl > len - 4) {
        sock.destroy();
        return;
      }
      if (buf.length < 4 + len) break;
      let h: Header;
      try {
        h = JSON.parse(buf.toString('utf8', 8, 8 + jl)) as Header;
      } catch {
        sock.destroy();
        return;
      }
      if (typeof h !== 'object' || h === null || typeof h.id !== 'number') {
        sock.destroy();
        return;
      }
      onFrame(h, buf.subarray(8 + jl, 4 + len));
      buf = buf.subarray(4 + len);
    }
  });
}

/** The real network: TCP with Nagle off, and wall-clock timers. */
export const tcpNet: Net = {
  connect(addr: string): Link {
    const i = addr.lastIndexOf(':');
    const sock = connect({ host: addr.slice(0, i), port: Number(addr.slice(i + 1)) });
    sock.setNoDelay(true);
    const ready = new Promise<void>((res, rej) => {
      sock.once('connect', res);
      sock.once('error', rej);
    });
    ready.catch(() => undefined);
    let closed: (() => void) | undefined;
    let fired = false;
    const fire = () => {
      if (fired) return;
      fired = true;
      closed?.();
    };
    sock.on('error', fire);
    sock.on('close', fire);
    return {
      ready,
      send: (h, body) => void sock.write(encodeFrame(h, body)),
      onFrame: (cb) => frames(sock, cb),
      onClose: (cb) => {
        closed = cb;
        if (fired) cb();
      },
      close: () => sock.destroy(),
    };
  },
  setTimer(fn, ms) {
    const t = setTimeout(fn, ms);
    return { cancel: () => clearTimeout(t) };
  },
};

/** Serves `handler` (one per connection) over TCP. */
export async function serveTcp(
  connection: () => ConnectionHandler,
  port = 0,
  host = '127.0.0.1',
): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((sock) => {
    sock.setNoDelay(true); // replies are small: Nagle's algorithm would hold them for the peer's delayed ACK
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    const handle = connection();
    const wire: Wire = { send: (h, body) => void (sock.writable && sock.write(encodeFrame(h, body))) };
    frames(sock, (h, body) => handle(h, body, wire));
  });
  const bound = await listenOn(server, port, host);
  return {
    port: bound,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** A request/reply connection with timeouts, over any Net. */
export class Conn {
  private next = 1;
  private readonly waiting = new Map<
    number,
    { resolve: (r: [Header, Buffer]) => void; reject: (e: Error) => void; timer: { cancel(): void } }
  >();
  private readonly link: Link;
  dead = false;

  constructor(
    readonly addr: string,
    private readonly net: Net = tcpNet,
    private readonly timeoutMs = requestTimeoutMs,
  ) {
    this.link = net.connect(addr);
    this.link.onClose(() => {
      this.dead = true;
      for (const w of this.waiting.values()) {
        w.timer.cancel();
        w.reject(new LogletUnavailableError(`${addr}: connection lost`));
      }
      this.waiting.clear();
    });
    this.link.onFrame((h, body) => {
      const w = this.waiting.get(h.id);
      if (!w) return;
      this.waiting.delete(h.id);
      w.timer.cancel();
      w.resolve([h, body]);
    });
  }

  async call(
    h: Record<string, unknown>,
    body: Body = [],
    timeoutMs = this.timeoutMs,
  ): Promise<[Header, Buffer]> {
    if (this.dead) throw new LogletUnavailableError(`${this.addr}: connection lost`);
    await this.link.ready.catch(() => {
      this.dead = true;
      throw new LogletUnavailableError(`${this.addr}: cannot connect`);
    });
    const id = this.next++;
    return new Promise((resolve, reject) => {
      const timer = this.net.setTimer(() => {
        this.waiting.delete(id);
        reject(new LogletUnavailableError(`${this.addr}: no reply to '${String(h.op)}' in ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, { resolve, reject, timer });
      this.link.send({ ...h, id }, body);
    });
  }

  close(): void {
    this.dead = true;
    this.link.close();
  }
}

/** Connections by address, reconnecting on the next call after one is lost. */
class ConnPool {
  private readonly conns = new Map<string, Conn>();
  constructor(
    private readonly net: Net,
    private readonly timeoutMs = requestTimeoutMs,
  ) {}
  get(addr: string): Conn {
    let c = this.conns.get(addr);
    if (!c || c.dead) {
      c = new Conn(addr, this.net, this.timeoutMs);
      this.conns.set(addr, c);
    }
    return c;
  }
  close(): void {
    for (const c of this.conns.values()) c.close();
    this.conns.clear();
  }
}

function replyError(h: Header): Error | undefined {
  if (h.sealed === true && h.error) return new SealedError(Number(h.tail));
  if (h.trimmed) return new TrimmedError(Number(h.position), Number(h.trimPoint));
  if (h.error) return new LogletUnavailableError(String(h.error));
  return undefined;
}

const idPattern = /^[A-Za-z0-9._-]{1,100}$/;

/** One loglet's replica on a LogServer. */
/** A loglet's directory on a LogServer: created by a claim (which can come before the loglet's start is known). */
interface Entry {
  disk: Disk;
  /** The sequencer incarnation that owns the loglet (undefined until claimed). */
  owner: string | undefined;
  /** The records, opened at the first request that carries the loglet's start. */
  replica?: Promise<Replica>;
}

/** One loglet's replica on a LogServer. */
interface Replica {
  entry: Entry;
  log: FileLoglet;
  /** The next position this replica expects: its tail plus what is queued for the next group commit. */
  expected: number;
}

/** Bytes of records a LogServer puts in one read reply at most (a client reads a longer range in parts). */
export const readReplyBytesMax = 8 * 2 ** 20;
/** A reply's records, sent as the frame's body rather than in its header. */
const replyBody = Symbol('body');

export interface LogServerOptions {
  /** Where a loglet's files live (default: a directory per loglet under `dir`). */
  disk?: (id: string) => Promise<Disk>;
  /** Bytes of records per read reply at most (default `readReplyBytesMax`). */
  readReplyBytesMax?: number;
  /**
   * Group commits written on the event loop (`NodeDiskOptions.writesOnLoop`) on the default disks: for a
   * LogServer in a process of its own, as `strata log server` runs it.
   */
  writesOnLoop?: boolean;
}

/**
 * A LogServer: durable storage of many loglets' records, one FileLoglet per loglet id. Requests of one
 * connection are applied in arrival order (appends must arrive in position order), but an append's reply
 * waits only for its own group commit, so the appends in flight on a connection share fsyncs.
 */
export class LogServer {
  private tcp?: { port: number; close(): Promise<void> };
  private readonly entries = new Map<string, Promise<Entry>>();
  private closed = false;

  constructor(
    readonly dir: string,
    private readonly o: LogServerOptions = {},
  ) {
    // NaN compared false: a reply bound of NaN bounded nothing (a whole range in one reply)
    if (o.readReplyBytesMax !== undefined) checkWhole('LogServer readReplyBytesMax', o.readReplyBytesMax, 1);
  }

  private entry(id: string): Promise<Entry> {
    if (!idPattern.test(id)) return Promise.reject(new Error(`bad loglet id '${id}'`));
    let e = this.entries.get(id);
    if (!e) {
      e = (async () => {
        const disk = await (
          this.o.disk ??
          ((x: string) => NodeDisk.open(join(this.dir, x), { writesOnLoop: this.o.writesOnLoop === true }))
        )(id);
        const owner = (await disk.read('OWNER'))?.toString('utf8') || undefined;
        // the records file exists (its directory entry durable) from the first request on, so that a
        // claim made ahead of a reconfiguration leaves nothing but the data fsync to the first append
        await disk.create('records.log');
        return { disk, owner };
      })();
      this.entries.set(id, e);
      e.catch(() => this.entries.delete(id));
    }
    return e;
  }

  private async replica(id: string, start: number): Promise<Replica> {
    if (!Number.isSafeInteger(start) || start < 0)
      throw new Error(`bad start position '${start}' for loglet '${id}'`);
    const e = await this.entry(id);
    if (!e.replica) {
      const r = FileLoglet.openOn(e.disk, start, { startFile: false }).then((log) => ({
        entry: e,
        log,
        expected: log.tail,
      }));
      e.replica = r;
      r.catch(() => {
        if (e.replica === r) e.replica = undefined;
      });
    }
    return e.replica;
  }

  async listen(port = 0, host = '127.0.0.1'): Promise<number> {
    this.tcp = await serveTcp(() => this.connection(), port, host);
    return this.tcp.port;
  }

  /** A handler for one connection. */
  connection(): ConnectionHandler {
    let chain = Promise.resolve();
    return (h, body, wire) => {
      chain = chain.then(async () => {
        // a request that fails unexpectedly gets an error reply: the connection goes on serving the rest
        const failed = (e: unknown) => ({ id: h.id, error: `LogServer: ${(e as Error).message}` });
        const { reply } = await this.handle(h, body).catch((e: unknown) => ({
          reply: Promise.resolve(failed(e)),
        }));
        void reply.then(
          (r) => {
            if (this.closed) return;
            // a symbol's property: not in the header's JSON
            wire.send(r, (r as Record<symbol, unknown>)[replyBody] as Payload[] | undefined);
          },
          (e: unknown) => {
            if (!this.closed) wire.send(failed(e));
          },
        );
      });
    };
  }

  /** Handles one request; resolves once it is queued, with the reply as a promise of its own. */
  private async handle(
    h: Header,
    body: Buffer,
  ): Promise<{ reply: Promise<Record<string | symbol, unknown>> }> {
    const fail = (e: unknown) =>
      e instanceof TrimmedError
        ? { id: h.id, error: e.message, trimmed: true, position: e.position, trimPoint: e.trimPoint }
        : e instanceof SealedError
          ? { id: h.id, error: 'sealed', sealed: true, tail: e.tail }
          : { id: h.id, error: (e as Error).message };
    if (h.op === 'ping') return { reply: Promise.resolve({ id: h.id }) };
    if (h.op === 'claim') {
      // needs only the loglet's directory: a claim may come before the loglet's start is known
      try {
        const e = await this.entry(String(h.loglet));
        return { reply: this.claim(e, String(h.owner)).then(() => ({ id: h.id }), fail) };
      } catch (e) {
        return { reply: Promise.resolve(fail(e)) };
      }
    }
    let r: Replica;
    try {
      r = await this.replica(String(h.loglet), Number(h.start ?? 0));
    } catch (e) {
      return { reply: Promise.resolve(fail(e)) };
    }
    const l = r.log;
    switch (h.op) {
      case 'seal':
        return { reply: l.seal().then((t) => ({ id: h.id, ...t }), fail) };
      case 'tail':
        return { reply: Promise.resolve({ id: h.id, tail: l.tail, sealed: l.isSealed }) };
      case 'read': {
        // a client that asks for a binary reply (`max`) gets the payloads as the frame's body, at most
        // `max` bytes of records (and at most readReplyBytesMax) from `from` on: it asks again for the rest;
        // without it, the whole range as base64 in the header, as LogServers answered before
        const binary = typeof h.max === 'number';
        const max = binary
          ? Math.min(h.max as number, this.o.readReplyBytesMax ?? readReplyBytesMax)
          : undefined;
        return {
          reply: l.read(Number(h.from), Number(h.to), max).then(
            (recs) =>
              binary
                ? {
                    id: h.id,
                    first: recs[0]?.position ?? Number(h.from),
                    [replyBody]: recs.map((x) => x.payload),
                  }
                : {
                    id: h.id,
                    positions: recs.map((x) => x.position),
                    payloads: recs.map((x) => Buffer.from(x.payload).toString('base64')),
                  },
            fail,
          ),
        };
      }
      case 'trim':
        return { reply: l.prefixTrim(Number(h.position)).then(() => ({ id: h.id }), fail) };
      case 'append':
      case 'repair': {
        let recs: Payload[];
        try {
          recs = decodeBody(body);
        } catch (e) {
          return { reply: Promise.resolve(fail(e)) };
        }
        if (h.op === 'append') {
          if (l.isSealed)
            return { reply: Promise.resolve({ id: h.id, error: 'sealed', sealed: true, tail: l.tail }) };
          const owner = String(h.owner);
          if (r.entry.owner !== owner) {
            // a replica that missed the claim takes the first owner that writes to it
            if (r.entry.owner !== undefined)
              return {
                reply: Promise.resolve({ id: h.id, error: `loglet is owned by sequencer ${r.entry.owner}` }),
              };
            try {
              await this.claim(r.entry, owner);
            } catch (e) {
              return { reply: Promise.resolve(fail(e)) };
            }
          }
        } else if (!l.isSealed)
          return { reply: Promise.resolve({ id: h.id, error: 'repair of a loglet that is not sealed' }) };
        if (Number(h.position) !== r.expected)
          return {
            reply: Promise.resolve({
              id: h.id,
              error: `out of order: expected position ${r.expected}, got ${h.position}`,
            }),
          };
        const first = r.expected;
        r.expected += recs.length;
        // queued now, in order; answered after the group commit that makes it durable
        return {
          reply: (h.op === 'append' ? l.append(recs) : l.repair(recs)).then(
            (ps) => ({ id: h.id, tail: (ps[ps.length - 1] ?? first - 1) + 1 }),
            (e: unknown) => {
              r.expected = l.tail;
              return fail(e);
            },
          ),
        };
      }
      default:
        return { reply: Promise.resolve({ id: h.id, error: `unknown op '${String(h.op)}'` }) };
    }
  }

  /** Records `owner` durably as the loglet's only sequencer; fails if another one owns it. */
  private async claim(e: Entry, owner: string): Promise<void> {
    if (!owner || owner === 'undefined') throw new Error('claim without an owner');
    if (e.owner === owner) return;
    if (e.owner !== undefined) throw new Error(`loglet is owned by sequencer ${e.owner}`);
    e.owner = owner; // taken now, so a racing claim fails; durable before the reply
    await e.disk.replace('OWNER', owner);
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.tcp?.close();
    for (const p of this.entries.values()) {
      const e = await p.catch(() => undefined);
      const r = await e?.replica?.catch(() => undefined);
      if (r) await r.log.close();
      else await e?.disk.close();
    }
    this.entries.clear();
  }
}

interface SequencedLoglet {
  servers: string[];
  /** The loglet's first position; -1 while only prepared (its start is not known yet). */
  start: number;
  /** The claim on a majority, once started (shared by everyone who needs it). */
  claiming?: Promise<void>;
  /** Next position to hand out; -1 until the loglet is claimed. */
  next: number;
  /** Every position below it is on a majority. */
  committed: number;
  chain: Promise<unknown>;
  /** Recent appends by request id, so that a request delivered twice is appended once. */
  recent: Map<string, Promise<number[]>>;
  /** Appends waiting for the next forward: everything that arrives in one event-loop turn goes as one. */
  outbox: { body: Buffer; count: number; resolve: (ps: number[]) => void; reject: (e: unknown) => void }[];
  outboxRecords: number;
  flushScheduled: boolean;
}

/** Records per forwarded batch at most (bounds one message to a LogServer). */
const forwardRecordsMax = 4096;

/** Request ids remembered per loglet for de-duplication. */
const recentRequestsMax = 10_000;

export interface SequencerOptions {
  net?: Net;
  /** This incarnation's name (default: random). A restarted sequencer must use a new one. */
  incarnation?: string;
}

/**
 * A sequencer: for each loglet it serves, claims it on a majority of its LogServers, hands out positions
 * and forwards batches to every LogServer, acknowledging once a majority has them durable. The LogServers
 * come with each request (from the loglet spec), or from the constructor as a default.
 */
export class Sequencer {
  private tcp?: { port: number; close(): Promise<void> };
  private readonly pool: ConnPool;
  private readonly state = new Map<string, SequencedLoglet>();
  readonly incarnation: string;

  constructor(
    readonly servers: string[] = [],
    o: SequencerOptions = {},
  ) {
    this.pool = new ConnPool(o.net ?? tcpNet);
    this.incarnation = o.incarnation ?? randomUUID();
  }

  async listen(port = 0, host = '127.0.0.1'): Promise<number> {
    this.tcp = await serveTcp(() => this.connection(), port, host);
    return this.tcp.port;
  }

  connection(): ConnectionHandler {
    return (h, body, wire) => {
      const err = (e: Error) =>
        wire.send({
          id: h.id,
          error: e.message,
          ...(e instanceof SealedError ? { sealed: true, tail: e.tail } : {}),
        });
      if (h.op === 'ping') return wire.send({ id: h.id });
      const loglet = String(h.loglet);
      const start = Number(h.start ?? 0);
      const servers = Array.isArray(h.servers) ? h.servers.map(String) : this.servers;
      if (!idPattern.test(loglet) || !Number.isSafeInteger(start) || start < 0)
        return err(new Error(`bad loglet '${loglet}' at start ${String(h.start)}`));
      if (servers.length === 0) return err(new Error(`no LogServers for loglet '${loglet}'`));
      if (h.op === 'prepare') {
        // a successor being readied before the seal: claim it now, so its first append need not
        this.prepare(loglet, servers).then(() => wire.send({ id: h.id }), err);
        return;
      }
      if (h.op === 'tail') {
        this.committedTail(loglet, start, servers).then((tail) => wire.send({ id: h.id, tail }), err);
        return;
      }
      if (h.op !== 'append') return err(new Error(`unknown op '${String(h.op)}'`));
      const rid = typeof h.rid === 'string' ? h.rid : undefined;
      // the batch is forwarded as it came, encoded
      this.append(loglet, start, body, servers, rid).then(
        (ps) => wire.send({ id: h.id, positions: ps }),
        err,
      );
    };
  }

  private loglet(loglet: string, start: number, servers: string[]): SequencedLoglet {
    let st = this.state.get(loglet);
    if (st && st.start < 0 && start >= 0 && st.servers.join(',') === servers.join(',')) {
      // prepared earlier: the start is known now
      st.start = start;
      st.committed = start;
    }
    if (!st) {
      st = {
        servers,
        start,
        next: -1,
        committed: start,
        chain: Promise.resolve(),
        recent: new Map(),
        outbox: [],
        outboxRecords: 0,
        flushScheduled: false,
      };
      this.state.set(loglet, st);
    }
    if ((start >= 0 && st.start !== start) || st.servers.join(',') !== servers.join(','))
      throw new Error(`loglet '${loglet}' is already sequenced here with other LogServers or start`);
    return st;
  }

  private majority(st: SequencedLoglet): number {
    return Math.floor(st.servers.length / 2) + 1;
  }

  /** Claims a loglet whose start is not known yet (it is a successor being readied). */
  async prepare(loglet: string, servers: string[]): Promise<void> {
    const st = this.loglet(loglet, -1, servers);
    await this.claim(loglet, st);
  }

  /** Claims the loglet on a majority, once: afterwards this incarnation is its only writer. */
  private async claim(loglet: string, st: SequencedLoglet): Promise<void> {
    if (st.next < 0) {
      st.claiming ??= this.claimOnce(loglet, st);
      try {
        await st.claiming;
      } catch (e) {
        st.claiming = undefined; // a failed claim may be tried again
        throw e;
      }
    }
    // every record of the loglet comes from its owner: a fresh claim means there is none yet
    if (st.next < 0 && st.start >= 0) st.next = st.start;
  }

  private async claimOnce(loglet: string, st: SequencedLoglet): Promise<void> {
    const rs = await Promise.allSettled(
      st.servers.map((a) =>
        this.pool
          .get(a)
          .call({ op: 'claim', loglet, owner: this.incarnation })
          .then(([h]) => {
            const e = replyError(h);
            if (e) throw e;
          }),
      ),
    );
    const ok = rs.filter((r) => r.status === 'fulfilled').length;
    if (ok < this.majority(st)) {
      const why = rs.find((r) => r.status === 'rejected') as PromiseRejectedResult | undefined;
      throw new LogletUnavailableError(
        `sequencer ${this.incarnation} could not claim loglet '${loglet}' (${ok} of ${st.servers.length}): ${
          (why?.reason as Error | undefined)?.message ?? ''
        }`,
      );
    }
  }

  /** The committed tail: every position below it is on a majority. */
  async committedTail(loglet: string, start: number, servers: string[]): Promise<number> {
    const st = this.loglet(loglet, start, servers);
    const claimed = st.chain.then(() => this.claim(loglet, st));
    st.chain = claimed.catch(() => undefined);
    await claimed;
    return st.committed;
  }

  /**
   * Assigns positions and replicates; resolves once a majority has the batch durable. The batch may come
   * encoded (`encodeBody`), as a request's body does: it is then checked and counted, not decoded.
   */
  append(
    loglet: string,
    start: number,
    batch: Body,
    servers = this.servers,
    requestId?: string,
  ): Promise<number[]> {
    let st: SequencedLoglet;
    let count: number;
    try {
      st = this.loglet(loglet, start, servers);
      count = Array.isArray(batch) ? batch.length : countBody(batch);
    } catch (e) {
      return Promise.reject(e);
    }
    if (requestId !== undefined) {
      // a request delivered twice (a duplicate on the wire or a resend) gets the first one's answer
      const seen = st.recent.get(requestId);
      if (seen) return seen;
      const p = this.append(loglet, start, batch, servers);
      st.recent.set(requestId, p);
      p.catch(() => undefined);
      if (st.recent.size > recentRequestsMax) st.recent.delete(st.recent.keys().next().value!);
      return p;
    }
    // batched: the appends that arrive in one event-loop turn are forwarded as one message per LogServer
    const s = st;
    return new Promise<number[]>((resolve, reject) => {
      s.outbox.push({ body: encodeBody(batch), count, resolve, reject });
      s.outboxRecords += count;
      if (s.outboxRecords >= forwardRecordsMax) this.forward(loglet, s);
      else if (!s.flushScheduled) {
        s.flushScheduled = true;
        queueMicrotask(() => {
          s.flushScheduled = false;
          this.forward(loglet, s);
        });
      }
    });
  }

  /** Assigns positions to everything in the outbox and replicates it as one batch. */
  private forward(loglet: string, s: SequencedLoglet): void {
    const items = s.outbox.splice(0);
    const count = s.outboxRecords;
    s.outboxRecords = 0;
    if (items.length === 0) return;
    // encoded once, the same bytes to every LogServer
    const batch = items.length === 1 ? items[0]!.body : Buffer.concat(items.map((i) => i.body));
    const start = s.start;
    const assigned = s.chain.then(async () => {
      await this.claim(loglet, s);
      const first = s.next;
      s.next += count;
      // sent on every connection, in position order, before the next batch is assigned
      const sends = s.servers.map((a) =>
        this.pool
          .get(a)
          .call({ op: 'append', loglet, start, position: first, owner: this.incarnation }, batch)
          .then(([h]) => {
            const err = replyError(h);
            if (err) throw err;
          }),
      );
      return { first, sends };
    });
    s.chain = assigned.catch(() => undefined);
    const majority = this.majority(s);
    const fail = (e: unknown) => {
      for (const i of items) i.reject(e);
    };
    assigned.then(({ first, sends }) => {
      let ok = 0;
      let failed = 0;
      let sealed: SealedError | undefined;
      for (const p of sends) {
        p.then(
          () => {
            if (++ok !== majority) return;
            // a replica accepts a position only after every one below it: all of them are committed
            s.committed = Math.max(s.committed, first + count);
            let pos = first;
            for (const i of items) {
              const ps = new Array<number>(i.count);
              for (let k = 0; k < i.count; k++) ps[k] = pos + k;
              i.resolve(ps);
              pos += i.count;
            }
          },
          (e: unknown) => {
            if (e instanceof SealedError) sealed = e;
            if (++failed === s.servers.length - majority + 1)
              fail(
                sealed ??
                  new LogletUnavailableError(`no majority for position ${first}: ${(e as Error).message}`),
              );
          },
        );
      }
    }, fail);
  }

  async close(): Promise<void> {
    this.pool.close();
    await this.tcp?.close();
  }
}

export interface LogletHealth {
  sequencer: 'ok' | 'lost' | 'dead';
  /** The sequencer's committed tail, when it answered. */
  committed?: number;
  /** Each LogServer's local tail; undefined when it did not answer. */
  servers: Map<string, number | undefined>;
  /** Whether a LogServer reported the loglet sealed. */
  sealed: boolean;
}

/** Pings each address once; resolves with those that answered within `timeoutMs`. */
export async function pingAll(addrs: string[], timeoutMs: number, net: Net = tcpNet): Promise<string[]> {
  const rs = await Promise.allSettled(
    addrs.map(async (a) => {
      const c = new Conn(a, net, timeoutMs);
      try {
        await c.call({ op: 'ping' });
      } finally {
        c.close();
      }
    }),
  );
  return addrs.filter((_, i) => rs[i]!.status === 'fulfilled');
}

export interface NativeLogletOptions {
  net?: Net;
  /** Names this client in request ids (default: random). */
  clientId?: string;
  /** Per-request timeout. */
  timeoutMs?: number;
}

/** The client side: the Loglet contract over a sequencer and its LogServers. */
export class NativeLoglet implements Loglet {
  private readonly pool: ConnPool;
  readonly net: Net;
  /** The highest sealed tail this client has established (and repaired up to). */
  private sealedTail = -1;
  private readonly clientId: string;
  private requests = 0;

  constructor(
    readonly id: string,
    readonly start: number,
    readonly sequencer: string,
    readonly servers: string[],
    o: NativeLogletOptions = {},
  ) {
    if (o.timeoutMs !== undefined) checkTimerMs('NativeLoglet timeoutMs', o.timeoutMs, 1);
    this.net = o.net ?? tcpNet;
    this.pool = new ConnPool(this.net, o.timeoutMs ?? requestTimeoutMs);
    this.clientId = o.clientId ?? randomUUID();
  }

  private get majority(): number {
    return Math.floor(this.servers.length / 2) + 1;
  }

  private where(): Record<string, unknown> {
    return { loglet: this.id, start: this.start, servers: this.servers };
  }

  /** Appends waiting to go to the sequencer: those made in one event-loop turn go as one request. */
  private outbox: { batch: Payload[]; resolve: (ps: number[]) => void; reject: (e: unknown) => void }[] = [];
  private outboxRecords = 0;
  private flushScheduled = false;

  append(batch: Payload[]): Promise<number[]> {
    const bad = badBatch(batch);
    if (bad) return Promise.reject(bad);
    return new Promise((resolve, reject) => {
      this.outbox.push({ batch, resolve, reject });
      this.outboxRecords += batch.length;
      if (this.outboxRecords >= forwardRecordsMax) void this.send();
      else if (!this.flushScheduled) {
        this.flushScheduled = true;
        queueMicrotask(() => {
          this.flushScheduled = false;
          void this.send();
        });
      }
    });
  }

  /** Sends the outbox as one request; its records get consecutive positions, split back per append. */
  private async send(): Promise<void> {
    const items = this.outbox.splice(0);
    this.outboxRecords = 0;
    if (items.length === 0) return;
    const batch = items.length === 1 ? items[0]!.batch : items.flatMap((i) => i.batch);
    try {
      const rid = `${this.clientId}:${this.requests++}`;
      const [h] = await this.pool.get(this.sequencer).call({ op: 'append', rid, ...this.where() }, batch);
      const err = replyError(h);
      if (err) throw err;
      const ps = h.positions as number[];
      if (!Array.isArray(ps) || ps.length !== batch.length)
        throw new LogletUnavailableError(
          `sequencer ${this.sequencer} answered ${ps?.length} positions for ${batch.length} records`,
        );
      let k = 0;
      for (const i of items) {
        i.resolve(ps.slice(k, k + i.batch.length));
        k += i.batch.length;
      }
    } catch (e) {
      for (const i of items) i.reject(e);
    }
  }

  /** Asks every LogServer; resolves with the replies of at least a majority, each with its address. */
  private async quorum(h: Record<string, unknown>): Promise<{ addr: string; h: Header }[]> {
    const rs = await Promise.allSettled(
      this.servers.map((a) => this.pool.get(a).call({ ...h, loglet: this.id, start: this.start })),
    );
    const ok = rs.flatMap((r, i) =>
      r.status === 'fulfilled' && !r.value[0].error ? [{ addr: this.servers[i]!, h: r.value[0] }] : [],
    );
    if (ok.length < this.majority)
      throw new LogletUnavailableError(
        `only ${ok.length} of ${this.servers.length} LogServers answered '${String(h.op)}'`,
      );
    return ok;
  }

  async checkTail(): Promise<TailInfo> {
    if (this.sealedTail >= 0) return this.seal();
    const rs = await this.quorum({ op: 'tail' });
    if (rs.some((r) => r.h.sealed === true)) return this.seal();
    const [h] = await this.pool.get(this.sequencer).call({ op: 'tail', ...this.where() });
    const err = replyError(h);
    if (err) throw err;
    return { tail: Number(h.tail), sealed: false };
  }

  /**
   * Records [from, to) from the LogServers in `order` (any replica's copy of a position is the same): from
   * each, in parts of at most `readReplyBytesMax` bytes, as long as it has the next position; then from the
   * next one.
   */
  private async fetch(from: number, to: number, order: string[]): Promise<LogRecord[]> {
    const out: LogRecord[] = [];
    let pos = from;
    for (const a of order) {
      try {
        while (pos < to) {
          const [h, body] = await this.pool
            .get(a)
            .call({ op: 'read', loglet: this.id, start: this.start, from: pos, to, max: readReplyBytesMax });
          const err = replyError(h);
          if (err instanceof TrimmedError) throw err;
          if (err) break;
          if (Array.isArray(h.payloads)) {
            // a LogServer from before binary reads: the whole range, base64 in the header
            const ps = h.positions as number[];
            const pl = h.payloads as string[];
            for (let i = 0; i < ps.length; i++)
              if (ps[i] === pos) out.push({ position: pos++, payload: Buffer.from(pl[i]!, 'base64') });
            break;
          }
          if (h.first !== pos) break;
          const recs = decodeBody(body);
          if (recs.length === 0) break;
          // views of the reply's frame, which nothing else holds or writes
          for (let i = 0; i < recs.length && pos < to; i++) out.push({ position: pos++, payload: recs[i]! });
        }
      } catch (e) {
        if (e instanceof TrimmedError) throw e;
      }
      if (pos >= to) break;
    }
    return out;
  }

  async read(from: number, to: number): Promise<LogRecord[]> {
    checkReadRange(from, to);
    // only committed records: below the committed (or sealed and repaired) tail
    const known = this.sealedTail >= 0 && to <= this.sealedTail ? this.sealedTail : -1;
    const tail = known >= 0 ? known : (await this.checkTail()).tail;
    const hi = Math.min(to, tail);
    if (from >= hi) return [];
    const out = await this.fetch(from, hi, this.servers);
    if (out.length < hi - from)
      throw new LogletUnavailableError(
        `loglet ${this.id}: positions ${from + out.length}..${hi - 1} are committed but no LogServer answered for them`,
      );
    return out;
  }

  async prefixTrim(pos: number): Promise<void> {
    checkPosition('prefixTrim: pos', pos);
    await this.quorum({ op: 'trim', position: pos });
  }

  /**
   * Seals a majority, then repairs: the highest tail T among them is the sealed tail, and every sealed
   * replica that lacks records below T gets them from one that has them, so a majority holds [start, T).
   */
  async seal(): Promise<TailInfo> {
    const rs = await this.quorum({ op: 'seal' });
    const tails = rs.map((r) => Number(r.h.tail));
    const T = Math.max(this.start, ...tails);
    let full = tails.filter((t) => t >= T).length;
    if (full < this.majority) {
      const src = rs.filter((_, i) => tails[i]! >= T).map((r) => r.addr);
      for (const [i, r] of rs.entries()) {
        if (tails[i]! >= T) continue;
        try {
          for (let p = tails[i]!; p < T; ) {
            const recs = await this.fetch(p, Math.min(T, p + repairBatch), src);
            if (recs.length === 0) throw new LogletUnavailableError('no replica can supply the repair');
            const [h] = await this.pool.get(r.addr).call(
              { op: 'repair', loglet: this.id, start: this.start, position: p },
              recs.map((x) => x.payload),
            );
            const err = replyError(h);
            if (err) throw err;
            p += recs.length;
          }
          full++;
        } catch {
          // this replica stays behind; another may complete the majority
        }
        if (full >= this.majority) break;
      }
    }
    if (full < this.majority)
      throw new LogletUnavailableError(
        `sealed loglet ${this.id}, but only ${full} of ${this.servers.length} LogServers hold every record below ${T}`,
      );
    this.sealedTail = Math.max(this.sealedTail, T);
    return { tail: T, sealed: true };
  }

  /**
   * The health of the loglet's members, each asked once with `timeoutMs`: the sequencer is `ok` (it serves
   * the loglet), `lost` (it answers but cannot serve it: a restarted incarnation) or `dead` (no answer);
   * each LogServer's local tail, or undefined when it does not answer.
   */
  async health(timeoutMs: number): Promise<LogletHealth> {
    const [seq, ...srv] = await Promise.allSettled([
      this.pool.get(this.sequencer).call({ op: 'tail', ...this.where() }, [], timeoutMs),
      ...this.servers.map((a) =>
        this.pool.get(a).call({ op: 'tail', loglet: this.id, start: this.start }, [], timeoutMs),
      ),
    ]);
    const servers = new Map<string, number | undefined>();
    let sealed = false;
    for (const [i, r] of srv.entries()) {
      const ok = r.status === 'fulfilled' && !r.value[0].error;
      servers.set(this.servers[i]!, ok ? Number(r.value[0].tail) : undefined);
      if (ok && r.value[0].sealed === true) sealed = true;
    }
    if (seq!.status === 'rejected') return { sequencer: 'dead', servers, sealed };
    const [h] = seq!.value;
    if (h.error) return { sequencer: 'lost', servers, sealed };
    return { sequencer: 'ok', committed: Number(h.tail), servers, sealed };
  }

  async close(): Promise<void> {
    this.pool.close();
  }
}

/** Parses `native://SEQ_HOST:PORT?servers=H1:P1,H2:P2,H3:P3&id=NAME`. */
export function parseNativeSpec(spec: string): { sequencer: string; servers: string[]; id: string } {
  const m = /^native:\/\/([^/?]+)\?(.*)$/.exec(spec);
  if (!m)
    throw new Error(`native loglet spec '${spec}': expected native://HOST:PORT?servers=H:P,H:P,H:P&id=NAME`);
  const q = new URLSearchParams(m[2]!);
  const servers = (q.get('servers') ?? '').split(',').filter(Boolean);
  if (servers.length < 1) throw new Error(`native loglet spec '${spec}': no servers`);
  for (const a of [m[1]!, ...servers])
    if (!isHostPort(a))
      throw new Error(`native loglet spec '${spec}': '${a}' is not HOST:PORT (a port from 1 to 65535)`);
  const id = q.get('id') ?? 'default';
  if (!/^[A-Za-z0-9._-]{1,80}$/.test(id))
    throw new Error(`native loglet spec '${spec}': id '${id}' must be 1-80 of A-Z a-z 0-9 . _ -`);
  return { sequencer: m[1]!, servers, id };
}

/**
 * The loglet id of a chain's segment `index` on native spec `spec`: the spec's id, the index (unique in
 * a chain: segments sealed empty share their start) and a tag of the whole spec and of `scope`, the log's
 * name (so that racing reconfigurations that propose different members under one id, or two logs whose
 * specs use the same id on the same LogServers, never share a loglet).
 */
export function nativeLogletId(spec: string, index: number, scope = ''): string {
  const tagged = `${scope}\u0000${spec}`;
  let h = 0x811c9dc5; // FNV-1a, 32 bits
  for (let i = 0; i < tagged.length; i++) h = Math.imul(h ^ tagged.charCodeAt(i), 0x01000193);
  return `${parseNativeSpec(spec).id}-${index}-${(h >>> 0).toString(16).padStart(8, '0')}`;
}

/**
 * Readies the loglet of segment `index` on `spec` before it is installed: its sequencer claims it on the
 * LogServers (creating their directories), so the first append after the reconfiguration does not wait for
 * that. Failing is harmless: the first append claims it then.
 */
export async function prepareNative(
  spec: string,
  index: number,
  o: { net?: Net; timeoutMs?: number; scope?: string } = {},
): Promise<void> {
  const n = parseNativeSpec(spec);
  const c = new Conn(n.sequencer, o.net ?? tcpNet, o.timeoutMs ?? requestTimeoutMs);
  try {
    const [h] = await c.call({
      op: 'prepare',
      loglet: nativeLogletId(spec, index, o.scope),
      servers: n.servers,
    });
    const e = replyError(h);
    if (e) throw e;
  } finally {
    c.close();
  }
}

/** Builds a native spec. */
export function nativeSpec(sequencer: string, servers: string[], id: string): string {
  return `native://${sequencer}?servers=${servers.join(',')}&id=${id}`;
}
