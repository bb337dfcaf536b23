/**
 * ZooKeeper as a MetaStore and as a shim loglet (Delos' first production loglet was a ZooKeeper shim),
 * over a small client of ZooKeeper's wire protocol written here, so no dependency is needed.
 *
 * The protocol, from Apache ZooKeeper's sources (zookeeper-jute/src/main/resources/zookeeper.jute for the
 * records, ZooDefs.OpCode for the op codes, KeeperException.Code for the errors, ClientCnxn for the
 * framing, MultiResponse for multi): every message is a 4-byte big-endian length and a jute record (ints
 * and longs big-endian, `buffer` and `ustring` as an int length and bytes, -1 for null, `vector` as an
 * int count and items). A session starts with ConnectRequest / ConnectResponse; then each request is a
 * RequestHeader {xid, type} and its record, and each reply a ReplyHeader {xid, zxid, err} and, when err
 * is 0, its record. The server answers a session's requests in the order they were sent (FIFO client
 * order), and a read is served only after the session's earlier writes: the loglet relies on both.
 */

import { Socket } from 'node:net';
import { checkTimerMs } from '@strata/cli';
import {
  badBatch,
  checkPosition,
  checkReadRange,
  type Loglet,
  LogletUnavailableError,
  type LogRecord,
  type MetaStore,
  type Payload,
  SealedError,
  type TailInfo,
  TrimmedError,
  VersionConflictError,
  type Versioned,
} from '../contract.js';
import { isHostPort } from './addr.js';

// ---------------------------------------------------------------------------------------------------
// The wire protocol

const op = {
  create: 1,
  delete: 2,
  exists: 3,
  getData: 4,
  setData: 5,
  getChildren: 8,
  sync: 9,
  ping: 11,
  check: 13,
  multi: 14,
  closeSession: -11,
  error: -1,
} as const;

/** KeeperException.Code values this client tells apart. */
export const zkErr = {
  ok: 0,
  runtimeInconsistency: -2,
  connectionLoss: -4,
  noNode: -101,
  badVersion: -103,
  nodeExists: -110,
  notEmpty: -111,
  sessionExpired: -112,
} as const;

const xidPing = -2;
const xidNotification = -1;
/** CreateMode flags. */
export const zkPersistent = 0;
export const zkPersistentSequential = 2;

/** The ZooKeeper session timeout this client asks for; pings go out at a third of what was granted. */
export const zkSessionTimeoutMs = 10_000;
/** A request with no reply for this long ends the connection (its requests fail with connection loss). */
export const zkRequestTimeoutMs = 10_000;
export const zkConnectTimeoutMs = 5_000;
/** Requests in flight on one connection, at most. */
export const zkPendingMax = 16_384;
/** A reply frame larger than this is a protocol error (the server's jute.maxbuffer is about 1 MiB). */
const zkFrameBytesMax = 16 * 1024 * 1024;

/** An error code from the server (KeeperException.Code), with the path it was about. */
export class ZkError extends Error {
  override name = 'ZkError';
  constructor(
    readonly code: number,
    readonly path: string,
    readonly opIndex = -1,
  ) {
    super(`ZooKeeper error ${code} (${zkErrName(code)}) on ${path}`);
  }
}

/** The connection to ZooKeeper was lost or timed out: the request may or may not have been applied. */
export class ZkConnectionLossError extends LogletUnavailableError {
  override name = 'ZkConnectionLossError';
}

function zkErrName(code: number): string {
  for (const [k, v] of Object.entries(zkErr)) if (v === code) return k;
  return 'see KeeperException.Code';
}

/** The part of a znode's Stat this code reads. */
export interface ZkStat {
  version: number;
  cversion: number;
  dataLength: number;
  numChildren: number;
}

const statBytes = 68;

class Writer {
  private buf = Buffer.allocUnsafe(256);
  private n = 4; // room for the frame length

