import { statSync } from 'node:fs';
import { open, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import {
  CliError,
  type Command,
  type DemoStep,
  exitWithParentFlag,
  formatBytes,
  group,
  type Io,
  intFlag,
  listenOn,
  makeDirs,
  output,
  Progress,
  parseBytes,
  parseFlags,
  parseHostPort,
  timerMsMax,
  UsageError,
  untilStopped,
} from '@strata/cli';
import { openStore } from '@strata/objstore';
import { NbdClientDevice } from './client.js';
import type { BlockDevice } from './device.js';
import { FileDevice } from './devices/file.js';
import { MemoryDevice } from './devices/memory.js';
import { StoreDevice } from './devices/store.js';
import {
  MigrationAbandonedError,
  MigrationSource,
  migrateFrom,
  migrateTrackBytes,
} from './migrate-remote.js';
import { MountDevice, mountChunkBytesMax, mountChunkBytesMin } from './mount.js';
import { defaultNbdConnectionsMax, defaultNbdSendTimeoutMs, defaultPollUs, NbdServer } from './nbd.js';
import {
  checkChunk,
  serveSync,
  syncFiles,
  syncToRemote,
  syncWindowChunks,
  syncWindowChunksMax,
} from './sync.js';

/**
 * The NBD protocol's strings, export names among them, "MUST NOT contain NUL characters ... and MUST be no
 * longer than 4096 bytes" (NetworkBlockDevice/nbd doc/proto.md, Conventions): a longer `--name` was
 * served, and no client could ask for it.
 */
const exportNameBytesMax = 4096;

/** `--name` as an export name, or a usage error. */
function exportName(name: string | undefined): string {
  const n = name ?? '';
  const bytes = Buffer.byteLength(n);
  if (bytes > exportNameBytesMax)
    throw new UsageError(`--name: an export name is at most ${exportNameBytesMax} bytes, got ${bytes}`);
  if (n.includes('\0')) throw new UsageError('--name: an export name cannot contain NUL');
  return n;
}

const serve: Command = {
  name: 'serve',
  summary: 'serve a file, a memory device or an object-store device over NBD',
  help: `Serves a block device over the NBD protocol (fixed newstyle; structured replies; base:allocation).

Usage: strata nbd serve (--file F | --mem SIZE | --store URL [--size SIZE]) --listen 127.0.0.1:PORT [--name EXPORT] [--read-only] [--poll-us N]
                       [--max-connections N] [--send-timeout-ms MS] [--exit-with-parent]

--poll-us N: poll for the next request for at most N microseconds after each request and reply instead of
  sleeping (default ${defaultPollUs}; 0: never): lower latency for a sequential client on a VM whose idle vCPU
  wakes slowly. Adaptive: the window covers the gaps a client leaves between a reply and its next
  request, and is 0 while gaps exceed N, so sparse traffic costs no polling.
--max-connections N: connections open at once, handshakes included (default ${defaultNbdConnectionsMax}); one more
  gets NBD_REP_ERR_POLICY ('too many connections') to its options and is closed, within 2 s (each open
  connection may hold about 96 MiB of buffers).
--send-timeout-ms MS: drop a connection whose replies have not moved for MS while it has some waiting (a
  client that sends requests and stops reading; default ${defaultNbdSendTimeoutMs}).
--exit-with-parent: stop once the process that started this one is gone (as nbdkit's flag does).

Example:
  strata nbd serve --mem 1G --listen 127.0.0.1:10809 --name disk   # then: nbdinfo nbd://127.0.0.1:10809/disk`,
  async run(argv, io) {
    const { values } = parseFlags(
      argv,
      {
        ...exitWithParentFlag,
        file: { type: 'string' },
        mem: { type: 'string' },
        store: { type: 'string' },
        size: { type: 'string' },
        listen: { type: 'string' },
        name: { type: 'string' },
        'read-only': { type: 'boolean' },
        'poll-us': { type: 'string' },
        'max-connections': { type: 'string' },
        'send-timeout-ms': { type: 'string' },
      },
      0,
    );
    const pollUs = intFlag('poll-us', values['poll-us'], defaultPollUs, 0, 1_000_000);
    const maxConnections = intFlag(
      'max-connections',
      values['max-connections'],
      defaultNbdConnectionsMax,
      1,
      65_536,
    );
    const sendTimeoutMs = intFlag(
      'send-timeout-ms',
      values['send-timeout-ms'],
      defaultNbdSendTimeoutMs,
      1,
      timerMsMax,
    );
    const name = exportName(values.name);
    const given = [values.file, values.mem, values.store].filter((x) => x !== undefined).length;
    if (given !== 1) throw new UsageError('give exactly one of --file, --mem, --store');
    const { host, port } = parseHostPort(values.listen ?? '127.0.0.1:10809', '--listen');
    let device: BlockDevice;
    if (values.file)
      device = await FileDevice.open(resolve(io.cwd, values.file), {
        readOnly: values['read-only'] === true,
      });
    else if (values.mem) device = new MemoryDevice(parseBytes(values.mem, '--mem'));
    else {
      const store = await openStore(values.store!, { cwd: io.cwd });
      device = await StoreDevice.open(
        store,
        'nbd',
        values.size ? { size: parseBytes(values.size, '--size') } : undefined,
      ).catch((e: Error) => {
        throw new CliError(e.message);
      });
    }
    const server = new NbdServer([{ name, device, readOnly: values['read-only'] === true }], {
      pollUs,
      maxConnections,
      sendTimeoutMs,
    });
    const p = await server.listen(port, host).catch(async (e: Error) => {
      await device.close();
      throw e;
    });
    // listen for the signal before saying we are up: a supervisor may stop us the moment it reads that
    const stopped = untilStopped({ withParent: values['exit-with-parent'] === true });
    output(
      io,
      values.json,
      { host, port: p, name, size: device.size },
      () => `serving ${device.size} bytes as '${name}' on nbd://${host}:${p}/${name}`,
    );
    await stopped;
    await server.close();
    await device.close();
    return 0;
  },
};

const syncCmd: Command = {
  name: 'sync',
  summary: 'delta-sync a file to another file or to a Strata sync server (HighwayHash-128 chunk digests)',
  help: `Makes DST equal to SRC, sending only the chunks whose HighwayHash-128 digests differ. Re-running
after an interruption sends only what still differs.

Usage: strata sync SRC DST [--chunk 64K] [--dry-run] [--window-chunks N]   DST: a path, or tcp://HOST:PORT/PATH
       strata sync serve --listen 127.0.0.1:PORT --root DIR [--exit-with-parent]

--window-chunks N: compare the chunk digests N chunks at a time (default ${syncWindowChunks}, at most
  ${syncWindowChunksMax}): each side holds at most 4 windows of digests (16 bytes each), whatever the size.

Example:
  strata sync disk.img backup.img --dry-run`,
  async run(argv, io) {
    const { values, positionals } = parseFlags(
      argv,
      {
        ...exitWithParentFlag,
        chunk: { type: 'string' },
        'dry-run': { type: 'boolean' },
        listen: { type: 'string' },
        root: { type: 'string' },
        'window-chunks': { type: 'string' },
      },
      2,
    );
    if (positionals[0] === 'serve') {
      const { host, port } = parseHostPort(values.listen, '--listen');
      if (!values.root) throw new UsageError('expected --root DIR');
      // a root that is not there failed every request (ENOENT per file) instead of the command
      const root = resolve(io.cwd, values.root);
      if (!statSync(root, { throwIfNoEntry: false })?.isDirectory())
        throw new CliError(`--root ${values.root}: not a directory`);
      // a connection that ended early (its idle timeout, a refused frame) is said, not only dropped
      const s = serveSync(root, { onError: (e) => io.stderr.write(`sync serve: ${e.message}\n`) });
      await listenOn(s, port, host);
      const stopped = untilStopped({ withParent: values['exit-with-parent'] === true });
      output(
        io,
        values.json,
        { host, port: (s.address() as { port: number }).port },
        () => `sync server on ${host}:${(s.address() as { port: number }).port}, root ${values.root}`,
      );
      await stopped;
      await new Promise((r) => s.close(r));
      return 0;
    }
    const [src, dst] = positionals;
    if (!src || !dst) throw new UsageError('expected SRC and DST');
    const chunkBytes = values.chunk !== undefined ? parseBytes(values.chunk, '--chunk') : undefined;
    if (chunkBytes !== undefined)
      try {
        checkChunk(chunkBytes);
      } catch (e) {
        throw new UsageError(`--chunk: ${(e as Error).message}`);
      }
    // a tcp:// DST that does not parse was taken for a local path ('tcp:/HOST...': ENOENT)
    const m = /^tcp:\/\/([^/:]+):(\d+)\/(.+)$/.exec(dst);
    if (!m && /^tcp:/i.test(dst)) throw new UsageError(`DST: expected tcp://HOST:PORT/PATH, got '${dst}'`);
    // a directory's read failed with EISDIR and no name (DST is local unless it is tcp://)
    const locals: [string, string][] = m
      ? [['SRC', src]]
      : [
          ['SRC', src],
          ['DST', dst],
        ];
    for (const [what, path] of locals)
      if (statSync(resolve(io.cwd, path), { throwIfNoEntry: false })?.isDirectory())
        throw new CliError(`${what} ${path}: is a directory`);
    const windowChunks = intFlag(
      'window-chunks',
      values['window-chunks'],
      syncWindowChunks,
      1,
      syncWindowChunksMax,
    );
    const progress = new Progress(io.stderr, { total: 0, label: 'sync', quiet: values.quiet === true });
    const opts = {
      ...(chunkBytes !== undefined ? { chunkBytes } : {}),
      windowChunks,
      dryRun: values['dry-run'] === true,
      onProgress: (n: number) => progress.tick(n),
    };
    let r: Awaited<ReturnType<typeof syncFiles>>;
    try {
      r = m
        ? await syncToRemote(resolve(io.cwd, src), m[1]!, Number(m[2]), m[3]!, opts)
        : await syncFiles(resolve(io.cwd, src), resolve(io.cwd, dst), opts);
    } catch (e) {
      throw new CliError((e as Error).message);
    }
    progress.finish();
    output(
      io,
      values.json,
      r,
      () =>
        `${r.dryRun ? 'would send' : 'sent'} ${r.bytesSent} bytes: ${r.changedChunks} of ${r.chunks} chunks differ (${r.size} bytes in all)`,
    );
    return 0;
  },
};

const mount: Command = {
  name: 'mount',
  summary: 'serve a local cache of a remote NBD device: on-demand and background pull, write-back',
  help: `Mounts a remote NBD export (any server, or another Strata process) as a local device: reads of chunks
not yet local fetch them on demand, a background puller fetches the rest (hot chunks first), writes land in
the cache file and go back to the remote on flush (or at once with --write-through). The mounted device is
served over NBD on --listen.

Usage: strata nbd mount --remote HOST:PORT[/EXPORT] --cache FILE --listen 127.0.0.1:PORT [--chunk 1M] [--exit-with-parent]
                        [--pull-concurrency 4] [--write-through] [--name EXPORT] [--poll-us N]
                        [--timeout-ms N]

--poll-us N: as for strata nbd serve (default ${defaultPollUs}; 0: never poll).
--timeout-ms N: a request to the remote unanswered for N ms breaks the connection, and the reads that need
  it fail (default 0: wait as long as the connection lives, as a remote that stopped answering makes them).

Example:
  strata nbd mount --remote 127.0.0.1:10809/disk --cache ./disk.cache --listen 127.0.0.1:10810`,
  async run(argv, io) {
    const { values } = parseFlags(
      argv,
      {
        ...exitWithParentFlag,
        remote: { type: 'string' },
        cache: { type: 'string' },
        listen: { type: 'string' },
        chunk: { type: 'string' },
        'pull-concurrency': { type: 'string' },
        'poll-us': { type: 'string' },
        'write-through': { type: 'boolean' },
        name: { type: 'string' },
        'timeout-ms': { type: 'string' },
      },
      0,
    );
    const pollUs = intFlag('poll-us', values['poll-us'], defaultPollUs, 0, 1_000_000);
    const requestTimeoutMs = intFlag('timeout-ms', values['timeout-ms'], 0, 0, timerMsMax);
    const name = exportName(values.name);
    const m = /^([^:/]+):(\d+)(?:\/(.*))?$/.exec(values.remote ?? '');
    if (!m) throw new UsageError(`--remote: expected HOST:PORT[/EXPORT], got '${values.remote ?? ''}'`);
    if (!values.cache) throw new UsageError('expected --cache FILE');
    const { host, port } = parseHostPort(values.listen ?? '127.0.0.1:10810', '--listen');
    // checked before connecting: a bad --chunk was a RangeError with the remote's connection left open
    const chunkBytes = chunkFlag(values.chunk);
    const pullConcurrency = intFlag('pull-concurrency', values['pull-concurrency'], 4, 1, 64);
    let remote: NbdClientDevice;
    try {
      remote = await NbdClientDevice.connect(m[1]!, Number(m[2]), m[3] ?? '', { requestTimeoutMs });
    } catch (e) {
      throw new CliError(`--remote ${values.remote}: ${(e as Error).message}`);
    }
    let cache: FileDevice | undefined;
    let dev: MountDevice;
    let server: NbdServer;
    let p: number;
    try {
      const cachePath = resolve(io.cwd, values.cache);
      // a cache file that is not there yet (or empty) reads as zeros once sized: what reads as zeros at the
      // remote is then not written to it; any other (a device node's size is 0 too) may hold old data
      const zeroed = await stat(cachePath).then(
        (st) => st.isFile() && st.size === 0,
        (e: NodeJS.ErrnoException) => e.code === 'ENOENT',
      );
      cache = await FileDevice.open(cachePath, { create: true, size: remote.size }).catch((e: Error) => {
        throw new CliError(`--cache ${values.cache}: ${e.message}`);
      });
      dev = new MountDevice(cache, remote, {
        localZeroed: zeroed,
        ...(chunkBytes !== undefined ? { chunkBytes } : {}),
        pullConcurrency,
        writeThrough: values['write-through'] === true,
      });
      server = new NbdServer([{ name, device: dev }], { pollUs });
      p = await server.listen(port, host);
    } catch (e) {
      // the remote's open connection kept the process from exiting after the error was printed
      remote.destroy();
      await cache?.close().catch(() => undefined);
      throw e;
    }
    const stopped = untilStopped({ withParent: values['exit-with-parent'] === true });
    output(
      io,
      values.json,
      { host, port: p, size: dev.size, chunks: dev.stats.chunks },
      () =>
        `mounted ${values.remote} (${dev.size} bytes) on nbd://${host}:${p}/${name}; pulling in the background`,
    );
    const progress = new Progress(io.stderr, {
      total: dev.stats.chunks,
      label: 'pull',
      quiet: values.quiet === true,
    });
    const timer = setInterval(() => progress.tick(0), 500);
    void dev.pullAll().then(() => {
      clearInterval(timer);
      progress.finish();
      if (!values.quiet)
        io.stderr.write(
          `strata nbd mount: all ${dev.stats.chunks} chunks local (${dev.stats.fetchedOnDemand} on demand)\n`,
        );
    });
    await stopped;
    clearInterval(timer);
    await server.close();
    await dev.close();
    await remote.close();
    await cache.close();
    return 0;
  },
};

/** One line for an event: JSON on stdout with --json, else text on stderr (unless --quiet). */
function note(io: Io, values: { json?: boolean; quiet?: boolean }, value: object, text: string): void {
  if (values.json) io.stdout.write(`${JSON.stringify(value)}\n`);
  else if (!values.quiet) io.stderr.write(`${text}\n`);
}

const ms = (x: number) => (x < 10 ? x.toFixed(2) : x.toFixed(0));

const migrateSource: Command = {
  name: 'source',
  summary: 'offer a file-backed device for live migration; serve its workload over NBD meanwhile',
  help: `Offers the device in --file for live migration to a 'strata migrate dest' that connects to --listen
(the control channel; the device's bytes travel over an NBD export on a free port of the same host). The
workload keeps using the device through the NBD export on --serve: its writes are tracked and re-sent,
wait only during the handover, and are forwarded to the destination after it. If the destination dies
before the handover, the source stays authoritative and waits for another one. After the handover and the
destination's release, the device file is closed; with --serve the source keeps forwarding its workload
until stopped, without it exits.

Usage: strata migrate source --file F --listen 127.0.0.1:PORT [--serve 127.0.0.1:PORT] [--chunk 64K] [--json] [--exit-with-parent]

Example:
  strata migrate source --file disk.img --listen 127.0.0.1:7100 --serve 127.0.0.1:10809`,
  async run(argv, io) {
    const { values } = parseFlags(
      argv,
      {
        ...exitWithParentFlag,
        file: { type: 'string' },
        listen: { type: 'string' },
        serve: { type: 'string' },
        chunk: { type: 'string' },
      },
      0,
    );
    if (!values.file) throw new UsageError('expected --file F');
    const { host, port } = parseHostPort(values.listen, '--listen');
    const serveAt = values.serve ? parseHostPort(values.serve, '--serve') : undefined;
    const chunkBytes = chunkFlag(values.chunk || undefined);
    const file = resolve(io.cwd, values.file);
    const device = await FileDevice.open(file).catch((e: Error) => {
      throw new CliError(`--file ${values.file}: ${e.message}`);
    });
    const progress = new Progress(io.stderr, {
      total: device.size,
      label: 'migrate (sent)',
      quiet: values.quiet === true || values.json === true,
    });
    const src = new MigrationSource(device, {
      ...(chunkBytes ? { chunkBytes } : {}),
      onSend: (n) => progress.tick(n),
      onEvent: (e) => {
        if (e.event === 'released') return;
        const text =
          e.event === 'aborted'
            ? `migration to the ${e.peer} aborted before the handover: ${e.reason}; this source stays authoritative`
            : e.event === 'refused'
              ? `refused the ${e.peer}: ${e.reason}`
              : e.event === 'lost'
                ? `the ${e.peer} went away after the handover: ${e.reason}`
                : e.event === 'committed'
                  ? `handed over to the ${e.peer} (downtime ${ms(e.downtimeMs)} ms)`
                  : `the ${e.peer} connected`;
        note(io, values, e, `strata migrate source: ${text}`);
      },
    });
    let workload: NbdServer | undefined;
    let controlPort: number;
    let nbdPort: number;
    let servePort: number | undefined;
    try {
      ({ controlPort, nbdPort } = await src.listen(port, host));
      if (serveAt) {
        workload = new NbdServer([{ name: '', device: src.front }]);
        servePort = await workload.listen(serveAt.port, serveAt.host);
      }
    } catch (e) {
      // a port in use: the servers already listening kept the process from exiting after the error
      await src.close();
      await device.close();
      throw e;
    }
    const stopped = untilStopped({ withParent: values['exit-with-parent'] === true }).then(() => undefined);
    note(
      io,
      { ...values, quiet: false },
      {
        event: 'listening',
        host,
        controlPort,
        nbdPort,
        servePort,
        size: device.size,
        chunkBytes: src.chunkBytes,
      },
      `strata migrate source: ${file} (${formatBytes(device.size)}) ready for migration on ${host}:${controlPort}` +
        (serveAt ? `; workload on nbd://${serveAt.host}:${servePort}/` : ''),
    );
    const released = await Promise.race([src.released, stopped]);
    progress.finish();
    if (released) {
      const r = released;
      output(
        io,
        values.json,
        { event: 'done', ...r },
        () =>
          `migrated away in ${(r.totalMs / 1000).toFixed(2)} s: ${formatBytes(r.bytesSent)} sent (${r.rounds} rounds, ${r.chunksResent} units of ${formatBytes(migrateTrackBytes)} re-sent), downtime ${ms(r.downtimeMs)} ms, ${r.requestsWaited} workload requests waited (longest ${ms(r.waitMsMax)} ms)`,
      );
      // the workload's requests now go to the destination; keep forwarding them until stopped
      if (workload) await stopped;
    }
    await workload?.close();
    await src.close();
    if (!released) await device.close();
    return 0;
  },
};

/** `--chunk`: a mount's or a migration's chunk size, 64K to 4M (undefined when not given). */
function chunkFlag(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = parseBytes(text, '--chunk');
  if (n < mountChunkBytesMin || n > mountChunkBytesMax)
    throw new UsageError(`--chunk: expected 64K to 4M, got '${text}'`);
  return n;
}

/** `--max-rate`: a byte size per second above 0 (0 was taken as no cap at all). */
function maxRate(text: string): number {
  const r = parseBytes(text, '--max-rate');
  if (r <= 0) throw new UsageError(`--max-rate: expected at least 1 byte per second, got '${text}'`);
  return r;
}

/** Creates `path` unless it exists: true when this call made it (false when it was there already). */
async function createNew(path: string): Promise<boolean> {
  try {
    await (await open(path, 'wx')).close();
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
}

const migrateDest: Command = {
  name: 'dest',
  summary: 'live-migrate a device from a migration source into a file, then serve it over NBD',
  help: `Connects to a 'strata migrate source' at --from, copies its device into --file while the source keeps
serving (pre-copy, then rounds that re-fetch what was written meanwhile), finalizes (the source seals; its
last dirty chunks are fetched on demand), serves the device over NBD on --serve from the handover on, pulls
what is still missing, and releases the source. Prints a summary and serves until stopped. If the source
goes away before the handover, gives up with exit code 1 and never serves (the source stays authoritative);
a --file it created is removed then (one that existed before is left, incomplete).

Usage: strata migrate dest --from HOST:PORT --file OUT --serve 127.0.0.1:PORT [--dirty-max 8] [--rounds 8] [--exit-with-parent]
                           [--pull-concurrency 4] [--max-rate BYTES_PER_S] [--json]

Example:
  strata migrate dest --from 127.0.0.1:7100 --file disk.img --serve 127.0.0.1:10810`,
  async run(argv, io) {
    const { values } = parseFlags(
      argv,
      {
        ...exitWithParentFlag,
        from: { type: 'string' },
        file: { type: 'string' },
        serve: { type: 'string' },
        'dirty-max': { type: 'string' },
        rounds: { type: 'string' },
        'pull-concurrency': { type: 'string' },
        'max-rate': { type: 'string' },
      },
      0,
    );
    const from = parseHostPort(values.from, '--from');
    if (!values.file) throw new UsageError('expected --file OUT');
    const serveAt = parseHostPort(values.serve, '--serve');
    const file = resolve(io.cwd, values.file);
    let progress: Progress | undefined;
    let opened = false;
    /** Whether this command made --file (it is removed if the migration fails before the handover). */
    let created = false;
    let m: Awaited<ReturnType<typeof migrateFrom>>;
    // a stop during the migration abandons it (before the handover the source stays authoritative)
    const stop = new AbortController();
    const stopped = untilStopped({ withParent: values['exit-with-parent'] === true }).then(() =>
      stop.abort(),
    );
    try {
      m = await migrateFrom(from.host, from.port, {
        signal: stop.signal,
        open: async (size) => {
          opened = true;
          created = await createNew(file);
          // a file made here reads as zeros: what reads as zeros at the source is not written to it
          return { device: await FileDevice.open(file, { create: true, size }), zeroed: created };
        },
        serveHost: serveAt.host,
        servePort: serveAt.port,
        dirtyChunksMax: intFlag('dirty-max', values['dirty-max'], 8),
        roundsMax: intFlag('rounds', values.rounds, 8, 0, 1000),
        pullConcurrency: intFlag('pull-concurrency', values['pull-concurrency'], 4, 1, 64),
        ...(values['max-rate'] !== undefined ? { rateBytesMax: maxRate(values['max-rate']) } : {}),
        onFetch: (n) => progress?.tick(n),
        onEvent: (e) => {
          if (e.event === 'connected')
            progress = new Progress(io.stderr, {
              total: e.size,
              label: 'migrate',
              quiet: values.quiet === true || values.json === true,
            });
          const text =
            e.event === 'connected'
              ? `copying ${formatBytes(e.size)} from ${values.from} in ${formatBytes(e.chunkBytes)} chunks`
              : e.event === 'listening'
                ? `export on nbd://${e.host}:${e.port}/ (held until the handover)`
                : e.event === 'round'
                  ? `round ${e.round}: ${e.dirtyChunks} chunks were written during the last copy`
                  : `serving from now on (downtime ${ms(e.downtimeMs)} ms); pulling the rest`;
          note(io, values, e, `strata migrate dest: ${text}`);
        },
      });
    } catch (e) {
      progress?.finish();
      // a file made here (at the size the source declared, before anything else could fail) goes with a
      // failed migration, never one that was there before; nor one that served the workload after the
      // handover (it alone holds the writes made since)
      const keep = e instanceof MigrationAbandonedError && e.afterHandover;
      if (created && !keep) await rm(file, { force: true });
      if (e instanceof MigrationAbandonedError)
        throw new CliError(
          opened
            ? `${e.message}; ${values.file} ${created && !keep ? 'was removed' : 'is incomplete'}`
            : e.message,
        );
      throw e;
    }
    progress?.finish();
    const r = m.report;
    output(
      io,
      values.json,
      { event: 'done', ...r, port: m.port },
      () =>
        `migrated ${formatBytes(r.size)} in ${(r.totalMs / 1000).toFixed(2)} s (serving after ${(r.handoverMs / 1000).toFixed(2)} s): ${formatBytes(r.bytesFetched)} fetched, ${r.rounds} rounds, ${r.chunksResent} units of ${formatBytes(r.trackBytes)} re-sent (${r.finalDirty} dirty at the seal; ${r.fetchedOnDemand} chunks fetched on demand), downtime ${ms(r.downtimeMs)} ms; serving nbd://${serveAt.host}:${m.port}/`,
    );
    await stopped;
    await m.close();
    return 0;
  },
};

export const commands: Command[] = [
  group('nbd', 'serve block devices over NBD; mount remote ones', [serve, mount]),
  group('migrate', 'live-migrate a block device between two processes (pre-copy, handover, post-copy)', [
    migrateSource,
    migrateDest,
  ]),
  syncCmd,
];

export const demos: DemoStep[] = [
  {
    name: 'r3map',
    async run(io, dir) {
      const { writeFile, readFile } = await import('node:fs/promises');
      await makeDirs(dir);
      const a = Buffer.alloc(8 << 20);
      for (let i = 0; i < a.length; i += 4096) a.writeUInt32LE(i, i);
      await writeFile(join(dir, 'disk.img'), a);
      await writeFile(join(dir, 'copy.img'), a);
      for (let k = 0; k < 5; k++) a.write('changed', k * 1_500_007);
      await writeFile(join(dir, 'disk.img'), a);
      const r = await syncFiles(join(dir, 'disk.img'), join(dir, 'copy.img'));
      const same = Buffer.compare(await readFile(join(dir, 'copy.img')), a) === 0;
      io.stdout.write(
        `delta sync of an 8 MiB image with 5 small edits: sent ${r.bytesSent} bytes (${r.changedChunks} of ${r.chunks} chunks); copies equal: ${same}\n`,
      );
      const dev = new MemoryDevice(16 << 20);
      const server = new NbdServer([{ name: 'demo', device: dev }]);
      const port = await server.listen(0);
      io.stdout.write(
        `an NBD server for a 16 MiB memory device listened on nbd://127.0.0.1:${port}/demo (try nbdinfo, nbdcopy, qemu-img)\n`,
      );
      await server.close();
    },
  },
];
