/**
 * Live migration between two processes (`strata migrate source|dest`): the library's TrackedDevice,
 * MigratingDevice and MountDevice, with the control channel of `control.ts` between them and the device
 * bytes over NBD.
 *
 * The source serves its device read-only over NBD to the destination (the migration export), tracks the
 * units its workload writes, and answers the destination's rounds with dirty sets. At finalize it
 * connects to the destination's export, seals (workload writes wait: the downtime), drains writes in
 * flight, sends the last dirty set, and once the destination says it is serving, forwards its workload
 * there. The destination pre-copies, re-fetches dirty chunks in rounds until the dirty set is small or
 * stops shrinking, takes over, then pulls what it still lacks (post-copy) and releases the source.
 *
 * Failures: until the source has received `serving`, any failure (either process dying, a bad message, a
 * timeout) aborts the migration: the source unseals and stays authoritative, untouched, and accepts a new
 * destination; the destination gives up with an error and never serves. After the handover the
 * destination is authoritative; if the source dies then, chunks the destination still lacks cannot be
 * fetched (the known price of post-copy) and reads of them fail.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { listenOn, shown } from '@strata/cli';
import { NbdClientDevice } from './client.js';
import { ControlChannel, ControlError, controlVersion, peerIdleMsMax, pingIntervalMs } from './control.js';
import { type BlockDevice, checkRange, type Extent } from './device.js';
import { MigratingDevice, TrackedDevice, unitsToChunks } from './migrate.js';
import { MountDevice, mountChunkBytesMax, mountChunkBytesMin } from './mount.js';
import { NbdServer } from './nbd.js';
import { UnitSet } from './units.js';

/** Default transfer unit (the destination's chunk). */
export const migrateChunkBytesDefault = 64 * 1024;
/**
 * Unit of dirty tracking: a 4 KiB write makes 4 KiB travel again in a round, not a whole chunk (rounds
 * re-read just the dirty units; what is dirty at the seal is fetched as whole chunks after the handover).
 */
export const migrateTrackBytes = 4096;
const connectTimeoutMs = 10_000;

export interface SourceReport {
  totalMs: number;
  /** Bytes the destination read from the migration export (pre-copy, re-sends and post-copy). */
  bytesSent: number;
  /** From seal to forwarding the workload to the destination. */
  downtimeMs: number;
  rounds: number;
  /** Dirty-tracking units (`migrateTrackBytes`) sent again. */
  chunksResent: number;
  /** Workload requests that waited during the handover, and the longest wait. */
  requestsWaited: number;
  waitMsMax: number;
}

export type SourceEvent =
  | { event: 'connected'; peer: string }
  | { event: 'refused'; peer: string; reason: string }
  | { event: 'aborted'; peer: string; reason: string }
  | { event: 'committed'; peer: string; downtimeMs: number }
  | { event: 'released'; peer: string; report: SourceReport }
  | { event: 'lost'; peer: string; reason: string };

export interface SourceOptions {
  chunkBytes?: number;
  onEvent?: (e: SourceEvent) => void;
  /** Counts bytes read by the destination (for a progress bar). */
  onSend?: (bytes: number) => void;
}

/** The source's device as the destination reads it: read-only, with the bytes counted. */
class ExportDevice implements BlockDevice {
  readonly size: number;
  bytesRead = 0;
  readonly extents?: (offset: number, length: number) => Promise<Extent[]>;
  constructor(
    private readonly inner: BlockDevice,
    private readonly onRead?: (n: number) => void,
  ) {
    this.size = inner.size;
    // BLOCK_STATUS answered from the device's allocation: the destination skips what reads as zeros
    if (inner.extents) this.extents = (offset, length) => inner.extents!(offset, length);
  }
  async readAt(offset: number, length: number): Promise<Uint8Array> {
    const b = await this.inner.readAt(offset, length);
    this.bytesRead += length;
    this.onRead?.(length);
    return b;
  }
  writeAt(): Promise<void> {
    return Promise.reject(new Error('the migration export is read-only'));
  }
  flush(): Promise<void> {
    return Promise.resolve();
  }
  trim(): Promise<void> {
    return Promise.reject(new Error('the migration export is read-only'));
  }
  async close(): Promise<void> {}
}