  private room(k: number): void {
    if (this.n + k <= this.buf.length) return;
    const b = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.n + k));
    this.buf.copy(b, 0, 0, this.n);
    this.buf = b;
  }
  int(v: number): this {
    this.room(4);
    this.buf.writeInt32BE(v, this.n);
    this.n += 4;
    return this;
  }
  long(v: bigint): this {
    this.room(8);
    this.buf.writeBigInt64BE(v, this.n);
    this.n += 8;
    return this;
  }
  bool(v: boolean): this {
    this.room(1);
    this.buf[this.n++] = v ? 1 : 0;
    return this;
  }
  buffer(v: Uint8Array): this {
    this.int(v.byteLength);
    this.room(v.byteLength);
    this.buf.set(v, this.n);
    this.n += v.byteLength;
    return this;
  }
  string(s: string): this {
    const len = Buffer.byteLength(s);
    this.int(len);
    this.room(len);
    this.buf.write(s, this.n, 'utf8');
    this.n += len;
    return this;
  }
  /** The frame: the length prefix filled in. */
  frame(): Buffer {
    this.buf.writeInt32BE(this.n - 4, 0);
    return this.buf.subarray(0, this.n);
  }
}

class Reader {
  constructor(
    private readonly b: Buffer,
    public p = 0,
  ) {}
  int(): number {
    const v = this.b.readInt32BE(this.p);
    this.p += 4;
    return v;
  }
  bool(): boolean {
    return this.b[this.p++] !== 0;
  }
  skip(k: number): void {
    this.p += k;
  }
  buffer(): Uint8Array {
    const len = this.int();
    if (len <= 0) return new Uint8Array(0);
    const v = Uint8Array.prototype.slice.call(this.b, this.p, this.p + len);
    this.p += len;
    return v;
  }
  string(): string {
    const len = this.int();
    if (len <= 0) return '';
    const s = this.b.toString('utf8', this.p, this.p + len);
    this.p += len;
    return s;
  }
  stat(): ZkStat {
    // czxid, mzxid, ctime, mtime (longs), version, cversion, aversion, ephemeralOwner, dataLength,
    // numChildren, pzxid
    const at = this.p;
    this.p += statBytes;
    return {
      version: this.b.readInt32BE(at + 32),
      cversion: this.b.readInt32BE(at + 36),
      dataLength: this.b.readInt32BE(at + 52),
      numChildren: this.b.readInt32BE(at + 56),
    };
  }
  get remaining(): number {
    return this.b.length - this.p;
  }
}

/** world:anyone with all permissions (ZooDefs.Ids.OPEN_ACL_UNSAFE). */
function writeOpenAcl(w: Writer): void {
  w.int(1).int(31).string('world').string('anyone');
}

/** One operation of a multi (ZooKeeper's transaction: all or nothing). */
export type ZkOp =
  | { type: 'create'; path: string; data: Uint8Array; flags?: number }
  | { type: 'delete'; path: string; version?: number }
  | { type: 'setData'; path: string; data: Uint8Array; version?: number }
  | { type: 'check'; path: string; version: number };

function writeOp(w: Writer, o: ZkOp): void {
  switch (o.type) {
    case 'create':
      w.string(o.path).buffer(o.data);
      writeOpenAcl(w);
      w.int(o.flags ?? zkPersistent);
      return;
    case 'delete':
      w.string(o.path).int(o.version ?? -1);
      return;
    case 'setData':
      w.string(o.path)
        .buffer(o.data)
        .int(o.version ?? -1);
      return;
    case 'check':
      w.string(o.path).int(o.version);
      return;
  }
}

interface Pending {
  xid: number;
  sentMs: number;
  path: string;
  resolve(r: Reader): void;
  reject(e: Error): void;
}

export interface ZkClientOptions {
  sessionTimeoutMs?: number;
  requestTimeoutMs?: number;
}

/**
 * A ZooKeeper client: one session over one TCP connection, requests pipelined. When the connection is
 * lost, the requests in flight fail with {@link ZkConnectionLossError} and the next request opens a new
 * session (this client keeps no ephemeral nodes and no watches, so nothing is lost with the old one).
 * `hosts` is `HOST:PORT[,HOST:PORT...]`; a new connection tries them in turn.
 */
export class ZkClient {
  private sock: Socket | undefined;
  private connecting: Promise<Socket> | undefined;
  /** Replies come in request order: the oldest request in flight is first. */
  private readonly pending: Pending[] = [];
  private pendingHead = 0;
  private xid = 1;
  private rx: Buffer[] = [];
  private rxBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private lastSendMs = 0;
  private sessionTimeoutMs = zkSessionTimeoutMs;
  private lastZxid = 0n;
  private hostIndex = 0;
  private closed = false;
  private readonly hosts: { host: string; port: number }[];
  private readonly requestTimeoutMs: number;
  private readonly wantSessionTimeoutMs: number;

