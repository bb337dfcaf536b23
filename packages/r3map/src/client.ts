/**
 * An NBD client as a BlockDevice: fixed newstyle handshake with NBD_OPT_GO, then READ, WRITE (+FUA), FLUSH,
 * TRIM, BLOCK_STATUS and DISC, with many requests in flight on one connection. It serves as the "remote
 * device served by another Strata process" (or by any NBD server). Before GO it asks for structured replies
 * and the `base:allocation` meta context; a server that refuses either gets simple replies and no
 * BLOCK_STATUS (`blockStatus` then reports everything as data).
 */
import { connect, type Socket } from 'node:net';
import { checkTimerMs } from '@strata/cli';
import { type BlockDevice, checkRange, type Extent, SmallReads, takeBytes, takeChunks } from './device.js';

const NBDMAGIC = 0x4e42444d41474943n;
const IHAVEOPT = 0x49484156454f5054n;
const REPLY_MAGIC = 0x3e889045565a9n;
const REQUEST_MAGIC = 0x25609513;
const SIMPLE_REPLY_MAGIC = 0x67446698;
const STRUCTURED_REPLY_MAGIC = 0x668e33ef;
const OPT_GO = 7;
const OPT_STRUCTURED_REPLY = 8;
const OPT_SET_META_CONTEXT = 10;
const REP_ACK = 1;
const REP_INFO = 3;
const REP_META_CONTEXT = 4;
const CMD_READ = 0;
const CMD_BLOCK_STATUS = 7;
const REPLY_FLAG_DONE = 1;
const REPLY_TYPE_NONE = 0;
const REPLY_TYPE_OFFSET_DATA = 1;
const REPLY_TYPE_OFFSET_HOLE = 2;
const REPLY_TYPE_BLOCK_STATUS = 5;
const REPLY_TYPE_ERROR_OFFSET = 0x8002;
const BASE_ALLOCATION = 'base:allocation';
/** base:allocation's flags (NetworkBlockDevice doc/proto.md): unallocated; reads as zeros. */
export const NBD_STATE_HOLE = 1;
export const NBD_STATE_ZERO = 2;
/** Longest BLOCK_STATUS asked for (its length is a u32): 4 GiB less 1 MiB, so it stays aligned. */
export const blockStatusBytesMax = 2 ** 32 - 2 ** 20;
/** Largest BLOCK_STATUS chunk taken (64K extents); a larger length is refused, not waited for. */
const blockStatusChunkBytesMax = 4 + 8 * 65_536;
/** Largest error chunk taken: the error, a message of at most 4 KiB (doc/proto.md) and an offset. */
const errorChunkBytesMax = 6 + 4096 + 8;
/** Largest single READ or WRITE sent; larger accesses are split. */
const requestBytesMax = 4 * 1024 * 1024;
/** Largest single TRIM sent (its length is a u32); longer trims are split. */
const trimBytesMax = 2 ** 31;
/** How long the handshake may take from the connect on (a server's bytes now and then do not extend it). */
export const nbdHandshakeTimeoutMs = 15_000;
/** How long `close` waits for the replies to requests in flight before it drops the connection. */
export const nbdCloseTimeoutMs = 10_000;
/** The longest option reply taken during the handshake (an export's name or description is at most 4 KiB). */
const optionReplyBytesMax = 64 * 1024;

export class NbdClientError extends Error {
  override name = 'NbdClientError';
}

/** Option reply error types (doc/proto.md, "Option reply types"), for messages. */
const optionErrorNames: Record<number, string> = {
  2147483649: 'NBD_REP_ERR_UNSUP',
  2147483650: 'NBD_REP_ERR_POLICY',
  2147483651: 'NBD_REP_ERR_INVALID',
  2147483652: 'NBD_REP_ERR_PLATFORM',
  2147483653: 'NBD_REP_ERR_TLS_REQD',
  2147483654: 'NBD_REP_ERR_UNKNOWN',
  2147483655: 'NBD_REP_ERR_SHUTDOWN',
};

/** One extent of a BLOCK_STATUS reply for `base:allocation`: bytes and NBD_STATE_* flags. */
export interface BlockStatusExtent {
  length: number;
  flags: number;
}

