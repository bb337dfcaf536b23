/**
 * NativeLoglet, after Delos' native loglet: a sequencer assigns positions and forwards each batch to N
 * LogServers over TCP; an append is acknowledged once a majority has it durable (fsync'd). LogServers keep
 * each loglet's records in a FileLoglet (HighwayHash-64 checksum per record, group commit, torn-tail
 * recovery). Seal sets the durable sealed bit on a majority of LogServers; the sealed tail is the highest
 * local tail in that majority (every acknowledged record is on at least one of them). Reads go to a server
 * whose local tail covers the range. The loglet needs no leader election: when the sequencer or too many
 * servers fail, appends fail with LogletUnavailableError and the VirtualLog reconfigures to a new loglet.
 *
 * Wire format, both directions: u32 frame length | u32 JSON header length | JSON header | payload bytes.
 * Requests carry `id` (echoed in the reply) and `op`; record batches travel as u32-length-prefixed payloads.
 */

import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import {
  type Loglet,
  LogletUnavailableError,
  type LogRecord,
  type Payload,
  SealedError,
  type TailInfo,
  TrimmedError,
} from '../contract.js';
import { FileLoglet } from './file.js';

/** Largest frame on the wire. */
const frameBytesMax = 128 * 2 ** 20;
/** How long a request waits for its reply. */
export const requestTimeoutMs = 5_000;

interface Header {
  id: number;
  op: string;
  [k: string]: unknown;
}

function encode(h: Header | Record<string, unknown>, body: Payload[] = []): Buffer {
  const json = Buffer.from(JSON.stringify(h), 'utf8');
  const parts: Buffer[] = [];
  let bodyLen = 0;
  for (const p of body) {
    const l = Buffer.alloc(4);
    l.writeUInt32BE(p.length, 0);
    parts.push(l, Buffer.from(p.buffer, p.byteOffset, p.byteLength));
    bodyLen += 4 + p.length;
  }
  const head = Buffer.alloc(8);
  head.writeUInt32BE(4 + json.length + bodyLen, 0);
  head.writeUInt32BE(json.length, 4);
  return Buffer.concat([head, json, ...parts]);
}

function decodeBody(b: Buffer): Payload[] {
  const out: Payload[] = [];
  for (let p = 0; p + 4 <= b.length; ) {
    const l = b.readUInt32BE(p);
    if (p + 4 + l > b.length) throw new Error('malformed record batch');
    out.push(Uint8Array.from(b.subarray(p + 4, p + 4 + l)));
    p += 4 + l;
  }
  return out;
}

/** Calls `onFrame` for each complete frame on the socket. */
function frames(sock: Socket, onFrame: (h: Header, body: Buffer) => void): void {
  let buf: Buffer = Buffer.alloc(0);
  sock.on('data', (c: Buffer) => {
    buf = buf.length ? Buffer.concat([buf, c]) : c;
    while (buf.length >= 8) {
      const len = buf.readUInt32BE(0);
      if (len < 4 || len > frameBytesMax) {
        sock.destroy();
        return;
      }
      if (buf.length < 4 + len) break;
      const jl = buf.readUInt32BE(4);
      if (jl > len - 4) {
        sock.destroy();
        return;
      }
      let h: Header;
      try {
        h = JSON.parse(buf.toString('utf8', 8, 8 + jl)) as Header;
      } catch {
        sock.destroy();
        return;
      }
      onFrame(h, buf.subarray(8 + jl, 4 + len));
      buf = buf.subarray(4 + len);
    }
  });
}

/** A request/reply connection with timeouts. */
class Conn {
  private next = 1;
  private readonly waiting = new Map<
    number,
    { resolve: (r: [Header, Buffer]) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }
  >();
  private readonly sock: Socket;
  private ready: Promise<void>;
  dead = false;