  constructor(hosts: string, o: ZkClientOptions = {}) {
    this.hosts = hosts.split(',').map((h) => {
      const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(h.trim());
      if (!m) throw new Error(`ZooKeeper address '${h}': expected HOST:PORT, e.g. 127.0.0.1:2181`);
      return { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
    });
    if (o.requestTimeoutMs !== undefined) checkTimerMs('ZooKeeper requestTimeoutMs', o.requestTimeoutMs, 1);
    if (o.sessionTimeoutMs !== undefined) checkTimerMs('ZooKeeper sessionTimeoutMs', o.sessionTimeoutMs, 1);
    this.requestTimeoutMs = o.requestTimeoutMs ?? zkRequestTimeoutMs;
    this.wantSessionTimeoutMs = o.sessionTimeoutMs ?? zkSessionTimeoutMs;
  }

  private connect(): Promise<Socket> {
    if (this.sock) return Promise.resolve(this.sock);
    if (this.closed) return Promise.reject(new ZkConnectionLossError('the ZooKeeper client is closed'));
    this.connecting ??= this.openSession().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private openSession(): Promise<Socket> {
    const { host, port } = this.hosts[this.hostIndex++ % this.hosts.length]!;
    return new Promise<Socket>((resolve, reject) => {
      const s = new Socket();
      s.setNoDelay(true);
      let done = false;
      const fail = (e: Error) => {
        if (done) return;
        done = true;
        clearTimeout(t);
        s.destroy();
        reject(new ZkConnectionLossError(`ZooKeeper ${host}:${port}: ${e.message}`));
      };
      const t = setTimeout(
        () => fail(new Error(`no session within ${zkConnectTimeoutMs} ms`)),
        zkConnectTimeoutMs,
      );
      s.once('error', fail);
      s.once('close', () => fail(new Error('the connection closed during the handshake')));
      let hs = Buffer.alloc(0);
      const onData = (chunk: Buffer) => {
        hs = Buffer.concat([hs, chunk]);
        if (hs.length < 4) return;
        const len = hs.readInt32BE(0);
        if (hs.length < 4 + len) return;
        s.off('data', onData);
        const r = new Reader(hs.subarray(4, 4 + len));
        r.int(); // protocolVersion
        const timeout = r.int();
        if (timeout <= 0) return fail(new Error('the server refused the session (expired)'));
        done = true;
        clearTimeout(t);
        s.removeAllListeners('error');
        s.removeAllListeners('close');
        this.sessionTimeoutMs = timeout;
        this.sock = s;
        this.rx = [];
        this.rxBytes = 0;
        s.on('data', (c: Buffer) => this.onData(c));
        s.on('error', (e) => this.lost(s, e.message));
        s.on('close', () => this.lost(s, 'the connection closed'));
        const rest = hs.subarray(4 + len);
        if (rest.length > 0) this.onData(rest);
        this.timer ??= setInterval(() => this.tick(), Math.max(50, Math.floor(timeout / 3)));
        this.timer.unref();
        resolve(s);
      };
      s.on('data', onData);
      s.connect(port, host, () => {
        // ConnectRequest {protocolVersion, lastZxidSeen, timeOut, sessionId, passwd} + readOnly
        const w = new Writer()
          .int(0)
          .long(this.lastZxid)
          .int(this.wantSessionTimeoutMs)
          .long(0n)
          .buffer(new Uint8Array(16))
          .bool(false);
        s.write(w.frame());
      });
    });
  }

  /** Pings an idle session; ends a connection whose oldest request has waited too long. */
  private tick(): void {
    const s = this.sock;
    if (!s) return;
    const now = performance.now();
    const oldest = this.pending[this.pendingHead];
    if (oldest && now - oldest.sentMs > this.requestTimeoutMs) {
      s.destroy();
      this.lost(s, `no reply from ZooKeeper within ${this.requestTimeoutMs} ms`);
      return;
    }
    if (now - this.lastSendMs > this.sessionTimeoutMs / 3) {
      this.lastSendMs = now;
      s.write(new Writer().int(xidPing).int(op.ping).frame());
    }
  }

  private lost(s: Socket, why: string): void {
    if (this.sock !== s) return;
    this.sock = undefined;
    s.destroy();
    const waiting = this.pending.slice(this.pendingHead);
    this.pending.length = 0;
    this.pendingHead = 0;
    for (const p of waiting) p.reject(new ZkConnectionLossError(`ZooKeeper: ${why} (${p.path})`));
  }

  private onData(chunk: Buffer): void {
    this.rx.push(chunk);
    this.rxBytes += chunk.length;
    while (this.rxBytes >= 4) {
      let buf = this.rx.length === 1 ? this.rx[0]! : Buffer.concat(this.rx);
      const len = buf.readInt32BE(0);
      if (len < 0 || len > zkFrameBytesMax) {
        this.sock?.destroy();
        if (this.sock) this.lost(this.sock, `a reply frame of ${len} bytes`);
        return;
      }
      if (buf.length < 4 + len) {
        this.rx = [buf];
        return;
      }
      const frame = buf.subarray(4, 4 + len);
      buf = buf.subarray(4 + len);
      this.rx = buf.length > 0 ? [buf] : [];
      this.rxBytes = buf.length;
      this.onFrame(frame);
    }
  }

  private onFrame(frame: Buffer): void {
    const r = new Reader(frame);
    const xid = r.int();
    const zxid = frame.readBigInt64BE(4);
    r.skip(8);
    const err = r.int();
    if (xid === xidPing || xid === xidNotification) return;
    if (zxid > 0n) this.lastZxid = zxid;
    const p = this.pending[this.pendingHead];
    if (!p || p.xid !== xid) {
      // replies are in request order; anything else is a protocol error
      if (this.sock) this.lost(this.sock, `reply xid ${xid} out of order (expected ${p?.xid})`);
      return;
    }
    this.pending[this.pendingHead++] = undefined as unknown as Pending;
    if (this.pendingHead > 1024 && this.pendingHead * 2 > this.pending.length) {
      this.pending.splice(0, this.pendingHead);
      this.pendingHead = 0;
    }
    if (err !== 0 && r.remaining === 0) p.reject(new ZkError(err, p.path));
    else p.resolve(r);
  }

  /** Sends one request; `body` writes its record. Resolves with a reader over the reply's record. */
  private async request(type: number, path: string, body: (w: Writer) => void): Promise<Reader> {
    // connected: send in call order, synchronously (pipelined appends rely on the order)
    const s = this.sock ?? (await this.connect());
    if (this.pending.length - this.pendingHead >= zkPendingMax)
      throw new ZkConnectionLossError(`ZooKeeper: ${zkPendingMax} requests already in flight`);
    const xid = this.xid;
    this.xid = this.xid >= 0x7fffffff ? 1 : this.xid + 1;
    const w = new Writer().int(xid).int(type);
    body(w);
    return new Promise<Reader>((resolve, reject) => {
      const now = performance.now();
      this.pending.push({ xid, sentMs: now, path, resolve, reject });
      this.lastSendMs = now;
      s.write(w.frame());
    });
  }

  /** Creates a znode; resolves with its path (with the sequence number for a sequential one). */
  async create(path: string, data: Uint8Array, flags = zkPersistent): Promise<string> {
    const r = await this.request(op.create, path, (w) => writeOp(w, { type: 'create', path, data, flags }));
    return r.string();
  }

  async delete(path: string, version = -1): Promise<void> {
    await this.request(op.delete, path, (w) => writeOp(w, { type: 'delete', path, version }));
  }

  /** The znode's stat, or undefined when it does not exist. */
  async exists(path: string): Promise<ZkStat | undefined> {
    try {
      const r = await this.request(op.exists, path, (w) => w.string(path).bool(false));
      return r.stat();
    } catch (e) {
      if (e instanceof ZkError && e.code === zkErr.noNode) return undefined;
      throw e;
    }
  }

  async getData(path: string): Promise<{ data: Uint8Array; stat: ZkStat }> {
    const r = await this.request(op.getData, path, (w) => w.string(path).bool(false));
    const data = r.buffer();
    return { data, stat: r.stat() };
  }

  /** Sets a znode's data if its version is `version` (-1: any); resolves with the new stat. */
  async setData(path: string, data: Uint8Array, version = -1): Promise<ZkStat> {
    const r = await this.request(op.setData, path, (w) =>
      writeOp(w, { type: 'setData', path, data, version }),
    );
    return r.stat();
  }

  async getChildren(path: string): Promise<string[]> {
    const r = await this.request(op.getChildren, path, (w) => w.string(path).bool(false));
    const n = r.int();
    const out: string[] = [];
    for (let i = 0; i < n; i++) out.push(r.string());
    return out;
  }

  /** Makes the server this session talks to catch up with the leader (a read after it is up to date). */
  async sync(path: string): Promise<void> {
    await this.request(op.sync, path, (w) => w.string(path));
  }

  /**
   * Runs the ops as one transaction. Rejects with a {@link ZkError} whose `opIndex` names the first op
   * that failed (nothing was applied then).
   */
  async multi(ops: ZkOp[]): Promise<void> {
    const path = ops[0]?.path ?? '/';
    const r = await this.request(op.multi, path, (w) => {
      for (const o of ops) {
        w.int(op[o.type]).bool(false).int(-1); // MultiHeader {type, done, err}
        writeOp(w, o);
      }
      w.int(-1).bool(true).int(-1);
    });
    // MultiResponse: per op a MultiHeader and its result; an ErrorResult carries its code
    for (let i = 0; ; i++) {
      const type = r.int();
      const done = r.bool();
      r.int();
      if (done) return;
      switch (type) {
        case op.create:
          r.string();
          break;
        case op.setData:
          r.stat();
          break;
        case op.delete:
        case op.check:
          break;
        case op.error: {
          const code = r.int();
          if (code !== zkErr.ok && code !== zkErr.runtimeInconsistency)
            throw new ZkError(code, ops[i]?.path ?? path, i);
          break;
        }
        default:
          throw new ZkError(zkErr.runtimeInconsistency, `multi result of unknown type ${type}`, i);
      }
    }
  }

  /** Creates `path` and its missing parents (persistent, empty). */
  async mkdirp(path: string): Promise<void> {
    const parts = path.split('/').filter(Boolean);
    for (let i = 1; i <= parts.length; i++) {
      const p = `/${parts.slice(0, i).join('/')}`;
      try {
        await this.create(p, new Uint8Array(0));
      } catch (e) {
        if (!(e instanceof ZkError && e.code === zkErr.nodeExists)) throw e;
      }
    }
  }

  /** Ends the session (its requests in flight still get their replies first). */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    const s = this.sock;
    if (!s) return;
    try {
      await Promise.race([
        this.request(op.closeSession, '/', () => {}),
        new Promise((r) => setTimeout(r, 1000).unref()),
      ]);
    } catch {
      // the session ends with the connection anyway
    }
    this.sock = undefined;
    s.destroy();
  }
}

/** Splits `zk://HOST:PORT[,HOST:PORT...]/path` into the hosts and the znode path. */
export function parseZkUrl(url: string): { hosts: string; path: string } {
  const m = /^zk:\/\/([^/]+)(\/.*)?$/.exec(url);
  const path = (m?.[2] ?? '').replace(/\/+$/, '');
  if (!m || !path || !/^(\/[A-Za-z0-9._:@-]+)+$/.test(path) || !m[1]!.split(',').every(isHostPort))
    throw new Error(
      `ZooKeeper URL '${url}': expected zk://HOST:PORT[,HOST:PORT...]/path (ports 1-65535, a path of A-Z a-z 0-9 . _ : @ -), e.g. zk://127.0.0.1:2181/strata`,
    );
  return { hosts: m[1]!, path };
}

const utf8 = (s: string) => Buffer.from(s, 'utf8');
const text = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8');

// ---------------------------------------------------------------------------------------------------
// MetaStore

/**
 * The versioned register in one znode: its data is the JSON value, and the znode's version is the CAS
 * (a put is a create when expectedVersion is 0 and a setData with version expectedVersion - 1 after).
 * ZooKeeper serialises writes through its leader and fsyncs them on a quorum before it answers, so of
 * racing writers exactly one succeeds and a resolved put is durable. A get syncs first, so it sees every
 * put that had resolved before it started, whichever server it asks.
 *
 *   register version 0      no znode
 *   register version v > 0  znode with data version v - 1
 */
export class ZooKeeperMetaStore<T = unknown> implements MetaStore<T> {
  private parentMade = false;