export interface NbdConnectOptions {
  handshakeTimeoutMs?: number;
  closeTimeoutMs?: number;
  requestTimeoutMs?: number;
  /**
   * Ask for structured replies and `base:allocation` (default true). False: the handshake of before, one
   * option (GO) and simple replies; `blockStatus` reports everything as data.
   */
  blockStatus?: boolean;
}

/** What one request waits for: for a structured reply, what its chunks brought so far. */
interface Pending {
  resolve: (r: Buffer[] | BlockStatusExtent[] | undefined) => void;
  reject: (e: Error) => void;
  cmd: number;
  offset: number;
  length: number;
  /** When it was sent (performance.now()), kept only under a request timeout. */
  sentMs: number;
  /** A READ's content chunks (data or holes), by offset within the request. */
  pieces?: { at: number; parts: Buffer[]; length: number }[];
  /** Bytes those chunks cover: past the READ's length some overlap (bounds what is kept before DONE). */
  piecesBytes?: number;
  /** A BLOCK_STATUS's extents for base:allocation, once its chunk came. */
  extents?: BlockStatusExtent[];
  /** The first error chunk's error: the request fails with it once the reply is done. */
  error?: NbdClientError;
  /** Whether a structured chunk came for it (a simple reply then breaks the framing). */
  chunked?: boolean;
}

/** Byte-exact reads from a socket. */
class SocketReader {
  private chunks: Buffer[] = [];
  private have = 0;
  private waiter?: { n: number; resolve: () => void; reject: (e: Error) => void };
  private error?: Error;
  /** A server sending a byte at a time had each byte kept as a Buffer object (see `SmallReads`). */
  private readonly small = new SmallReads();

  constructor(sock: Socket) {
    sock.on('data', (c: Buffer) => {
      this.small.append(this.chunks, c);
      this.have += c.length;
      this.pump();
    });
    const end = () => {
      this.error ??= new NbdClientError('connection closed');
      this.pump();
    };
    sock.on('close', end);
    sock.on('error', (e) => {
      this.error = new NbdClientError(e.message);
      this.pump();
    });
  }

  private pump(): void {
    const w = this.waiter;
    if (!w) return;
    if (this.have >= w.n) {
      this.waiter = undefined;
      w.resolve();
    } else if (this.error) {
      this.waiter = undefined;
      w.reject(this.error);
    }
  }

  private waitFor(n: number): Promise<void> {
    if (this.have >= n) return Promise.resolve();
    if (this.error) return Promise.reject(this.error);
    return new Promise((resolve, reject) => {
      this.waiter = { n, resolve, reject };
    });
  }

  /** The next n bytes: a view when they lie in the first chunk, else a copy of just those n bytes. */
  private take(n: number): Buffer {
    this.have -= n;
    return takeBytes(this.chunks, n);
  }

  /** The next n bytes as views of the socket's chunks: no copy. */
  private takeParts(n: number): Buffer[] {
    this.have -= n;
    return takeChunks(this.chunks, n);
  }

  /** Whether n bytes have come. */
  has(n: number): boolean {
    return this.have >= n;
  }

  /** The next n bytes without taking them, when they lie in the first chunk (else undefined). */
  peek(n: number): Buffer | undefined {
    const c = this.chunks[0];
    return c && c.length >= n ? c.subarray(0, n) : undefined;
  }

  /** The next n bytes if they have come, else undefined (nothing taken): no promise to wait on. */
  readNow(n: number): Buffer | undefined {
    return this.have >= n ? this.take(n) : undefined;
  }

  /** `readParts` if the n bytes have come, else undefined (nothing taken). */
  readPartsNow(n: number): Buffer[] | undefined {
    return this.have >= n ? this.takeParts(n) : undefined;
  }

  read(n: number): Promise<Buffer> {
    if (this.have >= n) return Promise.resolve(this.take(n));
    return this.waitFor(n).then(() => this.take(n));
  }

  readParts(n: number): Promise<Buffer[]> {
    if (this.have >= n) return Promise.resolve(this.takeParts(n));
    return this.waitFor(n).then(() => this.takeParts(n));
  }
}

