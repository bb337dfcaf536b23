/** Spec URLs for loglets and MetaStores, and `openLog` for applications. */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  linkSync,
  openSync,
  readFileSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { makeDirs } from '@strata/cli';
import {
  NotFoundError,
  type ObjectStore,
  openStore,
  PreconditionFailedError,
  parseStoreUrl,
} from '@strata/objstore';
import { type Chain, type Loglet, type MetaStore, type Payload, VersionConflictError } from './contract.js';
import { EtcdMetaStore, parseEtcdUrl } from './providers/etcd.js';
import { FileLoglet } from './providers/file.js';
import { FileMetaStore } from './providers/file-meta.js';
import { MemoryLoglet, MemoryMetaStore } from './providers/memory.js';
import { NativeLoglet, nativeLogletId, parseNativeSpec, prepareNative } from './providers/native.js';
import { ObjectStoreLoglet } from './providers/objstore.js';
import { StripedLoglet } from './providers/striped.js';
import {
  parseZkUrl,
  ZkClient,
  ZkError,
  ZooKeeperLoglet,
  ZooKeeperMetaStore,
  zkErr,
} from './providers/zookeeper.js';
import { LogletOwnedError, VirtualLog, type VirtualLogOptions } from './virtual.js';

export class SpecError extends Error {
  override name = 'SpecError';
}

const memLoglets = new Map<string, MemoryLoglet>();

// A segment's loglet belongs to one log. A spec is a location (file:DIR, objstore:URL, mem://NAME,
// zk://HOST:PORT/PATH) in which a segment is named by its index and start alone, so two logs given the
// same location shared their first segment's loglet: the second saw the first's records, trim and seal,
// and appended among them. The first log to open a segment there writes its name beside it (OWNER);
// another log's open is refused. A segment written before OWNER existed is taken by the first log that
// opens it. (Native loglet ids carry the log's name already.)

function ownedElsewhere(spec: string, seg: string, owner: string, log: string): LogletOwnedError {
  return new LogletOwnedError(
    `loglet spec '${spec}': segment ${seg} there belongs to log '${owner}', not '${log}': give each log a location of its own`,
  );
}

const memOwners = new Map<string, string>();

function claimMem(key: string, spec: string, seg: string, log: string): void {
  const owner = memOwners.get(key);
  if (owner === undefined) memOwners.set(key, log);
  else if (owner !== log) throw ownedElsewhere(spec, seg, owner, log);
}

function claimFile(dir: string, spec: string, seg: string, log: string): void {
  const path = join(dir, 'OWNER');
  const check = () => {
    const owner = readFileSync(path, 'utf8');
    if (owner === '')
      throw new LogletOwnedError(
        `loglet spec '${spec}': segment ${seg} there has an empty OWNER file (${path}); remove it if no log names the segment`,
      );
    if (owner !== log) throw ownedElsewhere(spec, seg, owner, log);
  };
  // read first: every open of an existing segment, and nothing written for it
  if (existsSync(path)) {
    check();
    return;
  }
  // the name written and synced in a file of its own, then linked into place: OWNER exists only whole, so
  // neither a reader racing the claim (another process of the log opening the segment) nor one after a
  // crash finds it empty
  const tmp = join(dir, `OWNER.${process.pid}.${randomBytes(4).toString('hex')}`);
  const fd = openSync(tmp, 'wx');
  try {
    writeSync(fd, log);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(tmp, path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    check(); // another claim came first
    return;
  } finally {
    rmSync(tmp, { force: true });
  }
  const d = openSync(dir, 'r');
  try {
    fsyncSync(d);
  } finally {
    closeSync(d);
  }
}

async function claimObject(
  store: ObjectStore,
  key: string,
  spec: string,
  seg: string,
  log: string,
): Promise<void> {
  // read first: a segment already claimed (every open of an existing log's segments) costs a get, not a
  // conditional put, which on a file: store writes and syncs a file before it finds the key taken
  const owner = async () => {
    try {
      return Buffer.from(await store.get(key)).toString('utf8');
    } catch (e) {
      if (e instanceof NotFoundError) return undefined;
      throw e;
    }
  };
  let held = await owner();
  if (held === undefined) {
    try {
      await store.put(key, Buffer.from(log), { ifNoneMatch: '*' });
      return;
    } catch (e) {
      if (!(e instanceof PreconditionFailedError)) throw e;
    }
    held = (await owner()) ?? '';
  }
  if (held !== log) throw ownedElsewhere(spec, seg, held, log);
}

/** A ZooKeeper segment's OWNER: the znode `PATH/<i>-<start>.owner` beside the segment's own. */
async function claimZnode(spec: string, seg: string, log: string): Promise<void> {
  const { hosts, path } = specOr(() => parseZkUrl(spec));
  const owned = `${path}/${seg}.owner`;
  const zk = new ZkClient(hosts);
  try {
    await zk.mkdirp(path);
    try {
      await zk.create(owned, Buffer.from(log));
      return;
    } catch (e) {
      if (!(e instanceof ZkError && e.code === zkErr.nodeExists)) throw e;
    }
    const owner = Buffer.from((await zk.getData(owned)).data).toString('utf8');
    if (owner !== log) throw ownedElsewhere(spec, seg, owner, log);
  } finally {
    await zk.close();
  }
}
/** File loglets open in this process, by directory: a directory is locked to one opener, so clients share. */
const fileLoglets = new Map<string, { loglet: Promise<FileLoglet>; refs: number }>();

/** One client's handle on a shared FileLoglet; the loglet closes when its last handle does. */
class SharedFileLoglet implements Loglet {
  private closed = false;
  constructor(
    private readonly dir: string,
    private readonly l: FileLoglet,
  ) {}
  get start(): number {
    return this.l.start;
  }
  append(batch: Payload[]) {
    return this.l.append(batch);
  }
  checkTail() {
    return this.l.checkTail();
  }
  read(from: number, to: number) {
    return this.l.read(from, to);
  }
  prefixTrim(pos: number) {
    return this.l.prefixTrim(pos);
  }
  seal() {
    return this.l.seal();
  }
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const e = fileLoglets.get(this.dir);
    if (e && --e.refs === 0) {
      fileLoglets.delete(this.dir);
      await this.l.close();
    }
  }
}