type SourceState = 'serving' | 'migrating' | 'committed' | 'released';

/**
 * The source side: wraps `device`; the workload must use {@link MigrationSource.front} (serve it over NBD
 * or call it directly). `listen` opens the control port and the migration export.
 */
export class MigrationSource {
  readonly tracked: TrackedDevice;
  readonly front: MigratingDevice;
  readonly chunkBytes: number;
  private readonly exportDevice: ExportDevice;
  private readonly exportServer: NbdServer;
  private control?: Server;
  private nbdPort = 0;
  private state: SourceState = 'serving';
  private forward?: NbdClientDevice;
  private readonly sessions = new Set<Socket>();
  private resolveReleased!: (r: SourceReport) => void;
  /** Resolves when a destination has taken over and released this source. */
  readonly released: Promise<SourceReport>;

  constructor(
    readonly device: BlockDevice,
    private readonly opts: SourceOptions = {},
  ) {
    this.chunkBytes = opts.chunkBytes ?? migrateChunkBytesDefault;
    if (this.chunkBytes < mountChunkBytesMin || this.chunkBytes > mountChunkBytesMax)
      throw new RangeError(`chunk size must be 64 KiB to 4 MiB, got ${this.chunkBytes}`);
    this.tracked = new TrackedDevice(device, migrateTrackBytes);
    this.front = new MigratingDevice(this.tracked);
    this.exportDevice = new ExportDevice(this.tracked.copySource, opts.onSend);
    this.exportServer = new NbdServer([{ name: '', device: this.exportDevice, readOnly: true }]);
    this.released = new Promise((r) => (this.resolveReleased = r));
  }

  get status(): SourceState {
    return this.state;
  }

  /** Opens the control port on host:port (0 picks one) and the migration export on host (a free port). */
  async listen(port: number, host = '127.0.0.1'): Promise<{ controlPort: number; nbdPort: number }> {
    this.nbdPort = await this.exportServer.listen(0, host);
    this.control = createServer((s) => void this.session(s));
    // a control port in use left the export listening: the process did not exit after the error
    const controlPort = await listenOn(this.control, port, host).catch(async (e: Error) => {
      this.control = undefined;
      await this.exportServer.close();
      throw e;
    });
    return { controlPort, nbdPort: this.nbdPort };
  }

  private emit(e: SourceEvent): void {
    this.opts.onEvent?.(e);
  }