export class NbdClientDevice implements BlockDevice {
  private nextHandle = 1n;
  private readonly pending = new Map<bigint, Pending>();
  private closed = false;
  private corked = false;
  private readonly uncork = () => {
    this.corked = false;
    this.sock.uncork();
  };
  /** Set when the connection broke: every later request fails at once with it. */
  private broken?: Error;

  private constructor(
    private readonly sock: Socket,
    private readonly reader: SocketReader,
    readonly size: number,
    readonly readOnly: boolean,
    private readonly closeTimeoutMs: number,
    /** 0: none (a request waits as long as the connection lives, as before). */
    private readonly requestTimeoutMs: number,
    /** Whether the server agreed to structured replies (it must then send them for every READ). */
    readonly structured: boolean,
    /** The id of `base:allocation` from SET_META_CONTEXT; undefined: BLOCK_STATUS is not sent. */
    private readonly baseAllocationId: number | undefined,
    /** Every context id the server selected (its BLOCK_STATUS replies carry a chunk for each). */
    private readonly contextIds: ReadonlySet<number>,
  ) {
    void this.replies();
    if (requestTimeoutMs > 0) this.watch();
  }

  /**
   * Under a request timeout: the oldest request in flight (the first in `pending`, which keeps the order
   * sent) is checked a few times a timeout; one unanswered for longer breaks the connection, and every
   * request in flight and after fails saying so. A server that stopped answering (a process stopped, a
   * network that drops without a reset) held a mount's reads forever. One timer, not one a request.
   */
  private watch(): void {
    const t = setInterval(
      () => {
        if (this.broken || this.closed) return clearInterval(t);
        const oldest = this.pending.values().next().value;
        if (oldest && performance.now() - oldest.sentMs > this.requestTimeoutMs)
          this.breakWith(
            new NbdClientError(
              `no reply from the server in ${this.requestTimeoutMs} ms (the request timeout)`,
            ),
          );
      },
      Math.max(10, Math.min(1_000, this.requestTimeoutMs / 4)),
    );
    t.unref();
  }

