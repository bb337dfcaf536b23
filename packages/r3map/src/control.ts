/**
 * The control channel of a migration between two processes: length-prefixed JSON messages over TCP.
 *
 * A frame is a 4-byte big-endian length, then that many bytes of UTF-8 JSON (one object). Every message
 * is validated on receipt ({@link decodeMessage}): an unknown type, a missing or ill-typed field, a chunk
 * unit list that is not ascending or runs past the device, an oversized frame or bytes that are not JSON are a {@link ControlError}
 * that names what was wrong; the receiver sends an `error` message if it still can and closes the
 * connection. Nothing the peer sends can crash a process or make it wait without a bound (every wait for
 * a message has a timeout).
 *
 * The conversation, driven by the destination (D) against the source (S):
 *
 * ```
 * D -> S  hello {v}                      S starts tracking writes
 * S -> D  info {v, size, chunkBytes, trackBytes, nbdPort, exportName}
 *         D pre-copies every chunk over NBD from S's export (pings S while it pulls); S pings D every
 *         second until the end, and D gives up on a source it has not heard from for 10 s (a stopped
 *         process keeps its connections open: its NBD reads would wait forever)
 * D -> S  round                          repeated while the dirty set shrinks
 * S -> D  dirty {runs, more}...           trackBytes units written since the last round; D re-reads them
 * D -> S  finalize {servePort}           S connects to D's export, seals (writes wait), drains
 * S -> D  final {runs, more}...          last dirty units; D marks their chunks missing (post-copy)
 * D -> S  serving                        D holds the device (its export still holds requests)
 * S -> D  committed {downtimeMs}         S forwards its workload to D; D's export opens
 *         D pulls the rest in the background, missing chunks on demand
 * D -> S  release                        D has every chunk
 * S -> D  released {bytesSent}           S closes its device and its export
 * either  error {message}                the sender gives up; the connection closes
 * ```
 *
 * A set of units (`dirty`, `final`) goes as runs of consecutive units ({@link encodeUnitFrames}), in as
 * many frames as it takes, each with at most `unitRunBytesMax` bytes of runs, `more` set on all but the
 * last. Until control version 3 it was one bitmap of a bit a unit in one frame: a device over 192 GiB in
 * 4 KiB units needed a frame over 8 MiB, so its migration failed at its first round (after the whole
 * pre-copy), and a clean 4 TiB device sent 171 MiB a round.
 */
import type { Socket } from 'node:net';
import { drainOrClose } from './device.js';
import { UnitSet } from './units.js';

/** 3: unit sets as runs over several frames (2: a bitmap in one frame; 1: no pings from the source). */
export const controlVersion = 3;
/**
 * Bytes of runs (varints) in one `dirty` or `final` frame: a frame of them is at most 1.4 MiB of base64,
 * whatever the device's size; a set that needs more goes in several frames.
 */
export const unitRunBytesMax = 1 << 20;
/** Largest frame: a frame of unit runs with room to spare (every other message is under 5 KiB). */
export const frameBytesMax = 2 * 1024 * 1024;
/**
 * Messages a channel keeps that nobody has asked for yet, in number and in frame bytes: a peer that floods
 * them is broken (64 bitmaps of 8 MiB were 512 MiB held before the count alone stopped one).
 */
const unaskedMessagesMax = 64;
const unaskedBytesMax = 2 * frameBytesMax;
/** How long a side waits for the reply it expects. */
export const replyTimeoutMs = 15_000;
/** How often the destination pings the source while it pulls, and the source the destination throughout. */
export const pingIntervalMs = 1_000;
/**
 * A source drops a destination it has not heard from for this long (waiting for its next message), and a
 * destination a source (whatever it waits for: pings come every `pingIntervalMs`; control version 2).
 */
export const peerIdleMsMax = 10_000;

export class ControlError extends Error {
  override name = 'ControlError';
}

export type Message =
  | { t: 'hello'; v: number }
  | {
      t: 'info';
      v: number;
      size: number;
      chunkBytes: number;
      trackBytes: number;
      nbdPort: number;
      exportName: string;
    }
  | { t: 'ping' }
  | { t: 'round' }
  | { t: 'dirty'; runs: string; more: boolean }
  | { t: 'finalize'; servePort: number }
  | { t: 'final'; runs: string; more: boolean }
  | { t: 'serving' }
  | { t: 'committed'; downtimeMs: number }
  | { t: 'release' }
  | { t: 'released'; bytesSent: number }
  | { t: 'error'; message: string };