  constructor(
    private readonly zk: ZkClient,
    readonly path: string,
    private readonly ownsClient = true,
  ) {}

  /** Opens `zk://HOST:PORT/path`: the register is the znode at path. */
  static open<T>(url: string): ZooKeeperMetaStore<T> {
    const { hosts, path } = parseZkUrl(url);
    return new ZooKeeperMetaStore<T>(new ZkClient(hosts), path);
  }

  async get(): Promise<Versioned<T>> {
    const synced = this.zk.sync(this.path);
    const read = this.zk.getData(this.path);
    try {
      await synced;
      const { data, stat } = await read;
      return { version: stat.version + 1, value: this.decode(data) };
    } catch (e) {
      if (e instanceof ZkError && e.code === zkErr.noNode) return { version: 0, value: undefined };
      throw e;
    } finally {
      read.catch(() => undefined);
    }
  }

  private decode(data: Uint8Array): T {
    try {
      return (JSON.parse(text(data)) as { value: T }).value;
    } catch (e) {
      throw new Error(`MetaStore znode ${this.path} is corrupt: ${(e as Error).message}`);
    }
  }

  async put(value: T, expectedVersion: number): Promise<number> {
    const data = utf8(JSON.stringify({ value }));
    try {
      if (expectedVersion === 0) {
        if (!this.parentMade) {
          await this.zk.mkdirp(this.path.slice(0, this.path.lastIndexOf('/')));
          this.parentMade = true;
        }
        await this.zk.create(this.path, data);
      } else {
        await this.zk.setData(this.path, data, expectedVersion - 1);
      }
      return expectedVersion + 1;
    } catch (e) {
      if (
        e instanceof ZkError &&
        (e.code === zkErr.nodeExists || e.code === zkErr.badVersion || e.code === zkErr.noNode)
      )
        throw new VersionConflictError(expectedVersion, (await this.get()).version);
      throw e;
    }
  }