  /** Breaks the connection: every request in flight fails with `e`, and every later one at once. */
  private breakWith(e: Error): void {
    this.broken ??= e;
    this.sock.destroy();
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  /** Connects to `host:port` and opens export `name`. */
  static async connect(
    host: string,
    port: number,
    name = '',
    opts: NbdConnectOptions = {},
  ): Promise<NbdClientDevice> {
    if (opts.requestTimeoutMs !== undefined) checkTimerMs('NBD requestTimeoutMs', opts.requestTimeoutMs, 0);
    const sock = connect({ host, port });
    sock.setNoDelay(true);
    // a server that never answers (not an NBD server, or a stuck one) ends the handshake instead of
    // holding it open forever; a failed handshake closes the connection (it kept the process alive)
    const timeoutMs = opts.handshakeTimeoutMs ?? nbdHandshakeTimeoutMs;
    // from the connect on, not from the last byte: a server sending a byte now and then must not hold it
    const due = setTimeout(
      () => sock.destroy(new Error(`no NBD handshake within ${timeoutMs} ms`)),
      timeoutMs,
    );
    try {
      await new Promise<void>((res, rej) => sock.once('connect', res).once('error', rej));
      const r = new SocketReader(sock);
      const hello = await r.read(18);
      if (hello.readBigUInt64BE(0) !== NBDMAGIC || hello.readBigUInt64BE(8) !== IHAVEOPT)
        throw new NbdClientError('the server does not speak the NBD newstyle protocol');
      const flags = Buffer.alloc(4);
      flags.writeUInt32BE(3, 0); // fixed newstyle, no zeroes
      sock.write(flags);
      const nameB = Buffer.from(name, 'utf8');
      const option = (opt: number, data: Buffer) => {
        const h = Buffer.alloc(16);
        h.writeBigUInt64BE(IHAVEOPT, 0);
        h.writeUInt32BE(opt, 8);
        h.writeUInt32BE(data.length, 12);
        sock.write(Buffer.concat([h, data]));
      };
      /** The next reply to option `opt`: its type and data (an error type is returned, not thrown). */
      const reply = async (opt: number): Promise<{ type: number; body: Buffer }> => {
        const h = await r.read(20);
        if (h.readBigUInt64BE(0) !== REPLY_MAGIC) throw new NbdClientError('bad option reply magic');
        const type = h.readUInt32BE(12);
        const len = h.readUInt32BE(16);
        // a length read from garbage (up to 4 GiB) was waited for and buffered
        if (len > optionReplyBytesMax)
          throw new NbdClientError(`option reply of ${len} bytes (at most ${optionReplyBytesMax})`);
        if (h.readUInt32BE(8) !== opt)
          throw new NbdClientError(`option reply for option ${h.readUInt32BE(8)}, not the ${opt} asked`);
        return { type, body: len ? await r.read(len) : Buffer.alloc(0) };
      };
      // structured replies, then base:allocation: one option at a time (the client must wait for the
      // final reply to each); a refusal of either leaves BLOCK_STATUS out
      let structured = false;
      let baseAllocationId: number | undefined;
      const contextIds = new Set<number>();
      if (opts.blockStatus !== false) {
        option(OPT_STRUCTURED_REPLY, Buffer.alloc(0));
        for (;;) {
          const { type } = await reply(OPT_STRUCTURED_REPLY);
          if (type === REP_ACK) structured = true;
          if (type === REP_ACK || type & 0x80000000) break;
        }
      }
      if (structured) {
        const query = Buffer.from(BASE_ALLOCATION, 'utf8');
        const data = Buffer.alloc(4 + nameB.length + 4 + 4 + query.length);
        data.writeUInt32BE(nameB.length, 0);
        nameB.copy(data, 4);
        data.writeUInt32BE(1, 4 + nameB.length);
        data.writeUInt32BE(query.length, 8 + nameB.length);
        query.copy(data, 12 + nameB.length);
        option(OPT_SET_META_CONTEXT, data);
        for (;;) {
          const { type, body } = await reply(OPT_SET_META_CONTEXT);
          if (type === REP_ACK || type & 0x80000000) {
            // a refusal selects nothing: no BLOCK_STATUS
            if (type !== REP_ACK) {
              baseAllocationId = undefined;
              contextIds.clear();
            }
            break;
          }
          if (type !== REP_META_CONTEXT) continue;
          if (body.length < 5)
            throw new NbdClientError(`meta context reply of ${body.length} bytes (an id and a name)`);
          const id = body.readUInt32BE(0);
          if (contextIds.has(id)) throw new NbdClientError(`meta context id ${id} given twice`);
          contextIds.add(id);
          if (body.toString('utf8', 4) === BASE_ALLOCATION) baseAllocationId = id;
        }
      }
      const data = Buffer.alloc(4 + nameB.length + 2);
      data.writeUInt32BE(nameB.length, 0);
      nameB.copy(data, 4);
      option(OPT_GO, data);
      let size = -1n;
      let tflags = 0;
      for (;;) {
        const { type, body } = await reply(OPT_GO);
        if (type & 0x80000000)
          // the error's name too: POLICY (a server at its connection cap) is not UNKNOWN (no such export)
          throw new NbdClientError(
            `export '${name}': ${optionErrorNames[type] ?? `error ${type}`}${body.length ? `: ${body.toString('utf8')}` : ''}`,
          );
        if (type === REP_INFO && body.length >= 12 && body.readUInt16BE(0) === 0) {
          size = body.readBigUInt64BE(2);
          tflags = body.readUInt16BE(10);
        }
        if (type === REP_ACK) break; // transmission begins
      }
      if (size < 0n) throw new NbdClientError('the server sent no export size');
      // a u64: past 2^53 - 1 a number rounds it, and every range check is off by the rounding
      if (size > BigInt(Number.MAX_SAFE_INTEGER))
        throw new NbdClientError(
          `export '${name}': the server's size of ${size} bytes is past what this client addresses (2^53 - 1)`,
        );
      return new NbdClientDevice(
        sock,
        r,
        Number(size),
        (tflags & 2) !== 0,
        opts.closeTimeoutMs ?? nbdCloseTimeoutMs,
        opts.requestTimeoutMs ?? 0,
        structured,
        baseAllocationId,
        contextIds,
      );
    } catch (e) {
      sock.destroy();
      throw e instanceof NbdClientError ? e : new NbdClientError((e as Error).message);
    } finally {
      clearTimeout(due);
    }
  }

  /** Whether BLOCK_STATUS is sent (the server selected `base:allocation`). */
  get hasBlockStatus(): boolean {
    return this.baseAllocationId !== undefined;
  }

  private async replies(): Promise<void> {
    try {
      for (;;) {
        // what has come is taken without waiting on a promise (see `wholeRead`)
        const h = this.reader.readNow(16) ?? (await this.reader.read(16));
        const magic = h.readUInt32BE(0);
        if (magic === STRUCTURED_REPLY_MAGIC) {
          const len = (this.reader.readNow(4) ?? (await this.reader.read(4))).readUInt32BE(0);
          if (!this.wholeRead(h, len)) await this.chunk(h, len);
          continue;
        }
        if (magic !== SIMPLE_REPLY_MAGIC)
          throw new NbdClientError(`unexpected reply magic 0x${magic.toString(16)}`);
        const err = h.readUInt32BE(4);
        const handle = h.readBigUInt64BE(8);
        const p = this.pending.get(handle);
        if (!p) throw new NbdClientError(`reply for unknown handle ${handle}`);
        // a READ's data (or a BLOCK_STATUS's extents) come only in chunks once those are negotiated: a
        // simple reply without an error leaves no way to tell where its data ends
        if (p.chunked || (!err && (p.cmd === CMD_BLOCK_STATUS || (this.structured && p.cmd === CMD_READ))))
          throw new NbdClientError(
            `simple reply to ${p.cmd === CMD_READ ? 'a READ' : p.cmd === CMD_BLOCK_STATUS ? 'a BLOCK_STATUS' : `command ${p.cmd}`}${p.chunked ? ' after structured chunks' : ''}, where structured replies were negotiated`,
          );
        this.pending.delete(handle);
        if (err) {
          p.reject(new NbdClientError(`server error ${err}`));
          continue;
        }
        p.resolve(
          p.cmd === CMD_READ && p.length
            ? (this.reader.readPartsNow(p.length) ?? (await this.reader.readParts(p.length)))
            : undefined,
        );
      }
    } catch (e) {
      this.breakWith(e as Error);
    }
  }

  /**
   * A READ's whole data in one OFFSET_DATA chunk with DONE, all of it come (what a server sends for a READ
   * of data): resolved at once, with the checks `chunk` makes of it. Anything else (or a chunk that fails a
   * check) is left to `chunk`, which reads it as it always does. The common case thus costs no promise, no
   * BigInt arithmetic and no message built in advance (a 4 KiB READ from this server took about 2 us more
   * through `chunk` than as a simple reply before structured replies were negotiated; about 0.7 us now).
   */
  private wholeRead(h: Buffer, len: number): boolean {
    if (
      !this.structured ||
      h.readUInt16BE(4) !== REPLY_FLAG_DONE ||
      h.readUInt16BE(6) !== REPLY_TYPE_OFFSET_DATA
    )
      return false;
    const handle = h.readBigUInt64BE(8);
    const p = this.pending.get(handle);
    if (
      !p ||
      p.cmd !== CMD_READ ||
      p.chunked ||
      p.length === 0 ||
      len !== p.length + 8 ||
      !this.reader.has(len)
    )
      return false;
    const o = this.reader.peek(8);
    // the offset, a u64: one past 2^53 can equal no request's offset (those are safe integers)
    if (!o || o.readUInt32BE(0) >= 2 ** 21 || o.readUInt32BE(0) * 2 ** 32 + o.readUInt32BE(4) !== p.offset)
      return false;
    this.reader.readNow(8);
    const parts = this.reader.readPartsNow(p.length)!;
    this.pending.delete(handle);
    p.resolve(parts);
    return true;
  }

  /**
   * One structured reply chunk (header `h` and its payload's length `len`): every field is checked before
   * anything is waited for or kept, and a chunk that does not fit its request breaks the connection
   * (doc/proto.md: a client must hard-disconnect on inconsistent contents), naming the field.
   */
  private async chunk(h: Buffer, len: number): Promise<void> {
    const flags = h.readUInt16BE(4);
    const type = h.readUInt16BE(6);
    const handle = h.readBigUInt64BE(8);
    const what = `structured reply chunk of type ${type} for handle ${handle}`;
    if (!this.structured) throw new NbdClientError(`${what}: structured replies were not negotiated`);
    const p = this.pending.get(handle);
    if (!p) throw new NbdClientError(`${what}: no such request in flight`);
    p.chunked = true;
    const bad = (field: string, why: string) => new NbdClientError(`${what}: ${field} ${why}`);
    const isRead = p.cmd === CMD_READ;
    /** A content chunk's range, checked against the request's. */
    const within = (off: bigint, n: number) => {
      const at = off - BigInt(p.offset);
      if (at < 0n || at + BigInt(n) > BigInt(p.length))
        throw bad('offset', `${off} (+${n} bytes) lies outside the READ [${p.offset}, +${p.length})`);
      // chunks that together cover more than the READ overlap: refused as they come, not at DONE (a server
      // repeating a 12-byte hole chunk of the whole READ had the client allocate its length each time)
      p.piecesBytes = (p.piecesBytes ?? 0) + n;
      if (p.piecesBytes > p.length)
        throw bad(
          'offset',
          `+${at} overlaps an earlier chunk (${p.piecesBytes} bytes for a READ of ${p.length})`,
        );
      return Number(at);
    };
    switch (type) {
      case REPLY_TYPE_NONE:
        if (len !== 0) throw bad('length', `${len}: a NONE chunk has no payload`);
        if (!(flags & REPLY_FLAG_DONE)) throw bad('flags', `${flags}: a NONE chunk must be the last`);
        break;
      case REPLY_TYPE_OFFSET_DATA: {
        if (!isRead) throw bad('type', 'OFFSET_DATA answers a READ only');
        if (len < 9 || len - 8 > p.length)
          throw bad('length', `${len}: an OFFSET_DATA chunk is 8 + 1..${p.length} bytes for this READ`);
        const at = within((await this.reader.read(8)).readBigUInt64BE(0), len - 8);
        (p.pieces ??= []).push({ at, parts: await this.reader.readParts(len - 8), length: len - 8 });
        break;
      }
      case REPLY_TYPE_OFFSET_HOLE: {
        if (!isRead) throw bad('type', 'OFFSET_HOLE answers a READ only');
        if (len !== 12) throw bad('length', `${len}: an OFFSET_HOLE chunk is 12 bytes`);
        const b = await this.reader.read(12);
        const n = b.readUInt32BE(8);
        if (n === 0) throw bad('hole size', '0 (must be at least 1)');
        const at = within(b.readBigUInt64BE(0), n);
        (p.pieces ??= []).push({ at, parts: [Buffer.alloc(n)], length: n });
        break;
      }
      case REPLY_TYPE_BLOCK_STATUS: {
        if (p.cmd !== CMD_BLOCK_STATUS) throw bad('type', 'BLOCK_STATUS answers a BLOCK_STATUS only');
        if (len < 12 || (len - 4) % 8 !== 0 || len > blockStatusChunkBytesMax)
          throw bad('length', `${len}: a BLOCK_STATUS chunk is 4 + 8n bytes, n from 1 to 65,536`);
        const b = await this.reader.read(len);
        const id = b.readUInt32BE(0);
        if (!this.contextIds.has(id))
          throw bad(
            'context id',
            `${id} was not negotiated (${BASE_ALLOCATION} is ${this.baseAllocationId})`,
          );
        if (id !== this.baseAllocationId) break; // another context the server chose: not ours to read
        if (p.extents) throw bad('context id', `${id} came twice in one reply`);
        p.extents = parseExtents(b, p.length, (field, why) => bad(field, why));
        break;
      }
      default: {
        // an error chunk (bit 15): the request fails, the connection carries on if the chunk is sound
        if (!(type & 0x8000)) throw bad('type', 'is not known');
        if (len < 6 || len > errorChunkBytesMax)
          throw bad('length', `${len}: an error chunk is 6 to ${errorChunkBytesMax} bytes`);
        const b = await this.reader.read(len);
        const err = b.readUInt32BE(0);
        const mlen = b.readUInt16BE(4);
        const tail = type === REPLY_TYPE_ERROR_OFFSET ? 8 : 0;
        if (6 + mlen + tail > len) throw bad('message length', `${mlen} overruns the chunk's ${len} bytes`);
        if (err === 0) throw bad('error', '0 in an error chunk');
        const msg = b.toString('utf8', 6, 6 + mlen);
        p.error ??= new NbdClientError(`server error ${err}${msg ? `: ${msg}` : ''}`);
      }
    }
    if (!(flags & REPLY_FLAG_DONE)) return;
    // checked while the request is still in flight: a throw breaks the connection and fails it with that
    let result: Buffer[] | BlockStatusExtent[] | undefined;
    if (p.error) result = undefined;
    else if (isRead) result = assemble(p.pieces ?? [], p.length, (field, why) => bad(field, why));
    else if (p.cmd === CMD_BLOCK_STATUS) {
      if (!p.extents) throw bad('flags', `DONE without a BLOCK_STATUS chunk for ${BASE_ALLOCATION}`);
      result = p.extents;
    }
    this.pending.delete(handle);
    if (p.error) p.reject(p.error);
    else p.resolve(result);
  }

  private request(
    cmd: number,
    flags: number,
    offset: number,
    length: number,
    payload?: Uint8Array,
  ): Promise<Buffer[] | BlockStatusExtent[] | undefined> {
    if (this.closed) return Promise.reject(new NbdClientError('the device is closed'));
    if (this.broken) return Promise.reject(this.broken);
    const handle = this.nextHandle++;
    const h = Buffer.alloc(28);
    h.writeUInt32BE(REQUEST_MAGIC, 0);
    h.writeUInt16BE(flags, 4);
    h.writeUInt16BE(cmd, 6);
    h.writeBigUInt64BE(handle, 8);
    h.writeBigUInt64BE(BigInt(offset), 16);
    h.writeUInt32BE(length, 24);
    return new Promise((resolve, reject) => {
      const sentMs = this.requestTimeoutMs > 0 ? performance.now() : 0;
      this.pending.set(handle, { resolve, reject, cmd, offset, length, sentMs });
      // requests of one event-loop turn leave in one writev
      if (!this.corked) {
        this.corked = true;
        this.sock.cork();
        setImmediate(this.uncork);
      }
      this.sock.write(h);
      if (payload?.length) this.sock.write(payload);
    });
  }

  async readAt(offset: number, length: number): Promise<Uint8Array> {
    const parts = await this.readv(offset, length);
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, length);
  }