  private async session(sock: Socket): Promise<void> {
    const peer = `destination ${sock.remoteAddress}:${sock.remotePort}`;
    this.sessions.add(sock);
    sock.once('close', () => this.sessions.delete(sock));
    const ch = new ControlChannel(sock, peer);
    let hello: { v: number };
    try {
      hello = await ch.next('hello');
      if (hello.v !== controlVersion)
        throw new ControlError(
          `the destination speaks control version ${hello.v}, this source ${controlVersion}`,
        );
      if (this.state !== 'serving')
        throw new ControlError(
          this.state === 'migrating'
            ? 'a migration of this source is already in progress'
            : 'this source has been handed over already',
        );
    } catch (e) {
      const err = e instanceof ControlError ? e : new ControlError((e as Error).message);
      ch.fail(err);
      this.emit({ event: 'refused', peer, reason: err.message });
      return;
    }
    this.state = 'migrating';
    // signs of life for the destination's watch, until the channel closes or fails
    ch.pingEvery(pingIntervalMs);
    const t0 = performance.now();
    const sent0 = this.exportDevice.bytesRead;
    const waited0 = this.front.waitsMs.length;
    let rounds = 0;
    let resent = 0;
    let forward: NbdClientDevice | undefined;
    let downtimeMs = 0;
    try {
      this.emit({ event: 'connected', peer });
      this.tracked.drainDirty(); // track from before the first byte is copied
      ch.send({
        t: 'info',
        v: controlVersion,
        size: this.device.size,
        chunkBytes: this.chunkBytes,
        trackBytes: migrateTrackBytes,
        nbdPort: this.nbdPort,
        exportName: '',
      });
      for (;;) {
        const m = await ch.next(['round', 'finalize'], peerIdleMsMax);
        if (m.t === 'round') {
          const d = this.tracked.drainDirty();
          rounds++;
          resent += d.size;
          await ch.sendUnits('dirty', d);
          continue;
        }
        // connect to the destination's export before sealing, so it costs no downtime
        forward = await connectNbd(sock.remoteAddress ?? '127.0.0.1', m.servePort, ch);
        if (forward.size !== this.device.size)
          throw new ControlError(`the destination serves ${forward.size} bytes, not ${this.device.size}`);
        const tSeal = performance.now();
        this.front.beginHandover();
        await this.tracked.quiesce();
        const last = this.tracked.drainDirty();
        resent += last.size;
        await ch.sendUnits('final', last);
        await ch.next('serving');
        // the point of no return: from here the destination is authoritative
        downtimeMs = performance.now() - tSeal;
        ch.send({ t: 'committed', downtimeMs });
        this.state = 'committed';
        this.forward = forward;
        this.front.complete(forward);
        this.emit({ event: 'committed', peer, downtimeMs });
        break;
      }
    } catch (e) {
      // before the handover: the source stays authoritative, untouched, and takes writes again
      this.front.abort();
      this.state = 'serving';
      const err = e instanceof ControlError ? e : new ControlError((e as Error).message);
      ch.fail(err);
      await forward?.close().catch(() => undefined);
      this.emit({ event: 'aborted', peer, reason: err.message });
      return;
    }
    try {
      await ch.next('release', peerIdleMsMax);
      const report: SourceReport = {
        totalMs: performance.now() - t0,
        bytesSent: this.exportDevice.bytesRead - sent0,
        downtimeMs,
        rounds,
        chunksResent: resent,
        requestsWaited: this.front.waitsMs.length - waited0,
        waitMsMax: Math.max(0, ...this.front.waitsMs.slice(waited0)),
      };
      ch.send({ t: 'released', bytesSent: report.bytesSent });
      ch.close();
      this.state = 'released';
      await this.exportServer.close();
      await this.device.close();
      this.emit({ event: 'released', peer, report });
      this.resolveReleased(report);
    } catch (e) {
      // after the handover: the destination owns the device; what it had not pulled is still here
      this.emit({ event: 'lost', peer, reason: (e as Error).message });
    }
  }

  /** Stops listening and closes connections; the device is closed if it was released. */
  async close(): Promise<void> {
    for (const s of this.sessions) s.destroy();
    await new Promise<void>((r) => (this.control ? this.control.close(() => r()) : r()));
    if (this.state !== 'released') await this.exportServer.close();
    await this.forward?.close().catch(() => undefined);
  }
}