  async close(): Promise<void> {
    if (this.ownsClient) await this.zk.close();
  }
}

// ---------------------------------------------------------------------------------------------------
// Loglet

/** A batch's records and znode paths must fit in one ZooKeeper request (jute.maxbuffer, about 1 MiB). */
export const zkBatchBytesMax = 512 * 1024;
/** Records read (or trimmed) per pipelined window. */
const zkReadWindow = 256;
/** An append retries a stale position this many times before it gives up (each retry re-reads the tail). */
const zkAppendAttemptsMax = 1000;

function recordName(pos: number): string {
  return String(pos).padStart(16, '0');
}

/**
 * A loglet on ZooKeeper (the shim loglet of Delos, OSDI'20 §5). Under the loglet's znode PATH:
 *
 *   PATH/state        version 0 while open; seal sets its data (version 1): it is sealed
 *   PATH/tail         the tail (decimal); its version 0 means "nothing appended yet"
 *   PATH/trim         the trim point (decimal)
 *   PATH/r/<pos>      one persistent znode per record (pos zero-padded to 16 digits), never modified
 *
 * An append of k records at position `first` is one multi (all or nothing):
 *
 *   check(PATH/state, version 0)                   not sealed
 *   check(PATH/r/<first-1>, version 0)             first - 1 is written ...   (first > start)
 *     or check(PATH/tail, version 0)               ... or nothing is          (first = start)
 *   create(PATH/r/<first>) ... create(<first+k-1>)  and first is free: so first is exactly the tail
 *   setData(PATH/tail, first + k)
 *
 * so every committed multi extends a dense prefix by exactly its batch, whatever other clients do. A
 * client pipelines its appends (each one assumes the ones before it succeed); one that assumed wrong
 * fails as a whole and is retried at the re-read tail. Seal sets PATH/state, then reads PATH/tail on
 * the same session: ZooKeeper orders all writes, so every append ordered before the seal is in that tail
 * and every one after it fails its first check; once seal has returned none can be acknowledged.
 * Trimming deletes records below the trim point but never the last record, which the next append checks.
 * Reads and checkTail sync first, so they see everything acknowledged before they started.
 */
export class ZooKeeperLoglet implements Loglet {
  /** The position the next append assumes; undefined: re-read the tail first. */
  private next: number | undefined;
  /** Bumped whenever `next` is found stale, so one stale wave re-reads the tail once. */
  private generation = 0;
  private resync: Promise<void> | undefined;
  private sealedTail: number | undefined;
  private readonly state: string;
  private readonly tailPath: string;
  private readonly trimPath: string;
  private readonly records: string;