export type MessageType = Message['t'];

const fields: Record<MessageType, Record<string, 'int' | 'num' | 'str' | 'bool'>> = {
  hello: { v: 'int' },
  info: { v: 'int', size: 'int', chunkBytes: 'int', trackBytes: 'int', nbdPort: 'int', exportName: 'str' },
  ping: {},
  round: {},
  dirty: { runs: 'str', more: 'bool' },
  finalize: { servePort: 'int' },
  final: { runs: 'str', more: 'bool' },
  serving: {},
  committed: { downtimeMs: 'num' },
  release: {},
  released: { bytesSent: 'int' },
  error: { message: 'str' },
};
/** Longest string field (error messages, export names); unit runs are bounded by the frame. */
const textBytesMax = 4096;

/** Parses and validates one frame's payload; throws {@link ControlError} saying what is wrong. */
export function decodeMessage(payload: Uint8Array): Message {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8'));
  } catch {
    throw new ControlError(`a control message is not JSON (${payload.length} bytes)`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new ControlError('a control message is not a JSON object');
  const o = v as Record<string, unknown>;
  const t = o.t;
  if (typeof t !== 'string' || !Object.hasOwn(fields, t))
    throw new ControlError(`unknown control message type ${JSON.stringify(t)?.slice(0, 40)}`);
  const spec = fields[t as MessageType];
  for (const [k, kind] of Object.entries(spec)) {
    const x = o[k];
    const ok =
      kind === 'str'
        ? typeof x === 'string' && (k === 'runs' || x.length <= textBytesMax)
        : kind === 'bool'
          ? typeof x === 'boolean'
          : kind === 'int'
            ? Number.isSafeInteger(x) && (x as number) >= 0
            : typeof x === 'number' && Number.isFinite(x) && x >= 0;
    if (!ok) throw new ControlError(`control message '${t}': field '${k}' is missing or not a valid ${kind}`);
  }
  for (const k of Object.keys(o))
    if (k !== 't' && !Object.hasOwn(spec, k))
      throw new ControlError(`control message '${t}': unexpected field '${k.slice(0, 40)}'`);
  return o as unknown as Message;
}

export function encodeMessage(m: Message): Buffer {
  const body = Buffer.from(JSON.stringify(m), 'utf8');
  if (body.length > frameBytesMax)
    throw new ControlError(`control message '${m.t}' of ${body.length} bytes exceeds ${frameBytesMax}`);
  const h = Buffer.alloc(4);
  h.writeUInt32BE(body.length, 0);
  return Buffer.concat([h, body]);
}

/**
 * A set of units as the `runs` of one or more frames: each run is two unsigned LEB128 varints, the gap from
 * the end of the previous run (of the whole set, across frames; from 0 for the first) and the run's length
 * (at least 1). A frame ends after a whole run once it holds `unitRunBytesMax - 32` bytes or more; an empty
 * set is one frame with no runs. The frames are made as they are taken (the caller may wait between them).
 */
export function* encodeUnitFrames(
  set: UnitSet,
  runBytesMax = unitRunBytesMax,
): Generator<{ runs: string; more: boolean }> {
  const buf = Buffer.allocUnsafe(runBytesMax);
  let at = 0;
  let end = 0;
  const put = (x: number) => {
    // arithmetic rather than bit operations: unit indices may pass 2^31
    while (x >= 0x80) {
      buf[at++] = (x % 0x80) | 0x80;
      x = Math.floor(x / 0x80);
    }
    buf[at++] = x;
  };
  for (const [first, n] of set.runs()) {
    if (at > runBytesMax - 32) {
      yield { runs: buf.toString('base64', 0, at), more: true };
      at = 0;
    }
    put(first - end);
    put(n);
    end = first + n;
  }
  yield { runs: buf.toString('base64', 0, at), more: false };
}

/**
 * Adds the runs of one frame to `into` (see {@link encodeUnitFrames}); `end` is where the previous frame's
 * last run ended (0 for the first frame), and the end of this frame's last run is returned. Runs that are
 * not base64 varints, a run of length 0, and a unit at or past `units` are a {@link ControlError}; so is an
 * empty frame that says more follow (a peer could send those forever).
 */
export function decodeUnitFrame(
  frame: { runs: string; more: boolean },
  units: number,
  into: UnitSet,
  end = 0,
): number {
  const { runs } = frame;
  if (runs.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(runs))
    throw new ControlError(`a unit list is not base64 (${runs.length} characters)`);
  if (runs.length === 0 && frame.more) throw new ControlError('an empty unit list says more follow');
  const b = Buffer.from(runs, 'base64');
  let at = 0;
  const get = (): number => {
    let x = 0;
    let scale = 1;
    for (;;) {
      if (at >= b.length) throw new ControlError('a unit list ends within a number');
      const byte = b[at++]!;
      x += (byte & 0x7f) * scale;
      // not `x > max`: zero digits padded on until the scale is Infinity make x NaN (0 * Infinity)
      if (!(x <= Number.MAX_SAFE_INTEGER)) throw new ControlError('a unit list holds a number past 2^53');
      if (byte < 0x80) return x;
      scale *= 0x80;
    }
  };
  while (at < b.length) {
    const first = end + get();
    const n = get();
    if (n === 0) throw new ControlError(`a unit list holds an empty run at unit ${first}`);
    if (first + n > units)
      throw new ControlError(`a unit list marks units [${first}, ${first + n}) past the last (${units})`);
    into.addRange(first, n);
    end = first + n;
  }
  return end;
}

/**
 * One end of a control connection: `send`, and `next` for the next message (with a timeout). A framing
 * or validation error, a timeout, or the connection closing rejects `next` with a {@link ControlError}
 * and destroys the socket; `closed` settles then too.
 */
export class ControlChannel {
  /**
   * A frame begun in an earlier read: its 4-byte header (while fewer than 4 bytes are in), then the whole
   * frame, allocated once its length is known; `partBytes` of it are in. Frames that lie within one read are
   * decoded where they lie, so each byte is copied at most once (the buffer was concatenated with every
   * read: an 8 MiB frame in 64 KiB reads copied 512 MiB).
   */
  private part?: Buffer;
  private partBytes = 0;
  private readonly head = Buffer.alloc(4);
  private queue: { m: Message; bytes: number }[] = [];
  private queueBytes = 0;
  private waiter?: {
    resolve: (m: Message) => void;
    reject: (e: Error) => void;
    timer: NodeJS.Timeout;
    restart: () => void;
  };
  private failure?: ControlError;
  private readonly onClose: ((e: ControlError) => void)[] = [];
  /** When the peer last sent a byte (performance.now()). */
  private heardMs = performance.now();
  private watchdog?: NodeJS.Timeout;
  private pinger?: NodeJS.Timeout;

  constructor(
    readonly socket: Socket,
    private readonly peer: string,
    /**
     * Whether a ping restarts the timeout of the message awaited. A source waits for the destination's
     * next step for as long as it pulls (and pings); a destination waits for the source's reply for
     * `replyTimeoutMs` at most, pings or not (a source stuck but alive would hold it forever).
     */
    private readonly pingsExtendWaits = true,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (c: Buffer) => this.onData(c));
    socket.on('error', (e) => this.fail(new ControlError(`${peer}: ${e.message}`)));
    socket.on('close', () => this.fail(new ControlError(`${peer} closed the control connection`)));
  }

  private onData(c: Buffer): void {
    if (this.failure) return;
    this.heardMs = performance.now();
    let at = 0;
    if (this.part || this.partBytes > 0) {
      at = this.fillPart(c);
      if (at < 0) return;
    }
    // whole frames within this read: decoded in place
    while (!this.failure && c.length - at >= 4) {
      const n = this.frameLength(c.readUInt32BE(at));
      if (n < 0) return;
      if (c.length - at < 4 + n) break;
      if (!this.deliver(c.subarray(at + 4, at + 4 + n))) return;
      at += 4 + n;
    }
    if (at < c.length && !this.failure) this.fillPart(c.subarray(at));
  }

  /** The length of a frame from its header, or -1 (the channel failed) when it is out of bounds. */
  private frameLength(n: number): number {
    if (n === 0 || n > frameBytesMax) {
      this.fail(new ControlError(`${this.peer} sent a control frame of ${n} bytes (1 to ${frameBytesMax})`));
      return -1;
    }
    return n;
  }

  /**
   * Adds the start of `c` to the frame begun earlier (or begins one) and decodes it once whole. Returns
   * where in `c` the bytes after that frame start (c.length when it took them all), or -1 when the channel
   * failed.
   */
  private fillPart(c: Buffer): number {
    let at = 0;
    if (!this.part) {
      const k = Math.min(4 - this.partBytes, c.length);
      c.copy(this.head, this.partBytes, 0, k);
      this.partBytes += k;
      at = k;
      if (this.partBytes < 4) return c.length;
      const n = this.frameLength(this.head.readUInt32BE(0));
      if (n < 0) return -1;
      this.part = Buffer.allocUnsafe(4 + n);
      this.head.copy(this.part, 0);
    }
    const part = this.part;
    const k = Math.min(part.length - this.partBytes, c.length - at);
    c.copy(part, this.partBytes, at, at + k);
    this.partBytes += k;
    at += k;
    if (this.partBytes < part.length) return at;
    this.part = undefined;
    this.partBytes = 0;
    return this.deliver(part.subarray(4)) ? at : -1;
  }

  /** Decodes one frame's payload and hands the message on; false when the channel failed. */
  private deliver(body: Buffer): boolean {
    let m: Message;
    try {
      m = decodeMessage(body);
    } catch (e) {
      this.fail(new ControlError(`${this.peer}: ${(e as Error).message}`));
      return false;
    }
    if (m.t === 'error') {
      this.fail(new ControlError(`${this.peer} gave up: ${m.message}`), false);
      return false;
    }
    if (m.t === 'ping') {
      // a sign of life: whoever waits for a message waits afresh (where pings extend waits)
      if (this.pingsExtendWaits) this.waiter?.restart();
      return true;
    }
    const w = this.waiter;
    if (w) {
      this.waiter = undefined;
      clearTimeout(w.timer);
      w.resolve(m);
    } else {
      this.queue.push({ m, bytes: body.length });
      this.queueBytes += body.length;
    }
    // a peer that floods messages nobody asks for is broken
    if (this.queue.length > unaskedMessagesMax) {
      this.fail(
        new ControlError(
          `${this.peer} sent more than ${unaskedMessagesMax} messages that were not asked for`,
        ),
      );
      return false;
    }
    if (this.queueBytes > unaskedBytesMax) {
      this.fail(
        new ControlError(
          `${this.peer} sent ${this.queueBytes} bytes of messages that were not asked for (at most ${unaskedBytesMax})`,
        ),
      );
      return false;
    }
    return !this.failure;
  }

  /**
   * Fails the channel once the peer has sent nothing for `quietMs` (a peer pings every `pingIntervalMs`
   * while a migration runs), whether or not a message is awaited: a source stopped (SIGSTOP, a hung
   * process) keeps its connections open, and a destination pulling chunks from it waited forever.
   */
  watch(quietMs: number): void {
    clearInterval(this.watchdog);
    this.heardMs = performance.now();
    this.watchdog = setInterval(
      () => {
        const quiet = performance.now() - this.heardMs;
        if (quiet > quietMs)
          this.fail(
            new ControlError(
              `${this.peer} sent nothing for ${Math.round(quiet)} ms (it pings every ${pingIntervalMs} ms)`,
            ),
          );
      },
      Math.max(10, Math.min(1_000, quietMs / 4)),
    );
    this.watchdog.unref();
  }

  /** Sends a ping every `ms` until the channel fails or closes (a sign of life for the peer's `watch`). */
  pingEvery(ms: number): void {
    clearInterval(this.pinger);
    this.pinger = setInterval(() => {
      if (!this.failure) this.socket.write(encodeMessage({ t: 'ping' }));
    }, ms);
    this.pinger.unref();
  }

  /** Stops the pings `pingEvery` started (the peer's wait for a reply is then bounded again). */
  stopPings(): void {
    clearInterval(this.pinger);
  }

  private stopTimers(): void {
    clearInterval(this.watchdog);
    this.stopPings();
  }

  /** Rejects what waits, tells the peer why (when `tell`), and closes. Idempotent. */
  fail(e: ControlError, tell = true): void {
    if (this.failure) return;
    this.stopTimers();
    this.failure = e;
    const w = this.waiter;
    this.waiter = undefined;
    if (w) {
      clearTimeout(w.timer);
      w.reject(e);
    }
    if (tell && !this.socket.destroyed && this.socket.writable)
      this.socket.end(encodeMessage({ t: 'error', message: e.message.slice(0, textBytesMax) }));
    setTimeout(() => this.socket.destroy(), 100).unref();
    for (const f of this.onClose.splice(0)) f(e);
  }

  /** Ends the conversation normally: no error is sent and the failure callbacks are not called. */
  close(): void {
    if (this.failure) return;
    this.stopTimers();
    this.failure = new ControlError(`the control connection to ${this.peer} is closed`);
    this.onClose.length = 0;
    const w = this.waiter;
    this.waiter = undefined;
    if (w) {
      clearTimeout(w.timer);
      w.reject(this.failure);
    }
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 100).unref();
  }

  get failed(): ControlError | undefined {
    return this.failure;
  }

  /** Calls `f` once when the channel fails or closes. */
  whenFailed(f: (e: ControlError) => void): void {
    if (this.failure) f(this.failure);
    else this.onClose.push(f);
  }

  send(m: Message): void {
    if (this.failure) throw this.failure;
    this.socket.write(encodeMessage(m));
  }

  /**
   * Sends a set of units as `dirty` or `final` frames, each made once the socket has taken the one before
   * (so at most one frame of them waits here, however large the set).
   */
  async sendUnits(t: 'dirty' | 'final', set: UnitSet): Promise<void> {
    for (const f of encodeUnitFrames(set)) {
      if (this.failure) throw this.failure;
      if (!this.socket.write(encodeMessage({ t, ...f }))) {
        await drainOrClose(this.socket);
        // on a close, the channel's own 'close' listener (added first) has failed it by then
        if (this.failure) throw this.failure;
      }
    }
  }

  /** Receives a set of units sent by {@link sendUnits}: its frames, each within `timeoutMs`. */
  async nextUnits(t: 'dirty' | 'final', units: number, timeoutMs = replyTimeoutMs): Promise<UnitSet> {
    const set = new UnitSet();
    let end = 0;
    for (;;) {
      const m = await this.next(t, timeoutMs);
      try {
        end = decodeUnitFrame(m, units, set, end);
      } catch (e) {
        const err = new ControlError(`${this.peer}: ${(e as Error).message}`);
        this.fail(err);
        throw err;
      }
      if (!m.more) return set;
    }
  }

  /** The next message; with `want`, anything else is a protocol error. */
  next<T extends MessageType>(
    want: T | T[],
    timeoutMs = replyTimeoutMs,
  ): Promise<Extract<Message, { t: T }>> {
    const wants = Array.isArray(want) ? want : [want];
    const check = (m: Message): Extract<Message, { t: T }> => {
      if (!wants.includes(m.t as T)) {
        const e = new ControlError(`${this.peer} sent '${m.t}' where '${wants.join("' or '")}' was expected`);
        this.fail(e);
        throw e;
      }
      return m as Extract<Message, { t: T }>;
    };
    const queued = this.queue.shift();
    if (queued) {
      this.queueBytes -= queued.bytes;
      try {
        return Promise.resolve(check(queued.m));
      } catch (e) {
        return Promise.reject(e);
      }
    }
    if (this.failure) return Promise.reject(this.failure);
    if (this.waiter) return Promise.reject(new Error('ControlChannel.next: one reader at a time'));
    return new Promise((resolve, reject) => {
      const expire = () =>
        this.fail(
          new ControlError(
            `${this.peer} sent nothing for ${timeoutMs} ms (waiting for '${wants.join("' or '")}')`,
          ),
        );
      const timer = setTimeout(expire, timeoutMs);
      this.waiter = {
        restart: () => {
          clearTimeout(this.waiter!.timer);
          this.waiter!.timer = setTimeout(expire, timeoutMs);
        },
        resolve: (m) => {
          try {
            resolve(check(m));
          } catch (e) {
            reject(e);
          }
        },
        reject,
        timer,
      };
    });
  }
}
