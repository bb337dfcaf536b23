// Durable append throughput and latency, side by side in one run, of the NativeLoglet against its anchors
// on the same machine with default durability: etcd `put` (gRPC, one HTTP/2 connection), ZooKeeper
// sequential `create`, and the ZooKeeperLoglet (the shim loglet Delos swapped for its NativeLoglet).
// The NativeLoglet runs twice: as deployed, a sequencer and 3 LogServers each in its own process started
// with `strata log sequencer` / `strata log server` on 127.0.0.1 (the client in this process, as
// ZooKeeper's and etcd's clients are), and all in this one process. Records of 100 B; 1 client appending
// sequentially and 64 appends in flight; each round runs every system once, in reverse order every other
// round. ZooKeeper and etcd are started here (scripts/services) on 127.0.0.1; everything started here is
// stopped at the end, on failure and on SIGINT/SIGTERM.
// Usage: npm run bench -- vlog anchors [-- --seconds S] [--rounds R]
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { table, writeResults } from '@strata/bench';
import { type Loglet, LogServer, NativeLoglet, nativeSpec, openLoglet, Sequencer } from '../src/index.js';
import { ZkClient, ZooKeeperLoglet, zkPersistentSequential } from '../src/providers/zookeeper.js';
import { type LogProcess, startLogProcess } from '../test/helpers/cli-procs.js';
import { type Service, serviceAvailable, startService } from '../test/helpers/services.js';
import { type Row, record, runAppends, seconds } from './common.js';

const roundsArg = process.argv.indexOf('--rounds');
/** Rounds per in-flight level (`-- --rounds R`); the order of the systems is reversed every other round. */
const rounds = roundsArg > 0 ? Number(process.argv[roundsArg + 1]) : 2;
if (!Number.isInteger(rounds) || rounds < 1 || rounds > 100) {
  console.error(
    `anchors bench: --rounds: expected an integer from 1 to 100, got '${process.argv[roundsArg + 1]}'`,
  );
  process.exit(2);
}
const run = runAppends;

/** The NativeLoglet as deployed: its sequencer and LogServers in their own processes. */
const nativeProcs = 'NativeLoglet, own processes (strata log sequencer + 3 servers)';
/** The NativeLoglet with the client, the sequencer and the LogServers in this one process. */
const nativeOne = 'NativeLoglet, one process (client, sequencer, 3 LogServers)';
const striped = 'StripedLoglet, one process (2 NativeLoglets, rotating sequencers)';
const anchors = ['etcd put (gRPC)', 'ZooKeeper sequential create', 'ZooKeeperLoglet'];

/** etcd's KV.Put over raw gRPC (HTTP/2, length-prefixed protobuf): what an etcd client sends. */
function etcdPutter(address: string) {
  const session = connect(`http://${address}`);
  const varint = (n: number) => {
    const out: number[] = [];
    while (n > 0x7f) {
      out.push((n & 0x7f) | 0x80);
      n >>>= 7;
    }
    out.push(n);
    return Buffer.from(out);
  };
  let n = 0;
  const put = (): Promise<void> => {
    // PutRequest { bytes key = 1; bytes value = 2; }
    const key = Buffer.from(`bench/${String(n++).padStart(12, '0')}`);
    const msg = Buffer.concat([
      Buffer.from([0x0a]),
      varint(key.length),
      key,
      Buffer.from([0x12]),
      varint(record.length),
      record,
    ]);
    const head = Buffer.alloc(5);
    head.writeUInt32BE(msg.length, 1);
    return new Promise((resolve, reject) => {
      const req = session.request({
        ':method': 'POST',
        ':path': '/etcdserverpb.KV/Put',
        'content-type': 'application/grpc',
        te: 'trailers',
      });
      let status: string | undefined;
      req.on('response', (h) => {
        if (h['grpc-status'] !== undefined) status = String(h['grpc-status']);
      });
      req.on('trailers', (h) => {
        status = String(h['grpc-status']);
      });
      req.on('data', () => {});
      req.on('error', reject);
      req.on('end', () =>
        status === '0' ? resolve() : reject(new Error(`etcd Put: grpc-status ${status ?? 'missing'}`)),
      );
      req.end(Buffer.concat([head, msg]));
    });
  };
  return { put, close: () => session.close() };
}

if (!serviceAvailable('zookeeper') || !serviceAvailable('etcd')) {
  console.error('anchors bench: needs ZooKeeper and etcd: apt-get install -y zookeeper etcd-server curl');
  process.exit(2);
}
const dir = mkdtempSync(join(tmpdir(), 'vlog-anchors-'));
const services: Service[] = [];
const procs: LogProcess[] = [];
const rows: Row[] = [];
const servers = [0, 1, 2].map((i) => new LogServer(join(dir, `ls${i}`)));
let seq: Sequencer | undefined;
let seq2: Sequencer | undefined;
// a signal skips the finally below: stop the servers and the services, then go
for (const sig of ['SIGINT', 'SIGTERM'] as const)
  process.once(sig, () => {
    for (const p of procs) p.proc.kill('SIGKILL');
    for (const s of services) s.stop();
    rmSync(dir, { recursive: true, force: true });
    process.exit(130);
  });
