/**
 * An NBD server (protocol: NetworkBlockDevice/nbd, doc/proto.md): fixed newstyle handshake; options
 * EXPORT_NAME, ABORT, LIST, INFO, GO, STRUCTURED_REPLY, LIST_META_CONTEXT / SET_META_CONTEXT
 * (base:allocation); commands READ, WRITE (+FUA), DISC, FLUSH, TRIM, WRITE_ZEROES, CACHE, BLOCK_STATUS.
 * Several exports and several connections per export (multi-conn is advertised: every connection sees
 * every completed write, and FLUSH on one covers writes completed on any). Read-only exports answer writes
 * with EPERM. Malformed requests get the protocol's error; a broken framing (bad magic, oversized length)
 * closes that connection only. A client that shuts down its side of the socket without DISC has the
 * requests it sent before carried out and answered, as after DISC, before the server closes.
 */
import { createServer, type Server, Socket } from 'node:net';
import { checkTimerMs, listenOn } from '@strata/cli';
import {
  type BlockDevice,
  drainOrClose,
  type Extent,
  SmallReads,
  sendProgress,
  takeChunks,
} from './device.js';

const NBDMAGIC = 0x4e42444d41474943n;
const IHAVEOPT = 0x49484156454f5054n;
const REPLY_MAGIC = 0x3e889045565a9n;
const REQUEST_MAGIC = 0x25609513;
const SIMPLE_REPLY_MAGIC = 0x67446698;
const STRUCTURED_REPLY_MAGIC = 0x668e33ef;

const FLAG_FIXED_NEWSTYLE = 1;
const FLAG_NO_ZEROES = 2;

export const Opt = {
  EXPORT_NAME: 1,
  ABORT: 2,
  LIST: 3,
  STARTTLS: 5,
  INFO: 6,
  GO: 7,
  STRUCTURED_REPLY: 8,
  LIST_META_CONTEXT: 9,
  SET_META_CONTEXT: 10,
} as const;
const REP_ACK = 1;
const REP_SERVER = 2;
const REP_INFO = 3;
const REP_META_CONTEXT = 4;
const REP_ERR_UNSUP = 0x80000001;
const REP_ERR_POLICY = 0x80000002;
const REP_ERR_INVALID = 0x80000003;
const REP_ERR_UNKNOWN = 0x80000006;
const INFO_EXPORT = 0;
const INFO_NAME = 1;
const INFO_DESCRIPTION = 2;
const INFO_BLOCK_SIZE = 3;

const TF_HAS_FLAGS = 1 << 0;
const TF_READ_ONLY = 1 << 1;
const TF_SEND_FLUSH = 1 << 2;
const TF_SEND_FUA = 1 << 3;
const TF_SEND_TRIM = 1 << 5;
const TF_SEND_WRITE_ZEROES = 1 << 6;
const TF_SEND_DF = 1 << 7;
const TF_CAN_MULTI_CONN = 1 << 8;
const TF_SEND_CACHE = 1 << 10;

export const Cmd = {
  READ: 0,
  WRITE: 1,
  DISC: 2,
  FLUSH: 3,
  TRIM: 4,
  CACHE: 5,
  WRITE_ZEROES: 6,
  BLOCK_STATUS: 7,
} as const;
const CMD_FLAG_FUA = 1 << 0;
const CMD_FLAG_NO_HOLE = 1 << 1;
const CMD_FLAG_REQ_ONE = 1 << 3;

const REPLY_FLAG_DONE = 1;
const REPLY_TYPE_NONE = 0;
const REPLY_TYPE_OFFSET_DATA = 1;
const REPLY_TYPE_BLOCK_STATUS = 5;
const REPLY_TYPE_ERROR = (1 << 15) + 1;

export const Err = {
  EPERM: 1,
  EIO: 5,
  ENOMEM: 12,
  EINVAL: 22,
  ENOSPC: 28,
  EOVERFLOW: 75,
  ENOTSUP: 95,
  ESHUTDOWN: 108,
} as const;

/** Largest option payload accepted during the handshake. */
const optionBytesMax = 64 * 1024;
/**
 * Option replies a connection may have queued in its socket before it reads the next option: a client that
 * sent options and never read the replies made the server queue them all until its handshake timed out (a
 * LIST of 16 bytes is answered with up to 4 KiB per export: 20,000 of them queued 83 MB).
 */
const optionReplyBytesQueuedMax = 1024 * 1024;
/** Largest READ or WRITE payload (32 MiB, as common servers use). */
export const requestBytesMax = 32 * 1024 * 1024;
/** Bytes of a connection's buffered, unparsed input beyond one request. */
const inputBytesMax = requestBytesMax + 64 * 1024;
/** Requests of one connection in flight at once (the rest wait in the socket: backpressure). */
const inflightMax = 64;
/**
 * Bytes a connection may hold for its client before it takes another request: replies queued in its socket,
 * the data of the READs in flight and the payloads of the WRITEs in flight (one request is always taken
 * when the connection holds nothing). A client that sent READs and never read the replies made the server
 * buffer them all (4,000 READs of 1 MiB: 4 GiB), and 64 READs of 32 MiB in flight were 2 GiB on top.
 */
const replyBytesQueuedMax = 2 * requestBytesMax;
/** READ buffers kept for reuse per connection (see `transmission`), in bytes. */
const spareBytesMax = 16 * 2 ** 20;
const BASE_ALLOCATION_ID = 1;
/** base:allocation's flags: unallocated; reads as zeros. */
const STATE_HOLE = 1;
const STATE_ZERO = 2;

export interface Export {
  name: string;
  device: BlockDevice;
  readOnly?: boolean;
  description?: string;
}

export interface NbdStats {
  connections: number;
  /** Connections whose socket reads into the reader's recycled pages (see `adoptWithPages`). */
  pagedConnections: number;
  /** Times a connection stopped reading because its buffered input reached `inputBytesMax`. */
  readStalls: number;
  requests: number;
  errors: number;
  protocolErrors: number;
  /** Event-loop turns spent polling for the next request (`pollUs`). */
  pollTurns: number;
  /** Connections closed because their handshake took longer than `handshakeTimeoutMs`. */
  handshakeTimeouts: number;
  /** Closing connections dropped because their replies did not move for `drainTimeoutMs`. */
  drainTimeouts: number;
  /** Open connections dropped because their replies did not move for `sendTimeoutMs`. */
  sendTimeouts: number;
  /**
   * Connections refused because `maxConnections` were open: each is answered in the handshake
   * (`refusalsAnswered`) or, past `refusalsOpenMax` refusals under way, closed at its accept.
   */
  refusedConnections: number;
  /** Refused connections whose first option got its reply (NBD_REP_ERR_POLICY; an ABORT its ACK). */
  refusalsAnswered: number;
  /** Refused connections dropped at `refusalTimeoutMs` (no option sent, or not closed after the reply). */
  refusalTimeouts: number;
}