  constructor(readonly addr: string) {
    const [host, port] = addr.split(':') as [string, string];
    this.sock = connect({ host, port: Number(port) });
    this.sock.setNoDelay(true);
    this.ready = new Promise((res, rej) => {
      this.sock.once('connect', res);
      this.sock.once('error', rej);
    });
    this.ready.catch(() => undefined);
    const fail = () => {
      this.dead = true;
      for (const w of this.waiting.values()) {
        clearTimeout(w.timer);
        w.reject(new LogletUnavailableError(`${addr}: connection lost`));
      }
      this.waiting.clear();
    };
    this.sock.on('error', fail);
    this.sock.on('close', fail);
    frames(this.sock, (h, body) => {
      const w = this.waiting.get(h.id);
      if (!w) return;
      this.waiting.delete(h.id);
      clearTimeout(w.timer);
      w.resolve([h, body]);
    });
  }

  async call(h: Record<string, unknown>, body: Payload[] = []): Promise<[Header, Buffer]> {
    if (this.dead) throw new LogletUnavailableError(`${this.addr}: connection lost`);
    await this.ready.catch(() => {
      throw new LogletUnavailableError(`${this.addr}: cannot connect`);
    });
    const id = this.next++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new LogletUnavailableError(`${this.addr}: no reply in ${requestTimeoutMs} ms`));
      }, requestTimeoutMs);
      this.waiting.set(id, { resolve, reject, timer });
      this.sock.write(encode({ ...h, id }, body));
    });
  }

  close(): void {
    this.sock.destroy();
  }
}

function replyError(h: Header): Error | undefined {
  if (h.sealed === true && h.error) return new SealedError(Number(h.tail));
  if (h.trimmed) return new TrimmedError(Number(h.position), Number(h.trimPoint));
  if (h.error) return new LogletUnavailableError(String(h.error));
  return undefined;
}

/** A LogServer: durable storage of many loglets' records, one FileLoglet per loglet id under `dir`. */
export class LogServer {
  private server?: Server;
  private readonly loglets = new Map<string, Promise<FileLoglet>>();
  private readonly sockets = new Set<Socket>();

  constructor(readonly dir: string) {}

  private loglet(id: string, start: number): Promise<FileLoglet> {
    if (!/^[A-Za-z0-9._-]{1,100}$/.test(id)) return Promise.reject(new Error(`bad loglet id '${id}'`));
    let l = this.loglets.get(id);
    if (!l) {
      l = FileLoglet.open(join(this.dir, id), start);
      this.loglets.set(id, l);
    }
    return l;
  }

  async listen(port = 0, host = '127.0.0.1'): Promise<number> {
    this.server = createServer((sock) => {
      this.sockets.add(sock);
      sock.on('close', () => this.sockets.delete(sock));
      sock.on('error', () => undefined);
      // requests of one connection are applied in order (appends must arrive in position order), but an
      // append's reply waits only for its own group commit: the next request is taken as soon as this
      // one is queued, so concurrent appends share fsyncs
      let chain = Promise.resolve();
      frames(sock, (h, body) => {
        chain = chain.then(async () => {
          const { reply } = await this.handle(h, body);
          void reply.then((r) => sock.write(encode(r)));
        });
      });
    });
    await new Promise<void>((r) => this.server!.listen(port, host, r));
    return (this.server!.address() as { port: number }).port;
  }

  /** Next position each loglet expects: its tail plus what is queued for the next group commit. */
  private readonly expected = new Map<string, number>();