  private constructor(
    private readonly zk: ZkClient,
    readonly path: string,
    readonly start: number,
    private readonly ownsClient: boolean,
  ) {
    this.state = `${path}/state`;
    this.tailPath = `${path}/tail`;
    this.trimPath = `${path}/trim`;
    this.records = `${path}/r`;
  }

  /**
   * Opens (creating if needed) the loglet at znode `path`, starting at `start`. Passing a client shares
   * its session; otherwise `hosts` (`HOST:PORT[,...]`) gets a session of its own, closed by close().
   */
  static async open(zk: ZkClient | string, o: { path: string; start?: number }): Promise<ZooKeeperLoglet> {
    const own = typeof zk === 'string';
    const client = own ? new ZkClient(zk) : zk;
    const l = new ZooKeeperLoglet(client, o.path, o.start ?? 0, own);
    try {
      await l.init();
    } catch (e) {
      if (own) await client.close();
      throw wrap(e);
    }
    return l;
  }

  private async init(): Promise<void> {
    if (await this.zk.exists(this.state)) return;
    await this.zk.mkdirp(this.path.slice(0, this.path.lastIndexOf('/')));
    const empty = new Uint8Array(0);
    try {
      await this.zk.multi([
        { type: 'create', path: this.path, data: utf8(JSON.stringify({ start: this.start })) },
        { type: 'create', path: this.state, data: utf8('open') },
        { type: 'create', path: this.tailPath, data: utf8(String(this.start)) },
        { type: 'create', path: this.trimPath, data: utf8(String(this.start)) },
        { type: 'create', path: this.records, data: empty },
      ]);
    } catch (e) {
      // another client created it first, or PATH exists without being a loglet
      if (!(e instanceof ZkError && e.code === zkErr.nodeExists)) throw e;
      if (!(await this.zk.exists(this.state)))
        throw new Error(`znode ${this.path} exists but is not a ZooKeeperLoglet (no ${this.state})`);
    }
  }