export interface NbdServerOptions {
  /**
   * The most microseconds the server keeps polling its sockets for the next request after a request or a
   * reply, instead of sleeping (default 200; 0: never poll). On a VM whose idle vCPU takes tens of
   * microseconds to wake, this cuts a sequential client's per-request latency. The window adapts to the
   * traffic, after QEMU's adaptive polling of its event loops (poll-max-ns): it grows to twice the gaps
   * seen between a reply and the next request, up to this bound, and drops to 0 after a gap beyond it, so
   * a client that answers at once finds the server awake while sparse traffic costs no polling at all.
   */
  pollUs?: number;
  /**
   * Milliseconds a connection may take from its accept to the end of its handshake (default 10,000, as
   * qemu-nbd's --handshake-limit); past them it is closed. A client that connected and said nothing held
   * its connection, and a slot of `sockets`, for as long as it stayed connected.
   */
  handshakeTimeoutMs?: number;
  /**
   * Milliseconds a closing connection (the client sent DISC, or shut down its side of the socket) may go
   * with replies waiting in its socket and none of them leaving (default 10,000); past them it is dropped.
   * Until then it is served to the end: every request received gets its reply, however slowly the client
   * reads them; a client that stops reading cannot hold its half-open connection forever.
   */
  drainTimeoutMs?: number;
  /**
   * Milliseconds an open connection may go with replies waiting in its socket and none of them leaving
   * (default 30,000); past them it is dropped, and every request it had in flight ends with it. A client
   * that sent READs and stopped reading its replies held its connection, its requests' memory (up to
   * `replyBytesQueuedMax`) and a slot of `maxConnections` for as long as it stayed connected. A client
   * that reads, however slowly, is never dropped (the kernel taking bytes counts, see `drainTimeoutMs`).
   */
  sendTimeoutMs?: number;
  /**
   * Connections open at once, handshakes included (default 64). One more gets the greeting, and its first
   * option an NBD_REP_ERR_POLICY reply saying so, then it is closed; it holds no slot, and
   * is counted in `stats.refusedConnections`. Each connection may hold up to 64 MiB of replies and requests
   * in flight and 32 MiB of input, so the default bounds a server's buffers at about 6 GiB; nbdcopy opens
   * up to 4 connections, a migration 2.
   */
  maxConnections?: number;
  /**
   * Milliseconds a refused connection (see `maxConnections`) may take from its accept to its close
   * (default 2,000): a client that never sends its first option, or never reads the reply, is dropped then.
   */
  refusalTimeoutMs?: number;
}

/** Default `pollUs`. */
export const defaultPollUs = 200;
/** Default `handshakeTimeoutMs`. */
export const defaultNbdHandshakeTimeoutMs = 10_000;
/** Default `drainTimeoutMs`. */
export const defaultNbdDrainTimeoutMs = 10_000;
/** Default `sendTimeoutMs`. */
export const defaultNbdSendTimeoutMs = 30_000;
/** Default `maxConnections`. */
export const defaultNbdConnectionsMax = 64;
/** Default `refusalTimeoutMs`. */
export const defaultNbdRefusalTimeoutMs = 2_000;
/**
 * Refused connections being answered at once (each holds a socket for up to `refusalTimeoutMs` and no
 * buffer); past this a refused connection is closed at its accept, without a word, as before 2026-12-07.
 */
const refusalsOpenMax = 64;
/** Options a refused connection gets an error reply to before it is closed (see `refuse`). */
const refusalOptionsMax = 16;

class ProtocolError extends Error {}
/** The connection ended before the bytes asked for (the client's FIN, a reset, a close). */
class ConnectionEnded extends ProtocolError {
  constructor() {
    super('connection closed');
  }
}

/** Bytes of one receive page (see `Reader`): the socket reads into pages, the reader hands out views. */
const pageBytes = 256 * 1024;
/** A page with less room than this left is retired and the next read goes into a fresh page. */
const pageReadBytesMin = 16 * 1024;
/**
 * Released pages kept for reuse per connection (4 MiB; the rest are left to the garbage collector). In a
 * side-by-side run 4, 16 and 193 (all a connection can hold) cost the same CPU per GiB written.
 */
const pagesFreeMax = 16;

interface Page {
  buf: Buffer;
  /** Bytes received into the page and not yet released. */
  held: number;
}

/**
 * Buffers a socket's bytes and hands out exact-length reads.
 *
 * With paged reads (see `adoptWithPages`), the socket reads straight into recycled receive pages instead of
 * a new buffer per read: the reader hands out views of the pages, and `release` gives the bytes of views
 * the caller is done with back, so a page is reused once all its bytes are released. Bytes never
 * released are only a missed reuse (the page is left to the garbage collector), never a hazard.
 */
class Reader {
  private chunks: Buffer[] = [];
  private have = 0;
  /** Keeps a byte-at-a-time client from costing a Buffer object a byte (see `SmallReads`). */
  private readonly small = new SmallReads();
  private paged = false;
  private waiting?: { n: number; resolve: () => void; reject: (e: Error) => void };
  private ended?: ConnectionEnded;
  /** The client shut down its side (FIN): what it sent before is all there will be. */
  finReceived = false;
  private stalled = false;
  private readonly pageOf = new WeakMap<ArrayBuffer, Page>();
  private free: Page[] = [];
  private cur?: Page;
  private fill = 0;
  private socket?: Socket;
  /** Restarts reading after `received` stopped it (paged reads); else the socket is resumed. */
  resumeReads?: () => void;
  /** Called each time reading stops because the buffered input reached `inputBytesMax`. */
  onStall?: () => void;

  /** Takes the socket's bytes: its 'data' events, or (`paged`) what its `onread` hands to `received`. */
  attach(socket: Socket, paged = false): this {
    this.socket = socket;
    this.paged = paged;
    if (!paged)
      socket.on('data', (c: Buffer) => {
        this.push(c);
        if (this.stalled) socket.pause();
      });
    const end = () => {
      this.ended ??= new ConnectionEnded();
      this.pump();
    };
    socket.on('end', () => {
      this.finReceived = true;
      end();
    });
    socket.on('close', end);
    socket.on('error', end);
    return this;
  }

