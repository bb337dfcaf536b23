import { join, resolve } from 'node:path';
import {
  CliError,
  type Command,
  type DemoStep,
  group,
  output,
  Progress,
  parseBytes,
  parseFlags,
  parseHostPort,
  UsageError,
  untilStopped,
} from '@strata/cli';
import { openStore } from '@strata/objstore';
import { NbdClientDevice } from './client.js';
import type { BlockDevice } from './device.js';
import { FileDevice } from './devices/file.js';
import { MemoryDevice } from './devices/memory.js';
import { StoreDevice } from './devices/store.js';
import { MountDevice } from './mount.js';
import { NbdServer } from './nbd.js';
import { serveSync, syncFiles, syncToRemote } from './sync.js';

const serve: Command = {
  name: 'serve',
  summary: 'serve a file, a memory device or an object-store device over NBD',
  help: `Serves a block device over the NBD protocol (fixed newstyle; structured replies; base:allocation).

Usage: strata nbd serve (--file F | --mem SIZE | --store URL [--size SIZE]) --listen 127.0.0.1:PORT [--name EXPORT] [--read-only]

Example:
  strata nbd serve --mem 1G --listen 127.0.0.1:10809 --name disk   # then: nbdinfo nbd://127.0.0.1:10809/disk`,
  async run(argv, io) {
    const { values } = parseFlags(argv, {
      file: { type: 'string' },
      mem: { type: 'string' },
      store: { type: 'string' },
      size: { type: 'string' },
      listen: { type: 'string' },
      name: { type: 'string' },
      'read-only': { type: 'boolean' },
    });
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
    const server = new NbdServer([
      { name: values.name ?? '', device, readOnly: values['read-only'] === true },
    ]);
    const p = await server.listen(port, host);
    output(
      io,
      values.json,
      { host, port: p, name: values.name ?? '', size: device.size },
      () =>
        `serving ${device.size} bytes as '${values.name ?? ''}' on nbd://${host}:${p}/${values.name ?? ''}`,
    );
    await untilStopped();
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

Usage: strata sync SRC DST [--chunk 64K] [--dry-run]       DST: a path, or tcp://HOST:PORT/PATH
       strata sync serve --listen 127.0.0.1:PORT --root DIR

Example:
  strata sync disk.img backup.img --dry-run`,
  async run(argv, io) {
    const { values, positionals } = parseFlags(argv, {
      chunk: { type: 'string' },
      'dry-run': { type: 'boolean' },
      listen: { type: 'string' },
      root: { type: 'string' },
    });
    if (positionals[0] === 'serve') {
      const { host, port } = parseHostPort(values.listen, '--listen');
      if (!values.root) throw new UsageError('expected --root DIR');
      const s = serveSync(resolve(io.cwd, values.root));
      await new Promise<void>((r) => s.listen(port, host, r));
      output(
        io,
        values.json,
        { host, port: (s.address() as { port: number }).port },
        () => `sync server on ${host}:${(s.address() as { port: number }).port}, root ${values.root}`,
      );
      await untilStopped();
      await new Promise((r) => s.close(r));
      return 0;
    }
    const [src, dst] = positionals;
    if (!src || !dst) throw new UsageError('expected SRC and DST');
    const chunkBytes = values.chunk ? parseBytes(values.chunk, '--chunk') : undefined;
    const progress = new Progress(io.stderr, { total: 0, label: 'sync', quiet: values.quiet === true });
    const opts = {
      ...(chunkBytes ? { chunkBytes } : {}),
      dryRun: values['dry-run'] === true,
      onProgress: (n: number) => progress.tick(n),
    };
    let r: Awaited<ReturnType<typeof syncFiles>>;
    try {
      const m = /^tcp:\/\/([^/:]+):(\d+)\/(.+)$/.exec(dst);
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

Usage: strata nbd mount --remote HOST:PORT[/EXPORT] --cache FILE --listen 127.0.0.1:PORT [--chunk 1M]
                        [--pull-concurrency 4] [--write-through] [--name EXPORT]

Example:
  strata nbd mount --remote 127.0.0.1:10809/disk --cache ./disk.cache --listen 127.0.0.1:10810`,
  async run(argv, io) {
    const { values } = parseFlags(argv, {
      remote: { type: 'string' },
      cache: { type: 'string' },
      listen: { type: 'string' },
      chunk: { type: 'string' },
      'pull-concurrency': { type: 'string' },
      'write-through': { type: 'boolean' },
      name: { type: 'string' },
    });
    const m = /^([^:/]+):(\d+)(?:\/(.*))?$/.exec(values.remote ?? '');
    if (!m) throw new UsageError(`--remote: expected HOST:PORT[/EXPORT], got '${values.remote ?? ''}'`);
    if (!values.cache) throw new UsageError('expected --cache FILE');
    const { host, port } = parseHostPort(values.listen ?? '127.0.0.1:10810', '--listen');
    let remote: NbdClientDevice;
    try {
      remote = await NbdClientDevice.connect(m[1]!, Number(m[2]), m[3] ?? '');
    } catch (e) {
      throw new CliError(`--remote ${values.remote}: ${(e as Error).message}`);
    }
    const cache = await FileDevice.open(resolve(io.cwd, values.cache), { create: true, size: remote.size });
    const dev = new MountDevice(cache, remote, {
      ...(values.chunk ? { chunkBytes: parseBytes(values.chunk, '--chunk') } : {}),
      ...(values['pull-concurrency'] ? { pullConcurrency: Number(values['pull-concurrency']) } : {}),
      writeThrough: values['write-through'] === true,
    });
    const server = new NbdServer([{ name: values.name ?? '', device: dev }]);
    const p = await server.listen(port, host);
    output(
      io,
      values.json,
      { host, port: p, size: dev.size, chunks: dev.stats.chunks },
      () =>
        `mounted ${values.remote} (${dev.size} bytes) on nbd://${host}:${p}/${values.name ?? ''}; pulling in the background`,
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
    await untilStopped();
    clearInterval(timer);
    await server.close();
    await dev.close();
    await remote.close();
    await cache.close();
    return 0;
  },
};

export const commands: Command[] = [
  group('nbd', 'serve block devices over NBD; mount remote ones', [serve, mount]),
  syncCmd,
];

export const demos: DemoStep[] = [
  {
    name: 'r3map',
    async run(io, dir) {
      const { mkdir, writeFile, readFile } = await import('node:fs/promises');
      await mkdir(dir, { recursive: true });
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
