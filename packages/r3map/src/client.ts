/**
 * An NBD client as a BlockDevice: fixed newstyle handshake with NBD_OPT_GO (simple replies), then READ,
 * WRITE (+FUA), FLUSH, TRIM and DISC, with many requests in flight on one connection. It serves as the
 * "remote device served by another Strata process" (or by any NBD server).
 */
import { connect, type Socket } from 'node:net';
import { checkTimerMs } from '@strata/cli';
import { type BlockDevice, checkRange, SmallReads, takeBytes, takeChunks } from './device.js';

const NBDMAGIC = 0x4e42444d41474943n;
const IHAVEOPT = 0x49484156454f5054n;
const REPLY_MAGIC = 0x3e889045565a9n;
const REQUEST_MAGIC = 0x25609513;
const SIMPLE_REPLY_MAGIC = 0x67446698;
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
  private readonly pending = new Map<
    bigint,
    {
      resolve: (b: Buffer[] | undefined) => void;
      reject: (e: Error) => void;
      readLen: number;
      /** When it was sent (performance.now()), kept only under a request timeout. */
      sentMs: number;
    }
  >();
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
    private readonly requestTimeoutMs = 0,
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
    opts: { handshakeTimeoutMs?: number; closeTimeoutMs?: number; requestTimeoutMs?: number } = {},
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
      const nameB = Buffer.from(name, 'utf8');
      const data = Buffer.alloc(4 + nameB.length + 2);
      data.writeUInt32BE(nameB.length, 0);
      nameB.copy(data, 4);
      const opt = Buffer.alloc(16);
      opt.writeBigUInt64BE(IHAVEOPT, 0);
      opt.writeUInt32BE(7, 8); // GO
      opt.writeUInt32BE(data.length, 12);
      sock.write(Buffer.concat([flags, opt, data]));
      let size = -1n;
      let tflags = 0;
      for (;;) {
        const h = await r.read(20);
        if (h.readBigUInt64BE(0) !== REPLY_MAGIC) throw new NbdClientError('bad option reply magic');
        const type = h.readUInt32BE(12);
        const len = h.readUInt32BE(16);
        // a length read from garbage (up to 4 GiB) was waited for and buffered
        if (len > optionReplyBytesMax)
          throw new NbdClientError(`option reply of ${len} bytes (at most ${optionReplyBytesMax})`);
        const body = len ? await r.read(len) : Buffer.alloc(0);
        if (type & 0x80000000)
          throw new NbdClientError(`export '${name}': ${body.toString('utf8') || `error ${type}`}`);
        if (type === 3 && body.length >= 12 && body.readUInt16BE(0) === 0) {
          size = body.readBigUInt64BE(2);
          tflags = body.readUInt16BE(10);
        }
        if (type === 1) break; // ACK: transmission begins
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
      );
    } catch (e) {
      sock.destroy();
      throw e instanceof NbdClientError ? e : new NbdClientError((e as Error).message);
    } finally {
      clearTimeout(due);
    }
  }

  private async replies(): Promise<void> {
    try {
      for (;;) {
        const h = await this.reader.read(16);
        if (h.readUInt32BE(0) !== SIMPLE_REPLY_MAGIC)
          throw new NbdClientError('unexpected reply magic (structured replies were not asked for)');
        const err = h.readUInt32BE(4);
        const handle = h.readBigUInt64BE(8);
        const p = this.pending.get(handle);
        if (!p) throw new NbdClientError(`reply for unknown handle ${handle}`);
        this.pending.delete(handle);
        if (err) {
          p.reject(new NbdClientError(`server error ${err}`));
          continue;
        }
        p.resolve(p.readLen ? await this.reader.readParts(p.readLen) : undefined);
      }
    } catch (e) {
      this.breakWith(e as Error);
    }
  }

  private request(
    cmd: number,
    flags: number,
    offset: number,
    length: number,
    payload?: Uint8Array,
  ): Promise<Buffer[] | undefined> {
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
      this.pending.set(handle, { resolve, reject, readLen: cmd === 0 ? length : 0, sentMs });
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
    const reqs: Promise<Buffer[] | undefined>[] = [];
    for (let p = 0; p < length; p += requestBytesMax)
      reqs.push(this.request(0, 0, offset + p, Math.min(requestBytesMax, length - p)));
    return (await Promise.all(reqs)).flatMap((x) => x ?? []);
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
    if (this.pending.size > 0 && !this.broken) {
      const e = new NbdClientError(
        `closed with ${this.pending.size} requests unanswered after ${this.closeTimeoutMs} ms`,
      );
      this.broken = e;
      this.sock.destroy();
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
      return;
    }
    if (this.broken) return;
    const h = Buffer.alloc(28);
    h.writeUInt32BE(REQUEST_MAGIC, 0);
    h.writeUInt16BE(2, 6); // DISC
    this.sock.end(h);
  }
}