  /** Where the socket's next read goes (paged reads): the rest of the current page, or a fresh one. */
  nextTarget(): Uint8Array {
    let p = this.cur;
    if (!p || pageBytes - this.fill < pageReadBytesMin) {
      if (p) {
        this.cur = undefined;
        this.recycle(p);
      }
      p = this.free.pop();
      if (!p) {
        p = { buf: Buffer.allocUnsafeSlow(pageBytes), held: 0 };
        this.pageOf.set(p.buf.buffer as ArrayBuffer, p);
      }
      this.cur = p;
      this.fill = 0;
    }
    return p.buf.subarray(this.fill);
  }

  /** Keeps a page for reuse once all its bytes are released and the socket no longer reads into it. */
  private recycle(p: Page): void {
    if (p.held === 0 && p !== this.cur && this.free.length < pagesFreeMax) this.free.push(p);
  }

  /** `n` bytes were read into `buf` (the last `nextTarget`); false asks the socket to stop reading. */
  received(n: number, buf: Uint8Array): boolean {
    const p = this.cur!;
    this.fill += n;
    p.held += n;
    this.push(Buffer.from(buf.buffer, buf.byteOffset, n));
    return !this.stalled;
  }

  /** Gives back the bytes of views handed out by this reader (other buffers are ignored). */
  release(parts: Uint8Array[]): void {
    for (const v of parts) {
      const p = this.pageOf.get(v.buffer as ArrayBuffer);
      if (!p) continue;
      p.held -= v.length;
      if (p.held < 0) throw new Error('NBD reader: more bytes released than received (a bug)');
      this.recycle(p);
    }
  }

  /** Queues received bytes; past `inputBytesMax` it marks the reader stalled (the caller stops reading). */
  private push(c: Buffer): void {
    // reads into pages continue each other in memory: merged, never copied
    this.small.append(this.chunks, c, !this.paged);
    this.have += c.length;
    if (this.have > inputBytesMax && !this.stalled) {
      this.stalled = true;
      this.onStall?.();
    }
    this.pump();
  }

  private pump(): void {
    const w = this.waiting;
    if (!w) return;
    if (this.have >= w.n) {
      this.waiting = undefined;
      w.resolve();
    } else if (this.ended) {
      this.waiting = undefined;
      w.reject(this.ended);
    }
  }

  private afterTake(n: number): void {
    this.have -= n;
    if (this.stalled && this.have <= inputBytesMax) {
      this.stalled = false;
      if (this.resumeReads) this.resumeReads();
      else this.socket?.resume();
    }
  }

  /** The next n bytes as one buffer (a view when they lie in one chunk, else a copy: release it either way). */
  private take(n: number): Buffer {
    const parts = this.takeParts(n);
    if (parts.length === 1) return parts[0]!;
    const out = Buffer.concat(parts, n);
    this.release(parts);
    return out;
  }

  /** The next n bytes as views of the received chunks: no copy. */
  private takeParts(n: number): Buffer[] {
    const out = takeChunks(this.chunks, n);
    this.afterTake(n);
    return out;
  }

  private wait(n: number): Promise<void> {
    if (this.ended) return Promise.reject(this.ended);
    return new Promise((resolve, reject) => {
      this.waiting = { n, resolve, reject };
    });
  }

  read(n: number): Promise<Buffer> {
    if (this.have >= n) return Promise.resolve(this.take(n));
    return this.wait(n).then(() => this.take(n));
  }

  readParts(n: number): Promise<Buffer[]> {
    if (this.have >= n) return Promise.resolve(this.takeParts(n));
    return this.wait(n).then(() => this.takeParts(n));
  }
}

/** What `adoptWithPages` needs of an accepted socket: Node's internal libuv handle (see there). */
interface StreamHandle {
  useUserBuffer(buf: Uint8Array): void;
  readStart(): number;
  reading: boolean;
}

/**
 * Re-wraps an accepted, paused socket so that it reads into the reader's pages (`onread`): Node offers
 * `onread` only to sockets it creates, and otherwise allocates a new 64 KiB buffer per read, whose
 * garbage collection is most of the cost of receiving WRITE payloads. This uses Node internals (the
 * accepted socket's `_handle`, and the `handle` option of the Socket constructor, as Node's own
 * `net.Server` does), so it is guarded: when the handle is missing or does not look as expected, or
 * `STRATA_NBD_PAGED_READS=0`, the caller keeps the plain socket.
 */
function adoptWithPages(s: Socket): { socket: Socket; reader: Reader } | undefined {
  if (process.env.STRATA_NBD_PAGED_READS === '0') return undefined;
  const h = (s as unknown as { _handle?: Partial<StreamHandle> | null })._handle;
  if (!h || typeof h.useUserBuffer !== 'function' || typeof h.readStart !== 'function' || h.reading)
    return undefined;
  const handle = h as StreamHandle;
  const reader = new Reader();
  reader.resumeReads = () => {
    if (handle.reading) return;
    handle.reading = true;
    handle.readStart();
  };
  const onread = {
    buffer: () => reader.nextTarget(),
    callback: (n: number, buf: Uint8Array) => reader.received(n, buf),
  };
  let socket: Socket;
  try {
    socket = new Socket({
      handle,
      onread,
      readable: true,
      writable: true,
      // the client's FIN leaves our side open: the replies to what it sent before still go out
      allowHalfOpen: true,
    } as unknown as ConstructorParameters<typeof Socket>[0]);
  } catch {
    return undefined;
  }
  if ((socket as unknown as { _handle?: unknown })._handle !== handle) return undefined;
  reader.attach(socket, true);
  // the accepted socket counts as the server's connection: end it with ours (its handle is already closed)
  socket.once('close', () => s.destroy());
  return { socket, reader };
}