  private recordPath(pos: number): string {
    return `${this.records}/${recordName(pos)}`;
  }

  private async readNumber(path: string): Promise<{ n: number; version: number }> {
    const { data, stat } = await this.zk.getData(path);
    const n = Number(text(data));
    if (!Number.isSafeInteger(n)) throw new Error(`znode ${path} is corrupt: '${text(data)}'`);
    return { n, version: stat.version };
  }

  /** Re-reads the tail (once for all the appends that found `next` stale). */
  private refresh(): Promise<void> {
    this.resync ??= (async () => {
      try {
        const [state, tail] = await Promise.all([
          this.zk.getData(this.state),
          this.readNumber(this.tailPath),
        ]);
        if (state.stat.version > 0) this.sealedTail = tail.n;
        this.next = tail.n;
      } finally {
        this.resync = undefined;
      }
    })();
    return this.resync;
  }

  async append(batch: Payload[]): Promise<number[]> {
    const bad = badBatch(batch);
    if (bad) throw bad;
    if (batch.length === 0) return []; // the contract: no positions taken, nothing written
    let bytes = 0;
    for (const p of batch) bytes += p.byteLength + this.records.length + 64;
    if (bytes > zkBatchBytesMax)
      throw new RangeError(
        `append: a batch of ${bytes} bytes (with znode paths) exceeds zkBatchBytesMax (${zkBatchBytesMax}); split it`,
      );
    for (let attempt = 0; attempt < zkAppendAttemptsMax; attempt++) {
      if (this.sealedTail !== undefined) throw new SealedError(this.sealedTail);
      try {
        if (this.next === undefined) await this.refresh();
      } catch (e) {
        throw wrap(e);
      }
      if (this.sealedTail !== undefined) throw new SealedError(this.sealedTail);
      const first = this.next!;
      this.next = first + batch.length;
      const generation = this.generation;
      const ops: ZkOp[] = [
        { type: 'check', path: this.state, version: 0 },
        first > this.start
          ? { type: 'check', path: this.recordPath(first - 1), version: 0 }
          : { type: 'check', path: this.tailPath, version: 0 },
      ];
      for (let i = 0; i < batch.length; i++)
        ops.push({ type: 'create', path: this.recordPath(first + i), data: batch[i]! });
      ops.push({ type: 'setData', path: this.tailPath, data: utf8(String(first + batch.length)) });
      try {
        await this.zk.multi(ops);
        return batch.map((_, i) => first + i);
      } catch (e) {
        if (this.generation === generation) {
          this.generation++;
          this.next = undefined;
        }
        if (!(e instanceof ZkError) || e.opIndex < 0) throw wrap(e);
        if (e.opIndex === 0) {
          // the state check failed: sealed; the tail is final now
          try {
            this.sealedTail = (await this.readNumber(this.tailPath)).n;
          } catch (e2) {
            throw wrap(e2);
          }
          throw new SealedError(this.sealedTail);
        }
        // `first` was not the tail: another client appended, or an earlier pipelined append failed
      }
    }
    throw new LogletUnavailableError(
      `ZooKeeperLoglet ${this.path}: no free position after ${zkAppendAttemptsMax} attempts (heavy contention)`,
    );
  }