  /** Handles one request; resolves once it is queued, with the reply as a promise of its own. */
  private async handle(h: Header, body: Buffer): Promise<{ reply: Promise<Record<string, unknown>> }> {
    const id = String(h.loglet);
    const fail = (e: unknown) =>
      e instanceof TrimmedError
        ? { id: h.id, error: e.message, trimmed: true, position: e.position, trimPoint: e.trimPoint }
        : e instanceof SealedError
          ? { id: h.id, error: 'sealed', sealed: true, tail: e.tail }
          : { id: h.id, error: (e as Error).message };
    let l: FileLoglet;
    try {
      l = await this.loglet(id, Number(h.start ?? 0));
    } catch (e) {
      return { reply: Promise.resolve(fail(e)) };
    }
    const run = async (): Promise<Record<string, unknown>> => {
      switch (h.op) {
        case 'seal':
          return { id: h.id, ...(await l.seal()) };
        case 'tail':
          return { id: h.id, ...(await l.checkTail()) };
        case 'read': {
          const recs = await l.read(Number(h.from), Number(h.to));
          return {
            id: h.id,
            positions: recs.map((r) => r.position),
            payloads: recs.map((r) => Buffer.from(r.payload).toString('base64')),
          };
        }
        case 'trim':
          await l.prefixTrim(Number(h.position));
          return { id: h.id };
        default:
          return { id: h.id, error: `unknown op '${h.op}'` };
      }
    };
    if (h.op !== 'append') return { reply: run().catch(fail) };
    let recs: Payload[];
    try {
      recs = decodeBody(body);
    } catch (e) {
      return { reply: Promise.resolve(fail(e)) };
    }
    if (l.isSealed)
      return { reply: Promise.resolve({ id: h.id, error: 'sealed', sealed: true, tail: l.tail }) };
    const expected = this.expected.get(id) ?? l.tail;
    if (Number(h.position) !== expected)
      return {
        reply: Promise.resolve({
          id: h.id,
          error: `out of order: expected position ${expected}, got ${h.position}`,
        }),
      };
    this.expected.set(id, expected + recs.length);
    // queued now, in order; acknowledged after the group commit that makes it durable
    const reply = l.append(recs).then(
      (ps) => ({ id: h.id, tail: (ps[ps.length - 1] ?? expected - 1) + 1 }),
      (e: unknown) => {
        this.expected.delete(id);
        return fail(e);
      },
    );
    return { reply };
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    for (const l of this.loglets.values()) await (await l.catch(() => undefined))?.close();
    this.loglets.clear();
  }
}

/**
 * A sequencer: for each loglet (id, start) it serves, hands out positions and forwards batches to every
 * LogServer, acknowledging once a majority has them. A LogServer whose connection fails stays failed for
 * this sequencer; with fewer than a majority left, appends fail and the VirtualLog reconfigures.
 */
export class Sequencer {
  private server?: Server;
  private readonly sockets = new Set<Socket>();
  private readonly conns: Conn[];
  private readonly state = new Map<string, { next: number; chain: Promise<unknown> }>();

  constructor(readonly servers: string[]) {
    this.conns = servers.map((s) => new Conn(s));
  }

  get majority(): number {
    return Math.floor(this.servers.length / 2) + 1;
  }

  async listen(port = 0, host = '127.0.0.1'): Promise<number> {
    this.server = createServer((sock) => {
      this.sockets.add(sock);
      sock.on('close', () => this.sockets.delete(sock));
      sock.on('error', () => undefined);
      frames(sock, (h, body) => {
        let batch: Payload[];
        try {
          batch = decodeBody(body);
        } catch (e) {
          sock.write(encode({ id: h.id, error: (e as Error).message }));
          return;
        }
        void this.append(String(h.loglet), Number(h.start ?? 0), batch).then(
          (ps) => sock.write(encode({ id: h.id, positions: ps })),
          (e: Error) =>
            sock.write(
              encode({
                id: h.id,
                error: e.message,
                ...(e instanceof SealedError ? { sealed: true, tail: e.tail } : {}),
              }),
            ),
        );
      });
    });
    await new Promise<void>((r) => this.server!.listen(port, host, r));
    return (this.server!.address() as { port: number }).port;
  }