export class NbdServer {
  private readonly exports = new Map<string, Export>();
  private server?: Server;
  private readonly sockets = new Set<Socket>();
  readonly stats: NbdStats = {
    connections: 0,
    pagedConnections: 0,
    readStalls: 0,
    requests: 0,
    errors: 0,
    protocolErrors: 0,
    pollTurns: 0,
    handshakeTimeouts: 0,
    drainTimeouts: 0,
    sendTimeouts: 0,
    refusedConnections: 0,
    refusalsAnswered: 0,
    refusalTimeouts: 0,
  };
  /** Refused connections being answered (see `refuse`); not counted against `maxConnections`. */
  private readonly refusing = new Set<Socket>();
  private readonly refusalTimeoutMs: number;
  private readonly handshakeTimeoutMs: number;
  private readonly drainTimeoutMs: number;
  private readonly sendTimeoutMs: number;
  private readonly connectionsMax: number;
  /** `pollUs` in ms: the most the window may grow to. */
  private readonly pollMaxMs: number;
  /** The current polling window (adaptive, see `pollUs`). */
  private pollWindowMs = 0;
  /** When the last request or reply started the polling window. */
  private lastActivity = 0;
  /** When the last reply left (0: none since the last request). */
  private lastReply = 0;
  private polling = false;
  private closed = false;

  constructor(exports: Export[], o: NbdServerOptions = {}) {
    for (const e of exports) this.exports.set(e.name, e);
    this.handshakeTimeoutMs = o.handshakeTimeoutMs ?? defaultNbdHandshakeTimeoutMs;
    this.drainTimeoutMs = o.drainTimeoutMs ?? defaultNbdDrainTimeoutMs;
    checkTimerMs('NBD drainTimeoutMs', this.drainTimeoutMs, 1);
    this.sendTimeoutMs = o.sendTimeoutMs ?? defaultNbdSendTimeoutMs;
    checkTimerMs('NBD sendTimeoutMs', this.sendTimeoutMs, 1);
    this.refusalTimeoutMs = o.refusalTimeoutMs ?? defaultNbdRefusalTimeoutMs;
    checkTimerMs('NBD refusalTimeoutMs', this.refusalTimeoutMs, 1);
    this.connectionsMax = o.maxConnections ?? defaultNbdConnectionsMax;
    if (!Number.isSafeInteger(this.connectionsMax) || this.connectionsMax < 1)
      throw new RangeError(`NBD maxConnections: expected a whole number >= 1, got ${this.connectionsMax}`);
    const us = o.pollUs ?? defaultPollUs;
    if (!Number.isFinite(us) || us < 0 || us > 1_000_000)
      throw new RangeError(`pollUs: expected 0 to 1,000,000 microseconds, got ${us}`);
    this.pollMaxMs = us / 1000;
  }

  /** A request arrived: adapt the polling window to the gap since the last reply, then poll through it. */
  private requestArrived(): void {
    if (this.pollMaxMs === 0) return;
    const now = performance.now();
    if (this.lastReply > 0) {
      const gap = now - this.lastReply;
      this.lastReply = 0;
      // beyond reach: stop polling; within reach: cover it (twice the gap) next time
      if (gap > this.pollMaxMs) this.pollWindowMs = 0;
      else if (2 * gap > this.pollWindowMs) this.pollWindowMs = Math.min(this.pollMaxMs, 2 * gap);
    }
    this.keepPolling(now);
  }

  /** A reply left: poll for the next request (it comes a round trip after this). */
  private replied(): void {
    if (this.pollMaxMs === 0) return;
    const now = performance.now();
    this.lastReply = now;
    this.keepPolling(now);
  }

  /**
   * Keeps the event loop polling (setImmediate turns poll without sleeping) until the polling window has
   * passed since the last request or reply.
   */
  private keepPolling(now: number): void {
    this.lastActivity = now;
    if (this.polling || this.pollWindowMs === 0) return;
    this.polling = true;
    const turn = () => {
      if (!this.closed && performance.now() - this.lastActivity < this.pollWindowMs) {
        this.stats.pollTurns++;
        setImmediate(turn);
      } else this.polling = false;
    };
    setImmediate(turn);
  }

  /** Listens on host:port (port 0 picks one); resolves with the port. */
  listen(port: number, host = '127.0.0.1'): Promise<number> {
    // paused, so that a connection can be re-wrapped to read into pages before anything is read; half
    // open, so that the client's FIN does not end our side before the replies to what it sent are out
    this.server = createServer({ pauseOnConnect: true, allowHalfOpen: true }, (s) => {
      // past the cap: told so in the handshake, without taking a slot (see `refuse`)
      if (this.sockets.size >= this.connectionsMax || this.closed) {
        this.stats.refusedConnections++;
        if (this.refusing.size >= refusalsOpenMax || this.closed) s.destroy();
        else this.refuse(s);
        return;
      }
      const paged = adoptWithPages(s);
      if (paged) {
        this.stats.pagedConnections++;
        void this.handle(paged.socket, paged.reader);
      } else {
        s.resume();
        void this.handle(s);
      }
    });
    return listenOn(this.server, port, host);
  }