  async checkTail(): Promise<TailInfo> {
    try {
      const synced = this.zk.sync(this.path);
      const state = this.zk.getData(this.state);
      const tail = this.readNumber(this.tailPath);
      const [, s, t] = await Promise.all([synced, state, tail]);
      if (s.stat.version > 0) this.sealedTail = t.n;
      return { tail: t.n, sealed: s.stat.version > 0 };
    } catch (e) {
      throw wrap(e);
    }
  }

  async read(from: number, to: number): Promise<LogRecord[]> {
    checkReadRange(from, to);
    let trim: number;
    let tail: number;
    try {
      const synced = this.zk.sync(this.path);
      const tr = this.readNumber(this.trimPath);
      const tl = this.readNumber(this.tailPath);
      [, { n: trim }, { n: tail }] = await Promise.all([synced, tr, tl]);
    } catch (e) {
      throw wrap(e);
    }
    if (from < trim) throw new TrimmedError(from, trim);
    const end = Math.min(to, tail);
    const out: LogRecord[] = [];
    for (let w = Math.max(from, this.start); w < end; w += zkReadWindow) {
      const reads: Promise<{ data: Uint8Array }>[] = [];
      for (let p = w; p < Math.min(end, w + zkReadWindow); p++)
        reads.push(this.zk.getData(this.recordPath(p)));
      const got = await Promise.allSettled(reads);
      for (const [i, g] of got.entries()) {
        if (g.status === 'fulfilled') {
          out.push({ position: w + i, payload: g.value.data });
          continue;
        }
        const e = g.reason as unknown;
        if (e instanceof ZkError && e.code === zkErr.noNode) {
          // trimmed while we read
          const now = await this.readNumber(this.trimPath).catch((e2: unknown) => {
            throw wrap(e2);
          });
          throw new TrimmedError(from, now.n);
        }
        throw wrap(e);
      }
    }
    return out;
  }

  async prefixTrim(pos: number): Promise<void> {
    checkPosition('prefixTrim: pos', pos);
    try {
      let old: number;
      for (;;) {
        const cur = await this.readNumber(this.trimPath);
        if (pos <= cur.n) return;
        try {
          await this.zk.setData(this.trimPath, utf8(String(pos)), cur.version);
          old = cur.n;
          break;
        } catch (e) {
          if (!(e instanceof ZkError && e.code === zkErr.badVersion)) throw e;
        }
      }
      // reclaim: delete the records below the trim point, but never the last one (the next append checks it)
      const { n: tail } = await this.readNumber(this.tailPath);
      const end = Math.min(pos, tail - 1);
      for (let w = old; w < end; w += zkReadWindow) {
        const dels: Promise<void>[] = [];
        for (let p = w; p < Math.min(end, w + zkReadWindow); p++)
          dels.push(
            this.zk.delete(this.recordPath(p)).catch((e: unknown) => {
              if (!(e instanceof ZkError && e.code === zkErr.noNode)) throw e;
            }),
          );
        await Promise.all(dels);
      }
    } catch (e) {
      throw wrap(e);
    }
  }

  async seal(): Promise<TailInfo> {
    try {
      const { stat } = await this.zk.getData(this.state);
      if (stat.version === 0) await this.zk.setData(this.state, utf8('sealed'));
      // read on the same session after the seal: every append ordered before it is counted
      const { n } = await this.readNumber(this.tailPath);
      this.sealedTail = n;
      return { tail: n, sealed: true };
    } catch (e) {
      throw wrap(e);
    }
  }

  async close(): Promise<void> {
    if (this.ownsClient) await this.zk.close();
  }
}

/** Connection trouble is the loglet being unavailable (the VirtualLog may reconfigure around it). */
function wrap(e: unknown): Error {
  if (e instanceof LogletUnavailableError) return e;
  if (e instanceof ZkError && e.code === zkErr.sessionExpired) return new LogletUnavailableError(e.message);
  return e as Error;
}