async function connectNbd(host: string, port: number, ch: ControlChannel): Promise<NbdClientDevice> {
  let timer: NodeJS.Timeout | undefined;
  const connecting = NbdClientDevice.connect(host, port, '');
  try {
    return await Promise.race([
      connecting,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new ControlError(`the destination's export ${host}:${port} did not answer`)),
          connectTimeoutMs,
        );
        ch.whenFailed(reject);
      }),
    ]);
  } catch (e) {
    closeLate(connecting);
    throw e instanceof ControlError
      ? e
      : new ControlError(`cannot reach the destination's export ${host}:${port}: ${(e as Error).message}`);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Closes the device `connecting` opens, if it ever does: a wait for it that gave up first (a timeout, the
 * control channel failing) left the connection open once it came.
 */
function closeLate(connecting: Promise<NbdClientDevice>): void {
  connecting.then(
    (d) => d.close().catch(() => undefined),
    () => undefined,
  );
}

/** Holds every request until `open` (the destination's export before the handover). */
class GateDevice implements BlockDevice {
  private target?: BlockDevice;
  private failure?: Error;
  private readonly opened: Promise<void>;
  private resolve!: () => void;
  private reject!: (e: Error) => void;

  constructor(readonly size: number) {
    this.opened = new Promise((res, rej) => {
      this.resolve = res;
      this.reject = rej;
    });
    this.opened.catch(() => undefined);
  }

  open(d: BlockDevice): void {
    this.target = d;
    this.resolve();
  }

  fail(e: Error): void {
    this.failure = e;
    this.reject(e);
  }

  private async dev(): Promise<BlockDevice> {
    if (this.failure) throw this.failure;
    if (!this.target) await this.opened;
    return this.target!;
  }

  async readAt(offset: number, length: number): Promise<Uint8Array> {
    checkRange(this.size, offset, length, 'read');
    return (await this.dev()).readAt(offset, length);
  }
  async writeAt(offset: number, bytes: Uint8Array, opts?: { fua?: boolean }): Promise<void> {
    checkRange(this.size, offset, bytes.length, 'write');
    return (await this.dev()).writeAt(offset, bytes, opts);
  }
  async flush(): Promise<void> {
    return (await this.dev()).flush();
  }
  async trim(offset: number, length: number): Promise<void> {
    checkRange(this.size, offset, length, 'trim');
    return (await this.dev()).trim(offset, length);
  }
  async close(): Promise<void> {}
}

/** Reads paced to at most `rateBytes` per second (a migration's bandwidth cap). */
class PacedDevice implements BlockDevice {
  readonly size: number;
  private nextMs = 0;
  /** Not paced: a BLOCK_STATUS moves no data. */
  readonly extents?: (offset: number, length: number) => Promise<Extent[]>;
  constructor(
    private readonly inner: BlockDevice,
    private readonly rateBytes: number,
  ) {
    this.size = inner.size;
    if (inner.extents) this.extents = (offset, length) => inner.extents!(offset, length);
  }
  async readAt(offset: number, length: number): Promise<Uint8Array> {
    const now = performance.now();
    this.nextMs = Math.max(this.nextMs, now) + (length * 1000) / this.rateBytes;
    const wait = this.nextMs - now - (length * 1000) / this.rateBytes;
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    return this.inner.readAt(offset, length);
  }
  writeAt(offset: number, bytes: Uint8Array, opts?: { fua?: boolean }): Promise<void> {
    return this.inner.writeAt(offset, bytes, opts);
  }
  flush(): Promise<void> {
    return this.inner.flush();
  }
  trim(offset: number, length: number): Promise<void> {
    return this.inner.trim(offset, length);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

export class MigrationAbandonedError extends Error {
  override name = 'MigrationAbandonedError';
  constructor(
    message: string,
    /**
     * Whether the destination had taken over (post-copy): its device then holds the workload's writes since
     * the handover, which nothing else has; before it, the source stays authoritative and has them all.
     */
    readonly afterHandover = false,
  ) {
    super(message);
  }
}

/** A local device as `DestOptions.open` made it, and whether it reads as zeros everywhere. */
export interface OpenedDevice {
  device: BlockDevice;
  /**
   * True when it reads as zeros everywhere (a file just created sparse, a new MemoryDevice): what reads as
   * zeros at the source is then neither read nor written. False (a device that may hold old data): it is
   * trimmed here instead of read from the source.
   */
  zeroed: boolean;
}

export interface DestOptions {
  /**
   * Opens the local device of `size` bytes that receives the copy (e.g. a FileDevice with `create`); a bare
   * device is taken as one that may hold old data (`OpenedDevice.zeroed` false).
   */
  open(size: number): Promise<BlockDevice | OpenedDevice>;
  /** Where the destination serves the device over NBD (port 0 picks one). */
  serveHost?: string;
  servePort?: number;
  /** Finalize when at most this many chunks are dirty (or the dirty set stops shrinking). */
  dirtyChunksMax?: number;
  roundsMax?: number;
  pullConcurrency?: number;
  /** Bandwidth cap for fetching from the source, bytes per second. */
  rateBytesMax?: number;
  /** Give up on a source not heard from (no message, no ping) for this long; default `peerIdleMsMax`. */
  sourceQuietMsMax?: number;
  onEvent?: (e: DestEvent) => void;
  /** Bytes fetched from the source (for a progress bar). */
  onFetch?: (bytes: number) => void;
  /** Aborting it abandons the migration (before the handover the source stays authoritative). */
  signal?: AbortSignal;
}

/**
 * Refuses destination options that cannot mean what they say, before connecting: a rate cap of 0 or less
 * (or NaN) meant no cap at all, a round bound of NaN no pre-copy rounds.
 */
function checkDestOptions(opts: DestOptions): void {
  for (const [name, v] of [
    ['dirtyChunksMax', opts.dirtyChunksMax],
    ['roundsMax', opts.roundsMax],
  ] as const)
    if (v !== undefined && !(Number.isSafeInteger(v) && v >= 0))
      throw new RangeError(`migration ${name} must be a whole number >= 0, got ${shown(v)}`);
  const q = opts.sourceQuietMsMax;
  if (q !== undefined && !(typeof q === 'number' && q >= 2 * pingIntervalMs && q <= 2 ** 31 - 1))
    throw new RangeError(
      `migration sourceQuietMsMax must be milliseconds from ${2 * pingIntervalMs} (two pings) to ${2 ** 31 - 1}, got ${shown(q)}`,
    );
  const r = opts.rateBytesMax;
  if (r !== undefined && !(typeof r === 'number' && r > 0 && r < Number.POSITIVE_INFINITY))
    throw new RangeError(
      `migration rateBytesMax must be a number of bytes per second above 0, got ${shown(r)}`,
    );
}

export type DestEvent =
  | { event: 'connected'; size: number; chunkBytes: number }
  | { event: 'listening'; host: string; port: number }
  | { event: 'round'; round: number; dirtyChunks: number }
  | { event: 'serving'; downtimeMs: number };

export interface DestReport {
  size: number;
  chunkBytes: number;
  /** Dirty-tracking unit: `chunksResent` and `finalDirty` count these. */
  trackBytes: number;
  totalMs: number;
  /** Until the destination served the device. */
  handoverMs: number;
  bytesFetched: number;
  rounds: number;
  chunksResent: number;
  finalDirty: number;
  fetchedOnDemand: number;
  /** As measured by the source: from its seal until it forwarded its workload here. */
  downtimeMs: number;
}

/** A finished migration: the destination serves `device` over NBD on `port` until `close`. */
export interface DestMigration {
  report: DestReport;
  device: BlockDevice;
  port: number;
  close(): Promise<void>;
}

/**
 * Migrates the device of the source at `host:port` here. Resolves when this side holds every chunk and
 * has released the source; rejects with {@link MigrationAbandonedError} (having closed what it opened)
 * when the migration fails before the handover.
 */
export async function migrateFrom(host: string, port: number, opts: DestOptions): Promise<DestMigration> {
  checkDestOptions(opts);
  const t0 = performance.now();
  const from = `source ${host}:${port}`;
  const sock = connect({ host, port });
  const ch = new ControlChannel(sock, from, false);
  const closers: (() => Promise<void>)[] = [];
  const cleanup = async () => {
    for (const c of closers.splice(0).reverse()) await c().catch(() => undefined);
  };
  /** Closes everything when the migration fails (the abort listener too). */
  const teardown = async () => {
    opts.signal?.removeEventListener('abort', onAbort);
    // the pulls in flight end with the connection (a stopped source answers none: closing the mount
    // first waited for them forever)
    remoteDevice?.destroy();
    await mount?.close().catch(() => undefined);
    await cleanup();
  };
  let gate: GateDevice | undefined;
  let mount: MountDevice | undefined;
  /** The source's export: dropped first when the migration fails (its reads may never be answered). */
  let remoteDevice: NbdClientDevice | undefined;
  let server: NbdServer | undefined;
  let servePort = 0;
  const onAbort = () => ch.fail(new ControlError('the destination was stopped'));
  if (opts.signal?.aborted) onAbort();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  const lost = new Promise<never>((_, reject) => ch.whenFailed(reject));
  lost.catch(() => undefined);
  /** Waits for `p` unless the control channel fails first. */
  const guard = <T>(p: Promise<T>) => Promise.race([p, lost]);
  let connectTimer: NodeJS.Timeout | undefined;
  let handoverMs = 0;
  let trackBytes = 0;
  let rounds = 0;
  let resent = 0;
  let finalDirty = 0;
  let downtimeMs = 0;
  try {
    await guard(
      new Promise<void>((resolve, reject) => {
        // cleared however the wait ends: a channel failing first (refused, stopped) left it running 10 s
        connectTimer = setTimeout(
          () => reject(new ControlError(`${from} did not accept a connection`)),
          connectTimeoutMs,
        );
        sock.once('connect', () => resolve());
      }),
    ).finally(() => clearTimeout(connectTimer));
    ch.send({ t: 'hello', v: controlVersion });
    const info = await ch.next('info');
    // from here the source pings every second: a source that stops (SIGSTOP, hung) fails the channel, so
    // the NBD reads waiting on it give up with the migration (guard) instead of waiting forever
    ch.watch(opts.sourceQuietMsMax ?? peerIdleMsMax);
    if (info.v !== controlVersion)
      throw new ControlError(
        `the source speaks control version ${info.v}, this destination ${controlVersion}`,
      );
    if (info.chunkBytes < mountChunkBytesMin || info.chunkBytes > mountChunkBytesMax)
      throw new ControlError(`the source's chunk size ${info.chunkBytes} is outside 64 KiB to 4 MiB`);
    if (info.size > Number.MAX_SAFE_INTEGER / 2)
      throw new ControlError(`the source's size ${info.size} is not plausible`);
    if (info.trackBytes < 512 || info.trackBytes > info.chunkBytes || info.chunkBytes % info.trackBytes !== 0)
      throw new ControlError(
        `the source's tracking unit ${info.trackBytes} does not divide its chunk size ${info.chunkBytes}`,
      );
    const units = Math.ceil(info.size / info.trackBytes);
    trackBytes = info.trackBytes;
    opts.onEvent?.({ event: 'connected', size: info.size, chunkBytes: info.chunkBytes });
    const connecting = NbdClientDevice.connect(host, info.nbdPort, info.exportName);
    const remote = await guard(connecting).catch((e: unknown) => {
      closeLate(connecting);
      throw e;
    });
    remoteDevice = remote;
    closers.push(() => remote.close());
    if (remote.size !== info.size)
      throw new ControlError(`the source's export has ${remote.size} bytes, not ${info.size}`);
    const opened = await opts.open(info.size);
    const local = 'device' in opened ? opened.device : opened;
    closers.push(() => local.close());
    mount = new MountDevice(local, opts.rateBytesMax ? new PacedDevice(remote, opts.rateBytesMax) : remote, {
      chunkBytes: info.chunkBytes,
      localZeroed: 'device' in opened && opened.zeroed,
      pullConcurrency: opts.pullConcurrency ?? 4,
      ...(opts.onFetch ? { onFetch: opts.onFetch } : {}),
    });
    gate = new GateDevice(info.size);
    server = new NbdServer([{ name: '', device: gate }]);
    const serveHost = opts.serveHost ?? '127.0.0.1';
    servePort = await server.listen(opts.servePort ?? 0, serveHost);
    const srv = server;
    closers.push(() => srv.close());
    opts.onEvent?.({ event: 'listening', host: serveHost, port: servePort });
    ch.pingEvery(pingIntervalMs);

    // pre-copy, then rounds while the dirty set shrinks
    await guard(mount.pullAll());
    let carried = new UnitSet();
    let previous = Number.POSITIVE_INFINITY;
    for (; rounds < (opts.roundsMax ?? 8); ) {
      ch.send({ t: 'round' });
      const dirty = await ch.nextUnits('dirty', units);
      rounds++;
      opts.onEvent?.({ event: 'round', round: rounds, dirtyChunks: dirty.size });
      if (dirty.size <= (opts.dirtyChunksMax ?? 8) || dirty.size > 0.8 * previous) {
        carried = dirty;
        break;
      }
      previous = dirty.size;
      resent += dirty.size;
      await guard(mount.refresh(dirty, info.trackBytes));
    }
    // finalize: the source seals and sends the last dirty chunks; they are fetched on demand from now
    ch.stopPings();
    ch.send({ t: 'finalize', servePort });
    const last = await ch.nextUnits('final', units);
    for (const [u, n] of carried.runs()) last.addRange(u, n);
    finalDirty = last.size;
    resent += last.size;
    await guard(mount.invalidate(unitsToChunks(last, info.trackBytes, info.chunkBytes, info.size), false));
    mount.own();
    ch.send({ t: 'serving' });
    downtimeMs = (await ch.next('committed')).downtimeMs;
  } catch (e) {
    const reason = (e as Error).message;
    // stops the pings too
    ch.fail(e instanceof ControlError ? e : new ControlError(reason));
    gate?.fail(new MigrationAbandonedError('the migration was abandoned'));
    await teardown();
    throw new MigrationAbandonedError(
      `migration from ${host}:${port} abandoned before the handover (${reason}); the source stays authoritative`,
    );
  }
  // the handover: this side is authoritative; pull the rest, then release the source
  gate.open(mount);
  handoverMs = performance.now() - t0;
  opts.onEvent?.({ event: 'serving', downtimeMs });
  ch.pingEvery(pingIntervalMs);
  const m = mount;
  try {
    await guard(m.pullAll());
    ch.stopPings();
    ch.send({ t: 'release' });
    await ch.next('released');
    ch.close();
  } catch (e) {
    // the channel may still be open (a pull failed, not the source): it is failed too, so the source hears
    // why at once and nothing of it stays open here (the socket, the pings, the watch on the source)
    const reason = (e as Error).message;
    ch.fail(
      e instanceof ControlError ? e : new ControlError(`the destination's post-copy failed: ${reason}`),
    );
    gate.fail(new MigrationAbandonedError('the source went away during post-copy', true));
    await teardown();
    // the source went away after the handover: chunks not pulled yet are lost with it
    throw new MigrationAbandonedError(
      `the source ${host}:${port} went away during post-copy (${reason}); ${m.stats.chunks - m.stats.present} of ${m.stats.chunks} chunks are missing`,
      true,
    );
  }
  opts.signal?.removeEventListener('abort', onAbort);
  // every chunk is local: the remote is no longer needed
  const remoteCloser = closers.shift();
  await remoteCloser?.().catch(() => undefined);
  const report: DestReport = {
    size: m.size,
    chunkBytes: m.chunkBytes,
    trackBytes,
    totalMs: performance.now() - t0,
    handoverMs,
    bytesFetched: m.stats.bytesFetched,
    rounds,
    chunksResent: resent,
    finalDirty,
    fetchedOnDemand: m.stats.fetchedOnDemand,
    downtimeMs,
  };
  return {
    report,
    device: gate,
    port: servePort,
    close: async () => {
      await m.close().catch(() => undefined);
      await cleanup();
    },
  };
}