  /**
   * Answers a connection refused because `maxConnections` are open: the greeting, then an error reply to
   * each option the client sends (up to `refusalOptionsMax`, or up to its GO), then the close. doc/proto.md, "Option reply
   * types": NBD_REP_ERR_POLICY is an option "known by this server and syntactically valid, but server-side
   * policy forbids the server to allow the option", which is what a connection cap is; NBD_REP_ERR_SHUTDOWN
   * ("unwilling to continue negotiation as it is in the process of being shut down") would tell the client
   * the server is going away, which it is not. NBD_OPT_EXPORT_NAME cannot be answered with an error
   * ("Option types": the server terminates the session), so it gets the close alone; NBD_OPT_ABORT gets its
   * ACK and the close. Until 2026-12-07 the socket was closed at its accept, and a client saw the stream end
   * where NBDMAGIC should be, with no reason given. No option data is kept, and the whole exchange is bounded
   * by `refusalTimeoutMs` from the accept: a client that never sends its option holds no slot, and its
   * socket no longer than that.
   */
  private refuse(s: Socket): void {
    this.refusing.add(s);
    const due = setTimeout(() => {
      this.stats.refusalTimeouts++;
      s.destroy();
    }, this.refusalTimeoutMs);
    s.once('close', () => {
      clearTimeout(due);
      this.refusing.delete(s);
    });
    s.on('error', () => undefined);
    const hello = Buffer.alloc(18);
    hello.writeBigUInt64BE(NBDMAGIC, 0);
    hello.writeBigUInt64BE(IHAVEOPT, 8);
    hello.writeUInt16BE(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES, 16);
    s.write(hello);
    // the client's flags, then each option's header (at most 16 bytes kept); an option's data is dropped
    const head = Buffer.alloc(16);
    let have = 0;
    let want = 4;
    let skip = 0;
    let options = 0;
    const answer = (opt: number, type: number, text: string) => {
      const body = Buffer.from(text, 'utf8');
      const r = Buffer.alloc(20);
      r.writeBigUInt64BE(REPLY_MAGIC, 0);
      r.writeUInt32BE(opt, 8);
      r.writeUInt32BE(type, 12);
      r.writeUInt32BE(body.length, 16);
      return Buffer.concat([r, body]);
    };
    s.on('data', (c: Buffer) => {
      for (let at = 0; at < c.length && !s.destroyed && s.writable; ) {
        if (skip > 0) {
          const n = Math.min(skip, c.length - at);
          skip -= n;
          at += n;
          continue;
        }
        const n = Math.min(want - have, c.length - at);
        c.copy(head, have, at, at + n);
        have += n;
        at += n;
        if (have < want) return;
        have = 0;
        if (want === 4) {
          if (!(head.readUInt32BE(0) & FLAG_FIXED_NEWSTYLE)) s.destroy();
          want = 16;
          continue;
        }
        const opt = head.readUInt32BE(8);
        skip = head.readUInt32BE(12);
        if (head.readBigUInt64BE(0) !== IHAVEOPT || opt === Opt.EXPORT_NAME || skip > optionBytesMax) {
          s.destroy();
          return;
        }
        if (opt === Opt.ABORT) {
          s.end(answer(opt, REP_ACK, ''));
          return;
        }
        if (options++ === 0) this.stats.refusalsAnswered++;
        const reply = answer(
          opt,
          REP_ERR_POLICY,
          `too many connections: ${this.connectionsMax} are open (the server's maxConnections); try again later`,
        );
        // a client may try other options before it gives up (libnbd goes on to GO after a refused
        // STRUCTURED_REPLY, and reports GO's error): each gets the refusal, up to refusalOptionsMax; GO,
        // the last step of a handshake, ends it
        if (opt === Opt.GO || options >= refusalOptionsMax) s.end(reply);
        else s.write(reply);
      }
    });
    s.once('end', () => s.destroy());
    s.resume();
  }