/**
 * The stores behind one log's `objstore:` segments, by store URL: every segment of a log is a prefix of the
 * same store, and a store per segment (as until 2026-12-06) kept a copy of the store's directory listing per
 * segment, memory that grew with segments times objects. A VirtualLog from `openLog` keeps one map for its
 * life (as it keeps its loglets); a store holds no descriptors between calls and is not closed, as the
 * per-segment ones were not. A loglet's objects are small batches, read from a local file: store with
 * synchronous calls (a thread-pool trip waits behind the process's busy compiler or GC threads: helios'
 * progress log catch-up took 3-7 ms where the read takes 0.05).
 */
export type SegmentStores = Map<string, Promise<ObjectStore>>;

function segmentStore(spec: string, cwd: string, stores: SegmentStores | undefined): Promise<ObjectStore> {
  const url = spec.slice('objstore:'.length);
  const open = () => openStore(url, { cwd, fileSyncReadBytesMax: 2 ** 20 });
  if (!stores) return open();
  const key = `${resolve(cwd)}\0${url}`;
  let s = stores.get(key);
  if (!s) {
    s = open();
    stores.set(key, s);
    s.catch(() => stores.delete(key));
  }
  return s;
}

async function openFileLoglet(dir: string, start: number): Promise<Loglet> {
  let e = fileLoglets.get(dir);
  if (!e) {
    e = { loglet: FileLoglet.open(dir, start), refs: 0 };
    fileLoglets.set(dir, e);
    e.loglet.catch(() => fileLoglets.delete(dir));
  }
  e.refs++;
  try {
    return new SharedFileLoglet(dir, await e.loglet);
  } catch (err) {
    e.refs--;
    throw err;
  }
}
const memMetas = new Map<string, MemoryMetaStore<Chain>>();

/**
 * Opens the loglet for a segment. Specs: `mem://NAME` (in this process), `file:DIR` (a durable local
 * loglet; each segment in DIR/<index>-<start>), `objstore:STORE_URL`, `zk://HOST:PORT/PATH`,
 * `native://...`, and `striped:SPEC|SPEC|...` (the segment striped across one nested loglet per spec;
 * stripe i is named `<index>-0.s<i>`, so stripes on one server or directory stay apart).
 */