  /** Assigns positions and replicates; resolves once a majority has the batch durable. */
  append(loglet: string, start: number, batch: Payload[]): Promise<number[]> {
    let st = this.state.get(loglet);
    if (!st) this.state.set(loglet, (st = { next: -1, chain: Promise.resolve() }));
    const s = st;
    const assigned = s.chain.then(async () => {
      if (s.next < 0) {
        // learn where the loglet stands (a new sequencer continues after the highest tail)
        const tails = await Promise.allSettled(this.conns.map((c) => c.call({ op: 'tail', loglet, start })));
        let t = start;
        for (const r of tails)
          if (r.status === 'fulfilled' && !r.value[0].error) t = Math.max(t, Number(r.value[0].tail));
        s.next = t;
      }
      const first = s.next;
      s.next += batch.length;
      // send in position order on every connection before the next batch is assigned
      const sends = this.conns.map((c) =>
        c.call({ op: 'append', loglet, start, position: first }, batch).then(([h]) => {
          const err = replyError(h);
          if (err) throw err;
        }),
      );
      return { first, sends };
    });
    s.chain = assigned.catch(() => undefined);
    return assigned.then(
      ({ first, sends }) =>
        new Promise<number[]>((resolve, reject) => {
          let ok = 0;
          let failed = 0;
          let sealed: SealedError | undefined;
          for (const p of sends) {
            p.then(
              () => {
                if (++ok === this.majority) resolve(batch.map((_, i) => first + i));
              },
              (e: unknown) => {
                if (e instanceof SealedError) sealed = e;
                if (++failed > this.servers.length - this.majority)
                  reject(
                    sealed ??
                      new LogletUnavailableError(
                        `no majority for position ${first}: ${(e as Error).message}`,
                      ),
                  );
              },
            );
          }
        }),
    );
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    for (const c of this.conns) c.close();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}

/** The client side: the Loglet contract over a sequencer and its LogServers. */
export class NativeLoglet implements Loglet {
  private readonly seq: Conn;
  private readonly conns: Conn[];

  constructor(
    readonly id: string,
    readonly start: number,
    sequencer: string,
    readonly servers: string[],
  ) {
    this.seq = new Conn(sequencer);
    this.conns = servers.map((s) => new Conn(s));
  }

  private get majority(): number {
    return Math.floor(this.servers.length / 2) + 1;
  }

  async append(batch: Payload[]): Promise<number[]> {
    const [h] = await this.seq.call({ op: 'append', loglet: this.id, start: this.start }, batch);
    const err = replyError(h);
    if (err) throw err;
    return h.positions as number[];
  }

  /** Asks every server; resolves with the replies of at least a majority. */
  private async quorum(h: Record<string, unknown>): Promise<Header[]> {
    const rs = await Promise.allSettled(
      this.conns.map((c) => c.call({ ...h, loglet: this.id, start: this.start })),
    );
    const ok = rs.flatMap((r) => (r.status === 'fulfilled' && !r.value[0].error ? [r.value[0]] : []));
    if (ok.length < this.majority)
      throw new LogletUnavailableError(
        `only ${ok.length} of ${this.servers.length} LogServers answered '${h.op}'`,
      );
    return ok;
  }

  async checkTail(): Promise<TailInfo> {
    const rs = await this.quorum({ op: 'tail' });
    const sealed = rs.some((r) => r.sealed === true);
    if (sealed) return this.seal();
    // committed = on a majority: the majority-th highest local tail
    const tails = rs.map((r) => Number(r.tail)).sort((a, b) => b - a);
    return { tail: tails[this.majority - 1] ?? this.start, sealed: false };
  }

  async read(from: number, to: number): Promise<LogRecord[]> {
    const out: LogRecord[] = [];
    let pos = from;
    for (const c of this.conns) {
      if (pos >= to) break;
      try {
        const [h] = await c.call({ op: 'read', loglet: this.id, start: this.start, from: pos, to });
        const err = replyError(h);
        if (err instanceof TrimmedError) throw err;
        if (err) continue;
        const ps = h.positions as number[];
        const pl = h.payloads as string[];
        for (let i = 0; i < ps.length; i++)
          if (ps[i] === pos) {
            out.push({ position: pos, payload: Uint8Array.from(Buffer.from(pl[i]!, 'base64')) });
            pos++;
          }
      } catch (e) {
        if (e instanceof TrimmedError) throw e;
      }
    }
    // only committed records: stop at the committed tail
    const { tail } = await this.checkTail();
    return out.filter((r) => r.position < tail);
  }

  async prefixTrim(pos: number): Promise<void> {
    await this.quorum({ op: 'trim', position: pos });
  }

  async seal(): Promise<TailInfo> {
    const rs = await this.quorum({ op: 'seal' });
    return { tail: Math.max(this.start, ...rs.map((r) => Number(r.tail))), sealed: true };
  }

  async close(): Promise<void> {
    this.seq.close();
    for (const c of this.conns) c.close();
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
  return { sequencer: m[1]!, servers, id: q.get('id') ?? 'default' };
}