  /** Connections open now (handshakes included). */
  get connectionsOpen(): number {
    return this.sockets.size;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const s of this.sockets) s.destroy();
    for (const s of this.refusing) s.destroy();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }

  /** Serves one connection; never throws (a protocol violation closes this connection only). */
  async handle(socket: Socket, reader = new Reader().attach(socket)): Promise<void> {
    this.sockets.add(socket);
    this.stats.connections++;
    socket.setNoDelay(true);
    reader.onStall = () => this.stats.readStalls++;
    const limit = setTimeout(() => {
      this.stats.handshakeTimeouts++;
      socket.destroy();
    }, this.handshakeTimeoutMs);
    // its replies must keep moving: within sendTimeoutMs, and from the client's FIN (or its DISC) on within
    // drainTimeoutMs
    const watch = this.watchReplies(socket);
    const closing = () => watch.closing();
    socket.once('end', closing);
    try {
      let ex: Awaited<ReturnType<NbdServer['handshake']>>;
      try {
        ex = await this.handshake(socket, reader);
      } finally {
        clearTimeout(limit);
      }
      if (ex) {
        await this.transmission(socket, reader, ex.export, ex.structured, ex.allocation);
        watch.closing();
        // the replies to the requests before DISC or the FIN are still queued: destroying the socket now
        // would drop them
        if (!socket.destroyed)
          await new Promise<void>((res) => {
            socket.once('close', res);
            socket.end(res);
          });
        // then the device's flush, the client's replies and our end of the socket out: a client that waits
        // for the server to close after DISC (libnbd's shutdown, so nbdcopy) waited for the disk too, 0.1-0.2 s
        // for 256 MiB written here (until 2026-12-06 the socket ended at the client's FIN, before the flush)
        await ex.export.device.flush().catch(() => undefined);
      }
    } catch (e) {
      if (e instanceof ProtocolError && !(e instanceof ConnectionEnded)) this.stats.protocolErrors++;
    } finally {
      watch.stop();
      socket.off('end', closing);
      this.sockets.delete(socket);
      socket.destroy();
    }
  }

  /**
   * Drops `socket` once it has gone `sendTimeoutMs` (from `closing()` on, `drainTimeoutMs`) with replies
   * waiting and none of them leaving (`sendProgress`); `stop` ends the watch.
   */
  private watchReplies(socket: Socket): { closing: () => void; stop: () => void } {
    const sent = sendProgress(socket);
    let closing = false;
    let movedMs = performance.now();
    const t = setInterval(
      () => {
        const now = performance.now();
        // sent() first: it keeps its own last values
        if (sent() || socket.writableLength === 0) movedMs = now;
        else if (now - movedMs > (closing ? this.drainTimeoutMs : this.sendTimeoutMs)) {
          if (closing) this.stats.drainTimeouts++;
          else this.stats.sendTimeouts++;
          clearInterval(t);
          socket.destroy();
        }
      },
      Math.max(10, Math.min(1_000, this.drainTimeoutMs / 4, this.sendTimeoutMs / 4)),
    );
    t.unref();
    return {
      closing: () => {
        closing = true;
      },
      stop: () => clearInterval(t),
    };
  }

  private transmissionFlags(e: Export): number {
    let f = TF_HAS_FLAGS | TF_SEND_FLUSH | TF_SEND_FUA | TF_SEND_DF | TF_CAN_MULTI_CONN | TF_SEND_CACHE;
    if (e.readOnly) f |= TF_READ_ONLY;
    else f |= TF_SEND_TRIM | TF_SEND_WRITE_ZEROES;
    return f;
  }

  private async handshake(
    socket: Socket,
    r: Reader,
  ): Promise<{ export: Export; structured: boolean; allocation: boolean } | undefined> {
    const hello = Buffer.alloc(18);
    hello.writeBigUInt64BE(NBDMAGIC, 0);
    hello.writeBigUInt64BE(IHAVEOPT, 8);
    hello.writeUInt16BE(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES, 16);
    socket.write(hello);
    const clientFlags = (await r.read(4)).readUInt32BE(0);
    if (!(clientFlags & FLAG_FIXED_NEWSTYLE)) throw new ProtocolError('client does not speak fixed newstyle');
    const noZeroes = (clientFlags & FLAG_NO_ZEROES) !== 0;
    let structured = false;
    /**
     * The export whose `base:allocation` context the last SET_META_CONTEXT selected (each one replaces the
     * selection before it); BLOCK_STATUS is answered only on that export.
     */
    let allocationFor: string | undefined;
    for (;;) {
      // 'drain' comes: what is queued is past the socket's high-water mark (and the handshake is bounded)
      while (socket.writableLength > optionReplyBytesQueuedMax && !socket.destroyed)
        await drainOrClose(socket);
      const h = await r.read(16);
      if (h.readBigUInt64BE(0) !== IHAVEOPT) throw new ProtocolError('bad option magic');
      const opt = h.readUInt32BE(8);
      const len = h.readUInt32BE(12);
      if (len > optionBytesMax) throw new ProtocolError(`option ${opt} of ${len} bytes is too long`);
      const data = len ? await r.read(len) : Buffer.alloc(0);
      const reply = (type: number, payload: Buffer = Buffer.alloc(0)) => {
        const b = Buffer.alloc(20);
        b.writeBigUInt64BE(REPLY_MAGIC, 0);
        b.writeUInt32BE(opt, 8);
        b.writeUInt32BE(type, 12);
        b.writeUInt32BE(payload.length, 16);
        socket.write(Buffer.concat([b, payload]));
      };
      const errText = (type: number, msg: string) => reply(type, Buffer.from(msg, 'utf8'));
      switch (opt) {
        case Opt.EXPORT_NAME: {
          const e = this.exports.get(data.toString('utf8'));
          if (!e) throw new ProtocolError(`unknown export '${data.toString('utf8')}'`); // the protocol's answer: close
          const b = Buffer.alloc(noZeroes ? 10 : 134);
          b.writeBigUInt64BE(BigInt(e.device.size), 0);
          b.writeUInt16BE(this.transmissionFlags(e), 8);
          socket.write(b);
          return { export: e, structured, allocation: structured && allocationFor === e.name };
        }
        case Opt.ABORT:
          if (len === 0) reply(REP_ACK);
          return undefined;
        case Opt.LIST: {
          if (len !== 0) {
            errText(REP_ERR_INVALID, 'LIST takes no data');
            break;
          }
          for (const e of this.exports.values()) {
            const name = Buffer.from(e.name, 'utf8');
            const p = Buffer.alloc(4 + name.length);
            p.writeUInt32BE(name.length, 0);
            name.copy(p, 4);
            reply(REP_SERVER, Buffer.concat([p, Buffer.from(e.description ?? '', 'utf8')]));
          }
          reply(REP_ACK);
          break;
        }
        case Opt.STARTTLS:
          errText(REP_ERR_POLICY, 'TLS is not offered; use a loopback address or a tunnel');
          break;
        case Opt.STRUCTURED_REPLY:
          if (len !== 0) errText(REP_ERR_INVALID, 'STRUCTURED_REPLY takes no data');
          else {
            structured = true;
            reply(REP_ACK);
          }
          break;
        case Opt.LIST_META_CONTEXT:
        case Opt.SET_META_CONTEXT: {
          const parsed = parseMetaRequest(data);
          if (!parsed) {
            errText(REP_ERR_INVALID, 'malformed meta context request');
            break;
          }
          if (!structured) {
            errText(REP_ERR_INVALID, 'negotiate STRUCTURED_REPLY first');
            break;
          }
          if (!this.exports.has(parsed.name)) {
            errText(REP_ERR_UNKNOWN, `unknown export '${parsed.name}'`);
            break;
          }
          const wants =
            parsed.queries.length === 0
              ? opt === Opt.LIST_META_CONTEXT
              : parsed.queries.some((q) => q === 'base:' || q === 'base:allocation');
          if (opt === Opt.SET_META_CONTEXT) allocationFor = wants ? parsed.name : undefined;
          if (wants) {
            const name = Buffer.from('base:allocation');
            const p = Buffer.alloc(4);
            p.writeUInt32BE(opt === Opt.SET_META_CONTEXT ? BASE_ALLOCATION_ID : 0, 0);
            reply(REP_META_CONTEXT, Buffer.concat([p, name]));
          }
          reply(REP_ACK);
          break;
        }
        case Opt.INFO:
        case Opt.GO: {
          if (len < 6) {
            errText(REP_ERR_INVALID, 'INFO/GO request too short');
            break;
          }
          const nameLen = data.readUInt32BE(0);
          if (4 + nameLen + 2 > len) {
            errText(REP_ERR_INVALID, 'INFO/GO export name overruns the request');
            break;
          }
          const name = data.toString('utf8', 4, 4 + nameLen);
          const nInfo = data.readUInt16BE(4 + nameLen);
          if (4 + nameLen + 2 + 2 * nInfo !== len) {
            errText(REP_ERR_INVALID, 'INFO/GO information request count does not match the length');
            break;
          }
          const e = this.exports.get(name);
          if (!e) {
            errText(REP_ERR_UNKNOWN, `unknown export '${name}'`);
            break;
          }
          const infos = new Set<number>();
          for (let i = 0; i < nInfo; i++) infos.add(data.readUInt16BE(4 + nameLen + 2 + 2 * i));
          const ie = Buffer.alloc(12);
          ie.writeUInt16BE(INFO_EXPORT, 0);
          ie.writeBigUInt64BE(BigInt(e.device.size), 2);
          ie.writeUInt16BE(this.transmissionFlags(e), 10);
          reply(REP_INFO, ie);
          if (infos.has(INFO_NAME))
            reply(REP_INFO, Buffer.concat([u16(INFO_NAME), Buffer.from(e.name, 'utf8')]));
          if (infos.has(INFO_DESCRIPTION) && e.description)
            reply(REP_INFO, Buffer.concat([u16(INFO_DESCRIPTION), Buffer.from(e.description, 'utf8')]));
          if (infos.has(INFO_BLOCK_SIZE)) {
            const bs = Buffer.alloc(14);
            bs.writeUInt16BE(INFO_BLOCK_SIZE, 0);
            bs.writeUInt32BE(1, 2);
            bs.writeUInt32BE(4096, 6);
            bs.writeUInt32BE(requestBytesMax, 10);
            reply(REP_INFO, bs);
          }
          reply(REP_ACK);
          if (opt === Opt.GO)
            return { export: e, structured, allocation: structured && allocationFor === name };
          break;
        }
        default:
          errText(REP_ERR_UNSUP, `option ${opt} is not supported`);
      }
    }
  }

  /**
   * Serves requests until the client sends DISC or shuts down its side (FIN), then finishes every request
   * it received and resolves once their replies are queued (doc/proto.md: a server handles the requests
   * outstanding before it closes; a FIN is taken as a DISC after the requests before it). A request cut
   * short by the FIN is not one. Throws when the connection breaks.
   */
  private async transmission(
    socket: Socket,
    r: Reader,
    e: Export,
    structured: boolean,
    allocation: boolean,
  ): Promise<void> {
    const dev = e.device;
    let inflight = 0;
    /** Bytes the requests in flight hold: the data of READs, the payloads of WRITEs. */
    let inflightBytes = 0;
    // one waiter at a time (this loop): woken when a request ends, the socket drains, or it closes
    let wake: (() => void) | undefined;
    const poke = () => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    const changed = () => new Promise<void>((res) => (wake = res));
    socket.on('drain', poke);
    socket.on('close', poke);
    // Waits until the connection may take a request holding `bytes` (see `replyBytesQueuedMax`). It is
    // woken in time: with a request in flight by its end; with none, what is queued is over
    // replyBytesQueuedMax - requestBytesMax, far past the socket's high-water mark, so 'drain' comes.
    const admits = (bytes: number) => {
      const held = socket.writableLength + inflightBytes;
      return inflight < inflightMax && (held === 0 || held + bytes <= replyBytesQueuedMax);
    };
    const admit = async (bytes: number) => {
      for (;;) {
        if (socket.destroyed) throw new ConnectionEnded();
        if (admits(bytes)) return;
        await changed();
      }
    };
    // replies finished in the same turn of the event loop leave in one writev (headers and payloads):
    // one syscall, and on loopback one packet, instead of one per reply
    let corked = false;
    const uncork = () => {
      corked = false;
      socket.uncork();
    };
    const cork = () => {
      this.replied();
      if (corked) return;
      corked = true;
      socket.cork();
      setImmediate(uncork);
    };
    // `sent`: called once the socket is done with the reply's last part (an error if it never sent it; no
    // error either when the connection was destroyed mid-write, Node's way, but libuv is done with it then)
    type Sent = (err?: Error | null) => void;
    const writeParts = (parts: Uint8Array[], sent?: Sent) => {
      for (let i = 0; i < parts.length; i++)
        socket.write(parts[i]!, i === parts.length - 1 ? sent : undefined);
    };
    const simple = (handle: Buffer, error: number, data?: Uint8Array[], sent?: Sent) => {
      const b = Buffer.allocUnsafe(16);
      b.writeUInt32BE(SIMPLE_REPLY_MAGIC, 0);
      b.writeUInt32BE(error, 4);
      handle.copy(b, 8);
      cork();
      writeParts(data && data.length > 0 ? [b, ...data] : [b], sent);
    };
    /** A structured reply chunk's header for `len` bytes of payload, and `extra` bytes after it to fill. */
    const chunkHeader = (handle: Buffer, flags: number, type: number, len: number, extra = 0) => {
      const b = Buffer.allocUnsafe(20 + extra);
      b.writeUInt32BE(STRUCTURED_REPLY_MAGIC, 0);
      b.writeUInt16BE(flags, 4);
      b.writeUInt16BE(type, 6);
      handle.copy(b, 8);
      b.writeUInt32BE(len, 16);
      return b;
    };
    const chunk = (handle: Buffer, flags: number, type: number, payload: Uint8Array[], sent?: Sent) => {
      const len = payload.reduce((s, p) => s + p.length, 0);
      cork();
      writeParts([chunkHeader(handle, flags, type, len), ...payload], sent);
    };
    // READ buffers of a device with readInto, reused once the socket has sent them: a new buffer per READ
    // (256 KiB from nbdcopy) is garbage the collector chases at thousands of requests a second
    const spare: Buffer[] = [];
    let spareBytes = 0;
    const takeBuffer = (n: number): Buffer => {
      for (let i = spare.length - 1; i >= 0; i--)
        if (spare[i]!.length === n) {
          spareBytes -= n;
          return spare.splice(i, 1)[0]!;
        }
      return Buffer.allocUnsafeSlow(n);
    };
    const giveBuffer = (b: Buffer) => {
      if (spareBytes + b.length > spareBytesMax) return;
      spare.push(b);
      spareBytes += b.length;
    };
    const fail = (handle: Buffer, cmd: number, error: number, msg: string) => {
      this.stats.errors++;
      if (structured && (cmd === Cmd.READ || cmd === Cmd.BLOCK_STATUS)) {
        const m = Buffer.from(msg, 'utf8');
        const p = Buffer.alloc(6);
        p.writeUInt32BE(error, 0);
        p.writeUInt16BE(m.length, 4);
        chunk(handle, REPLY_FLAG_DONE, REPLY_TYPE_ERROR, [p, m]);
      } else simple(handle, error);
    };
    // the client's FIN ends its requests (a request it cuts short is not one): undefined, and those before
    // it are served as before DISC; any other end of the connection throws
    const untilFin = (err: unknown): undefined => {
      if (err instanceof ConnectionEnded && r.finReceived && !socket.destroyed) return undefined;
      throw err;
    };
    for (;;) {
      const h = await r.read(28).catch(untilFin);
      if (!h) break;
      if (h.readUInt32BE(0) !== REQUEST_MAGIC) throw new ProtocolError('bad request magic');
      const flags = h.readUInt16BE(4);
      const cmd = h.readUInt16BE(6);
      const handle = Buffer.from(h.subarray(8, 16));
      const offsetBig = h.readBigUInt64BE(16);
      const length = h.readUInt32BE(24);
      r.release([h]);
      this.stats.requests++;
      this.requestArrived();
      if (cmd === Cmd.DISC) break;
      if (cmd === Cmd.WRITE && length > requestBytesMax)
        throw new ProtocolError(`WRITE of ${length} bytes exceeds ${requestBytesMax}`);
      // what the request holds until it ends: the data a READ sends, the payload a WRITE brings
      const bytes = cmd === Cmd.WRITE || (cmd === Cmd.READ && length <= requestBytesMax) ? length : 0;
      // a client that does not read its replies gets no more requests served until it does
      // checked here first: the common case waits on no promise
      if (socket.destroyed || !admits(bytes)) await admit(bytes);
      let payload: Buffer[] | undefined;
      if (cmd === Cmd.WRITE) {
        // the payload must be consumed even when the request is refused, or framing is lost; views of the
        // received chunks: a device with writev takes them as they are, and is done with them when it
        // resolves (so they go back to the reader then); writeAt may keep its buffer
        payload = await (dev.writev ? r.readParts(length) : r.read(length).then((b) => [b])).catch(untilFin);
        if (!payload) break;
      }
      const offset =
        offsetBig > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(offsetBig);
      const inRange = offset + length <= dev.size;
      inflight++;
      inflightBytes += bytes;
      const done = () => {
        inflight--;
        inflightBytes -= bytes;
        poke();
      };
      const run = async (): Promise<void> => {
        switch (cmd) {
          case Cmd.READ: {
            if (length > requestBytesMax)
              return fail(handle, cmd, Err.EINVAL, `READ of ${length} bytes exceeds ${requestBytesMax}`);
            if (!inRange)
              return fail(
                handle,
                cmd,
                Err.EINVAL,
                `READ [${offset}, +${length}) is past the end (${dev.size})`,
              );
            let data: Uint8Array[];
            let sent: Sent | undefined;
            if (dev.readv) data = await dev.readv(offset, length);
            else if (dev.readInto && length > 0) {
              // a failed read's buffer is not reused: a part of it may still be being read into
              const buf = takeBuffer(length);
              await dev.readInto(offset, buf);
              data = [buf];
              sent = (err) => {
                if (!err) giveBuffer(buf);
              };
            } else data = [await dev.readAt(offset, length)];
            if (structured) {
              if (length === 0) chunk(handle, REPLY_FLAG_DONE, REPLY_TYPE_NONE, []);
              else {
                // the chunk's header and offset in one buffer (one part fewer to write)
                const b = chunkHeader(handle, REPLY_FLAG_DONE, REPLY_TYPE_OFFSET_DATA, 8 + length, 8);
                b.writeBigUInt64BE(offsetBig, 20);
                cork();
                writeParts([b, ...data], sent);
              }
            } else simple(handle, 0, data, sent);
            return;
          }
          case Cmd.WRITE:
          case Cmd.WRITE_ZEROES:
          case Cmd.TRIM: {
            if (e.readOnly) return fail(handle, cmd, Err.EPERM, 'the export is read-only');
            if (!inRange)
              return fail(handle, cmd, Err.ENOSPC, `[${offset}, +${length}) is past the end (${dev.size})`);
            if (cmd === Cmd.WRITE) {
              const fua = (flags & CMD_FLAG_FUA) !== 0;
              if (dev.writev) await dev.writev(offset, payload!, { fua });
              else await dev.writeAt(offset, payload![0]!, { fua });
            } else if (cmd === Cmd.TRIM) await dev.trim(offset, length);
            // zeros may be a hole unless the client says NO_HOLE (doc/proto.md): writing them made a memory
            // device allocate the whole range, up to 4 GiB for one 28-byte request
            else if (!(flags & CMD_FLAG_NO_HOLE)) await dev.trim(offset, length);
            else {
              for (let p = 0; p < length; p += 1 << 20)
                await dev.writeAt(offset + p, new Uint8Array(Math.min(1 << 20, length - p)));
            }
            if (cmd !== Cmd.WRITE && flags & CMD_FLAG_FUA) await dev.flush();
            return simple(handle, 0);
          }
          case Cmd.FLUSH:
            await dev.flush();
            return simple(handle, 0);
          case Cmd.CACHE:
            if (!inRange) return fail(handle, cmd, Err.EINVAL, 'CACHE past the end');
            return simple(handle, 0);
          case Cmd.BLOCK_STATUS: {
            // doc/proto.md: a client that negotiated no metadata context gets EINVAL
            if (!allocation)
              return fail(
                handle,
                cmd,
                Err.EINVAL,
                'BLOCK_STATUS needs structured replies and base:allocation selected for this export',
              );
            if (!inRange || length === 0)
              return fail(handle, cmd, Err.EINVAL, 'BLOCK_STATUS range is empty or past the end');
            const ext = dev.extents
              ? await dev.extents(offset, length)
              : [{ length, hole: false, zero: false }];
            checkExtents(ext, length);
            const list = flags & CMD_FLAG_REQ_ONE ? ext.slice(0, 1) : ext;
            const p = Buffer.alloc(4 + 8 * list.length);
            p.writeUInt32BE(BASE_ALLOCATION_ID, 0);
            list.forEach((x, i) => {
              p.writeUInt32BE(x.length, 4 + 8 * i);
              p.writeUInt32BE((x.hole ? STATE_HOLE : 0) | (x.zero ? STATE_ZERO : 0), 8 + 8 * i);
            });
            chunk(handle, REPLY_FLAG_DONE, REPLY_TYPE_BLOCK_STATUS, [p]);
            return;
          }
          default:
            return fail(handle, cmd, Err.EINVAL, `unknown command ${cmd}`);
        }
      };
      const release = payload && dev.writev ? payload : undefined;
      void run()
        .catch((err: unknown) => fail(handle, cmd, Err.EIO, (err as Error)?.message ?? 'I/O error'))
        .finally(() => {
          if (release) r.release(release);
          done();
        });
    }
    // finish what is in flight, then close (DISC, or the FIN); the caller flushes the device after that
    while (inflight > 0 && !socket.destroyed) await changed();
  }
}