export async function openLoglet(
  spec: string,
  start: number,
  index: number,
  cwd = process.cwd(),
  /** The log's name: native loglet ids carry it, so two logs never share a loglet on one LogServer. */
  log = '',
  /** Set for stripe i of a striped loglet: `s<i>`. */
  stripe = '',
  /** The log's stores, shared by its segments (`openLog` passes one); without it each segment opens its own. */
  stores?: SegmentStores,
): Promise<Loglet> {
  const seg = segmentName(index, start, stripe);
  if (spec.startsWith('striped:')) {
    const parts = stripedParts(spec);
    // each stripe counts its own rounds from 0; the striped loglet maps them to positions from `start`
    const stripes: Loglet[] = [];
    try {
      for (const [i, p] of parts.entries())
        stripes.push(await openLoglet(p, 0, index, cwd, log, `s${i}`, stores));
    } catch (e) {
      await Promise.all(stripes.map((l) => l.close()));
      throw e;
    }
    return new StripedLoglet(start, stripes);
  }
  if (log) await claimLoglet(spec, start, index, cwd, log, stripe, stores);
  if (spec.startsWith('mem://')) {
    const key = `${spec}#${seg}`;
    let l = memLoglets.get(key);
    if (!l) memLoglets.set(key, (l = new MemoryLoglet(start)));
    return l;
  }
  if (spec.startsWith('file:')) return openFileLoglet(join(resolve(cwd, fileSpecDir(spec)), seg), start);
  if (spec.startsWith('objstore:')) {
    // objstore:STORE_URL -- each segment under its own prefix of one store (`segmentStore`)
    return new ObjectStoreLoglet(await segmentStore(spec, cwd, stores), `vlog/segment-${seg}`, start);
  }
  if (spec.startsWith('zk://')) {
    // a ZooKeeper shim loglet (Delos' first production loglet): each segment under its own znode
    const { hosts, path } = specOr(() => parseZkUrl(spec));
    return ZooKeeperLoglet.open(hosts, { path: `${path}/${seg}`, start });
  }
  if (spec.startsWith('native://')) {
    const n = specOr(() => parseNativeSpec(spec));
    // one loglet per segment: the id carries the segment so a reused spec never mixes segments
    return new NativeLoglet(
      nativeLogletId(spec, index, nativeScope(log, stripe)),
      start,
      n.sequencer,
      n.servers,
    );
  }
  throw unknownKind(spec);
}

function unknownKind(spec: string): SpecError {
  return new SpecError(
    `loglet spec '${spec}': unknown kind (expected mem://NAME, file:DIR, objstore:STORE_URL, zk://HOST:PORT/PATH, native://SEQ?servers=... or striped:SPEC|SPEC|...)`,
  );
}

function fileSpecDir(spec: string): string {
  const dir = spec.slice('file:'.length);
  if (!dir) throw new SpecError(`loglet spec '${spec}': file: needs a directory, e.g. file:./log`);
  return dir;
}

/**
 * Throws the {@link SpecError} {@link openLoglet} would for `spec` (an unknown kind, a malformed URL), without
 * opening or connecting to anything: what a chain is checked with before it takes a spec.
 */
export function checkLogletSpec(spec: string): void {
  if (spec.startsWith('striped:')) for (const p of stripedParts(spec)) checkLogletSpec(p);
  else if (spec.startsWith('file:')) fileSpecDir(spec);
  else if (spec.startsWith('objstore:')) specOr(() => parseStoreUrl(spec.slice('objstore:'.length)));
  else if (spec.startsWith('zk://')) specOr(() => parseZkUrl(spec));
  else if (spec.startsWith('native://')) specOr(() => parseNativeSpec(spec));
  else if (!spec.startsWith('mem://')) throw unknownKind(spec);
}

/** The scope of a native loglet's id: the log, and for a stripe the stripe too (stripes stay apart). */
function nativeScope(log: string, stripe: string): string {
  return stripe ? `${log}.${stripe}` : log;
}

/** The nested specs of `striped:SPEC|SPEC|...`; striping is one level deep. */
function stripedParts(spec: string): string[] {
  const parts = spec.slice('striped:'.length).split('|');
  const bad = parts.findIndex((p) => p.trim() === '' || p.startsWith('striped:'));
  if (bad >= 0)
    throw new SpecError(
      `loglet spec '${spec}': stripe ${bad + 1} is ${parts[bad] === '' ? 'empty' : 'itself striped'} (expected striped:SPEC|SPEC|..., e.g. striped:native://127.0.0.1:7001?servers=...|native://127.0.0.1:7002?servers=...)`,
    );
  return parts;
}

function specOr<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw new SpecError((e as Error).message);
  }
}

/**
 * Opens the MetaStore register of log `name` at a MetaStore URL: `mem://NAME`, `file:DIR`,
 * `zk://HOST:PORT/PATH` (a znode, its version as the CAS) or `etcd://HOST:PORT/KEY` (a key, its version as
 * the CAS).
 */
export function openMeta(url: string, name: string, cwd = process.cwd()): MetaStore<Chain> {
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(name))
    throw new SpecError(`log name '${name}': use 1-128 of A-Z a-z 0-9 . _ -`);
  if (url.startsWith('mem://')) {
    const key = `${url}#${name}`;
    let m = memMetas.get(key);
    if (!m) memMetas.set(key, (m = new MemoryMetaStore<Chain>()));
    return m;
  }
  if (url.startsWith('file:')) {
    const dir = url.slice(5);
    if (!dir) throw new SpecError(`MetaStore URL '${url}': file: needs a directory, e.g. file:./meta`);
    return new FileMetaStore<Chain>(join(resolve(cwd, dir), `${name}.json`));
  }
  if (url.startsWith('zk://')) {
    const { hosts, path } = specOr(() => parseZkUrl(url));
    return new ZooKeeperMetaStore<Chain>(new ZkClient(hosts), `${path}/${name}`);
  }
  if (url.startsWith('etcd://')) {
    const { endpoint, key } = specOr(() => parseEtcdUrl(url));
    return new EtcdMetaStore<Chain>(endpoint, `${key}/${name}`);
  }
  throw new SpecError(
    `MetaStore URL '${url}': unknown kind (expected file:DIR, mem://NAME, zk://HOST:PORT/PATH or etcd://HOST:PORT/KEY)`,
  );
}