try {
  const zk = startService('zookeeper');
  services.push(zk);
  const etcd = startService('etcd');
  services.push(etcd);
  const addrs = await Promise.all(servers.map(async (s) => `127.0.0.1:${await s.listen(0)}`));
  seq = new Sequencer(addrs);
  const seqAddr = `127.0.0.1:${await seq.listen(0)}`;
  // a second sequencer over the same LogServers: the StripedLoglet rotates between the two
  seq2 = new Sequencer(addrs);
  const seq2Addr = `127.0.0.1:${await seq2.listen(0)}`;
  // the deployed configuration: 3 LogServer processes and a sequencer process
  const procServers = await Promise.all(
    [0, 1, 2].map((i) => startLogProcess(['server', '--dir', join(dir, `proc-ls${i}`)])),
  );
  procs.push(...procServers);
  const procSeq = await startLogProcess(['sequencer']);
  procs.push(procSeq);
  const procAddrs = procServers.map((p) => p.address);
  const zkRaw = new ZkClient(zk.address);
  await zkRaw.mkdirp('/bench/seq');
  const etcdPut = etcdPutter(etcd.address);
  let n = 0;
  /** A loglet opened for each run, appended to, and closed. */
  const loglet = (name: string, open: () => Loglet | Promise<Loglet>) => ({
    name,
    async run(inflight: number): Promise<Row> {
      const l = await open();
      const row = await run(name, () => l.append([record]), inflight);
      await l.close();
      return row;
    },
  });
  const systems: { name: string; run(inflight: number): Promise<Row> }[] = [
    loglet(nativeProcs, () => new NativeLoglet(`p${n++}`, 0, procSeq.address, procAddrs)),
    loglet(nativeOne, () => new NativeLoglet(`a${n++}`, 0, seqAddr, addrs)),
    loglet(striped, () =>
      openLoglet(
        `striped:${nativeSpec(seqAddr, addrs, `st${n}`)}|${nativeSpec(seq2Addr, addrs, `st${n}`)}`,
        0,
        n++,
        dir,
        'bench',
      ),
    ),
    { name: anchors[0]!, run: (inflight) => run(anchors[0]!, etcdPut.put, inflight) },
    {
      name: anchors[1]!,
      run: (inflight) =>
        run(anchors[1]!, () => zkRaw.create('/bench/seq/r-', record, zkPersistentSequential), inflight),
    },
    loglet(anchors[2]!, () => ZooKeeperLoglet.open(zk.address, { path: `/bench/loglet${n++}` })),
  ];
  for (const inflight of [1, 64]) {
    // alternate the subjects and their anchors, so drift on the shared machine hits all of them, and
    // reverse the order every other round, so no system always runs first or right after another
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? systems : [...systems].reverse();
      for (const s of order) rows.push(await s.run(inflight));
    }
  }
  etcdPut.close();
  await zkRaw.close();

  const avg = (name: string, inflight: number, k: 'appendsPerSec' | 'p50Ms' | 'p99Ms') => {
    const xs = rows.filter((r) => r.name === name && r.inflight === inflight);
    return xs.reduce((s, r) => s + r[k], 0) / xs.length;
  };
  const names = systems.map((s) => s.name);
  console.log(
    table(
      ['implementation', 'in flight', 'appends/s', 'p50', 'p99'],
      [1, 64].flatMap((inflight) =>
        names.map((name) => [
          name,
          String(inflight),
          avg(name, inflight, 'appendsPerSec').toFixed(0),
          `${avg(name, inflight, 'p50Ms').toFixed(3)} ms`,
          `${avg(name, inflight, 'p99Ms').toFixed(3)} ms`,
        ]),
      ),
    ),
  );
  console.log(`(each row: the mean of ${rounds} runs of ${seconds} s, alternated)`);
  const ratios: Record<string, { throughput: number; p99: number }> = {};
  const ratio = (subject: string, anchor: string, inflight: number) => {
    const r = {
      throughput: avg(subject, inflight, 'appendsPerSec') / avg(anchor, inflight, 'appendsPerSec'),
      p99: avg(subject, inflight, 'p99Ms') / avg(anchor, inflight, 'p99Ms'),
    };
    ratios[`${subject} vs ${anchor}, in flight ${inflight}`] = r;
    console.log(
      `${subject} vs ${anchor}, in flight ${inflight}: throughput x${r.throughput.toFixed(2)}, p99 latency x${r.p99.toFixed(2)}`,
    );
  };
  for (const subject of [nativeProcs, nativeOne])
    for (const anchor of anchors) for (const inflight of [1, 64]) ratio(subject, anchor, inflight);
  for (const inflight of [1, 64]) ratio(nativeProcs, nativeOne, inflight);
  for (const inflight of [1, 64]) ratio(striped, nativeOne, inflight);
  writeResults('bench/results', 'anchors', { date: new Date().toISOString(), seconds, rounds, rows, ratios });
} finally {
  for (const p of procs) await p.stop();
  await seq?.close();
  await seq2?.close();
  for (const s of servers) await s.close();
  for (const s of services) s.stop();
  rmSync(dir, { recursive: true, force: true });
}