/**
 * A device's answer to `extents` as the BlockDevice contract has it (at least one extent, each of a whole
 * number of bytes >= 1, together at most `length`), or an Error: sent as it was, a zero-length extent or
 * one past the request breaks the client (libnbd disconnects).
 */
function checkExtents(ext: Extent[], length: number): void {
  let sum = 0;
  for (const x of ext) {
    if (!Number.isSafeInteger(x.length) || x.length < 1)
      throw new Error(`the device reported an extent of ${x.length} bytes`);
    sum += x.length;
  }
  if (ext.length === 0 || sum > length)
    throw new Error(`the device reported ${ext.length} extents of ${sum} bytes for ${length} asked`);
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n, 0);
  return b;
}

function parseMetaRequest(d: Buffer): { name: string; queries: string[] } | undefined {
  if (d.length < 8) return undefined;
  const nl = d.readUInt32BE(0);
  if (4 + nl + 4 > d.length) return undefined;
  const name = d.toString('utf8', 4, 4 + nl);
  const n = d.readUInt32BE(4 + nl);
  const queries: string[] = [];
  let p = 8 + nl;
  for (let i = 0; i < n; i++) {
    if (p + 4 > d.length) return undefined;
    const ql = d.readUInt32BE(p);
    if (p + 4 + ql > d.length) return undefined;
    queries.push(d.toString('utf8', p + 4, p + 4 + ql));
    p += 4 + ql;
  }
  return p === d.length ? { name, queries } : undefined;
}