  /** The bytes as they came off the socket (views, no copy); see the BlockDevice contract. */
  async readv(offset: number, length: number): Promise<Uint8Array[]> {
    checkRange(this.size, offset, length, 'read');
    if (length === 0) return [];
    const reqs: Promise<Buffer[]>[] = [];
    for (let p = 0; p < length; p += requestBytesMax)
      reqs.push(
        this.request(CMD_READ, 0, offset + p, Math.min(requestBytesMax, length - p)) as Promise<Buffer[]>,
      );
    return (await Promise.all(reqs)).flat();
  }

  /**
   * The allocation of the export from `offset` on, as the server's `base:allocation` reports it: extents
   * (bytes, NBD_STATE_* flags) covering [offset, offset + n) for some 0 < n <= length (one request of at
   * most `blockStatusBytesMax`; a server may answer for less, so the caller asks again from the end). The
   * last extent is cut at the end of the request (a server may report past it). Without the context (a
   * server that does not offer it, or `blockStatus: false`) the whole range is reported as data (flags 0).
   */
  async blockStatus(offset: number, length: number): Promise<BlockStatusExtent[]> {
    checkRange(this.size, offset, length, 'block status');
    if (length === 0) return [];
    if (this.baseAllocationId === undefined) return [{ length, flags: 0 }];
    const n = Math.min(length, blockStatusBytesMax);
    return (await this.request(CMD_BLOCK_STATUS, 0, offset, n)) as BlockStatusExtent[];
  }