export interface OpenLogOptions extends VirtualLogOptions {
  /** MetaStore URL. */
  meta: string;
  /** Loglet spec for a new log (default: a file loglet beside a file: MetaStore). */
  loglet?: string;
  /** Create the log if it does not exist. */
  create?: boolean;
  cwd?: string;
}

/** Readies the loglet a reconfiguration is about to install (native loglets, also as stripes; others need nothing). */
export async function prepareLoglet(spec: string, index: number, log = ''): Promise<void> {
  if (spec.startsWith('native://')) await prepareNative(spec, index, { timeoutMs: 2_000, scope: log });
  if (spec.startsWith('striped:'))
    await Promise.all(
      stripedParts(spec).map((p, i) =>
        p.startsWith('native://')
          ? prepareNative(p, index, { timeoutMs: 2_000, scope: nativeScope(log, `s${i}`) })
          : undefined,
      ),
    );
}

/**
 * A segment's name in its location: its index and start (segments sealed empty share a start with their
 * successor), and a stripe's its stripe.
 */
function segmentName(index: number, start: number, stripe = ''): string {
  return stripe ? `${index}-${start}.${stripe}` : `${index}-${start}`;
}

/**
 * Takes segment (index, start) at `spec`'s location for log `log`, without opening its loglet (a file
 * loglet's open writes and syncs its START): the OWNER of a `file:`, `objstore:`, `mem://` or `zk://`
 * segment, or LogletOwnedError if another log holds it. Native loglets have nothing to take (their ids
 * carry the log's name). `openLoglet` takes its segment so before it opens one; `openLog` before a chain
 * names one.
 */
export async function claimLoglet(
  spec: string,
  start: number,
  index: number,
  cwd: string,
  log: string,
  stripe = '',
  /** The log's stores (`openLoglet`'s): the claim reads through the one its loglet will use. */
  stores?: SegmentStores,
): Promise<void> {
  const seg = segmentName(index, start, stripe);
  if (spec.startsWith('mem://')) claimMem(`${spec}#${seg}`, spec, seg, log);
  else if (spec.startsWith('file:')) {
    const dir = join(resolve(cwd, fileSpecDir(spec)), seg);
    await makeDirs(dir);
    claimFile(dir, spec, seg, log);
  } else if (spec.startsWith('objstore:')) {
    // the OWNER read as the loglet reads its batches; a store of its own, closed after, when the log has none
    const store = await segmentStore(spec, cwd, stores);
    try {
      await claimObject(store, `vlog/segment-${seg}/OWNER`, spec, seg, log);
    } finally {
      if (!stores) await store.close();
    }
  } else if (spec.startsWith('zk://')) await claimZnode(spec, seg, log);
}

/** Opens the VirtualLog `name`, creating it when asked. */
export async function openLog(name: string, o: OpenLogOptions): Promise<VirtualLog> {
  const cwd = o.cwd ?? process.cwd();
  const meta = openMeta(o.meta, name, cwd);
  const stores: SegmentStores = new Map();
  const factory = (spec: string, start: number, index: number) =>
    openLoglet(spec, start, index, cwd, name, '', stores);
  o = {
    prepare: (spec, index) => prepareLoglet(spec, index, name),
    checkSpec: checkLogletSpec,
    claim: (spec, start, index) => claimLoglet(spec, start, index, cwd, name, '', stores),
    ...o,
  };
  const { value } = await meta.get();
  if (!value) {
    if (!o.create) throw new SpecError(`no log named '${name}' in ${o.meta} (create it first)`);
    const spec =
      o.loglet ??
      (o.meta.startsWith('file:')
        ? `file:${join(o.meta.slice(5), name)}`
        : o.meta.startsWith('zk://')
          ? `${o.meta.replace(/\/+$/, '')}/${name}.segments`
          : `mem://${name}`);
    // a location whose first segment another log holds (OWNER, above) is refused before the chain is
    // written, not at the first append
    await o.claim?.(spec, 0, 0);
    try {
      return await VirtualLog.create(meta, factory, spec, o);
    } catch (e) {
      // created concurrently by someone else: connect to theirs
      if (!(e instanceof VersionConflictError)) throw e;
    }
  }
  return VirtualLog.connect(meta, factory, o);
}