  /** `blockStatus` as the BlockDevice contract has it: holes and zeros from the NBD_STATE_* flags. */
  async extents(offset: number, length: number): Promise<Extent[]> {
    const out: Extent[] = [];
    for (const x of await this.blockStatus(offset, length)) {
      const hole = (x.flags & NBD_STATE_HOLE) !== 0;
      const zero = (x.flags & NBD_STATE_ZERO) !== 0;
      const last = out[out.length - 1];
      if (last && last.hole === hole && last.zero === zero) last.length += x.length;
      else out.push({ length: x.length, hole, zero });
    }
    return out;
  }

  async writeAt(offset: number, bytes: Uint8Array, opts: { fua?: boolean } = {}): Promise<void> {
    checkRange(this.size, offset, bytes.length, 'write');
    const parts: Promise<unknown>[] = [];
    for (let p = 0; p < bytes.length; p += requestBytesMax) {
      const n = Math.min(requestBytesMax, bytes.length - p);
      parts.push(this.request(1, opts.fua ? 1 : 0, offset + p, n, bytes.subarray(p, p + n)));
    }
    await Promise.all(parts);
  }

  async flush(): Promise<void> {
    await this.request(3, 0, 0, 0);
  }

  async trim(offset: number, length: number): Promise<void> {
    checkRange(this.size, offset, length, 'trim');
    // one request of 4 GiB or more failed with Buffer's 'The value of "value" is out of range'
    const parts: Promise<unknown>[] = [this.request(4, 0, offset, Math.min(length, trimBytesMax))];
    for (let p = trimBytesMax; p < length; p += trimBytesMax)
      parts.push(this.request(4, 0, offset + p, Math.min(trimBytesMax, length - p)));
    await Promise.all(parts);
  }

  /** Drops the connection at once (as if this process died): requests in flight and later ones fail. */
  destroy(): void {
    this.broken ??= new NbdClientError('the connection was destroyed');
    this.sock.destroy();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.broken) {
      this.closed = true;
      return;
    }
    // let requests in flight finish (they settle on reply or when the connection drops), for a while: a
    // server that stopped answering held close, and `strata nbd mount` stopping, forever
    const due = performance.now() + this.closeTimeoutMs;
    while (this.pending.size > 0 && !this.broken && performance.now() < due)
      await new Promise((r) => setTimeout(r, 1));
    if (this.closed) return;
    this.closed = true;
    if (this.broken) return;
    if (this.pending.size > 0)
      return this.breakWith(
        new NbdClientError(
          `closed with ${this.pending.size} requests unanswered after ${this.closeTimeoutMs} ms`,
        ),
      );
    const h = Buffer.alloc(28);
    h.writeUInt32BE(REQUEST_MAGIC, 0);
    h.writeUInt16BE(2, 6); // DISC
    this.sock.end(h);
  }
}

/**
 * A BLOCK_STATUS chunk's descriptors (after its context id) for a request of `length` bytes: each at least
 * a byte, those before the last short of the request's end; the last is cut at it (doc/proto.md lets the
 * final extent run past the request when the server knows that much anyway).
 */
function parseExtents(
  b: Buffer,
  length: number,
  bad: (field: string, why: string) => Error,
): BlockStatusExtent[] {
  const n = (b.length - 4) / 8;
  const out: BlockStatusExtent[] = [];
  let sum = 0;
  for (let i = 0; i < n; i++) {
    if (sum >= length)
      throw bad(`extent ${i}`, `starts at +${sum}, past the BLOCK_STATUS request's ${length} bytes`);
    const len = b.readUInt32BE(4 + 8 * i);
    if (len === 0) throw bad(`extent ${i} length`, '0 (an extent is at least 1 byte)');
    out.push({ length: Math.min(len, length - sum), flags: b.readUInt32BE(8 + 8 * i) });
    sum += len;
  }
  return out;
}

/**
 * A structured READ's content chunks as the request's bytes, in order: they must cover it exactly, without
 * overlap (doc/proto.md; a server claiming success without all of the data is inconsistent).
 */
function assemble(
  pieces: { at: number; parts: Buffer[]; length: number }[],
  length: number,
  bad: (field: string, why: string) => Error,
): Buffer[] {
  if (pieces.length === 1 && pieces[0]!.length === length) return pieces[0]!.parts;
  pieces.sort((a, b) => a.at - b.at);
  const out: Buffer[] = [];
  let p = 0;
  for (const x of pieces) {
    if (x.at !== p)
      throw bad(
        'offset',
        x.at < p ? `+${x.at} overlaps an earlier chunk` : `leaves [+${p}, +${x.at}) of the READ unsent`,
      );
    out.push(...x.parts);
    p += x.length;
  }
  if (p !== length) throw bad('flags', `DONE with ${p} of the READ's ${length} bytes sent`);
  return out;
}
